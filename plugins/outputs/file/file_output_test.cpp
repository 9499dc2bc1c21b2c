#include "plugins/outputs/file/file_output.h"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <memory>
#include <fstream>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "ferry/log.h"
#include "tests/support/temp_dir.h"

namespace ferry {
namespace {

namespace fs = std::filesystem;

Block makeBlock(uint64_t seq, const std::vector<std::string>& records) {
  Block b;
  b.seq = seq;
  for (const std::string& r : records) b.records.append(r);
  return b;
}

// A record whose NDJSON line is exactly `line_bytes` long (newline included).
std::string recordOfLine(char tag, size_t line_bytes) {
  const std::string head = std::string("{\"") + tag + "\":\"";
  return head + std::string(line_bytes - head.size() - 3, tag) + "\"}";
}

std::string ndjson(const std::vector<std::string>& records) {
  std::string s;
  for (const std::string& r : records) s += r + "\n";
  return s;
}

SteadyTime soon() { return std::chrono::steady_clock::now() + std::chrono::seconds(10); }

Options fileOptions(const std::string& path, const std::string& max_size = "100MiB",
                    int64_t max_files = 5, bool sync = true, const std::string& mode = "0640") {
  Options o;
  o.setLocation({.file = "ferry.yaml", .line = 30, .path = "outputs[1]"});
  uint64_t size = 0;
  REQUIRE(parseSize(max_size, &size));
  o.set("path", path, {.file = "ferry.yaml", .line = 31, .path = "outputs[1].path"});
  o.set("max_size", size, {.file = "ferry.yaml", .line = 32, .path = "outputs[1].max_size"});
  o.set("max_files", max_files, {.file = "ferry.yaml", .line = 33, .path = "outputs[1].max_files"});
  o.set("sync", sync, {.file = "ferry.yaml", .line = 34, .path = "outputs[1].sync"});
  o.set("mode", mode, {.file = "ferry.yaml", .line = 35, .path = "outputs[1].mode"});
  return o;
}

// Builds through the descriptor, as the core does.
std::unique_ptr<Output> makeOutput(const Options& opts) {
  PluginContext ctx;
  ctx.name = "archive";
  Result<std::unique_ptr<Output>> out = fileOutputDescriptor().make_output(ctx, opts);
  REQUIRE_MESSAGE(out.isOk(), out.status().toString());
  return std::move(out).value();
}

bool delivered(Output& out, const Block& block) {
  SendResult r = out.send(block, soon());
  INFO(r.reason);
  return r.kind == SendResult::Kind::kDelivered;
}

// Sends a block that must be delivered; returns its commit state.
std::string deliveredState(Output& out, const Block& block) {
  SendResult r = out.send(block, soon());
  INFO(r.reason);
  REQUIRE(r.kind == SendResult::Kind::kDelivered);
  return r.commit_state;
}

// The commit state `path` has now: "v1 <dev> <inode> <size>".
std::string stateOf(const std::string& path) {
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  return "v1 " + std::to_string(st.st_dev) + " " + std::to_string(st.st_ino) + " " +
         std::to_string(st.st_size);
}

uint64_t inodeOf(const std::string& path) {
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  return static_cast<uint64_t>(st.st_ino);
}

void appendToFile(const std::string& path, const std::string& bytes) {
  test::writeFile(path, test::readFile(path) + bytes, 0640);  // same inode: truncates in place
}

// Sets RLIMIT_NOFILE to the lowest free descriptor for the scope: every open() fails with
// EMFILE, while rename() and the descriptors already open keep working.
class NoMoreDescriptors {
 public:
  NoMoreDescriptors() {
    ::getrlimit(RLIMIT_NOFILE, &previous_);
    const int lowest_free = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    REQUIRE(lowest_free >= 0);
    ::close(lowest_free);
    rlimit lim = previous_;
    lim.rlim_cur = static_cast<rlim_t>(lowest_free);
    ::setrlimit(RLIMIT_NOFILE, &lim);
  }
  ~NoMoreDescriptors() { ::setrlimit(RLIMIT_NOFILE, &previous_); }

 private:
  rlimit previous_{};
};

mode_t permissions(const std::string& path) {
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  return st.st_mode & 07777;
}

// Sets RLIMIT_FSIZE for the scope (files cannot grow past `bytes`), with SIGXFSZ ignored
// so that the write fails with EFBIG instead of killing the test.
class FileSizeLimit {
 public:
  explicit FileSizeLimit(rlim_t bytes) : previous_handler_(std::signal(SIGXFSZ, SIG_IGN)) {
    ::getrlimit(RLIMIT_FSIZE, &previous_);
    rlimit lim = previous_;
    lim.rlim_cur = bytes;
    ::setrlimit(RLIMIT_FSIZE, &lim);
  }
  ~FileSizeLimit() {
    ::setrlimit(RLIMIT_FSIZE, &previous_);
    std::signal(SIGXFSZ, previous_handler_);
  }

