#include "agent/config/loader.h"

#include <fnmatch.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <cctype>
#include <cstdlib>
#include <algorithm>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "agent/config/schema.h"
#include "agent/core/plugin_loader.h"

namespace ferry {

std::string ConfigProblem::toString() const {
  std::string loc = where.describe();
  return loc.empty() ? message : loc + ": " + message;
}

namespace {

constexpr std::string_view kEmbeddedDefault = R"(# Ferry's embedded default: host metrics every 10 s, printed as NDJSON.
agent:
  data_dir: /var/lib/ferry
inputs:
  - name: host
    type: sysmetrics
    interval: 10s
outputs:
  - name: console
    type: stdout
)";

std::string fnv1aHex(std::string_view text) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : text) {
    h ^= c;
    h *= 1099511628211ull;
  }
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

// Collects problems while walking one document.
YAML::Node child(const YAML::Node& root, std::initializer_list<const char*> keys);

class Walker {
 public:
  explicit Walker(std::string source) : source_(std::move(source)) {}

  std::vector<ConfigProblem> problems;

  SourceLocation at(const YAML::Node& node, const std::string& path) const {
    SourceLocation loc{source_, 0, path};
    if (node.IsDefined() && node.Mark().line >= 0) loc.line = node.Mark().line + 1;
    return loc;
  }
  void problem(const YAML::Node& node, const std::string& path, std::string message) {
    problems.push_back({at(node, path), std::move(message)});
  }

  // ${NAME} / ${NAME:-default} substitution, then @file: secrets. Returns false after
  // recording a problem.
  bool expandScalar(const YAML::Node& node, const std::string& path, std::string* out,
                    bool* is_secret) {
    const std::string& raw = node.Scalar();
    std::string s;
    s.reserve(raw.size());
    for (size_t i = 0; i < raw.size(); ++i) {
      if (raw[i] == '$' && i + 1 < raw.size() && raw[i + 1] == '{') {
        size_t close = raw.find('}', i + 2);
        if (close == std::string::npos) {
          problem(node, path, "unterminated ${ in \"" + raw + "\"");
          return false;
        }
        std::string inner = raw.substr(i + 2, close - i - 2);
        std::string name = inner;
        std::optional<std::string> fallback;
        if (size_t dash = inner.find(":-"); dash != std::string::npos) {
          name = inner.substr(0, dash);
          fallback = inner.substr(dash + 2);
        }
        bool valid = !name.empty() && !std::isdigit(static_cast<unsigned char>(name[0]));
        for (char c : name) valid = valid && (std::isalnum(static_cast<unsigned char>(c)) || c == '_');
        if (!valid) {
          problem(node, path, "bad environment variable name \"" + name + "\"");
          return false;
        }
        const char* value = std::getenv(name.c_str());
        if (value == nullptr && !fallback) {
          problem(node, path, "environment variable " + name + " is not set");
          return false;
        }
        s += value != nullptr ? std::string(value) : *fallback;
        i = close;
      } else {
        s.push_back(raw[i]);
      }
    }
    static constexpr std::string_view kFilePrefix = "@file:";
    if (s.rfind(kFilePrefix, 0) == 0) {
      std::string file = s.substr(kFilePrefix.size());
      if (!checkSecretFile(node, path, file)) return false;
      std::ifstream in(file, std::ios::binary);
      if (!in) {
        problem(node, path, "secret file " + file + ": cannot be read");
        return false;
      }
      std::ostringstream ss;
      ss << in.rdbuf();
      s = ss.str();
      while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
      *is_secret = true;
    }
    *out = std::move(s);
    return true;
  }

  // A file holding a secret must be a regular file nobody but its owner can read.
  bool checkSecretFile(const YAML::Node& node, const std::string& path, const std::string& file) {
    struct stat st {};
    if (::stat(file.c_str(), &st) != 0) {
      problem(node, path, "secret file " + file + ": " + std::strerror(errno));
      return false;
    }
    if (!S_ISREG(st.st_mode)) {
      problem(node, path, "secret file " + file + " is not a regular file");
      return false;
    }
    if ((st.st_mode & (S_IRGRP | S_IROTH)) != 0) {
      char mode[8];
      std::snprintf(mode, sizeof mode, "%04o", st.st_mode & 07777);
      problem(node, path, "secret file " + file + " is readable by group or others (mode " + mode +
                              "); run: chmod 600 " + file);
      return false;
    }
    return true;
  }

