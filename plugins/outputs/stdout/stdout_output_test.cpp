#include "plugins/outputs/stdout/stdout_output.h"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/temp_dir.h"

namespace ferry {
namespace {

using std::chrono::milliseconds;

Block makeBlock(uint64_t seq, const std::vector<std::string>& records) {
  Block b;
  b.seq = seq;
  for (const std::string& r : records) b.records.append(r);
  return b;
}

// `count` records of about `bytes` each, numbered so that order and duplicates show.
std::vector<std::string> bigRecords(int count, size_t bytes) {
  std::vector<std::string> out;
  for (int i = 0; i < count; ++i) {
    out.push_back("{\"n\":" + std::to_string(i) + ",\"pad\":\"" + std::string(bytes, 'x') + "\"}");
  }
  return out;
}

std::string ndjson(const std::vector<std::string>& records) {
  std::string s;
  for (const std::string& r : records) s += r + "\n";
  return s;
}

SteadyTime soon() { return std::chrono::steady_clock::now() + std::chrono::seconds(10); }

// Reads a pipe until EOF on its own thread.
class PipeReader {
 public:
  explicit PipeReader(int fd)
      : thread_([this, fd] {
          char chunk[4096];
          for (;;) {
            const ssize_t n = ::read(fd, chunk, sizeof(chunk));
            if (n > 0) {
              data_.append(chunk, static_cast<size_t>(n));
            } else if (n == 0 || errno != EINTR) {
              break;
            }
          }
        }) {}
  // Waits for EOF (the caller closes the write end first).
  std::string finish() {
    thread_.join();
    return data_;
  }

 private:
  std::string data_;
  std::thread thread_;
};

// Ignores SIGPIPE for the scope, as the agent does for its whole life.
class IgnoreSigpipe {
 public:
  IgnoreSigpipe() : previous_(std::signal(SIGPIPE, SIG_IGN)) {}
  ~IgnoreSigpipe() { std::signal(SIGPIPE, previous_); }

