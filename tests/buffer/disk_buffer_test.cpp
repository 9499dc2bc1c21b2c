#include "agent/buffer/disk_buffer.h"

#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include "agent/codec/key_file.h"
#include "ferry/log.h"
#include "tests/support/fakes.h"
#include "tests/support/temp_dir.h"

using namespace ferry;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

Block makeBlock(const std::string& stream, int first, int count, int64_t created_ms = 1) {
  Block b;
  b.lineage = {"gw", "in", stream, 3};
  b.created_ms = created_ms;
  char buf[96];
  for (int i = 0; i < count; ++i) {
    std::snprintf(buf, sizeof buf, "{\"n\":%06d,\"pad\":\"%08x\"}", first + i, (first + i) * 2654435761u);
    b.records.append(buf);
  }
  return b;
}

std::vector<uint64_t> seqs(const std::vector<BlockRef>& blocks) {
  std::vector<uint64_t> out;
  for (const auto& b : blocks) out.push_back(b->seq);
  return out;
}

struct Fixture {
  test::TempDir dir;
  MetricsRegistry metrics;
  test::ManualClock clock;

  DiskBufferOptions options(bool fsync = true) {
    DiskBufferOptions o;
    o.path = dir.file("buffer");
    o.fsync = fsync;
    o.memory_budget = 8 << 20;
    return o;
  }
  std::unique_ptr<DiskBuffer> open(DiskBufferOptions o) {
    auto b = DiskBuffer::open(std::move(o), metrics, clock);
    INFO(b.status().toString());
    REQUIRE(b.isOk());
    return std::move(b).value();
  }
  std::unique_ptr<DiskBuffer> open() { return open(options()); }
  static void append(DiskBuffer& buf, Block b) {
    Block arr[] = {std::move(b)};
    REQUIRE(buf.append(arr, 0ms).isOk());
  }
  static void declare(DiskBuffer& buf, std::vector<std::string> outs) { REQUIRE(buf.setOutputs(outs).isOk()); }
  uint64_t dropped(const char* reason) {
    return metrics.counterValue("ferry_dropped_records_total", {{"reason", reason}});
  }
  KeyMaterial key(const std::string& name) {
    auto k = writeNewKeyFile(dir.file(name));
    REQUIRE(k.isOk());
    return *k;
  }
};

// Every byte of every file under `root`.
bool anyFileContains(const fs::path& root, const std::string& needle) {
  for (const auto& e : fs::recursive_directory_iterator(root)) {
    if (!e.is_regular_file()) continue;
    if (test::readFile(e.path().string()).find(needle) != std::string::npos) return true;
  }
  return false;
}

}  // namespace