  // Converts one node to a typed value; records a problem and returns false on mismatch.
  bool convert(const YAML::Node& node, const OptionSpec& spec, const std::string& path,
               OptionValue* out) {
    if (spec.type == OptionType::kStringList) {
      if (!node.IsSequence()) {
        problem(node, path, "expected a list of strings");
        return false;
      }
      std::vector<std::string> items;
      bool ok = true;
      for (size_t i = 0; i < node.size(); ++i) {
        const YAML::Node item = node[i];
        std::string item_path = path + "[" + std::to_string(i) + "]";
        if (!item.IsScalar()) {
          problem(item, path, "expected a list of strings");
          ok = false;
          continue;
        }
        std::string v;
        bool secret = false;
        if (!expandScalar(item, item_path, &v, &secret)) {
          ok = false;
          continue;
        }
        if (secret || spec.secret) addSecret(v);
        if (!spec.choices.empty() &&
            std::find(spec.choices.begin(), spec.choices.end(), std::string_view(v)) == spec.choices.end()) {
          problem(item, item_path, "expected one of " + choiceList(spec) + ", got \"" + v + "\"");
          ok = false;
          continue;
        }
        items.push_back(std::move(v));
      }
      if (ok) *out = std::move(items);
      return ok;
    }
    if (spec.type == OptionType::kStringMap) {
      if (!node.IsMap()) {
        problem(node, path, "expected a mapping of strings (key: value)");
        return false;
      }
      std::vector<std::pair<std::string, std::string>> items;
      std::map<std::string, int> seen;
      bool ok = true;
      for (const auto& kv : node) {
        std::string key = kv.first.Scalar();
        std::string item_path = path + "." + key;
        if (!noteKey(seen, kv.first, item_path)) {
          ok = false;
          continue;
        }
        if (!kv.second.IsScalar()) {
          problem(kv.second, item_path, "expected a string");
          ok = false;
          continue;
        }
        std::string v;
        bool secret = false;
        if (!expandScalar(kv.second, item_path, &v, &secret)) {
          ok = false;
          continue;
        }
        if (secret || spec.secret) addSecret(v);
        items.emplace_back(std::move(key), std::move(v));
      }
      if (ok) *out = std::move(items);
      return ok;
    }
    if (!node.IsScalar()) {
      std::string what(optionTypeName(spec.type));
      if (spec.type == OptionType::kInt) what = "an integer";
      else if (spec.type == OptionType::kEnum) what = "one of " + choiceList(spec);
      else what = "a " + what;
      problem(node, path, "expected " + what + ", got a " + (node.IsMap() ? "mapping" : node.IsSequence() ? "list" : "null"));
      return false;
    }
    std::string text;
    bool secret = false;
    if (!expandScalar(node, path, &text, &secret)) return false;
    if (secret || spec.secret) addSecret(text);
    return convertText(node, spec, path, text, out);
  }

