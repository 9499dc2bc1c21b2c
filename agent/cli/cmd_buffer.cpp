// `ferry buffer stats|check|export`: look into a disk buffer, read-only, safe beside a
// running agent (RocksDB read-only instance).
#include <cinttypes>
#include <cstdio>

#include "agent/buffer/disk_buffer.h"
#include "agent/cli/commands.h"
#include "agent/config/loader.h"
#include "agent/core/dead_letter.h"
#include "agent/core/agent.h"
#include "ferry/log.h"
#include "ferry/json.h"

namespace ferry::cli {
namespace {


// The buffer settings come from -c (if given) and the flags; flags win.
Result<std::unique_ptr<DiskBuffer>> openForTools(const BufferToolArgs& args, MetricsRegistry& metrics) {
  Config cfg;
  if (!args.config_path.empty()) {
    LoadResult r = loadConfigFile(args.config_path, PluginRegistry::builtin());
    if (!r.config) {
      std::string m;
      for (const auto& p : r.problems) m += "\n  " + p.toString();
      return invalidArgument("config has problems:" + m);
    }
    cfg = *r.config;
  }
  if (!args.data_dir.empty()) cfg.agent.data_dir = args.data_dir;
  if (cfg.agent.data_dir.empty()) return invalidArgument("give --data-dir DIR (or -c CONFIG)");
  if (cfg.buffer.type == BufferType::kMemory) return invalidArgument("the config uses a memory buffer");
  cfg.buffer.type = BufferType::kDisk;
  if (!args.key_files.empty()) {
    cfg.buffer.key_file = args.key_files.front();
    cfg.buffer.previous_key_files.assign(args.key_files.begin() + 1, args.key_files.end());
  }
  auto buffer = openBuffer(cfg, metrics, systemClock(), /*read_only=*/true);
  if (!buffer.isOk()) return buffer.status();
  std::unique_ptr<DiskBuffer> disk(static_cast<DiskBuffer*>(buffer->release()));
  return disk;
}

int stats(DiskBuffer& b) {
  // Tools see every output with a stored cursor.
  std::vector<std::string> outs = b.knownOutputs();
  BufferStats s = b.stats();
  std::printf("blocks %" PRIu64 ", records %" PRIu64 ", stored bytes %" PRIu64 " (%s), quarantined blocks %" PRIu64
              "\n",
              s.blocks, s.records, s.bytes, formatSize(s.bytes).c_str(), b.quarantinedBlocks());
  std::printf("%-24s %12s %10s %12s %14s %12s\n", "output", "cursor", "blocks", "records", "bytes", "oldest_age_s");
  const int64_t now = systemClock().wallMs();
  for (const OutputBacklog& o : s.outputs) {
    double age = o.oldest_ms > 0 ? static_cast<double>(now - o.oldest_ms) / 1000.0 : 0.0;
    std::printf("%-24s %12" PRIu64 " %10" PRIu64 " %12" PRIu64 " %14" PRIu64 " %12.1f\n", o.output.c_str(), o.cursor,
                o.blocks, o.records, o.bytes, age);
  }
  if (outs.empty()) std::printf("(no output cursors stored yet)\n");
  std::printf("dead letters: %" PRIu64 " records, %s (ferry buffer export --dead-letters)\n", s.dead_letter_records,
              formatSize(s.dead_letter_bytes).c_str());
  return 0;
}

int check(DiskBuffer& b) {
  CheckReport r = b.check();
  for (const std::string& p : r.problems) std::printf("problem: %s\n", p.c_str());
  std::printf("salvageable: %" PRIu64 " blocks (%" PRIu64 " records); damaged: %" PRIu64 "; unknown key: %" PRIu64
              "; missing: %" PRIu64 "; index mismatches: %" PRIu64 "; in quarantine: %" PRIu64 "\n",
              r.blocks_ok, r.records_ok, r.blocks_damaged, r.blocks_unknown_key, r.blocks_missing, r.index_mismatches,
              r.quarantined);
  if (r.damaged() || r.quarantined > 0) {
    std::printf(
        "damage found: the agent serves the salvageable blocks; damaged ones are kept in quarantine, "
        "missing ones are lost and counted (ferry_buffer_lost_blocks_total)\n");
    return 1;
  }
  std::printf("ok\n");
  return 0;
}

int exportNdjson(DiskBuffer& b) {
  std::string line;
  Status st = b.forEachBlock([&](const Block& block, const std::vector<std::string>& pending) {
    std::string prefix = "{\"outputs\":[";
    for (size_t i = 0; i < pending.size(); ++i) {
      if (i) prefix += ',';
      appendJsonString(prefix, pending[i]);
    }
    prefix += "],\"seq\":" + std::to_string(block.seq) + ",\"agent\":";
    appendJsonString(prefix, block.lineage.agent);
    prefix += ",\"input\":";
    appendJsonString(prefix, block.lineage.input);
    prefix += ",\"stream\":";
    appendJsonString(prefix, block.lineage.stream);
    prefix += ",\"config_version\":" + std::to_string(block.lineage.config_version) +
              ",\"created_ms\":" + std::to_string(block.created_ms) + ",\"record\":";
    for (size_t i = 0; i < block.records.size(); ++i) {
      line = prefix;
      line += block.records[i];
      line += "}\n";
      std::fwrite(line.data(), 1, line.size(), stdout);
    }
  });
  if (!st.isOk()) {
    std::fprintf(stderr, "ferry buffer export: %s\n", st.toString().c_str());
    return 1;
  }
  return 0;
}

// One line per dead record, in the form forwarding uses (agent/core/dead_letter.h).
int exportDeadLetters(DiskBuffer& b) {
  std::string line;
  Status st = b.forEachDeadLetter([&](const DeadLetter& d) {
    DeadLetterOrigin origin{d.output, d.reason, d.block.lineage.stream, d.block.seq, d.at_ms};
    for (size_t i = 0; i < d.block.records.size(); ++i) {
      line.clear();
      appendDeadLetterRecord(line, origin, d.block.records[i]);
      line += '\n';
      std::fwrite(line.data(), 1, line.size(), stdout);
    }
  });
  if (!st.isOk()) {
    std::fprintf(stderr, "ferry buffer export --dead-letters: %s\n", st.toString().c_str());
    return 1;
  }
  return 0;
}

}  // namespace

int bufferTool(const BufferToolArgs& args) {
  setLogLevel(LogLevel::kWarn);
  MetricsRegistry metrics;
  auto buffer = openForTools(args, metrics);
  if (!buffer.isOk()) {
    std::fprintf(stderr, "ferry buffer %s: %s\n", args.action.c_str(), buffer.status().toString().c_str());
    return args.action == "check" ? 1 : 2;
  }
  if (args.action == "stats") return stats(**buffer);
  if (args.action == "check") return check(**buffer);
  if (args.dead_letters) return exportDeadLetters(**buffer);
  return exportNdjson(**buffer);
}

}  // namespace ferry::cli