TEST_SUITE("buffer.disk") {
  TEST_CASE_FIXTURE(Fixture, "blocks come back in order for several outputs, each at its cursor") {
    auto buf = open();
    declare(*buf, {"a", "b"});
    for (int i = 0; i < 5; ++i) append(*buf, makeBlock("s", i * 10, 10));
    auto all = buf->read("a", 0, 100, 0ms);
    REQUIRE(all.isOk());
    CHECK(seqs(*all) == std::vector<uint64_t>{1, 2, 3, 4, 5});
    CHECK((*all)[2]->records[0] == makeBlock("s", 20, 1).records[0]);
    CHECK((*all)[2]->lineage == Lineage{"gw", "in", "s", 3});
    REQUIRE(buf->ack("a", 3, {}).isOk());
    CHECK(seqs(*buf->read("a", 0, 100, 0ms)) == std::vector<uint64_t>{4, 5});
    CHECK(seqs(*buf->read("b", 0, 2, 0ms)) == std::vector<uint64_t>{1, 2});
    CHECK(buf->stats().blocks == 5);  // b holds everything back
    REQUIRE(buf->ack("b", 4, {}).isOk());
    CHECK(buf->stats().blocks == 2);
  }

  TEST_CASE_FIXTURE(Fixture, "acks out of order: a lower ack after a higher one changes nothing") {
    auto buf = open();
    declare(*buf, {"a"});
    for (int i = 0; i < 4; ++i) append(*buf, makeBlock("s", i, 1));
    REQUIRE(buf->ack("a", 3, "state-3").isOk());
    REQUIRE(buf->ack("a", 2, "state-2").isOk());
    CHECK(buf->cursor("a") == 3);
    CHECK(buf->commitState("a") == "state-3");
    CHECK_FALSE(buf->ack("a", 9, {}).isOk());  // not written yet
    buf.reset();
    auto again = open();
    again->setOutputs(std::vector<std::string>{"a"}).isOk();
    CHECK(again->cursor("a") == 3);
    CHECK(again->commitState("a") == "state-3");
    CHECK(seqs(*again->read("a", 0, 10, 0ms)) == std::vector<uint64_t>{4});
  }

  TEST_CASE_FIXTURE(Fixture, "reopen: unacked blocks, cursors, checkpoints and sequence numbers survive") {
    {
      auto buf = open();
      declare(*buf, {"a", "b"});
      Block b1 = makeBlock("s", 0, 3);
      b1.checkpoints.emplace_back("tail/file/1:2", "300 /var/log/x");
      append(*buf, std::move(b1));
      append(*buf, makeBlock("s", 3, 3));
      REQUIRE(buf->ack("a", 2, {}).isOk());
      REQUIRE(buf->ack("b", 1, {}).isOk());
    }
    auto buf = open();
    declare(*buf, {"a", "b"});
    CHECK(buf->cursor("a") == 2);
    CHECK(buf->cursor("b") == 1);
    CHECK(seqs(*buf->read("b", 0, 10, 0ms)) == std::vector<uint64_t>{2});
    CHECK(buf->read("a", 0, 10, 0ms)->empty());
    CHECK(buf->checkpoint("tail/file/1:2") == std::optional<std::string>("300 /var/log/x"));
    CHECK(buf->checkpoints("tail/").size() == 1);
    append(*buf, makeBlock("s", 6, 1));
    CHECK(buf->stats().next_seq == 4);
    // Everything acked and released, then reopened: numbering still goes on.
    REQUIRE(buf->ack("a", 3, {}).isOk());
    REQUIRE(buf->ack("b", 3, {}).isOk());
    CHECK(buf->stats().blocks == 0);
    buf.reset();
    auto third = open();
    CHECK(third->stats().next_seq == 4);
  }

  TEST_CASE_FIXTURE(Fixture, "adding or removing an output does not move the others") {
    auto buf = open();
    declare(*buf, {"a"});
    append(*buf, makeBlock("s", 0, 1));
    declare(*buf, {"a", "new"});
    CHECK(buf->cursor("a") == 0);
    CHECK(buf->cursor("new") == 1);  // starts at the tail
    append(*buf, makeBlock("s", 1, 1));
    CHECK(seqs(*buf->read("new", 0, 10, 0ms)) == std::vector<uint64_t>{2});
    CHECK(seqs(*buf->read("a", 0, 10, 0ms)) == std::vector<uint64_t>{1, 2});
    declare(*buf, {"new"});
    CHECK(buf->stats().blocks == 1);  // block 1 was only waiting for a
    buf.reset();
    auto again = open();
    CHECK(again->knownOutputs() == std::vector<std::string>{"new"});
  }

  TEST_CASE_FIXTURE(Fixture, "when_full block refuses with kResourceExhausted until an ack frees room") {
    DiskBufferOptions o = options();
    o.compress = false;
    Block probe = makeBlock("s", 0, 20);
    o.max_bytes = 3 * (probe.records.bytes() + probe.records.size() * 4 + 200);
    auto buf = open(o);
    declare(*buf, {"a"});
    int stored = 0;
    Status st;
    for (int i = 0; i < 10; ++i) {
      Block arr[] = {makeBlock("s", i * 20, 20)};
      st = buf->append(arr, 0ms);
      if (!st.isOk()) break;
      ++stored;
    }
    CHECK(st.code() == StatusCode::kResourceExhausted);
    CHECK(stored >= 2);
    std::thread acker([&] {
      std::this_thread::sleep_for(50ms);
      (void)buf->ack("a", 1, {});
    });
    Block arr[] = {makeBlock("s", 999, 20)};
    CHECK(buf->append(arr, 10s).isOk());
    acker.join();
    CHECK(dropped("drop_newest") + dropped("drop_oldest") == 0);
  }

  TEST_CASE_FIXTURE(Fixture, "drop_oldest and drop_newest count every dropped record") {
    for (WhenFull policy : {WhenFull::kDropOldest, WhenFull::kDropNewest}) {
      test::TempDir d;
      MetricsRegistry m;
      DiskBufferOptions o = options();
      o.path = d.file("buffer");
      o.compress = false;
      o.when_full = policy;
      Block probe = makeBlock("s", 0, 20);
      o.max_bytes = 3 * (probe.records.bytes() + probe.records.size() * 4 + 200);
      auto b = DiskBuffer::open(o, m, clock);
      REQUIRE(b.isOk());
      auto& buf = **b;
      declare(buf, {"a"});
      for (int i = 0; i < 10; ++i) {
        Block arr[] = {makeBlock("s", i * 20, 20)};
        REQUIRE(buf.append(arr, 0ms).isOk());
      }
      BufferStats s = buf.stats();
      const char* reason = policy == WhenFull::kDropOldest ? "drop_oldest" : "drop_newest";
      CHECK(m.counterValue("ferry_dropped_records_total", {{"reason", reason}}) == 200 - s.records);
      auto got = buf.read("a", 0, 100, 0ms);
      REQUIRE(!got->empty());
      if (policy == WhenFull::kDropOldest) {
        CHECK(got->back()->records[0] == makeBlock("s", 180, 1).records[0]);  // newest kept
      } else {
        CHECK(got->front()->records[0] == makeBlock("s", 0, 1).records[0]);  // oldest kept
      }
      // Dropped blocks leave no hole in the sequences (a hole would mean lost data).
      b->reset();
      auto again = DiskBuffer::open(o, m, clock);
      REQUIRE(again.isOk());
      CHECK((*again)->check().blocks_missing == 0);
      CHECK(m.counterValue("ferry_buffer_lost_blocks_total") == 0);
    }
  }

  TEST_CASE_FIXTURE(Fixture, "max_age drops old blocks and counts them") {
    DiskBufferOptions o = options();
    o.max_age = 1h;
    auto buf = open(o);
    declare(*buf, {"a"});
    append(*buf, makeBlock("s", 0, 5, clock.wallMs()));
    clock.advance(2h);
    append(*buf, makeBlock("s", 5, 5, clock.wallMs()));
    CHECK(dropped("max_age") == 5);
    CHECK(seqs(*buf->read("a", 0, 10, 0ms)) == std::vector<uint64_t>{2});
  }

  TEST_CASE_FIXTURE(Fixture, "encrypted at rest: no record byte in any file, readable after reopen") {
    DiskBufferOptions o = options();
    o.keys = {key("k1")};
    const std::string marker = "MARKER-7d1f0c";
    {
      auto buf = open(o);
      declare(*buf, {"a"});
      Block b;
      b.lineage = {"gw", "in", "s", 1};
      for (int i = 0; i < 200; ++i) b.records.append("{\"secret\":\"" + marker + std::to_string(i) + "\"}");
      append(*buf, std::move(b));
      // Before and after a flush to SST files.
      CHECK_FALSE(anyFileContains(dir.file("buffer"), marker));
      REQUIRE(buf->compact().isOk());
    }
    CHECK_FALSE(anyFileContains(dir.file("buffer"), marker));
    auto buf = open(o);
    declare(*buf, {"a"});
    auto got = buf->read("a", 0, 10, 0ms);
    REQUIRE(got->size() == 1);
    CHECK((*got)[0]->records[0] == "{\"secret\":\"" + marker + "0\"}");

    // Without encryption the marker is visible: the check above can fail.
    test::TempDir plain;
    DiskBufferOptions p = options();
    p.path = plain.file("buffer");
    p.compress = false;
    {
      auto pb = open(p);
      declare(*pb, {"a"});
      Block b;
      for (int i = 0; i < 5; ++i) b.records.append("{\"secret\":\"" + marker + "\"}");
      append(*pb, std::move(b));
    }
    CHECK(anyFileContains(plain.file("buffer"), marker));
  }

  TEST_CASE_FIXTURE(Fixture, "key rotation: old blocks stay readable while the old key is present") {
    KeyMaterial k1 = key("k1");
    KeyMaterial k2 = key("k2");
    {
      DiskBufferOptions o = options();
      o.keys = {k1};
      auto buf = open(o);
      declare(*buf, {"a"});
      append(*buf, makeBlock("s", 0, 3));
    }
    {
      DiskBufferOptions o = options();
      o.keys = {k2, k1};  // rotated: k2 seals, k1 still opens
      auto buf = open(o);
      declare(*buf, {"a"});
      append(*buf, makeBlock("s", 3, 3));
      auto got = buf->read("a", 0, 10, 0ms);
      REQUIRE(got->size() == 2);
      CHECK(got->at(0)->records[0] == makeBlock("s", 0, 1).records[0]);
      CHECK(got->at(1)->records[0] == makeBlock("s", 3, 1).records[0]);
    }
    // Old key gone: its block is reported and kept in quarantine, not dropped; the rest is served.
    DiskBufferOptions o = options();
    o.keys = {k2};
    auto buf = open(o);
    declare(*buf, {"a"});
    CheckReport r = buf->check();
    CHECK(r.blocks_unknown_key == 1);
    CHECK(r.blocks_ok == 1);
    auto got = buf->read("a", 0, 10, 0ms);
    REQUIRE(got->size() == 1);
    CHECK(got->at(0)->seq == 2);
    CHECK(buf->quarantinedBlocks() == 1);
    CHECK(metrics.counterValue("ferry_buffer_quarantined_blocks_total") == 1);
    REQUIRE(buf->ack("a", 2, {}).isOk());
    buf.reset();

    // The old key file is listed again: the quarantined block comes back and is served.
    DiskBufferOptions both = options();
    both.keys = {k2, k1};
    auto restored = open(both);
    declare(*restored, {"a"});
    CHECK(restored->quarantinedBlocks() == 0);
    auto again = restored->read("a", 0, 10, 0ms);
    REQUIRE(again->size() == 1);
    CHECK(again->at(0)->records[0] == makeBlock("s", 0, 1).records[0]);
    CHECK(again->at(0)->seq > 2);  // re-queued after the backlog
  }

  TEST_CASE_FIXTURE(Fixture, "the data key rotates after its block budget; every block stays readable") {
    DiskBufferOptions o = options();
    o.keys = {key("k1")};
    o.rotate_data_key_after = 3;
    static int rotations = 0;
    rotations = 0;
    setLogSink([](std::string_view line) {
      if (line.find("rotated the data key") != std::string_view::npos) ++rotations;
    });
    {
      auto buf = open(o);
      declare(*buf, {"a"});
      for (int i = 0; i < 10; ++i) append(*buf, makeBlock("s", i, 1));
      CHECK(buf->read("a", 0, 100, 0ms)->size() == 10);
    }
    setLogSink(nullptr);
    CHECK(rotations == 3);  // before blocks 4, 7 and 10: a key seals at most 3
    auto buf = open(o);
    declare(*buf, {"a"});
    CheckReport r = buf->check();
    CHECK(r.blocks_ok == 10);
    CHECK(r.blocks_unknown_key == 0);
    auto got = buf->read("a", 0, 100, 0ms);
    REQUIRE(got->size() == 10);
    for (int i = 0; i < 10; ++i) CHECK(got->at(static_cast<size_t>(i))->records[0] == makeBlock("s", i, 1).records[0]);
  }

  TEST_CASE_FIXTURE(Fixture, "a flipped byte in a closed buffer's SST is found, quarantined and counted") {
    {
      DiskBufferOptions o = options();
      o.compress = false;
      auto buf = open(o);
      declare(*buf, {"a"});
      for (int i = 0; i < 20; ++i) append(*buf, makeBlock("s", i * 100, 100));
      REQUIRE(buf->compact().isOk());
    }
    // The largest SST holds the blocks; damage one value in its middle.
    REQUIRE(test::flipMiddleByteOfLargest(dir.file("buffer"), ".sst", 0x5a) > 0);
    DiskBufferOptions o = options();
    o.compress = false;
    auto buf = open(o);
    declare(*buf, {"a"});
    // RocksDB checksums 16 KiB data blocks; small test blocks share them, so one flipped
    // byte can take several of ours with it. Every block is either served or quarantined.
    CheckReport r = buf->check();
    CHECK(r.blocks_damaged >= 1);
    CHECK(r.blocks_damaged < 20);
    CHECK(r.blocks_ok + r.blocks_damaged == 20);
    auto got = buf->read("a", 0, 100, 0ms);
    REQUIRE(got.isOk());
    CHECK(got->size() == r.blocks_ok);
    CHECK(buf->quarantinedBlocks() == r.blocks_damaged);
    CHECK(metrics.counterValue("ferry_buffer_quarantined_blocks_total") == r.blocks_damaged);
    // Served blocks are intact and in order.
    uint64_t prev = 0;
    for (const BlockRef& b : *got) {
      CHECK(b->seq > prev);
      prev = b->seq;
      CHECK(b->records[0] == makeBlock("s", static_cast<int>(b->seq - 1) * 100, 1).records[0]);
    }
    // After quarantine, a check finds the quarantined blocks and no live damage.
    CheckReport after = buf->check();
    CHECK(after.blocks_damaged == 0);
    CHECK(after.quarantined == r.blocks_damaged);
  }

  TEST_CASE_FIXTURE(Fixture, "an unopenable buffer is an error naming the path, never replaced") {
    fs::create_directories(dir.file("buffer"));
    test::writeFile(dir.file("buffer/CURRENT"), "MANIFEST-000099\n");
    auto b = DiskBuffer::open(options(), metrics, clock);
    REQUIRE_FALSE(b.isOk());
    CHECK(b.status().message().find(dir.file("buffer")) != std::string::npos);
    CHECK(b.status().message().find("ferry buffer check") != std::string::npos);
    CHECK(test::readFile(dir.file("buffer/CURRENT")) == "MANIFEST-000099\n");
  }
}