  bool convertText(const YAML::Node& node, const OptionSpec& spec, const std::string& path,
                   const std::string& text, OptionValue* out) {
    switch (spec.type) {
      case OptionType::kString:
        *out = text;
        return true;
      case OptionType::kInt: {
        char* end = nullptr;
        errno = 0;
        long long v = std::strtoll(text.c_str(), &end, 10);
        if (text.empty() || *end != '\0' || errno == ERANGE) {
          problem(node, path, "expected an integer, got \"" + text + "\"");
          return false;
        }
        *out = static_cast<int64_t>(v);
        return true;
      }
      case OptionType::kBool:
        if (text == "true") *out = true;
        else if (text == "false") *out = false;
        else {
          problem(node, path, "expected true or false, got \"" + text + "\"");
          return false;
        }
        return true;
      case OptionType::kDouble: {
        char* end = nullptr;
        double v = std::strtod(text.c_str(), &end);
        if (text.empty() || *end != '\0') {
          problem(node, path, "expected a number, got \"" + text + "\"");
          return false;
        }
        *out = v;
        return true;
      }
      case OptionType::kDuration: {
        Duration d{};
        if (!parseDuration(text, &d)) {
          problem(node, path, "expected a duration like 250ms, 30s, 5m, 7d; got \"" + text + "\"");
          return false;
        }
        *out = d;
        return true;
      }
      case OptionType::kSize: {
        uint64_t v = 0;
        if (!parseSize(text, &v)) {
          problem(node, path, "expected a size like 4096, 64KiB, 1GiB, 10MB; got \"" + text + "\"");
          return false;
        }
        *out = v;
        return true;
      }
      case OptionType::kEnum:
        for (std::string_view c : spec.choices) {
          if (c == text) {
            *out = text;
            return true;
          }
        }
        problem(node, path, "expected one of " + choiceList(spec) + ", got \"" + text + "\"");
        return false;
      case OptionType::kStringList:
      case OptionType::kObject:
      case OptionType::kStringMap:
      case OptionType::kObjectList:
        break;
    }
    problem(node, path, "internal: unexpected option type");
    return false;
  }

  // YAML parsers keep the last of two equal keys; a config that says two things must be
  // refused instead. Returns false (after a problem) for a repeated key.
  bool noteKey(std::map<std::string, int>& seen, const YAML::Node& key_node, const std::string& key_path) {
    const int line = at(key_node, key_path).line;
    auto [it, fresh] = seen.emplace(key_node.Scalar(), line);
    if (fresh) return true;
    problem(key_node, key_path, "key given twice (first at line " + std::to_string(it->second) + ")");
    return false;
  }

  static std::string choiceList(const OptionSpec& spec) {
    std::string s;
    for (std::string_view c : spec.choices) {
      if (!s.empty()) s += "|";
      s += c;
    }
    return s;
  }

  static std::string keyList(std::span<const std::span<const OptionSpec>> tables) {
    std::string s;
    for (auto table : tables) {
      for (const OptionSpec& o : table) {
        if (!s.empty()) s += ", ";
        s += o.key;
      }
    }
    return s;
  }

  // Validates mapping `node` at `path` against `tables`, writing values under `prefix`.
  void table(const YAML::Node& node, std::span<const std::span<const OptionSpec>> tables,
             const std::string& path, const std::string& prefix, Options* out) {
    // yaml-cpp throws on type queries of a missing (zombie) node: ask IsDefined() first.
    const bool is_map = node.IsDefined() && node.IsMap();
    if (!node.IsDefined() || node.IsNull()) {
      // An absent or empty section: only defaults and required checks apply.
    } else if (!node.IsMap()) {
      problem(node, path, "expected a mapping");
      return;
    } else {
      std::map<std::string, int> seen;  // key -> line, to refuse keys given twice
      for (auto it = node.begin(); it != node.end(); ++it) {
        std::string key = it->first.Scalar();
        std::string key_path = path.empty() ? key : path + "." + key;
        if (!noteKey(seen, it->first, key_path)) continue;
        const OptionSpec* spec = nullptr;
        for (auto t : tables) {
          for (const OptionSpec& o : t) {
            if (o.key == key) spec = &o;
          }
        }
        if (spec == nullptr) {
          problem(it->first, key_path, "unknown key (valid keys: " + keyList(tables) + ")");
          continue;
        }
        if (spec->type == OptionType::kObject) {
          std::span<const OptionSpec> fields[] = {spec->fields};
          table(it->second, fields, key_path, prefix + key + ".", out);
          continue;
        }
        if (spec->type == OptionType::kObjectList) {
          if (!it->second.IsSequence()) {
            problem(it->second, key_path, "expected a list of objects");
            continue;
          }
          std::span<const OptionSpec> fields[] = {spec->fields};
          for (size_t i = 0; i < it->second.size(); ++i) {
            const std::string item = "[" + std::to_string(i) + "]";
            table(it->second[i], fields, key_path + item, prefix + key + item + ".", out);
          }
          out->set(prefix + key, static_cast<int64_t>(it->second.size()), at(it->second, key_path));
          continue;
        }
        if (it->second.IsNull()) continue;  // `key:` with no value: treated as absent
        OptionValue v;
        if (convert(it->second, *spec, key_path, &v)) out->set(prefix + key, std::move(v), at(it->second, key_path));
      }
    }
    // Required keys and defaults.
    for (auto t : tables) {
      for (const OptionSpec& o : t) {
        std::string full = prefix + std::string(o.key);
        std::string key_path = path.empty() ? std::string(o.key) : path + "." + std::string(o.key);
        if (o.type == OptionType::kObject) {
          if (!is_map || !node[std::string(o.key)]) {
            std::span<const OptionSpec> fields[] = {o.fields};
            table(YAML::Node(YAML::NodeType::Undefined), fields, key_path, full + ".", out);
          }
          continue;
        }
        if (out->has(full)) continue;
        bool present = is_map && node[std::string(o.key)] && !node[std::string(o.key)].IsNull();
        if (present) continue;  // present but invalid: already reported
        if (o.required) {
          problem(node, key_path, "missing required key");
          continue;
        }
        if (o.default_value.empty()) continue;
        OptionValue v;
        if (o.type == OptionType::kStringList) {
          YAML::Node def = YAML::Load(std::string(o.default_value));
          std::vector<std::string> items;
          for (const auto& item : def) items.push_back(item.Scalar());
          v = std::move(items);
        } else if (!convertText(node, o, key_path, std::string(o.default_value), &v)) {
          continue;
        }
        out->set(full, std::move(v), SourceLocation{source_, 0, key_path});
      }
    }
  }

