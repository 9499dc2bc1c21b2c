#include "plugins/inputs/tail/tail.h"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <simdjson.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "ferry/log.h"
#include "ferry/metrics.h"
#include "tests/support/log_capture.h"
#include "tests/support/fakes.h"
#include "tests/support/temp_dir.h"

namespace ferry {
namespace {

using test::TempDir;
using test::writeFile;

void appendFile(const std::string& path, std::string_view text) {
  std::ofstream out(path, std::ios::binary | std::ios::app);
  out << text;
}

// Every batch the input hands over, with its checkpoint, delegating to test::CaptureEmitter
// (whose `committed` map is what a restarted input reads back). Batches can be refused.
class BatchLog final : public Emitter {
 public:
  struct Batch {
    std::vector<std::string> records;
    std::string key;
    std::string value;
    bool accepted = false;
  };

  Status emit(const RecordBatch& batch, std::string_view stream) override {
    plain_emits++;
    return inner.emit(batch, stream);
  }
  Status emitWithCheckpoint(const RecordBatch& batch, const SourceCheckpoint& cp,
                            std::string_view stream) override {
    Batch b;
    for (size_t i = 0; i < batch.size(); ++i) b.records.emplace_back(batch[i]);
    b.key = cp.key;
    b.value = cp.value;
    Status st = refuse ? refuse_with : inner.emitWithCheckpoint(batch, cp, stream);
    b.accepted = st.isOk();
    batches.push_back(std::move(b));
    if (on_emit) on_emit();
    if (st.isOk() && accepted_count() == 1) after_first = inner.committed;
    if (refuse_after >= 0 && accepted_count() >= refuse_after) refuse = true;
    return st;
  }
  Status tryEmit(const RecordBatch& batch, Duration, std::string_view stream) override { return emit(batch, stream); }
  Result<uint64_t> emitTracked(const RecordBatch& batch, std::string_view stream, Duration wait) override {
    return inner.emitTracked(batch, stream, wait);
  }
  Status waitForRoom(uint64_t bytes, Duration wait) override { return inner.waitForRoom(bytes, wait); }
  Status waitCommitted(uint64_t ticket, Duration d) override { return inner.waitCommitted(ticket, d); }
  Status deadLetter(const RecordBatch& batch, std::string_view reason) override {
    return inner.deadLetter(batch, reason);
  }
  void countDropped(std::string_view reason, uint64_t n) override { inner.countDropped(reason, n); }
  const CheckpointReader& checkpoints() const override { return inner.checkpoints(); }
  bool stopping() const override { return inner.stopping(); }
  bool waitFor(Duration d) override { return inner.waitFor(d); }

  int accepted_count() const {
    int n = 0;
    for (const Batch& b : batches) n += b.accepted ? 1 : 0;
    return n;
  }
  // Records of every accepted batch, in order.
  std::vector<std::string> records() const {
    std::vector<std::string> out;
    for (const Batch& b : batches) {
      if (b.accepted) out.insert(out.end(), b.records.begin(), b.records.end());
    }
    return out;
  }

  test::CaptureEmitter inner;
  std::vector<Batch> batches;                      // accepted and refused
  std::map<std::string, std::string> after_first;  // `committed` right after batch 1
  int plain_emits = 0;
  std::function<void()> on_emit;  // runs after every emitWithCheckpoint (changes the files)
  bool refuse = false;             // refuse every batch from now on
  int refuse_after = -1;  // >= 0: refuse once this many batches were accepted
  Status refuse_with = resourceExhausted("buffer full");
};

using test::LogCapture;

Options tailOptions(std::vector<std::string> paths) {
  Options opts;
  opts.set("paths", std::move(paths), {});
  return opts;
}

struct Harness {
  test::ManualClock clock;
  MetricsRegistry metrics;
  BatchLog em;
  std::unique_ptr<Input> input;

