// ferry-bench scenarios with a real upstream: the agent (in this process, built from a
// config like `ferry run` does) tails a file of sensor JSON into the disk buffer (fsync,
// AES-256-GCM, zstd 3) and forwards it with the `http` output (zstd on the wire) to a
// `ferry receive` child process on 127.0.0.1 (writing with --durability os, so the
// figure is the agent's, not the receiver's disk).
//
//   tail-http     the receiver is up from the start; records_per_s = records / time from
//                 agent start to the last record acknowledged by the receiver.
//   replay-drain  the receiver is down while every record is read and stored (a backlog
//                 after an outage); then it starts: records_per_s = records / time from
//                 the receiver being ready to the last record acknowledged.
// upstream_bytes_per_input_byte = request body bytes the output sent (all attempts) /
// bytes of the input file; disk_bytes_per_input_byte = this process's write_bytes
// (/proc/self/io: the buffer's WAL, SSTs, metadata) / input bytes. peak_rss_mb is this
// process only (the receiver is another).
#include "agent/bench/bench_util.h"
#include "agent/bench/upstream_scenarios.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include "agent/codec/key_file.h"
#include "agent/config/loader.h"
#include "agent/core/agent.h"
#include "agent/core/registry.h"
#include "ferry/log.h"

namespace ferry::bench {

namespace {



std::string selfDir() {
  std::error_code ec;
  auto p = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? std::string(".") : p.parent_path().string();
}

// A free TCP port on 127.0.0.1 (bound, then released).
int freePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) std::abort();
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

// `ferry receive` as a child; start() returns once it printed its listening line.
class Receiver {
 public:
  Receiver(std::string out_dir, int port) : out_dir_(std::move(out_dir)), port_(port) {}
  ~Receiver() { stop(); }
  bool start() {
    int fds[2];
    if (::pipe(fds) != 0) return false;
    pid_ = ::fork();
    if (pid_ == 0) {
      ::dup2(fds[1], 1);
      ::close(fds[0]);
      ::close(fds[1]);
      const std::string ferry = selfDir() + "/ferry";
      const std::string listen = "127.0.0.1:" + std::to_string(port_);
      ::execl(ferry.c_str(), ferry.c_str(), "receive", "--listen", listen.c_str(), "--out", out_dir_.c_str(),
              "--durability", "os", static_cast<char*>(nullptr));
      std::perror("exec ferry receive");
      ::_exit(127);
    }
    ::close(fds[1]);
    std::string seen;
    char buf[256];
    while (seen.find("listening on") == std::string::npos) {
      ssize_t n = ::read(fds[0], buf, sizeof buf);
      if (n <= 0) {
        ::close(fds[0]);
        return false;
      }
      seen.append(buf, static_cast<size_t>(n));
    }
    out_fd_ = fds[0];  // kept open: the child may print more
    return true;
  }
  void stop() {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      int st = 0;
      ::waitpid(pid_, &st, 0);
      pid_ = -1;
    }
    if (out_fd_ >= 0) ::close(out_fd_);
    out_fd_ = -1;
  }

 private:
  std::string out_dir_;
  int port_;
  pid_t pid_ = -1;
  int out_fd_ = -1;
};

std::string configText(const std::string& dir, const std::string& input, int port) {
  return "agent: { id: bench, data_dir: " + dir + "/data }\n"
         "log: { level: warn }\n"
         "buffer:\n"
         "  durability: fsync\n"
         "  max_bytes: 4GiB\n"
         "  compression: { codec: zstd, level: 3 }\n"
         "  encryption: { key_file: " + dir + "/at-rest.key }\n"
         "inputs:\n"
         "  - { name: sensors, type: tail, paths: [" + input + "], format: json, start_at: beginning,\n"
         "      poll_interval: 10ms }\n"
         "outputs:\n"
         "  - name: upstream\n"
         "    type: http\n"
         "    url: http://127.0.0.1:" + std::to_string(port) + "/ingest\n"
         "    compression: zstd\n"
         "    window: 4\n"
         "    timeout: 10s\n"
         "    retry: { initial: 50ms, max: 200ms }\n";
}

uint64_t counter(MetricsRegistry& m, const char* name, const char* label, const char* value) {
  return m.counterValue(name, {{label, value}});
}

}  // namespace

int upstreamScenario(const std::string& name, uint64_t records,
                     const std::function<void(RecordBatch&, uint64_t)>& gen) {
  const bool replay = name == "replay-drain";
  char templ[] = "/tmp/ferry-bench-up-XXXXXX";
  if (::mkdtemp(templ) == nullptr) return 1;
  const std::string dir = templ;
  const std::string input = dir + "/sensors.ndjson";
  const uint64_t input_bytes = writeRecordsFile(input, records, gen);
  if (!writeNewKeyFile(dir + "/at-rest.key").isOk()) return 1;
  const int port = freePort();

  auto loaded = loadConfigText(configText(dir, input, port), "<bench>", PluginRegistry::builtin());
  if (!loaded.config) {
    for (const auto& p : loaded.problems) std::fprintf(stderr, "%s\n", p.toString().c_str());
    return 1;
  }
  applyLogSection(loaded.config->log);
  Receiver receiver(dir + "/received", port);
  if (!replay && !receiver.start()) {
    std::fprintf(stderr, "cannot start ferry receive (is it built beside ferry-bench?)\n");
    return 1;
  }

  MetricsRegistry metrics;
  double secs = 0;
  const uint64_t io0 = processWriteBytes();
  {
    Agent agent(metrics, systemClock());
    auto t0 = std::chrono::steady_clock::now();
    Status st = agent.start(*loaded.config);
    if (!st.isOk()) {
      std::fprintf(stderr, "agent: %s\n", st.toString().c_str());
      return 1;
    }
    if (replay) {
      // Everything read and stored while the upstream is down.
      while (counter(metrics, "ferry_input_records_total", "input", "sensors") < records) {
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
      while (agent.buffer().stats().records < records) std::this_thread::sleep_for(std::chrono::milliseconds(5));
      if (!receiver.start()) {
        std::fprintf(stderr, "cannot start ferry receive\n");
        return 1;
      }
      t0 = std::chrono::steady_clock::now();
    }
    while (counter(metrics, "ferry_output_records_total", "output", "upstream") < records) {
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    agent.stop(std::chrono::steady_clock::now() + std::chrono::seconds(5));
  }
  const uint64_t written = processWriteBytes() - io0;
  receiver.stop();
  const uint64_t wire = counter(metrics, "ferry_output_wire_bytes_total", "output", "upstream");
  std::printf(
      "{\"scenario\":\"%s\",\"records\":%llu,\"seconds\":%.3f,\"records_per_s\":%.0f,"
      "\"peak_rss_mb\":%.1f,\"disk_bytes_per_input_byte\":%.4f,\"upstream_bytes_per_input_byte\":%.4f,"
      "\"input_bytes\":%llu,\"upstream_bytes\":%llu,\"retries\":%llu}\n",
      name.c_str(), static_cast<unsigned long long>(records), secs, static_cast<double>(records) / secs, peakRssMb(),
      static_cast<double>(written) / static_cast<double>(input_bytes),
      static_cast<double>(wire) / static_cast<double>(input_bytes), static_cast<unsigned long long>(input_bytes),
      static_cast<unsigned long long>(wire),
      static_cast<unsigned long long>(counter(metrics, "ferry_retries_total", "output", "upstream")));
  std::filesystem::remove_all(dir);
  return 0;
}

}  // namespace ferry::bench
