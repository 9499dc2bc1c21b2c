#include "agent/config/schema.h"

namespace ferry {
namespace {

constexpr std::string_view kLevels[] = {"debug", "info", "warn", "error"};
constexpr std::string_view kFormats[] = {"text", "json"};
constexpr std::string_view kBufferTypes[] = {"disk", "memory"};
constexpr std::string_view kDurability[] = {"fsync", "os"};
constexpr std::string_view kCodecs[] = {"zstd", "none"};
constexpr std::string_view kWhenFull[] = {"block", "drop_oldest", "drop_newest"};

const OptionSpec kAgent[] = {
    {.key = "id", .type = OptionType::kString, .help = "agent id in lineage and topics; defaults to the hostname"},
    {.key = "data_dir", .type = OptionType::kString, .default_value = "/var/lib/ferry",
     .help = "directory for the agent's state"},
    {.key = "plugins_dir", .type = OptionType::kString,
     .help = "directory of out-of-tree plugins: every *.so in it is loaded (docs/plugin_abi.md); a "
             "library that cannot be used makes the config invalid; absent: built-ins only"},
};

const OptionSpec kLog[] = {
    {.key = "level", .type = OptionType::kEnum, .default_value = "info", .help = "lowest level written",
     .choices = kLevels},
    {.key = "format", .type = OptionType::kEnum, .default_value = "text",
     .help = "text lines or JSON lines, on stderr", .choices = kFormats},
};

const OptionSpec kBlock[] = {
    {.key = "max_records", .type = OptionType::kInt, .default_value = "10000",
     .help = "a block is cut when it holds this many records"},
    {.key = "max_bytes", .type = OptionType::kSize, .default_value = "256KiB",
     .help = "a block is cut when its records reach this size"},
    {.key = "max_wait", .type = OptionType::kDuration, .default_value = "50ms",
     .help = "a block is cut at the latest this long after its first record"},
};

const OptionSpec kCompression[] = {
    {.key = "codec", .type = OptionType::kEnum, .default_value = "zstd",
     .help = "compression of each block before it is stored", .choices = kCodecs},
    {.key = "level", .type = OptionType::kInt, .default_value = "3", .help = "zstd level (1 fastest .. 19)"},
};

const OptionSpec kEncryption[] = {
    {.key = "key_file", .type = OptionType::kString,
     .help = "AES-256 key file (ferry keygen --type aes256); absent: blocks stored in plaintext (warned)"},
    {.key = "previous_key_files", .type = OptionType::kStringList, .default_value = "[]",
     .help = "older key files, to read blocks sealed before a key rotation"},
};

const OptionSpec kBuffer[] = {
    {.key = "type", .type = OptionType::kEnum, .default_value = "disk",
     .help = "disk: RocksDB in agent.data_dir, survives crashes and restarts; memory: bounded, in "
             "RAM, lost on exit (undelivered records are counted)",
     .choices = kBufferTypes},
    {.key = "max_bytes", .type = OptionType::kSize,
     .help = "quota for the backlog; default 1GiB on disk (stored bytes), 64MiB in memory"},
    {.key = "durability", .type = OptionType::kEnum, .default_value = "fsync",
     .help = "fsync: an append returns once the WAL is synced (one sync for many inputs); os: page "
             "cache only (survives a crash of the agent, not a power cut)",
     .choices = kDurability},
    {.key = "compression", .type = OptionType::kObject, .help = "block compression", .fields = kCompression},
    {.key = "encryption", .type = OptionType::kObject, .help = "AES-256-GCM at rest",
     .fields = kEncryption},
    {.key = "memory_budget", .type = OptionType::kSize, .default_value = "16MiB",
     .help = "disk buffer: RocksDB memtables and block cache together"},
    {.key = "when_full", .type = OptionType::kEnum, .default_value = "block",
     .help = "block: inputs wait; drop_oldest / drop_newest: records are dropped and counted",
     .choices = kWhenFull},
    {.key = "max_age", .type = OptionType::kDuration, .default_value = "7d",
     .help = "older records are dropped and counted"},
    {.key = "block", .type = OptionType::kObject, .help = "how records are cut into blocks",
     .fields = kBlock},
};

const OptionSpec kMetrics[] = {
    {.key = "listen", .type = OptionType::kString, .default_value = "127.0.0.1:9464",
     .help = "host:port serving GET /metrics (Prometheus text) and GET /healthz; the section absent: not served"},
};

constexpr std::string_view kReserved[] = {"contracts", "control"};

}  // namespace

std::span<const OptionSpec> agentSectionOptions() { return kAgent; }
std::span<const OptionSpec> logSectionOptions() { return kLog; }
std::span<const OptionSpec> bufferSectionOptions() { return kBuffer; }
std::span<const OptionSpec> metricsSectionOptions() { return kMetrics; }
std::span<const std::string_view> reservedSections() { return kReserved; }

}  // namespace ferry
