// The real ferry binary follows a log that a writer appends to while it is rotated by
// rename (in the agent's presence and while it is down) and by copy-truncate, and the agent
// is SIGKILLed mid-file in every round and restarted. The file output must hold every line
// exactly once, in the order written.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <unistd.h>

#include <filesystem>
#include <random>
#include <thread>

#include "tests/integration/tail_agent.h"
#include "tests/support/process.h"
#include "tests/support/temp_dir.h"

using namespace ferry::test;

namespace {

// The application writing the log: one descriptor (O_APPEND), like a logger that reopens
// its file only when told to. Keeps everything it wrote, in order.
class LogWriter {
 public:
  explicit LogWriter(std::string path) : path_(std::move(path)) { reopen(); }
  ~LogWriter() { ::close(fd_); }
  LogWriter(const LogWriter&) = delete;
  LogWriter& operator=(const LogWriter&) = delete;

  // Appends `n` lines in `pieces` writes cut at random bytes (so lines arrive in parts),
  // pacing them over a few milliseconds while the agent reads.
  void write(size_t n, std::mt19937& rng, int pieces = 8) {
    std::string chunk;
    for (size_t i = 0; i < n; ++i, ++next_) {
      chunk += "{\"i\":" + std::to_string(next_) + ",\"msg\":\"line " + std::to_string(next_) +
               "\",\"pad\":\"" + std::string(next_ % 40, 'p') + "\"}\n";
    }
    size_t at = 0;
    for (int p = 1; p <= pieces && at < chunk.size(); ++p) {
      const size_t end =
          p == pieces ? chunk.size() : std::uniform_int_distribution<size_t>(at, chunk.size())(rng);
      writeAll(std::string_view(chunk).substr(at, end - at));
      at = end;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));  // pacing, not a wait
    }
    all_ += chunk;
  }
  // logrotate's rename: the file gets another name; this writer keeps writing to it.
  void renameTo(const std::string& to) { std::filesystem::rename(path_, to); }
  // The logger reopens its path: a new file.
  void reopen() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = ::open(path_.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    REQUIRE(fd_ >= 0);
  }
  // logrotate's copytruncate: copied away, then cut to 0 in place (the writer goes on
  // writing at the new end).
  void copyTruncate(const std::string& to) {
    std::filesystem::copy_file(path_, to);
    REQUIRE(::ftruncate(fd_, 0) == 0);
  }
  const std::string& all() const { return all_; }
  uintmax_t bytes() const { return all_.size(); }

 private:
  void writeAll(std::string_view s) {
    while (!s.empty()) {
      const ssize_t n = ::write(fd_, s.data(), s.size());
      REQUIRE(n > 0);
      s.remove_prefix(static_cast<size_t>(n));
    }
  }

  std::string path_;
  int fd_ = -1;
  size_t next_ = 0;
  std::string all_;
};

}  // namespace

TEST_SUITE("integration.tail_rotation") {
  TEST_CASE(
      "rotation by rename and copy-truncate with SIGKILLs mid-file: every line once, in order") {
    TempDir dir;
    const std::string log = dir.file("app.log");
    LogWriter w(log);
    // Only the live name is followed: rotated files are finished through their inode.
    TailAgent agent(dir, "  - { name: app, type: tail, paths: [" + log +
                             "], format: json, poll_interval: 50ms, rotate_wait: 1s, "
                             "batch_max_records: 100 }\n");
    std::mt19937 rng(5150);
    constexpr int kRounds = 9;
    int kills = 0;
    int mid_file = 0;
    int renames = 0;
    int renames_down = 0;
    int truncations = 0;
    for (int round = 0; round < kRounds; ++round) {
      CAPTURE(round);
      std::unique_ptr<Process> ferry = agent.start();
      const uintmax_t out_before = agent.outBytes();
      w.write(std::uniform_int_distribution<size_t>(3000, 6000)(rng), rng);
      switch (round % 3) {
        case 0:  // rename while the agent runs; the writer still appends to the old file
          // (once the agent has seen the file: a file renamed away before the agent ever
          // matched it is not followed)
          REQUIRE(
              eventually([&] { return agent.outBytes() > out_before; }, std::chrono::seconds(30)));
          w.renameTo(dir.file("app.log.r" + std::to_string(round)));
          w.write(500, rng);
          w.reopen();
          w.write(2000, rng);
          ++renames;
          break;
        case 1: {  // copy-truncate once the agent has read everything (else it is lost)
          const bool caught_up =
              eventually([&] { return agent.outBytes() >= w.bytes(); }, std::chrono::seconds(60));
          INFO("stderr: ", ferry->stderrText());
          REQUIRE(caught_up);
          w.copyTruncate(dir.file("app.log.c" + std::to_string(round)));
          w.write(2000, rng);
          ++truncations;
          break;
        }
        default:
          break;
      }
      // Killed at a random point of what is left to read.
      const uintmax_t out = agent.outBytes();
      const uintmax_t left = w.bytes() - std::min(out, w.bytes());
      const uintmax_t target =
          out + std::uniform_int_distribution<uintmax_t>(1, std::max<uintmax_t>(left / 2, 1))(rng);
      if (agent.killAt(*ferry, target, w.bytes())) ++mid_file;
      ++kills;
      if (round % 3 == 2) {  // rotated while the agent is down: found again at startup
        w.write(300, rng);
        w.renameTo(dir.file("app.log.d" + std::to_string(round)));
        w.write(300, rng);
        w.reopen();
        w.write(300, rng);
        ++renames_down;
      }
    }
    w.write(1000, rng);
    REQUIRE(agent.finish(w.bytes()));
    const size_t n = checkSameLines(w.all(), agent.output());
    CHECK(kills == kRounds);
    CHECK(mid_file >= 5);
    MESSAGE("tail rotation test: ", kills, " SIGKILLs (", mid_file, " mid-file), ", renames,
            " renames while running, ", renames_down, " while down, ", truncations,
            " copy-truncates, ", n, " lines compared");
  }
}