TEST_SUITE("buffer.disk.dead_letters") {
  TEST_CASE_FIXTURE(Fixture, "a dead letter is kept with its reason, acked in the same write, and survives reopen") {
    {
      auto buf = open();
      std::vector<std::string> outs = {"up", "archive"};
      REQUIRE(buf->setOutputs(outs).isOk());
      append(*buf, makeBlock("s", 0, 3));
      append(*buf, makeBlock("s", 3, 2));
      auto blocks = buf->read("up", 0, 10, 0ms);
      REQUIRE(blocks.isOk());
      REQUIRE(blocks->size() == 2);
      REQUIRE(buf->ack("up", 1, {}).isOk());
      REQUIRE(buf->deadLetter("up", *(*blocks)[1], "HTTP 400: \"n\" must be a string", {}).isOk());
      CHECK(buf->cursor("up") == 2);
      CHECK(buf->stats().dead_letter_records == 2);
      // A second refusal of an already acked block is not stored twice.
      REQUIRE(buf->deadLetter("up", *(*blocks)[1], "again", {}).isOk());
      CHECK(buf->stats().dead_letter_records == 2);
    }
    auto buf = open();
    CHECK(buf->cursor("up") == 2);
    CHECK(buf->stats().dead_letter_records == 2);
    std::vector<std::string> got;
    REQUIRE(buf->forEachDeadLetter([&](const DeadLetter& d) {
                 CHECK(d.output == "up");
                 CHECK(d.reason == "HTTP 400: \"n\" must be a string");
                 CHECK(d.block.seq == 2);
                 CHECK(d.block.lineage.stream == "s");
                 for (size_t i = 0; i < d.block.records.size(); ++i) got.emplace_back(d.block.records[i]);
               }).isOk());
    REQUIRE(got.size() == 2);
    CHECK(got[0].find("\"n\":000003") != std::string::npos);
    // The other output still has both blocks: the dead letter did not release them.
    auto rest = buf->read("archive", 0, 10, 0ms);
    REQUIRE(rest.isOk());
    CHECK(rest->size() == 2);
  }

  TEST_CASE_FIXTURE(Fixture, "an input's dead letter is sealed, kept outside the log and survives reopen") {
    DiskBufferOptions o = options();
    o.keys = {key("k1")};
    const std::string marker = "UNMISTAKABLE-LONG-LINE-MARKER";
    {
      auto buf = open(o);
      declare(*buf, {"up"});
      Block b;
      b.lineage = Lineage{"gw", "logs", "app", 2};
      b.records.append(marker + " \xff not json");
      auto id = buf->keepDeadLetter("input:logs", b, "line_too_long: a.log offset 7");
      REQUIRE(id.isOk());
      CHECK(*id > 0);
      CHECK(buf->stats().records == 0);
      CHECK(buf->stats().dead_letter_records == 1);
      // Stored encrypted: no file of the buffer holds the record's bytes.
      for (const auto& f : std::filesystem::recursive_directory_iterator(dir.file("buffer"))) {
        if (!f.is_regular_file()) continue;
        std::ifstream in(f.path(), std::ios::binary);
        std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        CHECK(all.find(marker) == std::string::npos);
      }
    }
    auto buf = open(o);
    int n = 0;
    REQUIRE(buf->forEachDeadLetter([&](const DeadLetter& d) {
                 ++n;
                 CHECK(d.output == "input:logs");
                 CHECK(d.reason == "line_too_long: a.log offset 7");
                 CHECK(d.block.lineage.input == "logs");
                 REQUIRE(d.block.records.size() == 1);
                 CHECK(d.block.records[0] == marker + " \xff not json");
               }).isOk());
    CHECK(n == 1);
    CHECK(buf->stats().dead_letter_records == 1);
  }

  TEST_CASE_FIXTURE(Fixture, "the queue is bounded: the oldest dead letters make room and are counted") {
    auto o = options();
    o.max_bytes = 8 << 20;  // queue cap: 1 MiB
    auto buf = open(o);
    std::vector<std::string> outs = {"up"};
    REQUIRE(buf->setOutputs(outs).isOk());
    Block big;
    big.lineage = {"gw", "in", "s", 1};
    std::mt19937 rng(5);
    for (int i = 0; i < 300; ++i) {
      std::string r = "{\"x\":\"";
      for (int j = 0; j < 1000; ++j) r += static_cast<char>('a' + rng() % 26);  // incompressible-ish
      r += "\"}";
      big.records.append(r);
    }
    for (int i = 0; i < 8; ++i) {
      Block copy;
      copy.lineage = big.lineage;
      copy.records.appendAll(big.records);
      append(*buf, std::move(copy));
    }
    auto blocks = buf->read("up", 0, 10, 0ms);
    REQUIRE(blocks.isOk());
    for (const auto& b : *blocks) REQUIRE(buf->deadLetter("up", *b, "refused", {}).isOk());
    BufferStats st = buf->stats();
    CHECK(st.dead_letter_bytes <= (1u << 20));
    CHECK(st.dead_letter_records < 8 * 300);
    CHECK(metrics.counterValue("ferry_dropped_records_total", {{"reason", "dead_letter_overflow"}}) ==
          8 * 300 - st.dead_letter_records);
    CHECK(buf->cursor("up") == 8);
  }
}