  void plugins(const YAML::Node& list, const std::string& section, PluginKind kind,
               const PluginRegistry& registry, std::vector<PluginInstance>* out) {
    if (!list.IsDefined() || list.IsNull()) return;
    if (!list.IsSequence()) {
      problem(list, section, "expected a list of " + std::string(pluginKindName(kind)) + "s");
      return;
    }
    std::set<std::string> names;
    // Processors default to their type as name, or <type>-<position> when the type repeats
    // (two filters need two names for their metrics).
    std::map<std::string, int> type_count;
    for (size_t i = 0; i < list.size(); ++i) {
      const YAML::Node item = list[i];
      if (item.IsMap() && item["type"] && item["type"].IsScalar()) ++type_count[item["type"].Scalar()];
    }
    for (size_t i = 0; i < list.size(); ++i) {
      const YAML::Node item = list[i];
      std::string path = section + "[" + std::to_string(i) + "]";
      if (!item.IsMap()) {
        problem(item, path, "expected a mapping with at least a type");
        continue;
      }
      const YAML::Node type_node = item["type"];
      if (!type_node || !type_node.IsScalar()) {
        problem(item, path + ".type", "missing required key");
        continue;
      }
      std::string type = type_node.Scalar();
      const PluginDescriptor* d = registry.find(kind, type);
      if (d == nullptr) {
        std::string builtin, loaded;  // loaded: from agent.plugins_dir
        for (const PluginDescriptor* p : registry.all()) {
          if (p->kind != kind) continue;
          std::string& into = p->loaded != nullptr ? loaded : builtin;
          into += (into.empty() ? "" : ", ") + std::string(p->name);
        }
        problem(type_node, path + ".type",
                "unknown " + std::string(pluginKindName(kind)) + " type \"" + type + "\" (built in: " + builtin +
                    (loaded.empty() ? "" : "; from plugins_dir: " + loaded) + ")");
        continue;
      }
      std::span<const OptionSpec> tables[] = {commonOptions(kind), d->options};
      Options all;
      size_t before = problems.size();
      table(item, tables, path, "", &all);
      if (problems.size() != before) continue;
      PluginInstance inst;
      inst.descriptor = d;
      inst.name = all.has("name")                                        ? all.getString("name")
                  : kind == PluginKind::kProcessor && type_count[type] > 1 ? type + "-" + std::to_string(i)
                                                                           : type;
      if (all.has("name") && inst.name.empty()) {
        problem(item["name"], path + ".name", "must not be empty");
        continue;
      }
      if (!names.insert(inst.name).second) {
        problem(item, path + ".name",
                "duplicate " + std::string(pluginKindName(kind)) + " name \"" + inst.name +
                    "\" (names must be unique; set name: for each " + type + ")");
        continue;
      }
      if (kind == PluginKind::kInput) {
        inst.stream = all.has("stream") ? all.getString("stream") : inst.name;
      } else if (kind == PluginKind::kProcessor) {
        inst.match = all.getString("match");
      } else {
        inst.match = all.getString("match");
        // Problems point at the key's own line when it is given.
        auto keyNode = [&](std::initializer_list<const char*> keys) {
          YAML::Node n = child(item, keys);
          return n.IsDefined() ? n : item;
        };
        inst.retry.initial_backoff = all.getDuration("retry.initial");
        inst.retry.max_backoff = all.getDuration("retry.max");
        if (inst.retry.initial_backoff <= Duration::zero() || inst.retry.max_backoff < inst.retry.initial_backoff) {
          problem(keyNode({"retry"}), path + ".retry", "need 0 < initial <= max");
        }
        int64_t window = all.getInt("window");
        if (window < 1 || window > 64) {
          problem(keyNode({"window"}), path + ".window", "must be between 1 and 64, got " + std::to_string(window));
        }
        inst.retry.window = static_cast<int>(window);
        inst.retry.timeout = all.getDuration("timeout");
        if (inst.retry.timeout <= Duration::zero()) problem(keyNode({"timeout"}), path + ".timeout", "must be positive");
        inst.retry.dead_letter_output = all.getString("dead_letter.output");
      }
      // Plugin options without the common keys.
      Options own;
      own.setLocation(at(item, path));
      for (const auto& [k, v] : all.values()) {
        bool common = false;
        for (const OptionSpec& o : tables[0]) {
          if (k == o.key || k.rfind(std::string(o.key) + ".", 0) == 0) common = true;
        }
        if (!common) own.set(k, v, all.where(k));
      }
      inst.options = std::move(own);
      out->push_back(std::move(inst));
    }
  }