  Status make(const Options& opts) {
    PluginContext ctx;
    ctx.agent_id = "edge-01";
    ctx.name = "logs";
    ctx.clock = &clock;
    ctx.metrics = &metrics;
    Result<std::unique_ptr<Input>> r = tailInputDescriptor().make_input(ctx, opts);
    if (!r.isOk()) return r.status();
    input = std::move(r).value();
    return Status::ok();
  }
  Status collect() { return input->collect(em); }
  // Drops counted through Emitter::countDropped.
  uint64_t dropped(const std::string& reason) const {
    auto it = em.inner.dropped.find(reason);
    return it == em.inner.dropped.end() ? 0 : it->second;
  }
};

uint64_t offsetOf(std::string_view value) {
  uint64_t off = 0;
  const size_t sp = value.find(' ');
  REQUIRE(sp != std::string_view::npos);
  const auto [ptr, ec] = std::from_chars(value.data(), value.data() + sp, off);
  REQUIRE(ec == std::errc());
  REQUIRE(ptr == value.data() + sp);
  return off;
}
// A checkpoint value "<offset> <fp_len> <fp> <path>", split.
struct CheckpointValue {
  uint64_t offset = 0;
  uint64_t fp_len = 0;
  std::string fp;  // 16 hex digits
  std::string path;
};
CheckpointValue parseValue(std::string_view value) {
  CheckpointValue v;
  v.offset = offsetOf(value);
  value.remove_prefix(value.find(' ') + 1);
  const size_t sp = value.find(' ');
  REQUIRE(sp != std::string_view::npos);
  const auto [ptr, ec] = std::from_chars(value.data(), value.data() + sp, v.fp_len);
  REQUIRE(ec == std::errc());
  REQUIRE(ptr == value.data() + sp);
  value.remove_prefix(sp + 1);
  REQUIRE(value.size() > 17);
  REQUIRE(value[16] == ' ');
  v.fp = std::string(value.substr(0, 16));
  v.path = std::string(value.substr(17));
  return v;
}

// FNV-1a 64 as 16 lowercase hex digits, written out again so that the test does not rely
// on the input's own code.
std::string fnvHex(std::string_view bytes) {
  uint64_t h = 14695981039346656037ULL;
  for (const char c : bytes) {
    h ^= static_cast<unsigned char>(c);
    h *= 1099511628211ULL;
  }
  char out[17];
  std::snprintf(out, sizeof out, "%016llx", static_cast<unsigned long long>(h));
  return out;
}
// The checkpoint value for `path` at `offset` whose fingerprint covers the first `fp_len`
// bytes of `content`.
std::string cpValue(uint64_t offset, std::string_view content, uint64_t fp_len,
                    const std::string& path) {
  return std::to_string(offset) + " " + std::to_string(fp_len) + " " +
         fnvHex(content.substr(0, fp_len)) + " " + path;
}
// The value once the input has seen all of `path`'s current content: the fingerprint
// covers min(size, 1024) bytes.
std::string cpValue(uint64_t offset, const std::string& path) {
  const std::string content = test::readFile(path);
  return cpValue(offset, content, std::min<uint64_t>(content.size(), 1024), path);
}

// The lines of `text` (without their '\n'); a trailing piece without '\n' is left out.
std::vector<std::string> completeLines(std::string_view text) {
  std::vector<std::string> out;
  size_t start = 0;
  for (size_t nl; (nl = text.find('\n', start)) != std::string_view::npos; start = nl + 1) {
    out.emplace_back(text.substr(start, nl - start));
  }
  return out;
}

std::string fileKey(const std::string& path) {
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  return "file/" + std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino);
}

// For every accepted batch of `path`'s file: the checkpoint names the file, ends at a line
// boundary of its current contents, and the records emitted for the file so far are exactly
// its lines up to that offset (every line of the file must be a valid record). `from` is
// where the first emitted line starts (a restart, start_at end).
void checkCheckpoints(const BatchLog& em, const std::string& path, uint64_t from = 0) {
  const std::string content = test::readFile(path);
  const std::string key = fileKey(path);
  std::vector<std::string> so_far;
  uint64_t last = from;
  for (const BatchLog::Batch& b : em.batches) {
    if (!b.accepted || b.key != key) continue;
    so_far.insert(so_far.end(), b.records.begin(), b.records.end());
    const uint64_t off = offsetOf(b.value);
    CAPTURE(b.value);
    const CheckpointValue v = parseValue(b.value);
    CHECK(v.path == path);
    // The fingerprint covers the head up to at least the offset (up to 1024 bytes).
    CHECK(v.fp_len <= 1024);
    CHECK(v.fp_len >= std::min<uint64_t>(off, 1024));
    REQUIRE(v.fp_len <= content.size());
    CHECK(v.fp == fnvHex(std::string_view(content).substr(0, v.fp_len)));
    REQUIRE(off <= content.size());
    CHECK(off >= last);
    if (off > 0) CHECK(content[off - 1] == '\n');
    CHECK(so_far == completeLines(std::string_view(content).substr(from, off - from)));
    if (!b.records.empty()) {
      // The batch's last record is the line that ends right at the offset.
      const std::string tail = b.records.back() + "\n";
      CHECK(std::string_view(content).substr(0, off).ends_with(tail));
    }
    last = off;
  }
}

std::string jsonLine(int i) {
  return "{\"n\":" + std::to_string(i) + ",\"msg\":\"line " + std::to_string(i) + "\"}";
}
std::string jsonLines(int from, int to) {
  std::string s;
  for (int i = from; i < to; ++i) s += jsonLine(i) + "\n";
  return s;
}
std::vector<std::string> jsonRecords(int from, int to) {
  std::vector<std::string> v;
  for (int i = from; i < to; ++i) v.push_back(jsonLine(i));
  return v;
}

bool isJsonObject(std::string_view r) {
  simdjson::dom::parser p;
  simdjson::dom::element e;
  return p.parse(r.data(), r.size()).get(e) == simdjson::SUCCESS &&
         e.type() == simdjson::dom::element_type::OBJECT;
}

TEST_SUITE("inputs.tail") {
  TEST_CASE("descriptor names the plugin, its options and a factory") {
    const PluginDescriptor& d = tailInputDescriptor();
    CHECK(d.kind == PluginKind::kInput);
    CHECK(d.name == "tail");
    CHECK(!d.summary.empty());
    CHECK((d.make_input != nullptr));
    CHECK((d.make_output == nullptr));
    std::vector<std::string_view> keys;
    for (const OptionSpec& o : d.options) keys.push_back(o.key);
    CHECK(keys == std::vector<std::string_view>{"paths", "exclude", "start_at", "poll_interval",
                                                "rotate_wait", "max_line_bytes", "on_long_line",
                                                "multiline", "batch_max_records",
                                                "batch_max_bytes", "format", "pattern", "columns",
                                                "delimiter", "invalid_utf8"});
    CHECK(d.options[0].type == OptionType::kStringList);
    CHECK(d.options[0].required);
    CHECK(d.options[1].type == OptionType::kStringList);
    CHECK(d.options[2].default_value == "beginning");
    CHECK(d.options[3].default_value == "250ms");
    CHECK(d.options[4].default_value == "5s");
    CHECK(d.options[5].default_value == "1MiB");
    CHECK(d.options[6].default_value == "dead_letter");
    CHECK(d.options[7].type == OptionType::kObject);
    CHECK(d.options[7].fields.size() == 3);
    CHECK(d.options[8].default_value == "1000");
    CHECK(d.options[9].default_value == "256KiB");
    CHECK(d.options[10].default_value == "json");
    CHECK(d.options[10].choices.size() == 6);
  }

  TEST_CASE("settings: defaults, and bad values rejected with their location") {
    Result<TailSettings> s = TailSettings::fromOptions(tailOptions({"/var/log/*.log"}));
    REQUIRE(s.isOk());
    CHECK(s->line_format.format == LineFormat::kJson);
    CHECK(s->start_at == TailSettings::StartAt::kBeginning);
    CHECK(s->poll_interval == std::chrono::milliseconds(250));
    CHECK(s->max_line_bytes == 1 << 20);
    CHECK(s->batch_max_records == 1000);
    CHECK(s->batch_max_bytes == 256 << 10);

    Harness h;
    REQUIRE(h.make(tailOptions({"/x"})).isOk());
    CHECK(h.input->interval() == std::chrono::milliseconds(250));

    Status st = h.make(Options{});
    CHECK(st.code() == StatusCode::kInvalidArgument);
    CHECK(st.message().find("paths") != std::string::npos);

    Options empty_item = tailOptions({"/a", ""});
    empty_item.set("paths", std::vector<std::string>{"/a", ""},
                   SourceLocation{"ferry.yaml", 3, "inputs[0].paths"});
    st = h.make(empty_item);
    CHECK(st.message().find("ferry.yaml:3: inputs[0].paths[1]") != std::string::npos);

    Options fast = tailOptions({"/a"});
    fast.set("poll_interval", Duration(std::chrono::milliseconds(5)),
             SourceLocation{"ferry.yaml", 4, "inputs[0].poll_interval"});
    st = h.make(fast);
    CHECK(st.code() == StatusCode::kInvalidArgument);
    CHECK(st.message().find("ferry.yaml:4: inputs[0].poll_interval") != std::string::npos);

    Options zero_line = tailOptions({"/a"});
    zero_line.set("max_line_bytes", uint64_t{0}, {});
    CHECK(h.make(zero_line).code() == StatusCode::kInvalidArgument);
    Options huge_batch = tailOptions({"/a"});
    huge_batch.set("batch_max_bytes", uint64_t{1} << 30, {});
    CHECK(h.make(huge_batch).message().find("batch_max_bytes") != std::string::npos);
    Options zero_records = tailOptions({"/a"});
    zero_records.set("batch_max_records", int64_t{0}, {});
    CHECK(h.make(zero_records).message().find("batch_max_records") != std::string::npos);
    Options bad_format = tailOptions({"/a"});
    bad_format.set("format", std::string("xml"), {});
    CHECK(h.make(bad_format).code() == StatusCode::kInvalidArgument);
  }

  TEST_CASE("lines in order across polls with appends; every checkpoint matches its batch") {
    TempDir dir;
    const std::string path = dir.file("app.log");
    writeFile(path, jsonLines(0, 5));
    Harness h;
    Options opts = tailOptions({dir.file("*.log")});
    opts.set("batch_max_records", int64_t{2}, {});
    REQUIRE(h.make(opts).isOk());

    REQUIRE(h.collect().isOk());
    CHECK(h.em.records() == jsonRecords(0, 5));
    CHECK(h.em.batches.size() == 3);  // 2 + 2 + 1

    REQUIRE(h.collect().isOk());  // nothing new: nothing emitted
    CHECK(h.em.batches.size() == 3);

    appendFile(path, jsonLines(5, 8));
    REQUIRE(h.collect().isOk());
    appendFile(path, jsonLines(8, 9));
    REQUIRE(h.collect().isOk());
    CHECK(h.em.records() == jsonRecords(0, 9));
    checkCheckpoints(h.em, path);
    CHECK(h.em.inner.committed.at(fileKey(path)) == cpValue(jsonLines(0, 9).size(), path));
    CHECK(h.em.plain_emits == 0);  // always with a checkpoint
  }

  TEST_CASE("a partial last line waits for its newline") {
    TempDir dir;
    const std::string path = dir.file("app.log");
    writeFile(path, jsonLine(0) + "\n{\"n\":1,");
    Harness h;
    REQUIRE(h.make(tailOptions({path})).isOk());
    REQUIRE(h.collect().isOk());
    CHECK(h.em.records() == jsonRecords(0, 1));
    REQUIRE(h.collect().isOk());
    CHECK(h.em.batches.size() == 1);

    appendFile(path, "\"msg\":\"line 1\"}");  // complete JSON, still no newline
    REQUIRE(h.collect().isOk());
    CHECK(h.em.records() == jsonRecords(0, 1));

    appendFile(path, "\n" + jsonLine(2));
    REQUIRE(h.collect().isOk());
    CHECK(h.em.records() == jsonRecords(0, 2));
    appendFile(path, "\n");
    REQUIRE(h.collect().isOk());
    CHECK(h.em.records() == jsonRecords(0, 3));
    checkCheckpoints(h.em, path);
  }

  TEST_CASE("restart after a crash between two batches: no line lost or repeated") {
    TempDir dir;
    const std::string path = dir.file("app.log");
    writeFile(path, jsonLines(0, 7));
    Options opts = tailOptions({dir.file("*.log")});
    opts.set("batch_max_records", int64_t{3}, {});

    std::vector<std::string> first_run;
    std::map<std::string, std::string> committed;
    {
      Harness h;
      REQUIRE(h.make(opts).isOk());
      REQUIRE(h.collect().isOk());
      REQUIRE(h.em.batches.size() == 3);
      checkCheckpoints(h.em, path);
      // The crash: only the first batch and its checkpoint reached the disk.
      first_run = h.em.batches[0].records;
      committed = h.em.after_first;
      REQUIRE(committed.size() == 1);
      CHECK(offsetOf(committed.begin()->second) == jsonLines(0, 3).size());
    }
    appendFile(path, jsonLines(7, 9));  // written while the agent was down

    Harness h;
    h.em.inner.committed = committed;
    REQUIRE(h.make(opts).isOk());
    REQUIRE(h.collect().isOk());
    std::vector<std::string> all = first_run;
    for (const std::string& r : h.em.records()) all.push_back(r);
    CHECK(all == jsonRecords(0, 9));
    checkCheckpoints(h.em, path, jsonLines(0, 3).size());

    // A second restart after everything was committed reads only what comes next.
    Harness again;
    again.em.inner.committed = h.em.inner.committed;
    REQUIRE(again.make(opts).isOk());
    REQUIRE(again.collect().isOk());
    CHECK(again.em.batches.empty());
    appendFile(path, jsonLines(9, 10));
    REQUIRE(again.collect().isOk());
    CHECK(again.em.records() == jsonRecords(9, 10));
  }

  TEST_CASE("start_at end skips existing content; new files are read from the beginning") {
    TempDir dir;
    const std::string old_path = dir.file("old.log");
    writeFile(old_path, jsonLines(0, 3));
    Options opts = tailOptions({dir.file("*.log")});
    opts.set("start_at", std::string("end"), {});
    Harness h;
    REQUIRE(h.make(opts).isOk());
    REQUIRE(h.collect().isOk());
    CHECK(h.em.records().empty());
    // The starting position is committed at once, so a restart does not jump again.
    REQUIRE(h.em.batches.size() == 1);
    CHECK(h.em.batches[0].value == cpValue(jsonLines(0, 3).size(), old_path));

    appendFile(old_path, jsonLines(3, 5));
    const std::string new_path = dir.file("new.log");
    writeFile(new_path, jsonLines(100, 102));
    REQUIRE(h.collect().isOk());
    const std::vector<std::string> got = h.em.records();
    std::vector<std::string> want = jsonRecords(100, 102);  // new.log sorts first
    for (const std::string& r : jsonRecords(3, 5)) want.push_back(r);
    CHECK(got == want);
    checkCheckpoints(h.em, new_path);
    checkCheckpoints(h.em, old_path, jsonLines(0, 3).size());

    // Restarted with checkpoints: start_at does not apply, neither to the files it has
    // checkpoints of nor to a file created (or rotated in) while the agent was down.
    appendFile(old_path, jsonLines(5, 6));
    writeFile(dir.file("while_down.log"), jsonLines(200, 202));
    Harness r;
    r.em.inner.committed = h.em.inner.committed;
    REQUIRE(r.make(opts).isOk());
    REQUIRE(r.collect().isOk());
    std::vector<std::string> after = jsonRecords(5, 6);
    for (const std::string& x : jsonRecords(200, 202)) after.push_back(x);
    CHECK(r.em.records() == after);
  }

  TEST_CASE("the glob picks up new files; a missing path is not an error") {
    TempDir dir;
    Harness h;
    REQUIRE(h.make(tailOptions({dir.file("*.log"), dir.file("absent/x.log")})).isOk());
    REQUIRE(h.collect().isOk());
    CHECK(h.em.batches.empty());

    writeFile(dir.file("a.log"), jsonLines(0, 2));
    writeFile(dir.file("a.txt"), jsonLines(50, 51));  // not matched
    REQUIRE(h.collect().isOk());
    CHECK(h.em.records() == jsonRecords(0, 2));

    writeFile(dir.file("b.log"), jsonLines(2, 4));
    REQUIRE(h.collect().isOk());
    CHECK(h.em.records() == jsonRecords(0, 4));
    checkCheckpoints(h.em, dir.file("a.log"));
    checkCheckpoints(h.em, dir.file("b.log"), 0);
    CHECK(h.em.inner.committed.size() == 2);
  }

  TEST_CASE("a file matched by two patterns is read once") {
    TempDir dir;
    writeFile(dir.file("a.log"), jsonLines(0, 3));
    Harness h;
    REQUIRE(h.make(tailOptions({dir.file("*.log"), dir.file("a.log")})).isOk());
    REQUIRE(h.collect().isOk());
    CHECK(h.em.records() == jsonRecords(0, 3));
  }

  TEST_CASE("invalid JSON is counted and skipped; the offset still moves past it") {
    LogCapture log;
    TempDir dir;
    const std::string path = dir.file("app.log");
    writeFile(path,
              jsonLine(0) + "\nnot json\n[1,2]\n\n   \r\n  " + jsonLine(1) + " \r\n{\"a\":\n");
    Harness h;
    REQUIRE(h.make(tailOptions({path})).isOk());
    REQUIRE(h.collect().isOk());
    CHECK(h.em.records() == jsonRecords(0, 2));  // trimmed; empty lines skipped silently
    CHECK(h.dropped("bad_json") == 2);
    CHECK(h.dropped("not_an_object") == 1);          // [1,2]
    CHECK(log.count("reason bad_json") == 1);        // at most once a minute per reason
    CHECK(log.count("reason not_an_object") == 1);
    CHECK(log.count(path + " offset " + std::to_string(jsonLine(0).size() + 1)) == 1);
    CHECK(offsetOf(h.em.inner.committed.at(fileKey(path))) == test::readFile(path).size());

    // A poll that reads only invalid lines still commits the new position (empty batch).
    appendFile(path, "garbage\n{oops}\n");
    REQUIRE(h.collect().isOk());
    REQUIRE(h.em.batches.size() == 2);
    CHECK(h.em.batches[1].records.empty());
    CHECK(offsetOf(h.em.batches[1].value) == test::readFile(path).size());
    CHECK(h.dropped("bad_json") == 4);
    CHECK(log.count("reason bad_json") == 1);

    h.clock.advance(std::chrono::seconds(61));
    appendFile(path, "nope\n");
    REQUIRE(h.collect().isOk());
    CHECK(log.count("reason bad_json") == 2);
    CHECK(h.dropped("bad_json") == 5);
  }

  TEST_CASE("long lines: dead-lettered (the default) at their newline, even across reads and polls") {
    LogCapture log;
    TempDir dir;
    const std::string path = dir.file("app.log");
    const std::string at_limit = "{\"k\":\"" + std::string(64 - 8, 'x') + "\"}";  // 64 bytes
    REQUIRE(at_limit.size() == 64);
    const std::string over = "{\"k\":\"" + std::string(64 - 7, 'x') + "\"}";  // 65 bytes
    // Longer than the 256 KiB read buffer: its end is found several reads later.
    const std::string huge(700 * 1024, 'y');
    writeFile(path, jsonLine(0) + "\n" + at_limit + "\n" + over + "\n" + huge + "\n" + jsonLine(1) +
                        "\n");
    Options opts = tailOptions({path});
    opts.set("max_line_bytes", uint64_t{64}, {});
    Harness h;
    REQUIRE(h.make(opts).isOk());
    REQUIRE(h.collect().isOk());
    CHECK(h.em.records() == std::vector<std::string>{jsonLine(0), at_limit, jsonLine(1)});
    const uint64_t over_at = jsonLine(0).size() + 1 + 65;
    const uint64_t huge_at = over_at + 66;
    REQUIRE(h.em.inner.dead_letters.size() == 2);
    CHECK(h.em.inner.dead_letters[0].first ==
          "line_too_long: " + path + " offset " + std::to_string(over_at) + ", 65 bytes");
    CHECK(h.em.inner.dead_letters[0].second == over.substr(0, 64));  // up to max_line_bytes
    CHECK(h.em.inner.dead_letters[1].first ==
          "line_too_long: " + path + " offset " + std::to_string(huge_at) + ", " +
              std::to_string(huge.size()) + " bytes");
    CHECK(h.em.inner.dead_letters[1].second == std::string(64, 'y'));
    CHECK(h.em.inner.dropped.empty());  // dead letters are counted by the core, not as drops
    CHECK(offsetOf(h.em.inner.committed.at(fileKey(path))) == test::readFile(path).size());

    // A too-long line whose newline has not been written yet waits, across polls; the
    // position stays before it until it ends.
    const uint64_t before = test::readFile(path).size();
    appendFile(path, std::string(300 * 1024, 'z'));
    REQUIRE(h.collect().isOk());
    CHECK(h.em.inner.dead_letters.size() == 2);
    CHECK(offsetOf(h.em.inner.committed.at(fileKey(path))) == before);
    appendFile(path, std::string(300 * 1024, 'z'));
    REQUIRE(h.collect().isOk());
    appendFile(path, "zz\n" + jsonLine(2) + "\n");
    REQUIRE(h.collect().isOk());
    CHECK(h.em.records() ==
          std::vector<std::string>{jsonLine(0), at_limit, jsonLine(1), jsonLine(2)});
    REQUIRE(h.em.inner.dead_letters.size() == 3);
    CHECK(h.em.inner.dead_letters[2].first.ends_with(", " + std::to_string(600 * 1024 + 2) +
                                                     " bytes"));
    CHECK(offsetOf(h.em.inner.committed.at(fileKey(path))) == test::readFile(path).size());

    // A refused batch after the dead letter does not keep the line twice.
    appendFile(path, over + "\n" + jsonLine(3) + "\n");
    h.em.refuse = true;
    CHECK(h.collect().code() == StatusCode::kResourceExhausted);
    h.em.refuse = false;
    REQUIRE(h.collect().isOk());
    CHECK(h.em.inner.dead_letters.size() == 4);
    CHECK(h.em.records().back() == jsonLine(3));
  }

  TEST_CASE("long lines: on_long_line cut keeps the first max_line_bytes bytes (text)") {
    TempDir dir;
    const std::string path = dir.file("app.log");
    // "é" is two bytes: a cut at 10 bytes would split the fifth; the record keeps 4 of them.
    const std::string accents = "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9";
    writeFile(path, "short\n" + std::string(25, 'a') + "\n" + accents.substr(1) + "\n" + accents +
                        "\nend\n");
    Options opts = tailOptions({path});
    opts.set("format", std::string("text"), {});
    opts.set("max_line_bytes", uint64_t{10}, {});
    opts.set("on_long_line", std::string("cut"), {});
    opts.set("invalid_utf8", std::string("replace"), {});
    Harness h;
    REQUIRE(h.make(opts).isOk());
    REQUIRE(h.collect().isOk());
    const std::string p = ",\"path\":\"" + path + "\"}";
    CHECK(h.em.records() ==
          std::vector<std::string>{"{\"message\":\"short\"" + p,
                                   "{\"message\":\"aaaaaaaaaa\"" + p,
                                   // starts mid-character: the stray byte becomes U+FFFD
                                   "{\"message\":\"\\ufffd\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\"" + p,
                                   "{\"message\":\"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\"" + p,
                                   "{\"message\":\"end\"" + p});
    CHECK(h.dropped("line_cut") == 3);
    CHECK(h.em.inner.dead_letters.empty());
    CHECK(offsetOf(h.em.inner.committed.at(fileKey(path))) == test::readFile(path).size());
  }

  TEST_CASE("an 8 MiB line: neither a crash nor a stall, memory stays about max_line_bytes") {
    TempDir dir;
    const std::string path = dir.file("app.log");
    std::string content = jsonLines(0, 10);
    content += "{\"blob\":\"" + std::string(8 << 20, 'q') + "\"}\n";
    content += jsonLines(10, 20);
    writeFile(path, content);
    for (const char* mode : {"cut", "dead_letter"}) {
      CAPTURE(mode);
      Options opts = tailOptions({path});
      opts.set("max_line_bytes", uint64_t{64 << 10}, {});
      opts.set("on_long_line", std::string(mode), {});
      Harness h;
      REQUIRE(h.make(opts).isOk());
      struct rusage before {};
      ::getrusage(RUSAGE_SELF, &before);
      int polls = 0;
      while (h.em.records().size() < 20 && polls < 50) {
        REQUIRE(h.collect().isOk());
        ++polls;
      }
      struct rusage after {};
      ::getrusage(RUSAGE_SELF, &after);
      CHECK(h.em.records() == jsonRecords(0, 20));  // a cut JSON object is invalid: dropped
      // ru_maxrss in KiB: the peak did not grow by anything like the line's 8 MiB.
      CHECK(after.ru_maxrss - before.ru_maxrss < 4096);
      if (std::string(mode) == "cut") {
        CHECK(h.dropped("bad_json") == 1);
        CHECK(h.dropped("line_cut") == 0);
      } else {
        REQUIRE(h.em.inner.dead_letters.size() == 1);
        CHECK(h.em.inner.dead_letters[0].second.size() == 64 << 10);
      }
      CHECK(offsetOf(h.em.inner.committed.at(fileKey(path))) == content.size());
    }
  }

  TEST_CASE("a line of up to max_line_bytes longer than the read buffer is kept") {
    TempDir dir;
    const std::string path = dir.file("big.log");
    const std::string big = "{\"k\":\"" + std::string(600 * 1024, 'b') + "\"}";
    writeFile(path, jsonLine(0) + "\n" + big + "\n" + jsonLine(1) + "\n");
    Harness h;
    REQUIRE(h.make(tailOptions({path})).isOk());  // max_line_bytes 1MiB
    REQUIRE(h.collect().isOk());
    CHECK(h.em.records() == std::vector<std::string>{jsonLine(0), big, jsonLine(1)});
    // 256KiB per batch: the big record travels alone.
    for (const BatchLog::Batch& b : h.em.batches) {
      if (b.records.size() > 1) {
        size_t bytes = 0;
        for (const std::string& r : b.records) bytes += r.size();
        CHECK(bytes <= 256 * 1024);
      }
    }
    checkCheckpoints(h.em, path);
  }

  TEST_CASE("text format: every line becomes an escaped message with its path") {
    TempDir dir;
    const std::string path = dir.file("we\"ird.txt");
    writeFile(path,
              "plain line\n"
              "quote \" backslash \\ tab \t bell \x07 end\r\n"
              "utf8 \xc3\xa9\xe2\x82\xac bad \xff\xc3 end\n"
              "\n"
              "  spaces kept  \n");
    Options opts = tailOptions({path});
    opts.set("format", std::string("text"), {});
    Harness h;
    REQUIRE(h.make(opts).isOk());
    REQUIRE(h.collect().isOk());
    const std::string p = "\"path\":\"" + dir.file("we\\\"ird.txt") + "\"}";
    CHECK(h.em.records() ==
          std::vector<std::string>{
              "{\"message\":\"plain line\"," + p,
              "{\"message\":\"quote \\\" backslash \\\\ tab \\t bell \\u0007 end\"," + p,
              "{\"message\":\"  spaces kept  \"," + p,
          });
    CHECK(h.dropped("invalid_utf8") == 1);  // invalid_utf8: drop, the default
    for (const std::string& r : h.em.records()) {
      CAPTURE(r);
      CHECK(isJsonObject(r));
    }
    CHECK(offsetOf(h.em.inner.committed.at(fileKey(path))) == test::readFile(path).size());
  }

  TEST_CASE("a refused batch does not move the offset: the same lines come again") {
    TempDir dir;
    const std::string path = dir.file("app.log");
    writeFile(path, jsonLines(0, 5));
    Options opts = tailOptions({path});
    opts.set("batch_max_records", int64_t{2}, {});
    Harness h;
    REQUIRE(h.make(opts).isOk());

    h.em.refuse = true;
    CHECK(h.collect().code() == StatusCode::kResourceExhausted);
    CHECK(h.em.batches.size() == 1);  // stopped at the first refusal
    CHECK(h.em.inner.committed.empty());

    // Accept one batch, then refuse again.
    h.em.refuse = false;
    h.em.refuse_after = 1;
    CHECK(h.collect().code() == StatusCode::kResourceExhausted);
    CHECK(h.em.records() == jsonRecords(0, 2));
    CHECK(offsetOf(h.em.inner.committed.at(fileKey(path))) == jsonLines(0, 2).size());

    h.em.refuse = false;
    h.em.refuse_after = -1;
    h.em.refuse_with = cancelled("stopping");
    REQUIRE(h.collect().isOk());
    CHECK(h.em.records() == jsonRecords(0, 5));
    checkCheckpoints(h.em, path);

    // kCancelled is handed back the same way.
    appendFile(path, jsonLines(5, 6));
    h.em.refuse = true;
    CHECK(h.collect().code() == StatusCode::kCancelled);
    h.em.refuse = false;
    REQUIRE(h.collect().isOk());
    CHECK(h.em.records() == jsonRecords(0, 6));
  }

  TEST_CASE("a refused batch of dropped lines is not counted twice") {
    TempDir dir;
    const std::string path = dir.file("app.log");
    writeFile(path, "bad\nworse\n");
    Harness h;
    REQUIRE(h.make(tailOptions({path})).isOk());
    h.em.refuse = true;
    CHECK(h.collect().code() == StatusCode::kResourceExhausted);
    h.em.refuse = false;
    REQUIRE(h.collect().isOk());
    CHECK(h.dropped("bad_json") == 2);
    CHECK(offsetOf(h.em.inner.committed.at(fileKey(path))) == 10);
  }

  TEST_CASE("batch limits: records and bytes") {
    TempDir dir;
    const std::string path = dir.file("app.log");
    writeFile(path, jsonLines(0, 25));
    SUBCASE("batch_max_records") {
      Options opts = tailOptions({path});
      opts.set("batch_max_records", int64_t{4}, {});
      Harness h;
      REQUIRE(h.make(opts).isOk());
      REQUIRE(h.collect().isOk());
      CHECK(h.em.records() == jsonRecords(0, 25));
      CHECK(h.em.batches.size() == 7);
      for (const BatchLog::Batch& b : h.em.batches) CHECK(b.records.size() <= 4);
      checkCheckpoints(h.em, path);
    }
    SUBCASE("batch_max_bytes") {
      Options opts = tailOptions({path});
      opts.set("batch_max_bytes", uint64_t{100}, {});
      Harness h;
      REQUIRE(h.make(opts).isOk());
      REQUIRE(h.collect().isOk());
      CHECK(h.em.records() == jsonRecords(0, 25));
      const auto& bs = h.em.batches;
      for (size_t i = 0; i < bs.size(); ++i) {
        size_t bytes = 0;
        for (const std::string& r : bs[i].records) bytes += r.size();
        CHECK(bytes <= 100);
        // Cut only when the next record would not have fitted.
        if (i + 1 < bs.size()) CHECK(bytes + bs[i + 1].records.front().size() > 100);
      }
      CHECK(bs.size() == 7);  // 22-byte lines 0-9, 24-byte lines 10-24: 4 per batch
      checkCheckpoints(h.em, path);
    }
    SUBCASE("a record longer than batch_max_bytes goes alone") {
      Options opts = tailOptions({path});
      opts.set("batch_max_bytes", uint64_t{10}, {});
      Harness h;
      REQUIRE(h.make(opts).isOk());
      REQUIRE(h.collect().isOk());
      CHECK(h.em.records() == jsonRecords(0, 25));
      CHECK(h.em.batches.size() == 25);
      checkCheckpoints(h.em, path);
    }
  }

  TEST_CASE("truncation: the file is read again from 0") {
    LogCapture log;
    TempDir dir;
    const std::string path = dir.file("app.log");
    writeFile(path, jsonLines(0, 5));
    Harness h;
    REQUIRE(h.make(tailOptions({path})).isOk());
    REQUIRE(h.collect().isOk());
    CHECK(h.em.records() == jsonRecords(0, 5));

    writeFile(path, jsonLines(10, 12));  // O_TRUNC, same inode, shorter
    REQUIRE(h.collect().isOk());
    std::vector<std::string> want = jsonRecords(0, 5);
    for (const std::string& r : jsonRecords(10, 12)) want.push_back(r);
    CHECK(h.em.records() == want);
    CHECK(log.count("truncated") == 1);
    CHECK(h.em.inner.committed.at(fileKey(path)) == cpValue(jsonLines(10, 12).size(), path));

    // Emptied: position 0 is committed even though no line came.
    writeFile(path, "");
    REQUIRE(h.collect().isOk());
    CHECK(h.em.batches.back().records.empty());
    CHECK(h.em.inner.committed.at(fileKey(path)) == "0 0 cbf29ce484222325 " + path);
  }

  TEST_CASE("truncated while the agent was down: a checkpoint beyond the end restarts at 0") {
    LogCapture log;
    TempDir dir;
    const std::string path = dir.file("app.log");
    writeFile(path, jsonLines(0, 2));
    Harness h;
    h.em.inner.committed[fileKey(path)] = "100000 " + path;
    h.em.inner.committed["file/not-a-file"] = "garbage";
    REQUIRE(h.make(tailOptions({path})).isOk());
    REQUIRE(h.collect().isOk());
    CHECK(h.em.records() == jsonRecords(0, 2));
    CHECK(log.count("truncated") == 1);
    CHECK(log.count("unreadable checkpoint") == 1);
  }

  TEST_CASE("a deleted or renamed-away file is read until quiet for rotate_wait, then closed") {
    LogCapture log;
    TempDir dir;
    const std::string a = dir.file("a.log");
    const std::string b = dir.file("b.log");
    writeFile(a, jsonLines(0, 2));
    writeFile(b, jsonLines(10, 12));
    Harness h;
    REQUIRE(h.make(tailOptions({dir.file("*.log")})).isOk());
    REQUIRE(h.collect().isOk());
    // A writer that still holds the files keeps writing after the rename / delete.
    std::ofstream wa(a, std::ios::binary | std::ios::app);
    std::filesystem::remove(a);
    std::filesystem::rename(b, dir.file("b.old"));
    wa << jsonLine(2) << "\n" << std::flush;
    appendFile(dir.file("b.old"), jsonLines(12, 13));
    REQUIRE(h.collect().isOk());
    CHECK(log.count("was rotated (deleted)") == 1);
    CHECK(log.count("was rotated (now " + dir.file("b.old") + ")") == 1);
    h.clock.advance(std::chrono::seconds(4));
    wa << jsonLine(3) << "\n" << std::flush;  // 4s later: still read, the quiet time restarts
    appendFile(dir.file("b.old"), jsonLines(13, 14));
    REQUIRE(h.collect().isOk());
    CHECK(log.count("no longer following") == 0);
    h.clock.advance(std::chrono::seconds(4));
    REQUIRE(h.collect().isOk());
    CHECK(log.count("no longer following") == 0);
    h.clock.advance(std::chrono::seconds(1));
    REQUIRE(h.collect().isOk());
    CHECK(log.count("no longer following") == 2);
    CHECK(log.count("(deleted)") == 2);  // "was rotated (deleted)" and "... (deleted)"
    std::vector<std::string> got = h.em.records();
    REQUIRE(got.size() == 8);
    std::vector<std::string> rest(got.begin() + 4, got.end());
    std::sort(rest.begin(), rest.end());
    std::vector<std::string> want_rest = {jsonLine(12), jsonLine(13), jsonLine(2), jsonLine(3)};
    std::sort(want_rest.begin(), want_rest.end());
    CHECK(rest == want_rest);
    // Each file's own lines stay in order.
    CHECK(std::find(got.begin(), got.end(), jsonLine(2)) <
          std::find(got.begin(), got.end(), jsonLine(3)));
    CHECK(std::find(got.begin(), got.end(), jsonLine(12)) <
          std::find(got.begin(), got.end(), jsonLine(13)));
    // The checkpoint of the renamed file names it by its new name.
    CHECK(parseValue(h.em.inner.committed.at(fileKey(dir.file("b.old")))).path ==
          dir.file("b.old"));

    // Renamed back: it resumes where it was, nothing is read twice.
    appendFile(dir.file("b.old"), jsonLines(14, 15));
    std::filesystem::rename(dir.file("b.old"), b);
    REQUIRE(h.collect().isOk());
    CHECK(h.em.records().back() == jsonLine(14));
    CHECK(h.em.records().size() == 9);
  }

  TEST_CASE("exclude: files matching an exclude pattern are not followed") {
    TempDir dir;
    writeFile(dir.file("app.log"), jsonLines(0, 2));
    writeFile(dir.file("app.log.1"), jsonLines(10, 12));
    writeFile(dir.file("app.log.2.gz"), "\x1f\x8b binary\n");
    std::filesystem::create_directories(dir.file("old"));
    writeFile(dir.file("old/app.log"), jsonLines(20, 22));
    Options opts = tailOptions({dir.file("app.log*"), dir.file("*/app.log")});
    opts.set("exclude", std::vector<std::string>{"*.gz", "*.1", dir.file("old/*")}, {});
    Harness h;
    REQUIRE(h.make(opts).isOk());
    REQUIRE(h.collect().isOk());
    CHECK(h.em.records() == jsonRecords(0, 2));
    CHECK(h.dropped("bad_json") == 0);

    // A followed file renamed to an excluded name is finished like any rotated file.
    std::filesystem::rename(dir.file("app.log"), dir.file("app.log.1"));
    appendFile(dir.file("app.log.1"), jsonLines(2, 3));
    writeFile(dir.file("app.log"), jsonLines(3, 4));
    REQUIRE(h.collect().isOk());
    CHECK(h.em.records() == jsonRecords(0, 4));  // the rotated file first

    opts.set("exclude", std::vector<std::string>{""}, {});
    CHECK(h.make(opts).code() == StatusCode::kInvalidArgument);
  }

  TEST_CASE("a file that cannot be opened is logged once and retried") {
    LogCapture log;
    TempDir dir;
    const std::string path = dir.file("app.log");
    writeFile(path, jsonLines(0, 1));
    Harness h;
    // A plain path: glob(3) only stats it, so the open(2) is the first call to need an fd.
    REQUIRE(h.make(tailOptions({path})).isOk());
    {
      // No free descriptor (EMFILE): fails as root too, unlike a permission test.
      struct rlimit old {};
      REQUIRE(::getrlimit(RLIMIT_NOFILE, &old) == 0);
      const int lowest = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
      REQUIRE(lowest >= 0);
      ::close(lowest);
      struct rlimit tight = old;
      tight.rlim_cur = static_cast<rlim_t>(lowest);
      REQUIRE(::setrlimit(RLIMIT_NOFILE, &tight) == 0);
      const Status first = h.collect();
      const Status second = h.collect();
      REQUIRE(::setrlimit(RLIMIT_NOFILE, &old) == 0);
      CHECK(first.isOk());
      CHECK(second.isOk());
    }
    CHECK(h.em.batches.empty());
    CHECK(log.count("cannot open " + path) == 1);
    REQUIRE(h.collect().isOk());
    CHECK(h.em.records() == jsonRecords(0, 1));
    CHECK(log.count("cannot open " + path) == 1);
  }

  TEST_CASE("stopping: collect returns kCancelled without reading") {
    TempDir dir;
    writeFile(dir.file("a.log"), jsonLines(0, 3));
    Harness h;
    REQUIRE(h.make(tailOptions({dir.file("*.log")})).isOk());
    h.em.inner.stop = true;
    CHECK(h.collect().code() == StatusCode::kCancelled);
    CHECK(h.em.batches.empty());
  }

  TEST_CASE("a large backlog is read completely, across several pumps and files") {
    TempDir dir;
    std::string big_a = jsonLines(0, 40000);  // ~1.3 MiB each: more than one pump budget
    std::string big_b = jsonLines(40000, 80000);
    writeFile(dir.file("a.log"), big_a);
    writeFile(dir.file("b.log"), big_b);
    Harness h;
    REQUIRE(h.make(tailOptions({dir.file("*.log")})).isOk());
    REQUIRE(h.collect().isOk());
    std::vector<std::string> got = h.em.records();
    CHECK(got.size() == 80000);
    // Per file, in order.
    std::vector<std::string> a, b;
    for (const std::string& r : got) {
      if (std::stoi(r.substr(5)) < 40000) {  // {"n":<number>,...
        a.push_back(r);
      } else {
        b.push_back(r);
      }
    }
    CHECK(a == jsonRecords(0, 40000));
    CHECK(b == jsonRecords(40000, 80000));
    checkCheckpoints(h.em, dir.file("a.log"));
    checkCheckpoints(h.em, dir.file("b.log"));
    for (const BatchLog::Batch& bt : h.em.batches) {
      CHECK(bt.records.size() <= 1000);
    }
  }

  TEST_CASE("inode reuse: a checkpoint whose fingerprint differs is not applied (simulated)") {
    LogCapture log;
    TempDir dir;
    const std::string path = dir.file("app.log");
    // The new file, which got the dev:inode of a deleted file whose checkpoint is stored.
    writeFile(path, jsonLines(0, 2000));
    const std::string key = fileKey(path);
    struct stat st {};
    REQUIRE(::stat(path.c_str(), &st) == 0);
    const std::string message = "a different file than the one checkpointed for inode " +
                                std::to_string(st.st_ino) + " (fingerprint differs)";
    Options opts = tailOptions({dir.file("*.log")});
    Harness h;

    SUBCASE("the deleted file had 1000 lines: the new one is read from its start") {
      const std::string old_content = jsonLines(5000, 6000);
      REQUIRE(old_content.size() < test::readFile(path).size());  // the offset "fits"
      h.em.inner.committed[key] = cpValue(old_content.size(), old_content, 1024, path);
      REQUIRE(h.make(opts).isOk());
      REQUIRE(h.collect().isOk());
      CHECK(h.em.records() == jsonRecords(0, 2000));
      CHECK(log.count(message + "; reading it from the start") == 1);
      CHECK(h.em.inner.committed.at(key) == cpValue(jsonLines(0, 2000).size(), path));
      checkCheckpoints(h.em, path);

      // Its own checkpoint is trusted after a restart: nothing is read twice.
      Harness again;
      again.em.inner.committed = h.em.inner.committed;
      REQUIRE(again.make(opts).isOk());
      REQUIRE(again.collect().isOk());
      CHECK(again.em.batches.empty());
      CHECK(log.count(message) == 1);
    }
    SUBCASE("start_at end does not apply once the input has checkpoints: it is new content") {
      const std::string old_content = jsonLines(5000, 6000);
      h.em.inner.committed[key] = cpValue(old_content.size(), old_content, 1024, path);
      opts.set("start_at", std::string("end"), {});
      REQUIRE(h.make(opts).isOk());
      REQUIRE(h.collect().isOk());
      CHECK(h.em.records() == jsonRecords(0, 2000));
      CHECK(log.count(message + "; reading it from the start") == 1);
      checkCheckpoints(h.em, path);
    }
    SUBCASE("the new file is shorter than the fingerprinted head, longer than the offset") {
      writeFile(path, jsonLines(0, 10));  // same inode, 220 bytes
      REQUIRE(fileKey(path) == key);
      const std::string old_content = jsonLines(5000, 6000);
      h.em.inner.committed[key] = cpValue(30, old_content, 1024, path);
      REQUIRE(h.make(opts).isOk());
      REQUIRE(h.collect().isOk());
      CHECK(h.em.records() == jsonRecords(0, 10));
      CHECK(log.count(message) == 1);
    }
    SUBCASE("the deleted file was short: its shorter fingerprint is compared") {
      const std::string old_short = jsonLine(7000) + "\n";
      h.em.inner.committed[key] = cpValue(old_short.size(), old_short, old_short.size(), path);
      REQUIRE(h.make(opts).isOk());
      REQUIRE(h.collect().isOk());
      CHECK(h.em.records() == jsonRecords(0, 2000));
      CHECK(log.count(message) == 1);
    }
    SUBCASE("the checkpoint of an empty file (fp_len 0) matches: its offset is 0 anyway") {
      h.em.inner.committed[key] = "0 0 cbf29ce484222325 " + path;
      REQUIRE(h.make(opts).isOk());
      REQUIRE(h.collect().isOk());
      CHECK(h.em.records() == jsonRecords(0, 2000));
      CHECK(log.count("a different file") == 0);
    }
  }

  TEST_CASE("inode reuse: delete the file, write a new one, restart (real filesystem)") {
    LogCapture log;
    TempDir dir;
    const std::string path = dir.file("app.log");
    writeFile(path, jsonLines(5000, 6000));
    const std::string old_key = fileKey(path);
    const Options opts = tailOptions({dir.file("*.log")});
    auto reused = [&]() {
      const bool same = fileKey(path) == old_key;
      if (!same) {
        MESSAGE("the filesystem did not give the new file the deleted file's inode: "
                "inode reuse is not exercised by this run");
      }
      return same;
    };

    SUBCASE("the agent is restarted after the rotation") {
      std::map<std::string, std::string> committed;
      {
        Harness h;
        REQUIRE(h.make(opts).isOk());
        REQUIRE(h.collect().isOk());
        REQUIRE(h.em.records() == jsonRecords(5000, 6000));
        committed = h.em.inner.committed;
      }  // the agent stops: the file is closed, its checkpoint stays
      std::filesystem::remove(path);
      writeFile(path, jsonLines(0, 2000));
      const bool same = reused();

      Harness h;
      h.em.inner.committed = committed;
      REQUIRE(h.make(opts).isOk());
      REQUIRE(h.collect().isOk());
      CHECK(h.em.records() == jsonRecords(0, 2000));  // lines 0-999 were lost before
      checkCheckpoints(h.em, path);
      if (same) CHECK(log.count("a different file than the one checkpointed") == 1);
    }
    SUBCASE("in one run: renamed away (position remembered), deleted, new file") {
      Harness h;
      REQUIRE(h.make(opts).isOk());
      REQUIRE(h.collect().isOk());
      std::filesystem::rename(path, dir.file("app.log.1"));  // no longer matched
      REQUIRE(h.collect().isOk());
      CHECK(log.count("was rotated (now " + dir.file("app.log.1") + ")") == 1);
      CHECK(log.count("no longer following") == 0);  // kept open for rotate_wait (5s)
      h.clock.advance(std::chrono::seconds(5));
      REQUIRE(h.collect().isOk());
      CHECK(log.count("no longer following") == 1);
      std::filesystem::remove(dir.file("app.log.1"));
      writeFile(path, jsonLines(0, 2000));
      const bool same = reused();
      REQUIRE(h.collect().isOk());
      std::vector<std::string> want = jsonRecords(5000, 6000);
      for (const std::string& r : jsonRecords(0, 2000)) want.push_back(r);
      CHECK(h.em.records() == want);
      if (same) CHECK(log.count("a different file than the one checkpointed") == 1);
    }
  }

  TEST_CASE("a checkpoint with the right fingerprint continues exactly where it stopped") {
    LogCapture log;
    TempDir dir;
    const std::string path = dir.file("app.log");
    writeFile(path, jsonLines(0, 200));  // about 5 KB: the fingerprint covers 1024 bytes
    Options opts = tailOptions({path});
    opts.set("batch_max_records", int64_t{50}, {});
    std::map<std::string, std::string> committed;
    {
      Harness h;
      REQUIRE(h.make(opts).isOk());
      REQUIRE(h.collect().isOk());
      committed = h.em.after_first;  // crashed after the first batch
    }
    REQUIRE(committed.size() == 1);
    const CheckpointValue v = parseValue(committed.begin()->second);
    CHECK(v.offset == jsonLines(0, 50).size());
    CHECK(v.fp_len == 1024);
    CHECK(v.fp == fnvHex(test::readFile(path).substr(0, 1024)));
    CHECK(v.path == path);

    appendFile(path, jsonLines(200, 210));
    Harness h;
    h.em.inner.committed = committed;
    REQUIRE(h.make(opts).isOk());
    REQUIRE(h.collect().isOk());
    CHECK(h.em.records() == jsonRecords(50, 210));
    CHECK(log.count("a different file") == 0);
    checkCheckpoints(h.em, path, jsonLines(0, 50).size());
  }

  TEST_CASE("a file first seen short (or empty): its fingerprint grows with it up to 1024") {
    LogCapture log;
    TempDir dir;
    const std::string path = dir.file("app.log");
    writeFile(path, "");
    const Options opts = tailOptions({path});
    Harness h;
    REQUIRE(h.make(opts).isOk());
    REQUIRE(h.collect().isOk());
    // A new file's position is committed at once, even at offset 0 with no line (a restart
    // then finds it if it is renamed before its first line).
    REQUIRE(h.em.batches.size() == 1);
    CHECK(h.em.batches[0].records.empty());
    CHECK(h.em.batches[0].value == "0 0 " + fnvHex("") + " " + path);

    appendFile(path, jsonLines(0, 3));
    REQUIRE(h.collect().isOk());
    const uint64_t short_len = jsonLines(0, 3).size();
    CHECK(h.em.inner.committed.at(fileKey(path)) == cpValue(short_len, path));
    CHECK(parseValue(h.em.inner.committed.at(fileKey(path))).fp_len == short_len);
    const std::map<std::string, std::string> short_cp = h.em.inner.committed;

    appendFile(path, jsonLines(3, 100));  // past 1024 bytes
    REQUIRE(h.collect().isOk());
    CHECK(h.em.records() == jsonRecords(0, 100));
    CHECK(h.em.inner.committed.at(fileKey(path)) == cpValue(jsonLines(0, 100).size(), path));
    CHECK(parseValue(h.em.inner.committed.at(fileKey(path))).fp_len == 1024);
    checkCheckpoints(h.em, path);

    // Restarted from the short checkpoint after the file grew: its head is unchanged.
    Harness r;
    r.em.inner.committed = short_cp;
    REQUIRE(r.make(opts).isOk());
    REQUIRE(r.collect().isOk());
    CHECK(r.em.records() == jsonRecords(3, 100));
    CHECK(parseValue(r.em.inner.committed.at(fileKey(path))).fp_len == 1024);
    checkCheckpoints(r.em, path, short_len);

    // And from the full one.
    appendFile(path, jsonLines(100, 101));
    Harness r2;
    r2.em.inner.committed = h.em.inner.committed;
    REQUIRE(r2.make(opts).isOk());
    REQUIRE(r2.collect().isOk());
    CHECK(r2.em.records() == jsonRecords(100, 101));
    CHECK(log.count("a different file") == 0);
  }

  TEST_CASE("old checkpoint values without a fingerprint still load") {
    LogCapture log;
    TempDir dir;
    const std::string path = dir.file("my app 12 0123456789abcdef.log");  // spaces in the path
    writeFile(path, jsonLines(0, 5));
    const std::string key = fileKey(path);
    Harness h;
    h.em.inner.committed[key] = std::to_string(jsonLines(0, 3).size()) + " " + path;
    REQUIRE(h.make(tailOptions({path})).isOk());
    REQUIRE(h.collect().isOk());
    CHECK(h.em.records() == jsonRecords(3, 5));  // trusted: the file is not shorter
    CHECK(log.count("a different file") == 0);
    CHECK(log.count("unreadable checkpoint") == 0);
    // The next checkpoint is written in the new format.
    CHECK(h.em.inner.committed.at(key) == cpValue(jsonLines(0, 5).size(), path));
    checkCheckpoints(h.em, path, jsonLines(0, 3).size());

    // A bare offset (no path) was readable before and still is.
    Harness bare;
    bare.em.inner.committed[key] = std::to_string(jsonLines(0, 4).size());
    REQUIRE(bare.make(tailOptions({path})).isOk());
    REQUIRE(bare.collect().isOk());
    CHECK(bare.em.records() == jsonRecords(4, 5));
  }

  TEST_CASE("a file truncated below its fingerprinted head (not its position) is read again") {
    LogCapture log;
    TempDir dir;
    const std::string path = dir.file("app.log");
    // A first line, then 2000 bytes of a line without its newline yet: position 23, head
    // fingerprinted over 1024 bytes.
    writeFile(path, jsonLine(0) + "\n" + std::string(2000, 'x'));
    Harness h;
    REQUIRE(h.make(tailOptions({path})).isOk());
    REQUIRE(h.collect().isOk());
    CHECK(h.em.records() == jsonRecords(0, 1));
    writeFile(path, jsonLine(1) + "\n");  // truncated, rewritten up to exactly the position
    REQUIRE(jsonLine(1).size() == jsonLine(0).size());
    REQUIRE(h.collect().isOk());
    CHECK(h.em.records() == jsonRecords(0, 2));
    CHECK(log.count("truncated") == 1);
    CHECK(h.em.inner.committed.at(fileKey(path)) == cpValue(jsonLine(1).size() + 1, path));
  }

  TEST_CASE("multiline: start_pattern starts a record, continuation lines are joined") {
    TempDir dir;
    const std::string path = dir.file("app.log");
    writeFile(path,
              "orphan continuation\n"
              "2026-11-24 12:00:00 ERROR boom\n"
              "  at a.b(c.java:1)\n"
              "  at d.e(f.java:2)\r\n"
              "\n"
              "2026-11-24 12:00:01 INFO ok\n"
              "2026-11-24 12:00:02 WARN pending\n"
              "  more\n");
    Options opts = tailOptions({path});
    opts.set("format", std::string("text"), {});
    opts.set("multiline.start_pattern", std::string("^\\d{4}-\\d\\d-\\d\\d "), {});
    Harness h;
    REQUIRE(h.make(opts).isOk());
    REQUIRE(h.collect().isOk());
    const std::string p = ",\"path\":\"" + path + "\"}";
    const std::vector<std::string> first = {
        "{\"message\":\"orphan continuation\"" + p,
        // the blank line joined last is the line end the format ignores
        "{\"message\":\"2026-11-24 12:00:00 ERROR boom\\n  at a.b(c.java:1)\\n  at d.e(f.java:2)\"" + p,
        "{\"message\":\"2026-11-24 12:00:01 INFO ok\"" + p,
    };
    CHECK(h.em.records() == first);
    // The checkpoint stops at the pending record's first line: a crash now reads it again.
    const std::string content = test::readFile(path);
    const uint64_t pending_at = content.find("2026-11-24 12:00:02");
    CHECK(offsetOf(h.em.inner.committed.at(fileKey(path))) == pending_at);

    // A restart from that checkpoint rebuilds the pending record from its first line.
    Harness r;
    r.em.inner.committed = h.em.inner.committed;
    REQUIRE(r.make(opts).isOk());
    REQUIRE(r.collect().isOk());
    CHECK(r.em.records().empty());
    appendFile(path, "  and more\n");
    REQUIRE(r.collect().isOk());
    CHECK(r.em.records().empty());  // still pending: no start line, no timeout yet
    r.clock.advance(std::chrono::milliseconds(999));
    REQUIRE(r.collect().isOk());
    CHECK(r.em.records().empty());
    r.clock.advance(std::chrono::milliseconds(1));  // timeout: 1s without a new line
    REQUIRE(r.collect().isOk());
    CHECK(r.em.records() ==
          std::vector<std::string>{"{\"message\":\"2026-11-24 12:00:02 WARN pending\\n  more\\n  "
                                   "and more\"" + p});
    CHECK(offsetOf(r.em.inner.committed.at(fileKey(path))) == test::readFile(path).size());
  }

  TEST_CASE("multiline: max_lines ends a record; json records may span lines") {
    TempDir dir;
    const std::string path = dir.file("app.log");
    writeFile(path, "{\n  \"a\": 1,\n  \"b\": [1,\n 2]\n}\n{\"c\": 2}\n{\n \"bad\": \n}\n{\"d\":3}\n");
    Options opts = tailOptions({path});
    opts.set("multiline.start_pattern", std::string("^\\{"), {});
    Harness h;
    REQUIRE(h.make(opts).isOk());
    REQUIRE(h.collect().isOk());
    h.clock.advance(std::chrono::seconds(1));
    REQUIRE(h.collect().isOk());
    const std::vector<std::string> want = {"{   \"a\": 1,   \"b\": [1,  2] }", "{\"c\": 2}",
                                           "{\"d\":3}"};
    CHECK(h.em.records() == want);
    CHECK(h.dropped("bad_json") == 1);

    const std::string text = dir.file("t.log");
    writeFile(text, "S1\na\nb\nc\nd\nS2\n");
    Options t = tailOptions({text});
    t.set("format", std::string("text"), {});
    t.set("multiline.start_pattern", std::string("^S"), {});
    t.set("multiline.max_lines", int64_t{3}, {});
    Harness m;
    REQUIRE(m.make(t).isOk());
    REQUIRE(m.collect().isOk());
    m.clock.advance(std::chrono::seconds(1));
    REQUIRE(m.collect().isOk());
    const std::string p = ",\"path\":\"" + text + "\"}";
    CHECK(m.em.records() == std::vector<std::string>{"{\"message\":\"S1\\na\\nb\"" + p,
                                                     "{\"message\":\"c\\nd\"" + p,
                                                     "{\"message\":\"S2\"" + p});

    Options bad = tailOptions({text});
    bad.set("multiline.start_pattern", std::string("(unclosed"), {});
    const Status st = m.make(bad);
    CHECK(st.code() == StatusCode::kInvalidArgument);
    CHECK(st.message().find("start_pattern") != std::string::npos);
    Options zero = tailOptions({text});
    zero.set("multiline.start_pattern", std::string("^S"), {});
    zero.set("multiline.max_lines", int64_t{0}, {});
    CHECK(m.make(zero).message().find("max_lines") != std::string::npos);
  }

  TEST_CASE("multiline: a refused batch rebuilds the pending record; a record stays below max_line_bytes") {
    TempDir dir;
    const std::string path = dir.file("app.log");
    writeFile(path, "S one\n x\nS two\n y\n");
    Options opts = tailOptions({path});
    opts.set("format", std::string("text"), {});
    opts.set("multiline.start_pattern", std::string("^S"), {});
    opts.set("max_line_bytes", uint64_t{12}, {});
    Harness h;
    REQUIRE(h.make(opts).isOk());
    h.em.refuse = true;
    CHECK(h.collect().code() == StatusCode::kResourceExhausted);
    h.em.refuse = false;
    REQUIRE(h.collect().isOk());
    appendFile(path, " zzzzz\nS three\n");
    REQUIRE(h.collect().isOk());
    h.clock.advance(std::chrono::seconds(2));
    REQUIRE(h.collect().isOk());
    const std::string p = ",\"path\":\"" + path + "\"}";
    // "S two\n y\n zzzzz" would be 15 bytes: the third line starts a record of its own.
    CHECK(h.em.records() == std::vector<std::string>{"{\"message\":\"S one\\n x\"" + p,
                                                     "{\"message\":\"S two\\n y\"" + p,
                                                     "{\"message\":\" zzzzz\"" + p,
                                                     "{\"message\":\"S three\"" + p});
  }

  TEST_CASE("rotation by rename: the old file is finished first, then the new one, in order") {
    LogCapture log;
    TempDir dir;
    const std::string path = dir.file("app.log");
    writeFile(path, jsonLines(0, 100));
    Options opts = tailOptions({path});
    Harness h;
    REQUIRE(h.make(opts).isOk());
    REQUIRE(h.collect().isOk());
    // The writer appends, the file is renamed (no longer matched), the writer appends to the
    // old file through its descriptor, then creates the new file.
    std::ofstream old_writer(path, std::ios::binary | std::ios::app);
    old_writer << jsonLines(100, 150) << std::flush;
    std::filesystem::rename(path, dir.file("app.log.1"));
    old_writer << jsonLines(150, 200) << std::flush;
    old_writer.close();
    writeFile(path, jsonLines(200, 250));
    REQUIRE(h.collect().isOk());
    CHECK(h.em.records() == jsonRecords(0, 250));
    CHECK(log.count("was rotated (now " + dir.file("app.log.1") + ")") == 1);
    appendFile(path, jsonLines(250, 260));
    h.clock.advance(std::chrono::seconds(5));
    REQUIRE(h.collect().isOk());
    CHECK(h.em.records() == jsonRecords(0, 260));
    CHECK(log.count("no longer following " + dir.file("app.log.1")) == 1);
  }

  TEST_CASE("rotation by rename to a name still matched: the old file's rest still comes first") {
    TempDir dir;
    const std::string path = dir.file("app.log");
    writeFile(path, jsonLines(0, 10));
    Harness h;
    REQUIRE(h.make(tailOptions({dir.file("app.log*")})).isOk());
    REQUIRE(h.collect().isOk());
    appendFile(path, jsonLines(10, 20));
    // "app.log" sorts before "app.log.1": glob order alone would read the new file first.
    std::filesystem::rename(path, dir.file("app.log.1"));
    writeFile(path, jsonLines(20, 30));
    REQUIRE(h.collect().isOk());
    CHECK(h.em.records() == jsonRecords(0, 30));
    h.clock.advance(std::chrono::seconds(5));
    appendFile(path, jsonLines(30, 31));
    appendFile(dir.file("app.log.1"), "");
    REQUIRE(h.collect().isOk());
    CHECK(h.em.records() == jsonRecords(0, 31));
  }

  TEST_CASE("rotation by rename while the agent is down: the renamed file is found and finished") {
    LogCapture log;
    TempDir dir;
    const std::string path = dir.file("app.log");
    writeFile(path, jsonLines(0, 100));
    const Options opts = tailOptions({path});
    std::map<std::string, std::string> committed;
    {
      Harness h;
      REQUIRE(h.make(opts).isOk());
      REQUIRE(h.collect().isOk());
      committed = h.em.inner.committed;
    }
    appendFile(path, jsonLines(100, 150));  // written while the agent is down
    std::filesystem::rename(path, dir.file("app.log.1"));
    writeFile(path, jsonLines(150, 200));
    writeFile(dir.file("gone.log"), "");  // an unrelated file in the same directory

    Harness h;
    h.em.inner.committed = committed;
    REQUIRE(h.make(opts).isOk());
    REQUIRE(h.collect().isOk());
    CHECK(h.em.records() == jsonRecords(100, 200));  // the old file's rest first
    CHECK(log.count("finishing " + dir.file("app.log.1")) == 1);

    // Killed again before the renamed file was closed: it is found again, nothing repeats.
    Harness again;
    again.em.inner.committed = h.em.inner.committed;
    appendFile(path, jsonLines(200, 210));
    REQUIRE(again.make(opts).isOk());
    REQUIRE(again.collect().isOk());
    CHECK(again.em.records() == jsonRecords(200, 210));
  }

  TEST_CASE("startup: checkpoints of files gone from their directory are forgotten") {
    LogCapture log;
    TempDir dir;
    writeFile(dir.file("a.log"), jsonLines(0, 2));
    writeFile(dir.file("b.log"), jsonLines(2, 4));
    const Options opts = tailOptions({dir.file("*.log")});
    std::map<std::string, std::string> committed;
    {
      Harness h;
      REQUIRE(h.make(opts).isOk());
      REQUIRE(h.collect().isOk());
      committed = h.em.inner.committed;
    }
    REQUIRE(committed.size() == 2);
    std::filesystem::remove(dir.file("b.log"));
    Harness h;
    h.em.inner.committed = committed;
    REQUIRE(h.make(opts).isOk());
    REQUIRE(h.collect().isOk());
    CHECK(log.count("forgot 1 checkpoint(s) of files no longer in " + dir.path().string()) == 1);
    CHECK(h.em.records().empty());
  }

  TEST_CASE("copy-truncate: truncation restarts at 0; a rewritten head too, even past the offset") {
    LogCapture log;
    TempDir dir;
    const std::string path = dir.file("app.log");
    writeFile(path, jsonLines(0, 50));
    Harness h;
    REQUIRE(h.make(tailOptions({path})).isOk());
    REQUIRE(h.collect().isOk());
    // copytruncate: copied away (not matched), truncated in place, written again.
    std::filesystem::copy_file(path, dir.file("app.log.1"));
    std::filesystem::resize_file(path, 0);
    appendFile(path, jsonLines(1000, 1002));
    REQUIRE(h.collect().isOk());
    std::vector<std::string> want = jsonRecords(0, 50);
    for (const auto& r : jsonRecords(1000, 1002)) want.push_back(r);
    CHECK(h.em.records() == want);
    CHECK(log.count("was truncated") == 1);

    // Truncated and written past the old position between two polls: the size alone does
    // not tell, the head's fingerprint does.
    const uint64_t before = test::readFile(path).size();
    std::filesystem::resize_file(path, 0);
    appendFile(path, jsonLines(2000, 2100));
    REQUIRE(test::readFile(path).size() > before);
    REQUIRE(h.collect().isOk());
    for (const auto& r : jsonRecords(2000, 2100)) want.push_back(r);
    CHECK(h.em.records() == want);
    CHECK(log.count("was truncated") == 2);
    CHECK(h.em.inner.committed.at(fileKey(path)) == cpValue(test::readFile(path).size(), path));
  }

  TEST_CASE("copy-truncate during a read: no piece of the new content is read at an old offset") {
    LogCapture log;
    TempDir dir;
    const std::string path = dir.file("app.log");
    // More than the 256 KiB read buffer: the file is read in several reads, and batches are
    // emitted between them.
    writeFile(path, jsonLines(0, 20000));
    REQUIRE(test::readFile(path).size() > 300 * 1024);
    Options opts = tailOptions({path});
    opts.set("batch_max_records", int64_t{100}, {});
    Harness h;
    REQUIRE(h.make(opts).isOk());
    bool done = false;
    h.em.on_emit = [&] {
      if (done || h.em.batches.size() < 3) return;
      done = true;  // truncated and written again past the next read's offset
      std::filesystem::resize_file(path, 0);
      std::string fresh;
      for (int i = 0; i < 40000; ++i) fresh += "{\"new\":" + std::to_string(i) + "}\n";
      appendFile(path, fresh);
    };
    REQUIRE(h.collect().isOk());
    REQUIRE(done);
    CHECK(log.count("was truncated while being read") == 1);
    REQUIRE(h.collect().isOk());  // starts again at 0
    const std::vector<std::string> got = h.em.records();
    // A prefix of the old lines (those of the first read), then every new line.
    size_t old_lines = 0;
    while (old_lines < got.size() && got[old_lines] == jsonLine(static_cast<int>(old_lines))) {
      ++old_lines;
    }
    CHECK(old_lines >= 300);
    REQUIRE(got.size() == old_lines + 40000);
    for (size_t i = 0; i < 40000; ++i) {
      if (got[old_lines + i] != "{\"new\":" + std::to_string(i) + "}") {
        CHECK(got[old_lines + i] == "{\"new\":" + std::to_string(i) + "}");
        break;
      }
    }
    CHECK(h.dropped("bad_json") == 0);  // no line was read half old, half new
  }

  TEST_CASE("a replaced file (new inode under the same name) is read from its start") {
    TempDir dir;
    const std::string path = dir.file("app.log");
    writeFile(path, jsonLines(0, 10));
    Harness h;
    REQUIRE(h.make(tailOptions({path})).isOk());
    REQUIRE(h.collect().isOk());
    const std::string tmp = dir.file("app.log.tmp");
    writeFile(tmp, jsonLines(10, 20));
    std::filesystem::rename(tmp, path);  // the old inode is deleted by the rename
    REQUIRE(h.collect().isOk());
    CHECK(h.em.records() == jsonRecords(0, 20));
  }

  TEST_CASE("randomised: partial writes, refusals and crashes never lose or repeat a line") {
    // TAIL_SEED=<n> runs the same scenario with another seed.
    std::mt19937 rng(std::getenv("TAIL_SEED") ? std::atoi(std::getenv("TAIL_SEED")) : 20261124);
    auto uniform = [&rng](int lo, int hi) {
      return std::uniform_int_distribution<int>(lo, hi)(rng);
    };
    constexpr uint64_t kMaxLine = 48;
    // One random line, newline included: valid objects (some too long), junk, blank, CRLF.
    auto randomLine = [&]() -> std::string {
      switch (uniform(0, 9)) {
        case 0:
          return "junk " + std::to_string(uniform(0, 999)) + "\n";
        case 1:
          return uniform(0, 1) ? "\n" : "  \r\n";
        case 2:
          return "{\"big\":\"" + std::string(uniform(0, 50) == 0 ? 300 * 1024 : 60, 'x') + "\"}\n";
        default: {
          static int n = 0;
          std::string line = "{\"n\":" + std::to_string(n++) + ",\"p\":\"" +
                             std::string(static_cast<size_t>(uniform(0, 30)), 'a') + "\"}";
          return (uniform(0, 5) == 0 ? line + "\r\n" : line + "\n");
        }
      }
    };

    TempDir dir;
    const std::string paths[2] = {dir.file("a.log"), dir.file("b.log")};
    std::string pending[2];  // generated but not yet written
    writeFile(paths[0], "");
    writeFile(paths[1], "");
    const std::string keys[2] = {fileKey(paths[0]), fileKey(paths[1])};

    std::map<std::string, std::string> committed;             // what survived the crashes
    std::map<std::string, std::vector<std::string>> durable;  // records that survived
    for (int run = 0; run < 40; ++run) {
      CAPTURE(run);
      Options opts = tailOptions({dir.file("*.log")});
      opts.set("max_line_bytes", kMaxLine, {});
      opts.set("batch_max_records", int64_t{uniform(1, 6)}, {});
      opts.set("batch_max_bytes", static_cast<uint64_t>(uniform(40, 200)), {});
      Harness h;
      h.em.inner.committed = committed;
      REQUIRE(h.make(opts).isOk());
      const bool last = run == 39;
      for (int step = 0, steps = uniform(1, 8); step < steps; ++step) {
        for (int f = 0; f < 2; ++f) {
          // Write a random slice: lines are often cut in the middle; now and then a lot.
          const auto n = static_cast<size_t>(uniform(0, 9) == 0 ? 200 * 1024 : uniform(0, 300));
          while (pending[f].size() < n) pending[f] += randomLine();
          appendFile(paths[f], std::string_view(pending[f]).substr(0, n));
          pending[f].erase(0, n);
        }
        h.em.refuse = !last && uniform(0, 3) == 0;
        const Status st = h.collect();
        CHECK((st.isOk() || st.code() == StatusCode::kResourceExhausted));
      }
      if (last) {
        h.em.refuse = false;
        REQUIRE(h.collect().isOk());
      }
      // The crash keeps a prefix of the accepted batches (the buffer writes them in order,
      // each with its checkpoint in the same write).
      std::vector<const BatchLog::Batch*> accepted;
      for (const BatchLog::Batch& b : h.em.batches) {
        if (b.accepted) accepted.push_back(&b);
      }
      const size_t keep = last ? accepted.size()
                               : static_cast<size_t>(uniform(0, static_cast<int>(accepted.size())));
      for (size_t i = 0; i < keep; ++i) {
        auto& d = durable[accepted[i]->key];
        d.insert(d.end(), accepted[i]->records.begin(), accepted[i]->records.end());
        committed[accepted[i]->key] = accepted[i]->value;
      }
    }

    simdjson::dom::parser parser;
    size_t total = 0;
    for (int f = 0; f < 2; ++f) {
      CAPTURE(paths[f]);
      std::vector<std::string> want;
      for (std::string line : completeLines(test::readFile(paths[f]))) {
        if (line.size() > kMaxLine) continue;
        while (!line.empty() &&
               std::string_view(" \t\r").find(line.back()) != std::string_view::npos)
          line.pop_back();
        while (!line.empty() &&
               std::string_view(" \t\r").find(line.front()) != std::string_view::npos)
          line.erase(0, 1);
        if (line.empty() || !isJsonObject(line)) continue;
        want.push_back(line);
      }
      const std::vector<std::string>& got = durable[keys[f]];
      size_t same = 0;
      while (same < got.size() && same < want.size() && got[same] == want[same]) ++same;
      CAPTURE(same);
      CAPTURE(got.size());
      CAPTURE(want.size());
      const std::string got_first = same < got.size() ? got[same].substr(0, 100) : "";
      const std::string want_first = same < want.size() ? want[same].substr(0, 100) : "";
      CAPTURE(got_first);
      CAPTURE(want_first);
      CHECK(got == want);
      CHECK(offsetOf(committed.at(keys[f])) == test::readFile(paths[f]).rfind('\n') + 1);
      total += want.size();
    }
    CHECK(total > 300);
  }
}

}  // namespace
}  // namespace ferry