 private:
  rlimit previous_{};
  void (*previous_handler_)(int);
};

// Log lines captured instead of written to stderr, for the cases that expect a warning.
std::string g_log;
void captureLog(std::string_view line) { g_log.append(line).push_back('\n'); }

class CaptureLog {
 public:
  CaptureLog() {
    g_log.clear();
    setLogSink(&captureLog);
  }
  ~CaptureLog() { setLogSink(nullptr); }
};

}  // namespace

TEST_SUITE("outputs.file") {
  TEST_CASE("lines are appended in order across sends") {
    test::TempDir dir;
    const std::string path = dir.file("out.ndjson");
    auto out = makeOutput(fileOptions(path));
    REQUIRE(out->open({}).isOk());
    std::string expected;
    for (uint64_t seq = 1; seq <= 10; ++seq) {
      std::vector<std::string> recs = {"{\"seq\":" + std::to_string(seq) + ",\"i\":1}",
                                       "{\"seq\":" + std::to_string(seq) + ",\"i\":2}",
                                       "{\"seq\":" + std::to_string(seq) + ",\"i\":3}"};
      expected += ndjson(recs);
      REQUIRE(delivered(*out, makeBlock(seq, recs)));
    }
    out->close();
    CHECK(test::readFile(path) == expected);
    CHECK(!fs::exists(path + ".1"));
  }

  TEST_CASE("an empty block is delivered and writes nothing") {
    test::TempDir dir;
    const std::string path = dir.file("out.ndjson");
    auto out = makeOutput(fileOptions(path));
    REQUIRE(out->open({}).isOk());
    CHECK(delivered(*out, makeBlock(1, {})));
    out->close();
    CHECK(fs::file_size(path) == 0);
  }

  TEST_CASE("a new instance appends after what is there (agent restart)") {
    test::TempDir dir;
    const std::string path = dir.file("out.ndjson");
    test::writeFile(path, "{\"old\":1}\n", 0640);
    {
      auto out = makeOutput(fileOptions(path));
      REQUIRE(out->open({}).isOk());
      REQUIRE(delivered(*out, makeBlock(1, {R"({"a":1})"})));
      out->close();
    }
    {
      auto out = makeOutput(fileOptions(path));
      REQUIRE(out->open({}).isOk());
      REQUIRE(delivered(*out, makeBlock(2, {R"({"b":2})"})));
    }  // destroyed without close(): the destructor closes
    CHECK(test::readFile(path) == "{\"old\":1}\n{\"a\":1}\n{\"b\":2}\n");
  }

  TEST_CASE("a partial last line left by a crash is cut at open") {
    test::TempDir dir;
    const std::string path = dir.file("out.ndjson");
    const std::string whole = "{\"a\":1}\n" + std::string(5000, ' ') + "{\"b\":2}\n";
    test::writeFile(path, whole + "{\"c\":" + std::string(9000, '3'), 0640);
    CaptureLog log;
    auto out = makeOutput(fileOptions(path));
    REQUIRE(out->open({}).isOk());
    CHECK(g_log.find("cut a partial last line of 9005 bytes") != std::string::npos);
    REQUIRE(delivered(*out, makeBlock(1, {R"({"c":3})"})));
    CHECK(test::readFile(path) == whole + "{\"c\":3}\n");

    // Without any newline the whole content is a fragment.
    test::writeFile(path, "{\"frag", 0640);
    auto again = makeOutput(fileOptions(path));
    REQUIRE(again->open({}).isOk());
    REQUIRE(delivered(*again, makeBlock(2, {R"({"d":4})"})));
    CHECK(test::readFile(path) == "{\"d\":4}\n");
  }

  TEST_CASE("a FIFO at the path is refused, not waited on") {
    test::TempDir dir;
    const std::string path = dir.file("fifo");
    REQUIRE(::mkfifo(path.c_str(), 0600) == 0);
    auto out = makeOutput(fileOptions(path));
    Status s = out->open({});
    CHECK(!s.isOk());
    CHECK(s.message().find(path) != std::string::npos);
  }

  TEST_CASE("the size learned at open counts toward max_size") {
    test::TempDir dir;
    const std::string path = dir.file("out.ndjson");
    const std::string old = ndjson({recordOfLine('o', 25)});
    test::writeFile(path, old, 0640);
    auto out = makeOutput(fileOptions(path, "40", 3));
    REQUIRE(out->open({}).isOk());
    const std::string rec = recordOfLine('a', 20);
    REQUIRE(delivered(*out, makeBlock(1, {rec})));  // 25 + 20 > 40: rotates first
    CHECK(test::readFile(path + ".1") == old);
    CHECK(test::readFile(path) == ndjson({rec}));
  }

  TEST_CASE("rotation shifts path, path.1 ... and keeps at most max_files") {
    test::TempDir dir;
    const std::string path = dir.file("out.ndjson");
    // Blocks of two 10-byte lines (20 bytes) with max_size 30: one block per file.
    auto out = makeOutput(fileOptions(path, "30", 2));
    REQUIRE(out->open({}).isOk());
    std::vector<std::string> blocks;
    for (int i = 0; i < 6; ++i) {
      const char tag = static_cast<char>('a' + i);
      std::vector<std::string> recs = {recordOfLine(tag, 10), recordOfLine(tag, 10)};
      blocks.push_back(ndjson(recs));
      REQUIRE(delivered(*out, makeBlock(static_cast<uint64_t>(i + 1), recs)));

      CHECK(test::readFile(path) == blocks[static_cast<size_t>(i)]);
      if (i >= 1) CHECK(test::readFile(path + ".1") == blocks[static_cast<size_t>(i - 1)]);
      if (i >= 2) CHECK(test::readFile(path + ".2") == blocks[static_cast<size_t>(i - 2)]);
      CHECK(!fs::exists(path + ".3"));
    }
    out->close();
    // Only the output's own files are in the directory.
    int files = 0;
    for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir.path())) ++files;
    CHECK(files == 3);
  }

  TEST_CASE("a gap left by a rotation cut short is filled, not carried upwards") {
    test::TempDir dir;
    const std::string path = dir.file("out.ndjson");
    // A crash during an earlier rotation left .3 missing.
    test::writeFile(path, "current\n");
    test::writeFile(path + ".1", "one\n");
    test::writeFile(path + ".2", "two\n");
    test::writeFile(path + ".4", "four\n");
    auto out = makeOutput(fileOptions(path, "8", 10));
    REQUIRE(out->open({}).isOk());
    REQUIRE(delivered(*out, makeBlock(1, {"{\"x\":1}"})));  // does not fit: rotates first
    CHECK(test::readFile(path + ".1") == "current\n");
    CHECK(test::readFile(path + ".2") == "one\n");
    CHECK(test::readFile(path + ".3") == "two\n");   // the gap is filled
    CHECK(test::readFile(path + ".4") == "four\n");  // older files keep their place
    CHECK_FALSE(fs::exists(path + ".5"));
  }

  TEST_CASE("a file fills up to max_size exactly before rotating") {
    test::TempDir dir;
    const std::string path = dir.file("out.ndjson");
    auto out = makeOutput(fileOptions(path, "30", 5));
    REQUIRE(out->open({}).isOk());
    const std::string r1 = recordOfLine('a', 10), r2 = recordOfLine('b', 10),
                      r3 = recordOfLine('c', 10), r4 = recordOfLine('d', 10);
    REQUIRE(delivered(*out, makeBlock(1, {r1})));
    REQUIRE(delivered(*out, makeBlock(2, {r2})));
    REQUIRE(delivered(*out, makeBlock(3, {r3})));  // 30 bytes: at the limit, not past it
    CHECK(!fs::exists(path + ".1"));
    REQUIRE(delivered(*out, makeBlock(4, {r4})));
    CHECK(test::readFile(path + ".1") == ndjson({r1, r2, r3}));
    CHECK(test::readFile(path) == ndjson({r4}));
  }

  TEST_CASE("a block bigger than max_size gets a file of its own") {
    test::TempDir dir;
    const std::string path = dir.file("out.ndjson");
    auto out = makeOutput(fileOptions(path, "30", 5));
    REQUIRE(out->open({}).isOk());
    const std::string small = recordOfLine('s', 10);
    const std::vector<std::string> big = {recordOfLine('b', 25), recordOfLine('B', 25)};
    const std::string after = recordOfLine('t', 10);

    REQUIRE(delivered(*out, makeBlock(1, {small})));
    REQUIRE(delivered(*out, makeBlock(2, big)));
    CHECK(test::readFile(path + ".1") == ndjson({small}));
    CHECK(test::readFile(path) == ndjson(big));  // 50 bytes in a 30-byte file, whole

    REQUIRE(delivered(*out, makeBlock(3, {after})));
    CHECK(test::readFile(path + ".2") == ndjson({small}));
    CHECK(test::readFile(path + ".1") == ndjson(big));
    CHECK(test::readFile(path) == ndjson({after}));
  }

  TEST_CASE("a big first block goes into the empty file without rotating") {
    test::TempDir dir;
    const std::string path = dir.file("out.ndjson");
    auto out = makeOutput(fileOptions(path, "30", 5));
    REQUIRE(out->open({}).isOk());
    const std::vector<std::string> big = {recordOfLine('b', 100)};
    REQUIRE(delivered(*out, makeBlock(1, big)));
    CHECK(test::readFile(path) == ndjson(big));
    CHECK(!fs::exists(path + ".1"));
  }

  TEST_CASE("max_files 0 starts an empty file instead of keeping rotated files") {
    test::TempDir dir;
    const std::string path = dir.file("out.ndjson");
    auto out = makeOutput(fileOptions(path, "30", 0));
    REQUIRE(out->open({}).isOk());
    const std::string r1 = recordOfLine('a', 20), r2 = recordOfLine('b', 20),
                      r3 = recordOfLine('c', 20);
    REQUIRE(delivered(*out, makeBlock(1, {r1})));
    REQUIRE(delivered(*out, makeBlock(2, {r2})));
    CHECK(test::readFile(path) == ndjson({r2}));
    REQUIRE(delivered(*out, makeBlock(3, {r3})));
    CHECK(test::readFile(path) == ndjson({r3}));
    CHECK(!fs::exists(path + ".1"));
  }

  TEST_CASE("rotated files beyond max_files, left by an earlier config, are deleted") {
    test::TempDir dir;
    const std::string path = dir.file("out.ndjson");
    for (int i = 1; i <= 5; ++i) test::writeFile(path + "." + std::to_string(i), "old\n");
    test::writeFile(path + ".07", "not ours\n");
    test::writeFile(dir.file("other.ndjson.9"), "not ours\n");
    auto out = makeOutput(fileOptions(path, "30", 2));
    REQUIRE(out->open({}).isOk());
    CHECK(fs::exists(path + ".1"));
    CHECK(fs::exists(path + ".2"));
    CHECK(!fs::exists(path + ".3"));
    CHECK(!fs::exists(path + ".5"));
    CHECK(fs::exists(path + ".07"));
    CHECK(fs::exists(dir.file("other.ndjson.9")));
  }

  TEST_CASE("created files get the configured mode, whatever the umask") {
    test::TempDir dir;
    const mode_t old_umask = ::umask(077);
    {
      auto out = makeOutput(fileOptions(dir.file("default.ndjson")));
      REQUIRE(out->open({}).isOk());
      CHECK(permissions(dir.file("default.ndjson")) == 0640);

      auto custom = makeOutput(fileOptions(dir.file("custom.ndjson"), "30", 2, true, "600"));
      REQUIRE(custom->open({}).isOk());
      CHECK(permissions(dir.file("custom.ndjson")) == 0600);
      // Files created by rotation too.
      REQUIRE(delivered(*custom, makeBlock(1, {recordOfLine('a', 20)})));
      REQUIRE(delivered(*custom, makeBlock(2, {recordOfLine('b', 20)})));
      CHECK(permissions(dir.file("custom.ndjson")) == 0600);
    }
    ::umask(old_umask);
  }

  TEST_CASE("an existing file keeps its permissions") {
    test::TempDir dir;
    const std::string path = dir.file("out.ndjson");
    test::writeFile(path, "", 0604);
    auto out = makeOutput(fileOptions(path));
    REQUIRE(out->open({}).isOk());
    CHECK(permissions(path) == 0604);
  }

  TEST_CASE("missing parent directories are created") {
    test::TempDir dir;
    const std::string path = dir.file("a/b/c/out.ndjson");
    auto out = makeOutput(fileOptions(path));
    REQUIRE(out->open({}).isOk());
    REQUIRE(delivered(*out, makeBlock(1, {R"({"a":1})"})));
    CHECK(test::readFile(path) == "{\"a\":1}\n");
  }

  TEST_CASE("a parent that is a regular file is a clear error from open()") {
    test::TempDir dir;
    test::writeFile(dir.file("blocker"), "x");
    const std::string path = dir.file("blocker/out.ndjson");
    auto out = makeOutput(fileOptions(path));
    Status s = out->open({});
    REQUIRE(!s.isOk());
    INFO(s.toString());
    CHECK(s.message().find(path) != std::string::npos);
    CHECK(s.message().find("Not a directory") != std::string::npos);
    CHECK(!s.retryable());
    // send() without a successful open asks for a retry with the same reason.
    SendResult r = out->send(makeBlock(1, {R"({"a":1})"}), soon());
    CHECK(r.kind == SendResult::Kind::kRetry);
    CHECK(r.reason.find(path) != std::string::npos);
  }

  TEST_CASE("a path that is a directory or a device is refused by open()") {
    test::TempDir dir;
    fs::create_directory(dir.file("adir"));
    auto out = makeOutput(fileOptions(dir.file("adir")));
    Status s = out->open({});
    CHECK(!s.isOk());
    CHECK(s.message().find(dir.file("adir")) != std::string::npos);

    auto null_out = makeOutput(fileOptions("/dev/null"));
    s = null_out->open({});
    CHECK(!s.isOk());
    CHECK(s.message().find("not a regular file") != std::string::npos);
  }

  TEST_CASE("a write that fails half-way leaves no torn line behind") {
    test::TempDir dir;
    const std::string path = dir.file("out.ndjson");
    auto out = makeOutput(fileOptions(path));
    REQUIRE(out->open({}).isOk());
    const std::string first = recordOfLine('a', 100);
    REQUIRE(delivered(*out, makeBlock(1, {first})));

    const std::vector<std::string> block = {recordOfLine('b', 100), recordOfLine('c', 100)};
    {
      FileSizeLimit limit(150);  // 100 bytes in the file: the block's write stops at 50
      SendResult r = out->send(makeBlock(2, block), soon());
      CHECK(r.kind == SendResult::Kind::kRetry);
      CHECK(r.reason == path + ": File too large");
      CHECK(test::readFile(path) == ndjson({first}));
    }
    REQUIRE(delivered(*out, makeBlock(2, block)));
    CHECK(test::readFile(path) == ndjson({first}) + ndjson(block));
  }

  TEST_CASE("sync: false delivers without syncing") {
    test::TempDir dir;
    const std::string path = dir.file("out.ndjson");
    auto out = makeOutput(fileOptions(path, "100MiB", 5, false));
    REQUIRE(out->open({}).isOk());
    REQUIRE(delivered(*out, makeBlock(1, {R"({"a":1})"})));
    CHECK(test::readFile(path) == "{\"a\":1}\n");
  }

  TEST_CASE("the commit state is the file's device, inode and length after the block") {
    test::TempDir dir;
    const std::string path = dir.file("out.ndjson");
    for (const bool sync : {true, false}) {
      CAPTURE(sync);
      std::filesystem::remove(path);
      auto out = makeOutput(fileOptions(path, "100MiB", 5, sync));
      REQUIRE(out->open({}).isOk());
      const std::string state1 = deliveredState(*out, makeBlock(1, {R"({"a":1})"}));
      CHECK(state1 == stateOf(path));
      const std::string state2 =
          deliveredState(*out, makeBlock(2, {R"({"b":2})", R"({"c":3})"}));
      CHECK(state2 == stateOf(path));
      // An empty block writes nothing and reports where the file is.
      CHECK(deliveredState(*out, makeBlock(3, {})) == state2);
      const std::optional<FileCommitState> st = FileCommitState::parse(stateOf(path));
      REQUIRE(st.has_value());
      CHECK(st->inode == inodeOf(path));
      CHECK(st->length == 24);
      CHECK(st->format() == stateOf(path));
    }
  }

  TEST_CASE("commit states parse only in the exact form they are written") {
    const std::optional<FileCommitState> ok = FileCommitState::parse("v1 2049 131074 0");
    REQUIRE(ok.has_value());
    CHECK(ok->dev == 2049);
    CHECK(ok->inode == 131074);
    CHECK(ok->length == 0);
    CHECK(FileCommitState{18446744073709551615u, 1, 2}.format() == "v1 18446744073709551615 1 2");
    CHECK(FileCommitState::parse("v1 18446744073709551615 1 2").has_value());
    for (const std::string_view bad :
         {"", "v1", "v1 1 2", "v2 1 2 3", "v1 1 2 3 ", " v1 1 2 3", "v1  1 2 3", "v1 1 2 3 4",
          "v1 -1 2 3", "v1 +1 2 3", "v1 01 2 3", "v1 1 2 x", "v1 18446744073709551616 1 2",
          "v10 1 2 3", "V1 1 2 3", "v1\t1 2 3"}) {
      CAPTURE(bad);
      CHECK(!FileCommitState::parse(bad).has_value());
    }
  }

  TEST_CASE("open with a commit state cuts the blocks written after it (crash before the ack)") {
    test::TempDir dir;
    const std::string path = dir.file("out.ndjson");
    for (const bool sync : {true, false}) {
      CAPTURE(sync);
      std::filesystem::remove(path);
      const std::vector<std::string> b1 = {R"({"n":1})", R"({"n":2})"};
      const std::vector<std::string> b2 = {R"({"n":3})"};
      const std::vector<std::string> b3 = {R"({"n":4})", R"({"n":5})", R"({"n":6})"};
      std::string state2, state3;
      {
        auto out = makeOutput(fileOptions(path, "100MiB", 5, sync));
        REQUIRE(out->open({}).isOk());
        deliveredState(*out, makeBlock(1, b1));
        state2 = deliveredState(*out, makeBlock(2, b2));
        state3 = deliveredState(*out, makeBlock(3, b3));
      }  // "killed" here: block 3 was written but its ack never stored
      REQUIRE(test::readFile(path) == ndjson(b1) + ndjson(b2) + ndjson(b3));

      CaptureLog log;
      auto out = makeOutput(fileOptions(path, "100MiB", 5, sync));
      REQUIRE(out->open(state2).isOk());
      CHECK(test::readFile(path) == ndjson(b1) + ndjson(b2));
      CHECK(stateOf(path) == state2);
      CHECK(g_log.find("cut " + std::to_string(ndjson(b3).size()) + " bytes") !=
            std::string::npos);
      // The buffer replays block 3: it is in the file exactly once.
      CHECK(deliveredState(*out, makeBlock(3, b3)) == state3);
      CHECK(test::readFile(path) == ndjson(b1) + ndjson(b2) + ndjson(b3));

      // Opening with the state of the last block cuts nothing.
      out = makeOutput(fileOptions(path, "100MiB", 5, sync));
      REQUIRE(out->open(state3).isOk());
      CHECK(test::readFile(path) == ndjson(b1) + ndjson(b2) + ndjson(b3));
    }
  }

  TEST_CASE("a commit state also cuts a torn write of the unacknowledged block") {
    test::TempDir dir;
    const std::string path = dir.file("out.ndjson");
    std::string state1;
    {
      auto out = makeOutput(fileOptions(path));
      REQUIRE(out->open({}).isOk());
      state1 = deliveredState(*out, makeBlock(1, {R"({"a":1})"}));
    }
    appendToFile(path, "{\"b\":2}\n{\"c\":");  // killed in the middle of block 2's write
    auto out = makeOutput(fileOptions(path));
    REQUIRE(out->open(state1).isOk());
    REQUIRE(delivered(*out, makeBlock(2, {R"({"b":2})", R"({"c":3})"})));
    CHECK(test::readFile(path) == "{\"a\":1}\n{\"b\":2}\n{\"c\":3}\n");
  }

  TEST_CASE("a rotation after the ack: path.1 is cut to the committed length, path to 0") {
    test::TempDir dir;
    const std::string path = dir.file("out.ndjson");
    // 20-byte blocks, max_size 45: blocks 1 and 2 fill a file, block 3 rotates.
    const std::vector<std::string> b1 = {recordOfLine('a', 20)};
    const std::vector<std::string> b2 = {recordOfLine('b', 20)};
    const std::vector<std::string> b3 = {recordOfLine('c', 20)};
    std::string state1, state2;
    {
      auto out = makeOutput(fileOptions(path, "45", 3));
      REQUIRE(out->open({}).isOk());
      state1 = deliveredState(*out, makeBlock(1, b1));
      state2 = deliveredState(*out, makeBlock(2, b2));
      deliveredState(*out, makeBlock(3, b3));
    }
    REQUIRE(test::readFile(path + ".1") == ndjson(b1) + ndjson(b2));
    REQUIRE(test::readFile(path) == ndjson(b3));

    SUBCASE("acked up to block 2: the rotated file is whole, the new one is emptied") {
      CaptureLog log;
      auto out = makeOutput(fileOptions(path, "45", 3));
      REQUIRE(out->open(state2).isOk());
      CHECK(test::readFile(path + ".1") == ndjson(b1) + ndjson(b2));
      CHECK(test::readFile(path).empty());
      CHECK(g_log.find("rotation") != std::string::npos);
      REQUIRE(delivered(*out, makeBlock(3, b3)));
      CHECK(test::readFile(path + ".1") == ndjson(b1) + ndjson(b2));
      CHECK(test::readFile(path) == ndjson(b3));
      CHECK(!fs::exists(path + ".2"));
    }
    SUBCASE("acked up to block 1: path.1 is cut back too, and blocks 2 and 3 come again") {
      auto out = makeOutput(fileOptions(path, "45", 3));
      REQUIRE(out->open(state1).isOk());
      CHECK(test::readFile(path + ".1") == ndjson(b1));
      CHECK(test::readFile(path).empty());
      REQUIRE(delivered(*out, makeBlock(2, b2)));
      REQUIRE(delivered(*out, makeBlock(3, b3)));
      // Every record once, in order, across the files.
      CHECK(test::readFile(path + ".2") + test::readFile(path + ".1") + test::readFile(path) ==
            ndjson(b1) + ndjson(b2) + ndjson(b3));
    }
    SUBCASE("killed between the rename and the new file: the file is created, nothing cut") {
      fs::remove(path);
      auto out = makeOutput(fileOptions(path, "45", 3));
      REQUIRE(out->open(state2).isOk());
      CHECK(test::readFile(path + ".1") == ndjson(b1) + ndjson(b2));
      CHECK(fs::exists(path));
      REQUIRE(delivered(*out, makeBlock(3, b3)));
      CHECK(test::readFile(path) == ndjson(b3));
    }
  }

  TEST_CASE("max_files 0 replaces the file, so a state from before it empties the new one") {
    test::TempDir dir;
    const std::string path = dir.file("out.ndjson");
    const std::vector<std::string> b1 = {recordOfLine('a', 30)};
    const std::vector<std::string> b2 = {recordOfLine('b', 20)};
    std::string state1;
    {
      auto out = makeOutput(fileOptions(path, "40", 0));
      REQUIRE(out->open({}).isOk());
      state1 = deliveredState(*out, makeBlock(1, b1));
      const uint64_t before = inodeOf(path);
      deliveredState(*out, makeBlock(2, b2));  // 30 + 20 > 40: the file is replaced
      CHECK(inodeOf(path) != before);
    }
    REQUIRE(test::readFile(path) == ndjson(b2));
    auto out = makeOutput(fileOptions(path, "40", 0));
    REQUIRE(out->open(state1).isOk());
    CHECK(test::readFile(path).empty());
    REQUIRE(delivered(*out, makeBlock(2, b2)));
    CHECK(test::readFile(path) == ndjson(b2));
    CHECK(!fs::exists(path + ".1"));
  }

  TEST_CASE("an empty commit state keeps appending (and cuts a partial last line)") {
    test::TempDir dir;
    const std::string path = dir.file("out.ndjson");
    test::writeFile(path, "{\"old\":1}\n{\"torn", 0640);
    auto out = makeOutput(fileOptions(path));
    REQUIRE(out->open("").isOk());
    CHECK(test::readFile(path) == "{\"old\":1}\n");
    const std::string state = deliveredState(*out, makeBlock(1, {R"({"a":1})"}));
    CHECK(state == stateOf(path));
    CHECK(test::readFile(path) == "{\"old\":1}\n{\"a\":1}\n");
  }

  TEST_CASE("a malformed commit state is ignored with a warning: appending as without one") {
    test::TempDir dir;
    const std::string path = dir.file("out.ndjson");
    for (const std::string bad : {"garbage", "v1 1 2", "v2 1 2 3", "v1 1 2 3 extra"}) {
      CAPTURE(bad);
      test::writeFile(path, "{\"old\":1}\n{\"torn", 0640);
      CaptureLog log;
      auto out = makeOutput(fileOptions(path));
      REQUIRE(out->open(bad).isOk());
      CHECK(g_log.find("malformed commit state \"" + bad + "\"") != std::string::npos);
      CHECK(test::readFile(path) == "{\"old\":1}\n");
      REQUIRE(delivered(*out, makeBlock(1, {R"({"a":1})"})));
      CHECK(test::readFile(path) == "{\"old\":1}\n{\"a\":1}\n");
    }
  }

  TEST_CASE("a file shorter than the committed length is kept as it is, with a warning") {
    test::TempDir dir;
    const std::string path = dir.file("out.ndjson");
    std::string state2;
    {
      auto out = makeOutput(fileOptions(path));
      REQUIRE(out->open({}).isOk());
      deliveredState(*out, makeBlock(1, {R"({"a":1})"}));
      state2 = deliveredState(*out, makeBlock(2, {R"({"b":2})"}));
    }
    test::writeFile(path, "{\"a\":1}\n", 0640);  // truncated in place by someone else
    CaptureLog log;
    auto out = makeOutput(fileOptions(path));
    REQUIRE(out->open(state2).isOk());
    CHECK(g_log.find("shorter than the 16") != std::string::npos);
    CHECK(g_log.find("keeping it as it is") != std::string::npos);
    CHECK(test::readFile(path) == "{\"a\":1}\n");
    REQUIRE(delivered(*out, makeBlock(3, {R"({"c":3})"})));
    CHECK(test::readFile(path) == "{\"a\":1}\n{\"c\":3}\n");
  }

  TEST_CASE("a committed file found nowhere means appending, with a warning") {
    test::TempDir dir;
    const std::string path = dir.file("out.ndjson");
    std::string state1;
    {
      auto out = makeOutput(fileOptions(path));
      REQUIRE(out->open({}).isOk());
      state1 = deliveredState(*out, makeBlock(1, {R"({"a":1})"}));
      REQUIRE(delivered(*out, makeBlock(2, {R"({"b":2})"})));
    }
    // Replaced by a copy (a new inode) behind the agent's back: nothing is cut blindly.
    // The copy is made before the original goes, so it cannot reuse its inode number.
    const std::string copy = test::readFile(path);
    test::writeFile(path + ".copy", copy, 0640);
    fs::rename(path + ".copy", path);
    CaptureLog log;
    auto out = makeOutput(fileOptions(path));
    REQUIRE(out->open(state1).isOk());
    CHECK(g_log.find("appending without cutting back") != std::string::npos);
    CHECK(test::readFile(path) == copy);
  }

  TEST_CASE("a mid-run reopen cuts back to the last delivered block, not to nothing") {
    test::TempDir dir;
    const std::string path = dir.file("out.ndjson");
    const std::vector<std::string> b1 = {recordOfLine('a', 30)};
    const std::vector<std::string> b2 = {recordOfLine('b', 30)};
    auto out = makeOutput(fileOptions(path, "40", 3));
    REQUIRE(out->open({}).isOk());
    REQUIRE(delivered(*out, makeBlock(1, b1)));
    {
      NoMoreDescriptors limit;  // the rotation renames, then cannot create the new file
      SendResult r = out->send(makeBlock(2, b2), soon());
      CHECK(r.kind == SendResult::Kind::kRetry);
    }
    REQUIRE(test::readFile(path + ".1") == ndjson(b1));
    // Something left at the path meanwhile holds no delivered block of this output.
    test::writeFile(path, "{\"stray\":1}\n", 0640);
    REQUIRE(delivered(*out, makeBlock(2, b2)));
    CHECK(test::readFile(path + ".1") == ndjson(b1));
    CHECK(test::readFile(path) == ndjson(b2));
  }

  TEST_CASE("SIGKILL at any moment: after restarts every record is in the files once, in order") {
    test::TempDir dir;
    const std::string path = dir.file("out.ndjson");
    // Stand-in for the buffer: "<seq> <commit state>" of the last acked block, replaced
    // atomically after each delivery, as the core stores cursor and state in one write.
    const std::string ack = dir.file("ack");
    constexpr uint64_t kBlocks = 1000;
    constexpr int64_t kMaxFiles = 200;
    auto records = [](uint64_t seq) {
      std::vector<std::string> r;
      for (uint64_t i = 0; i <= seq % 3; ++i) {
        r.push_back("{\"seq\":" + std::to_string(seq) + ",\"i\":" + std::to_string(i) + "}");
      }
      return r;
    };
    auto config = [&](bool sync) {
      FileOutputConfig c;
      c.path = path;
      c.max_size = 300;  // a rotation every ~9 blocks: ~110 files, all kept
      c.max_files = kMaxFiles;
      c.sync = sync;
      return c;
    };
    // Each round a child process runs the output from the acked state (sync: true every
    // fourth round) and is SIGKILLed after 0-8 ms, at whatever point it has reached.
    CaptureLog log;  // keeps the cut messages off stderr
    std::mt19937 rng(20261124);
    // Exactly-once starts with the first acknowledged block: before it the state is empty
    // and a file with contents is appended to (it may be older records of this output).
    uint64_t acked = 1;
    std::string state;
    {
      FileOutput first(config(true));
      REQUIRE(first.open({}).isOk());
      state = deliveredState(first, makeBlock(1, records(1)));
    }
    int killed = 0;
    int tails = 0;
    for (int round = 0; round < 60 && acked < kBlocks; ++round) {
      const pid_t pid = ::fork();
      REQUIRE(pid >= 0);
      if (pid == 0) {
        FileOutput out(config(round % 4 == 0));
        if (!out.open(state)) ::_exit(2);
        for (uint64_t seq = acked + 1; seq <= kBlocks; ++seq) {
          SendResult r = out.send(makeBlock(seq, records(seq)), soon());
          if (r.kind != SendResult::Kind::kDelivered) ::_exit(3);
          {
            std::ofstream f(ack + ".tmp", std::ios::trunc);
            f << seq << ' ' << r.commit_state;
          }
          if (::rename((ack + ".tmp").c_str(), ack.c_str()) != 0) ::_exit(4);
        }
        ::_exit(0);
      }
      ::usleep(std::uniform_int_distribution<useconds_t>(0, 8000)(rng));
      ::kill(pid, SIGKILL);
      int status = 0;
      REQUIRE(::waitpid(pid, &status, 0) == pid);
      if (WIFSIGNALED(status)) ++killed;
      if (WIFEXITED(status)) REQUIRE(WEXITSTATUS(status) == 0);
      const std::string text = test::readFile(ack);
      if (!text.empty()) {
        const size_t space = text.find(' ');
        REQUIRE(space != std::string::npos);
        acked = std::stoull(text.substr(0, space));
        state = text.substr(space + 1);
      }
      // Did the kill leave bytes after the acknowledged block for the next open() to cut?
      uint64_t bytes = 0;
      for (const auto& e : fs::directory_iterator(dir.path())) {
        if (e.path().filename().string().rfind("out.ndjson", 0) == 0) {
          bytes += fs::file_size(e.path());
        }
      }
      uint64_t acked_bytes = 0;
      for (uint64_t seq = 1; seq <= acked; ++seq) acked_bytes += ndjson(records(seq)).size();
      if (bytes > acked_bytes) ++tails;
    }
    CHECK(killed > 5);
    CHECK(tails > 0);  // typically 10-15 of the 60 kills
    // The last restart runs to the end.
    FileOutput out(config(false));
    REQUIRE(out.open(state).isOk());
    for (uint64_t seq = acked + 1; seq <= kBlocks; ++seq) {
      REQUIRE(delivered(out, makeBlock(seq, records(seq))));
    }
    out.close();

    std::string expected;
    for (uint64_t seq = 1; seq <= kBlocks; ++seq) expected += ndjson(records(seq));
    std::string got;
    for (int64_t i = kMaxFiles; i >= 1; --i) {
      const std::string rotated = path + "." + std::to_string(i);
      if (fs::exists(rotated)) got += test::readFile(rotated);
    }
    got += test::readFile(path);
    CHECK(got.size() == expected.size());
    CHECK(got == expected);
    CHECK(fs::exists(path + ".50"));  // it did rotate, many times
    CHECK(!fs::exists(path + "." + std::to_string(kMaxFiles)));  // and nothing was pruned
  }

  TEST_CASE("bad options are rejected naming the key's location") {
    test::TempDir dir;
    const std::string path = dir.file("out.ndjson");
    for (const std::string bad : {"rw-r-----", "0648", "0x1a4", "77777", "-640", " 0640"}) {
      CAPTURE(bad);
      Options opts = fileOptions(path, "1MiB", 5, true, bad);
      Result<std::unique_ptr<Output>> out =
          fileOutputDescriptor().make_output(PluginContext(), opts);
      REQUIRE(!out.isOk());
      CHECK(out.status().code() == StatusCode::kInvalidArgument);
      CHECK(out.status().message().find(opts.where("mode").describe()) == 0);
      CHECK(out.status().message().find("octal") != std::string::npos);
    }
    Options read_only = fileOptions(path, "1MiB", 5, true, "0444");
    Result<std::unique_ptr<Output>> out =
        fileOutputDescriptor().make_output(PluginContext(), read_only);
    REQUIRE(!out.isOk());
    CHECK(out.status().message().find("ferry.yaml:35: outputs[1].mode") == 0);

    Options negative = fileOptions(path, "1MiB", -1);
    out = fileOutputDescriptor().make_output(PluginContext(), negative);
    REQUIRE(!out.isOk());
    CHECK(out.status().message().find("ferry.yaml:33: outputs[1].max_files") == 0);

    Options no_path;
    no_path.setLocation({.file = "ferry.yaml", .line = 30, .path = "outputs[1]"});
    out = fileOutputDescriptor().make_output(PluginContext(), no_path);
    REQUIRE(!out.isOk());
    CHECK(out.status().message().find("ferry.yaml:30: outputs[1].path") == 0);
  }

  TEST_CASE("unset options take the documented defaults") {
    Options opts;
    opts.set("path", std::string("/tmp/x.ndjson"), {});
    Result<FileOutputConfig> c = fileOutputConfigFromOptions(opts);
    REQUIRE(c.isOk());
    CHECK(c->max_size == uint64_t{100} << 20);
    CHECK(c->max_files == 5);
    CHECK(c->sync);
    CHECK(c->mode == 0640);

    // A zero size is treated as unset; explicit 0 and false are honoured.
    opts.set("max_size", uint64_t{0}, {});
    opts.set("max_files", int64_t{0}, {});
    opts.set("sync", false, {});
    opts.set("mode", std::string(), {});
    c = fileOutputConfigFromOptions(opts);
    REQUIRE(c.isOk());
    CHECK(c->max_size == uint64_t{100} << 20);
    CHECK(c->max_files == 0);
    CHECK(!c->sync);
    CHECK(c->mode == 0640);
  }

  TEST_CASE("the option table's defaults are the ones the code falls back to") {
    const PluginDescriptor& d = fileOutputDescriptor();
    CHECK(d.kind == PluginKind::kOutput);
    CHECK(d.name == "file");
    CHECK(static_cast<bool>(d.make_output));
    CHECK(!d.make_input);
    const FileOutputConfig defaults;
    int seen = 0;
    for (const OptionSpec& o : d.options) {
      CAPTURE(o.key);
      CHECK(!o.help.empty());
      if (o.key == "path") {
        CHECK(o.required);
        ++seen;
      } else if (o.key == "max_size") {
        uint64_t v = 0;
        CHECK(parseSize(o.default_value, &v));
        CHECK(v == defaults.max_size);
        ++seen;
      } else if (o.key == "max_files") {
        CHECK(o.default_value == std::to_string(defaults.max_files));
        ++seen;
      } else if (o.key == "sync") {
        CHECK(o.default_value == (defaults.sync ? "true" : "false"));
        ++seen;
      } else if (o.key == "mode") {
        mode_t m = 0;
        CHECK(parseFileMode(o.default_value, &m));
        CHECK(m == defaults.mode);
        ++seen;
      }
    }
    CHECK(seen == 5);
    CHECK(d.options.size() == 5);
  }
}

}  // namespace ferry