 private:
  std::string source_;
};

// root[a][b]... without yaml-cpp's exception when a level is missing.
// yaml-cpp's Node has reference semantics: `a = b` overwrites what `a` refers to, and a
// non-const operator[] inserts missing keys. So rebind with reset() and look up through a
// const reference, which leaves the document untouched.
YAML::Node child(const YAML::Node& root, std::initializer_list<const char*> keys) {
  YAML::Node n;
  n.reset(root);
  for (const char* k : keys) {
    const YAML::Node& cur = n;
    if (!cur.IsDefined() || !cur.IsMap() || !cur[k]) return YAML::Node(YAML::NodeType::Undefined);
    YAML::Node next = cur[k];
    n.reset(next);
  }
  return n;
}

std::string defaultAgentId() {
  char host[256] = {0};
  if (::gethostname(host, sizeof host - 1) != 0 || host[0] == '\0') return "ferry";
  return host;
}

LoadResult loadDocument(const YAML::Node& root, std::string_view text, std::string source,
                        const PluginRegistry& builtin_registry) {
  LoadResult result;
  Walker w(source);
  if (!root.IsMap()) {
    w.problem(root, "", "the document must be a mapping with inputs and outputs");
    result.problems = std::move(w.problems);
    return result;
  }
  static constexpr std::string_view kSections[] = {"agent",  "log",        "buffer", "metrics",
                                                   "inputs", "processors", "outputs"};
  std::map<std::string, int> seen_sections;
  for (auto it = root.begin(); it != root.end(); ++it) {
    std::string key = it->first.Scalar();
    if (!w.noteKey(seen_sections, it->first, key)) continue;
    bool known = false;
    for (std::string_view s : kSections) known = known || s == key;
    if (known) continue;
    bool reserved = false;
    for (std::string_view s : reservedSections()) reserved = reserved || s == key;
    if (reserved) {
      w.problem(it->first, key, "section is part of Ferry's contract but not available in this version yet");
    } else {
      w.problem(it->first, key, "unknown key (valid keys: agent, log, buffer, metrics, inputs, processors, outputs)");
    }
  }

  Config cfg;
  cfg.source = source;
  cfg.hash = fnv1aHex(text);

  Options agent, log, buffer;
  std::span<const OptionSpec> agent_t[] = {agentSectionOptions()};
  std::span<const OptionSpec> log_t[] = {logSectionOptions()};
  std::span<const OptionSpec> buffer_t[] = {bufferSectionOptions()};
  w.table(root["agent"], agent_t, "agent", "", &agent);
  w.table(root["log"], log_t, "log", "", &log);
  w.table(root["buffer"], buffer_t, "buffer", "", &buffer);
  Options metrics;
  std::span<const OptionSpec> metrics_t[] = {metricsSectionOptions()};
  const bool with_metrics = root["metrics"].IsDefined();
  if (with_metrics) {
    w.table(root["metrics"], metrics_t, "metrics", "", &metrics);
    cfg.metrics.listen = metrics.getString("listen");
  }

  cfg.agent.id = agent.has("id") ? agent.getString("id") : defaultAgentId();
  cfg.agent.data_dir = agent.getString("data_dir");
  if (agent.has("id") && cfg.agent.id.empty()) w.problem(child(root, {"agent", "id"}), "agent.id", "must not be empty");
  // Out-of-tree plugins load before inputs and processors are checked against them.
  cfg.agent.plugins_dir = agent.getString("plugins_dir");
  PluginRegistry registry(builtin_registry, {});
  if (!cfg.agent.plugins_dir.empty()) {
    LoadedPlugins::DirResult loaded = LoadedPlugins::loadDir(cfg.agent.plugins_dir, builtin_registry);
    for (const std::string& p : loaded.problems) w.problem(child(root, {"agent", "plugins_dir"}), "agent.plugins_dir", p);
    cfg.plugins = loaded.plugins;
    registry = PluginRegistry(builtin_registry, loaded.plugins->descriptors());
  }

  parseLogLevel(log.getString("level"), &cfg.log.level);
  cfg.log.format = log.getString("format") == "json" ? LogFormat::kJson : LogFormat::kText;

  cfg.buffer.type = buffer.getString("type") == "memory" ? BufferType::kMemory : BufferType::kDisk;
  cfg.buffer.max_bytes = buffer.has("max_bytes") ? buffer.getSize("max_bytes")
                         : cfg.buffer.type == BufferType::kMemory ? (64ull << 20)
                                                                  : (1ull << 30);
  cfg.buffer.fsync = buffer.getString("durability") != "os";
  cfg.buffer.compress = buffer.getString("compression.codec") != "none";
  cfg.buffer.zstd_level = static_cast<int>(buffer.getInt("compression.level"));
  if (buffer.has("compression.level") && (cfg.buffer.zstd_level < 1 || cfg.buffer.zstd_level > 19)) {
    w.problem(child(root, {"buffer", "compression", "level"}), "buffer.compression.level", "must be 1..19");
  }
  cfg.buffer.key_file = buffer.getString("encryption.key_file");
  cfg.buffer.previous_key_files = buffer.getStringList("encryption.previous_key_files");
  // Key files are checked here too, so `ferry validate` catches what the start would refuse.
  if (!cfg.buffer.key_file.empty()) {
    w.checkSecretFile(child(root, {"buffer", "encryption", "key_file"}), "buffer.encryption.key_file",
                      cfg.buffer.key_file);
  }
  for (size_t i = 0; i < cfg.buffer.previous_key_files.size(); ++i) {
    w.checkSecretFile(child(root, {"buffer", "encryption", "previous_key_files"}),
                      "buffer.encryption.previous_key_files[" + std::to_string(i) + "]",
                      cfg.buffer.previous_key_files[i]);
  }
  cfg.buffer.memory_budget = buffer.getSize("memory_budget");
  if (cfg.buffer.memory_budget < (4u << 20)) {
    w.problem(child(root, {"buffer", "memory_budget"}), "buffer.memory_budget", "must be at least 4MiB");
  }
  parseWhenFull(buffer.getString("when_full"), &cfg.buffer.when_full);
  cfg.buffer.max_age = buffer.getDuration("max_age");
  cfg.buffer.block_max_records = static_cast<uint64_t>(std::max<int64_t>(0, buffer.getInt("block.max_records")));
  cfg.buffer.block_max_bytes = buffer.getSize("block.max_bytes");
  cfg.buffer.block_max_wait = buffer.getDuration("block.max_wait");
  if (buffer.has("block.max_records") && buffer.getInt("block.max_records") < 1) {
    w.problem(child(root, {"buffer", "block", "max_records"}), "buffer.block.max_records", "must be at least 1");
  }
  if (cfg.buffer.block_max_bytes > cfg.buffer.max_bytes) {
    w.problem(child(root, {"buffer", "max_bytes"}), "buffer.max_bytes", "must be at least buffer.block.max_bytes (" +
                                                                   formatSize(cfg.buffer.block_max_bytes) + ")");
  }

  w.plugins(root["inputs"], "inputs", PluginKind::kInput, registry, &cfg.inputs);
  w.plugins(root["processors"], "processors", PluginKind::kProcessor, registry, &cfg.processors);
  w.plugins(root["outputs"], "outputs", PluginKind::kOutput, registry, &cfg.outputs);
  if (!root["inputs"] || (root["inputs"].IsSequence() && root["inputs"].size() == 0)) {
    w.problem(root, "inputs", "at least one input is required");
  }
  if (!root["outputs"] || (root["outputs"].IsSequence() && root["outputs"].size() == 0)) {
    w.problem(root, "outputs", "at least one output is required");
  }
  for (size_t i = 0; i < cfg.outputs.size(); ++i) {
    const std::string& target = cfg.outputs[i].retry.dead_letter_output;
    if (target.empty()) continue;
    bool found = false;
    for (const PluginInstance& o : cfg.outputs) found = found || (o.name == target && &o != &cfg.outputs[i]);
    if (found) continue;
    const YAML::Node outputs = root["outputs"];
    const YAML::Node item = outputs.IsSequence() && i < outputs.size() ? outputs[i] : root;
    const YAML::Node key = child(item, {"dead_letter", "output"});
    w.problem(key.IsDefined() ? key : item, "outputs[" + std::to_string(i) + "].dead_letter.output",
              target == cfg.outputs[i].name ? "an output cannot be its own dead-letter output"
                                            : "no output named \"" + target + "\"");
  }

  result.problems = std::move(w.problems);
  if (result.problems.empty()) result.config = std::move(cfg);
  return result;
}

}  // namespace