 private:
  void (*previous_)(int);
};

}  // namespace

TEST_SUITE("outputs.stdout") {
  TEST_CASE("a block of three records becomes exactly three lines") {
    test::TempDir dir;
    const std::string path = dir.file("out.ndjson");
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    REQUIRE(fd >= 0);
    StdoutOutput out(fd);
    REQUIRE(out.open({}).isOk());

    SendResult r = out.send(makeBlock(1, {R"({"a":1})", R"({"b":"two"})", R"({"c":[3]})"}), soon());
    CHECK(r.kind == SendResult::Kind::kDelivered);
    out.close();
    ::close(fd);
    CHECK(test::readFile(path) == "{\"a\":1}\n{\"b\":\"two\"}\n{\"c\":[3]}\n");
  }

  TEST_CASE("an empty block is delivered and writes nothing") {
    test::TempDir dir;
    const std::string path = dir.file("out.ndjson");
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    REQUIRE(fd >= 0);
    StdoutOutput out(fd);
    CHECK(out.send(makeBlock(1, {}), soon()).kind == SendResult::Kind::kDelivered);
    ::close(fd);
    CHECK(test::readFile(path).empty());
  }

  TEST_CASE("blocks follow each other in order") {
    test::TempDir dir;
    const std::string path = dir.file("out.ndjson");
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    REQUIRE(fd >= 0);
    StdoutOutput out(fd);
    std::string expected;
    for (uint64_t seq = 1; seq <= 20; ++seq) {
      std::vector<std::string> recs = {"{\"seq\":" + std::to_string(seq) + "}",
                                       "{\"seq\":" + std::to_string(seq) + ",\"i\":2}"};
      expected += ndjson(recs);
      REQUIRE(out.send(makeBlock(seq, recs), soon()).kind == SendResult::Kind::kDelivered);
    }
    ::close(fd);
    CHECK(test::readFile(path) == expected);
  }

  TEST_CASE("a block much bigger than the pipe arrives whole while a reader drains it") {
    int p[2];
    REQUIRE(::pipe2(p, O_CLOEXEC) == 0);
    ::fcntl(p[1], F_SETPIPE_SZ, 4096);  // small pipe: the write waits for the reader many times
    PipeReader reader(p[0]);
    const std::vector<std::string> recs = bigRecords(200, 3000);  // ~600 KB
    {
      StdoutOutput out(p[1]);
      CHECK(out.send(makeBlock(7, recs), soon()).kind == SendResult::Kind::kDelivered);
    }
    ::close(p[1]);
    CHECK(reader.finish() == ndjson(recs));
    ::close(p[0]);
  }

  TEST_CASE("a reader that went away is a retry naming EPIPE") {
    IgnoreSigpipe ignore;
    int p[2];
    REQUIRE(::pipe2(p, O_CLOEXEC) == 0);
    ::close(p[0]);
    StdoutOutput out(p[1]);
    SendResult r = out.send(makeBlock(1, {R"({"a":1})"}), soon());
    CHECK(r.kind == SendResult::Kind::kRetry);
    CHECK(r.reason.find("Broken pipe") != std::string::npos);
    CHECK(r.reason.find("reader went away") != std::string::npos);
    ::close(p[1]);
  }

  // Short writes: a non-blocking pipe takes 4 KiB per write(), so this is also the test of
  // the write loop's partial-write handling.
  TEST_CASE("a full non-blocking pipe retries at the deadline and the retry repeats nothing") {
    int p[2];
    REQUIRE(::pipe2(p, O_CLOEXEC | O_NONBLOCK) == 0);
    ::fcntl(p[1], F_SETPIPE_SZ, 4096);
    const std::vector<std::string> recs = bigRecords(100, 1000);  // ~100 KB, pipe holds 4 KB
    const Block block = makeBlock(42, recs);
    StdoutOutput out(p[1]);

    // Nobody reads: the first part fits, then EAGAIN until the deadline.
    const auto started = std::chrono::steady_clock::now();
    SendResult r = out.send(block, std::chrono::steady_clock::now() + milliseconds(50));
    CHECK(r.kind == SendResult::Kind::kRetry);
    CHECK(r.reason.find("Resource temporarily unavailable") != std::string::npos);
    CHECK(std::chrono::steady_clock::now() - started >= milliseconds(45));

    // The sender retries the same block once a reader drains the pipe: the reader gets
    // every record exactly once, the torn first attempt included.
    int flags = ::fcntl(p[0], F_GETFL);
    ::fcntl(p[0], F_SETFL, flags & ~O_NONBLOCK);
    PipeReader reader(p[0]);
    r = out.send(block, soon());
    CHECK(r.kind == SendResult::Kind::kDelivered);
    ::close(p[1]);
    CHECK(reader.finish() == ndjson(recs));
    ::close(p[0]);
  }

  TEST_CASE("a different block after a torn write starts on a fresh line") {
    int p[2];
    REQUIRE(::pipe2(p, O_CLOEXEC | O_NONBLOCK) == 0);
    ::fcntl(p[1], F_SETPIPE_SZ, 4096);
    StdoutOutput out(p[1]);
    // Records of 1000 bytes do not end on the 4096-byte pipe boundary: the write tears one.
    SendResult r = out.send(makeBlock(1, bigRecords(10, 1000)), std::chrono::steady_clock::now());
    REQUIRE(r.kind == SendResult::Kind::kRetry);

    int flags = ::fcntl(p[0], F_GETFL);
    ::fcntl(p[0], F_SETFL, flags & ~O_NONBLOCK);
    PipeReader reader(p[0]);
    CHECK(out.send(makeBlock(2, {R"({"next":true})"}), soon()).kind ==
          SendResult::Kind::kDelivered);
    ::close(p[1]);
    const std::string got = reader.finish();
    ::close(p[0]);
    const std::string next = "{\"next\":true}\n";
    REQUIRE(got.size() > next.size());
    CHECK(got.substr(got.size() - next.size()) == next);
    CHECK(got[got.size() - next.size() - 1] == '\n');  // the torn line was ended, not glued to
  }

  TEST_CASE("the descriptor builds a stdout output with no options") {
    const PluginDescriptor& d = stdoutOutputDescriptor();
    CHECK(d.kind == PluginKind::kOutput);
    CHECK(d.name == "stdout");
    CHECK(!d.summary.empty());
    CHECK(d.options.empty());
    REQUIRE(static_cast<bool>(d.make_output));
    CHECK(!d.make_input);
    PluginContext ctx;
    ctx.name = "stdout";
    Result<std::unique_ptr<Output>> out = d.make_output(ctx, Options());
    REQUIRE(out.isOk());
    CHECK(out.value() != nullptr);
  }
}

}  // namespace ferry