std::string_view embeddedDefaultConfig() { return kEmbeddedDefault; }

LoadResult loadConfigText(std::string_view text, std::string source_name, const PluginRegistry& registry) {
  try {
    YAML::Node root = YAML::Load(std::string(text));
    return loadDocument(root, text, std::move(source_name), registry);
  } catch (const YAML::Exception& e) {
    LoadResult r;
    SourceLocation loc{source_name, e.mark.line >= 0 ? e.mark.line + 1 : 0, ""};
    r.problems.push_back({loc, "not valid YAML or JSON: " + e.msg});
    return r;
  }
}

LoadResult loadConfigFile(const std::string& path, const PluginRegistry& registry) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    LoadResult r;
    r.problems.push_back({SourceLocation{path, 0, ""}, std::string("cannot read: ") + std::strerror(errno)});
    return r;
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  return loadConfigText(ss.str(), path, registry);
}

Result<Options> optionsFromYaml(std::string_view yaml, std::span<const OptionSpec> specs) {
  try {
    YAML::Node root = YAML::Load(std::string(yaml));
    Walker w("<options>");
    Options out;
    std::span<const OptionSpec> tables[] = {specs};
    w.table(root, tables, "", "", &out);
    if (!w.problems.empty()) {
      std::string msg;
      for (const ConfigProblem& p : w.problems) msg += (msg.empty() ? "" : "; ") + p.toString();
      return invalidArgument(msg);
    }
    return out;
  } catch (const YAML::Exception& e) {
    return invalidArgument("not valid YAML: " + e.msg);
  }
}

}  // namespace ferry
