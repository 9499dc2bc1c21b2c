#include "agent/core/plugin_loader.h"

#include <dirent.h>
#include <dlfcn.h>
#include <simdjson.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <set>

#include "agent/config/loader.h"
#include "ferry/json.h"
#include "ferry/log.h"
#include "ferry/plugin_abi.h"

namespace ferry {

int pluginAbiVersion() { return FERRY_PLUGIN_ABI_VERSION; }

namespace {

// Records that are not one JSON object are dropped and counted under this reason.
constexpr std::string_view kBadRecord = "plugin_bad_record";
constexpr size_t kErrorSize = 1024;

// One dlopen handle; closed when the last owner goes.
struct Library {
  void* handle = nullptr;
  std::string path;
  ~Library() {
    if (handle != nullptr) ::dlclose(handle);
  }
};

}  // namespace

// One plugin of a loaded library, as the registry sees it.
struct LoadedPlugin {
  std::shared_ptr<Library> lib;
  const ferry_plugin_descriptor* abi = nullptr;
  std::string name;
  std::string summary;
  std::deque<std::string> strings;  // keys, defaults and help the specs point into (stable)
  std::vector<OptionSpec> specs;
  std::vector<uint32_t> types;  // FERRY_OPTION_* of specs[i]
  PluginDescriptor descriptor;
};

LoadedPlugins::LoadedPlugins() = default;
LoadedPlugins::~LoadedPlugins() = default;

namespace {

Status statusFromCode(int code, std::string message) {
  switch (code) {
    case FERRY_ERR_INVALID:
      return invalidArgument(std::move(message));
    case FERRY_ERR_UNAVAILABLE:
      return unavailable(std::move(message));
    case FERRY_ERR_FULL:
      return resourceExhausted(std::move(message));
    case FERRY_ERR_CANCELLED:
      return cancelled(std::move(message));
    default:
      return internalError(std::move(message));
  }
}

int codeFromStatus(const Status& st) {
  switch (st.code()) {
    case StatusCode::kOk:
      return FERRY_OK;
    case StatusCode::kResourceExhausted:
      return FERRY_ERR_FULL;
    case StatusCode::kCancelled:
      return FERRY_ERR_CANCELLED;
    case StatusCode::kUnavailable:
    case StatusCode::kDeadlineExceeded:
      return FERRY_ERR_UNAVAILABLE;
    case StatusCode::kInvalidArgument:
      return FERRY_ERR_INVALID;
    default:
      return FERRY_ERR_INTERNAL;
  }
}

// The message a plugin wrote into an error buffer (always terminated by the caller).
std::string errorText(const char* buf, int code) {
  if (buf[0] != '\0') return buf;
  return "failed with code " + std::to_string(code) + " and no message";
}

// Splits NDJSON a plugin handed over into a RecordBatch, keeping only lines that are one
// JSON object. One copy of the bytes per call (into a padded buffer the parser may read
// past each record), no allocation once the buffers have grown.
class NdjsonReader {
 public:
  // Appends the valid records of [data, data+size) to `out`; returns how many lines were
  // refused. Empty lines are skipped.
  uint64_t append(const char* data, size_t size, RecordBatch& out) {
    if (data == nullptr || size == 0) return 0;
    padded_.assign(data, size);
    padded_.append(simdjson::SIMDJSON_PADDING, '\0');
    uint64_t bad = 0;
    size_t begin = 0;
    while (begin < size) {
      const char* nl =
          static_cast<const char*>(std::memchr(padded_.data() + begin, '\n', size - begin));
      size_t end = nl != nullptr ? static_cast<size_t>(nl - padded_.data()) : size;
      size_t len = end - begin;
      if (len > 0 && padded_[begin + len - 1] == '\r') --len;
      if (len > 0) {
        simdjson::dom::element doc;
        if (parser_.parse(padded_.data() + begin, len, false).get(doc) == simdjson::SUCCESS &&
            doc.is_object()) {
          out.append(std::string_view(padded_.data() + begin, len));
        } else {
          ++bad;
        }
      }
      begin = end + 1;
    }
    return bad;
  }

 private:
  std::string padded_;
  simdjson::dom::parser parser_;
};

// The validated options of one instance, in the two forms the ABI hands to create().
struct ConfigView {
  std::string json;
  std::vector<ferry_config_value> values;
  std::deque<std::vector<const char*>> lists;  // item pointers of list values (stable)
  ferry_config config{};
};

void appendNumber(std::string& out, double v) {
  if (!std::isfinite(v)) {
    out += "null";
    return;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  out += buf;
}

void buildConfig(const LoadedPlugin& p, const Options& opts, ConfigView* view) {
  view->json = "{";
  for (size_t i = 0; i < p.specs.size(); ++i) {
    const std::string_view key = p.specs[i].key;
    if (!opts.has(key)) continue;
    ferry_config_value v{};
    v.key = p.specs[i].key.data();  // points into p.strings: NUL-terminated
    v.type = p.types[i];
    if (view->json.size() > 1) view->json += ",";
    appendJsonString(view->json, key);
    view->json += ":";
    switch (p.types[i]) {
      case FERRY_OPTION_STRING: {
        const std::string& s = opts.getString(key);
        v.string = s.c_str();
        appendJsonString(view->json, s);
        break;
      }
      case FERRY_OPTION_INT:
        v.integer = opts.getInt(key);
        view->json += std::to_string(v.integer);
        break;
      case FERRY_OPTION_BOOL:
        v.integer = opts.getBool(key) ? 1 : 0;
        view->json += v.integer != 0 ? "true" : "false";
        break;
      case FERRY_OPTION_DOUBLE:
        v.number = opts.getDouble(key);
        appendNumber(view->json, v.number);
        break;
      case FERRY_OPTION_DURATION:
        v.integer = opts.getDuration(key).count();
        view->json += std::to_string(v.integer);
        break;
      case FERRY_OPTION_SIZE:
        v.integer = static_cast<int64_t>(opts.getSize(key));
        view->json += std::to_string(v.integer);
        break;
      case FERRY_OPTION_STRING_LIST: {
        const std::vector<std::string>& items = opts.getStringList(key);
        std::vector<const char*>& ptrs = view->lists.emplace_back();
        view->json += "[";
        for (size_t j = 0; j < items.size(); ++j) {
          ptrs.push_back(items[j].c_str());
          if (j > 0) view->json += ",";
          appendJsonString(view->json, items[j]);
        }
        view->json += "]";
        v.list = ptrs.data();
        v.list_size = ptrs.size();
        break;
      }
      default:
        break;
    }
    view->values.push_back(v);
  }
  view->json += "}";
  view->config.json = view->json.c_str();
  view->config.json_size = view->json.size();
  view->config.values = view->values.data();
  view->config.value_count = view->values.size();
}

// What every adapter shares: the library, the instance, the host API it was created with.
// The host functions touch only this base, so they are safe while destroy() runs.
class AbiInstance {
 public:
  AbiInstance(const LoadedPlugin& p, const PluginContext& ctx)
      : lib_(p.lib), abi_(p.abi), agent_id_(ctx.agent_id), name_(ctx.name), metrics_(ctx.metrics) {
    host_.abi_version = FERRY_PLUGIN_ABI_VERSION;
    host_.struct_size = sizeof(ferry_host_api);
    host_.ctx = this;
    host_.agent_id = agent_id_.c_str();
    host_.instance_name = name_.c_str();
    host_.log = &logThunk;
    host_.count_dropped = &countDroppedThunk;
  }
  ~AbiInstance() {
    if (instance_ != nullptr) abi_->destroy(instance_);
  }
  AbiInstance(const AbiInstance&) = delete;
  AbiInstance& operator=(const AbiInstance&) = delete;

  Status create(const LoadedPlugin& p, const Options& opts) {
    ConfigView view;
    buildConfig(p, opts, &view);
    char err[kErrorSize] = {0};
    void* instance = nullptr;
    const int rc = abi_->create(&view.config, &host_, &instance, err, sizeof err);
    err[sizeof err - 1] = '\0';
    const std::string where = opts.where("").describe();
    const std::string prefix = (where.empty() ? "" : where + ": ") + p.name + ": ";
    if (rc != FERRY_OK) {
      if (instance != nullptr) abi_->destroy(instance);
      return statusFromCode(rc, prefix + errorText(err, rc));
    }
    if (instance == nullptr) return internalError(prefix + "create() returned no instance");
    instance_ = instance;
    return Status::ok();
  }

 protected:
  // Routes a plugin's drop count: into the running process()/tick() call's result, else to
  // the input's emitter while it collects or serves, else straight to the metric.
  void countDropped(std::string_view reason, uint64_t n) {
    if (n == 0) return;
    std::lock_guard lock(mu_);
    const std::string_view r = intern(reason);
    if (result_ != nullptr) {
      result_->drop(r, n);
    } else if (Emitter* e = emitter_.load(); e != nullptr) {
      e->countDropped(r, n);
    } else if (metrics_ != nullptr) {
      metrics_->counter("ferry_dropped_records_total", {{"reason", std::string(r)}}).add(n);
    }
  }
  void setResult(ProcessResult* r) {
    std::lock_guard lock(mu_);
    result_ = r;
  }
  void addFiltered(uint64_t n) {
    std::lock_guard lock(mu_);
    if (result_ != nullptr) result_->filtered += n;
  }

  std::shared_ptr<Library> lib_;  // outlives instance_ (members go after the destructor body)
  const ferry_plugin_descriptor* abi_;
  void* instance_ = nullptr;
  std::string agent_id_;
  std::string name_;
  MetricsRegistry* metrics_;
  ferry_host_api host_{};
  std::atomic<Emitter*> emitter_{nullptr};  // inputs: set while collect() or start..stop

 private:
  // Reasons are kept for the adapter's life: ProcessResult holds views of them.
  std::string_view intern(std::string_view reason) {
    const std::string_view r = reason.empty() ? std::string_view("plugin_unspecified") : reason;
    auto it = reasons_.find(r);
    if (it == reasons_.end()) it = reasons_.emplace(r).first;
    return *it;
  }
  static void logThunk(void* ctx, int level, const char* message) {
    auto* self = static_cast<AbiInstance*>(ctx);
    LogLevel l = level <= FERRY_LOG_DEBUG  ? LogLevel::kDebug
                 : level == FERRY_LOG_INFO ? LogLevel::kInfo
                 : level == FERRY_LOG_WARN ? LogLevel::kWarn
                                           : LogLevel::kError;
    if (logEnabled(l)) logLine(l, self->name_, message != nullptr ? message : "");
  }
  static void countDroppedThunk(void* ctx, const char* reason, uint64_t n) {
    static_cast<AbiInstance*>(ctx)->countDropped(
        reason != nullptr ? std::string_view(reason) : std::string_view(), n);
  }

  std::mutex mu_;
  ProcessResult* result_ = nullptr;
  std::set<std::string, std::less<>> reasons_;
};

class AbiInput final : public Input, private AbiInstance {
 public:
  AbiInput(const LoadedPlugin& p, const PluginContext& ctx) : AbiInstance(p, ctx) {
    api_.ctx = this;
    api_.emit = &emitThunk;
    api_.stopping = &stoppingThunk;
    api_.wait = &waitThunk;
  }
  using AbiInstance::create;

  Duration interval() const override {
    if (abi_->interval_ns == nullptr) return Duration::zero();
    return Duration(std::max<int64_t>(0, abi_->interval_ns(instance_)));
  }

  Status collect(Emitter& emitter) override {
    if (abi_->collect == nullptr)
      return internalError(name_ + ": the plugin has an interval but no collect()");
    emitter_.store(&emitter);
    char err[kErrorSize] = {0};
    const int rc = abi_->collect(instance_, &api_, err, sizeof err);
    emitter_.store(nullptr);
    err[sizeof err - 1] = '\0';
    if (rc == FERRY_OK) return Status::ok();
    return statusFromCode(rc, name_ + ": " + errorText(err, rc));
  }

  Status start(Emitter& emitter) override {
    if (abi_->start == nullptr)
      return internalError(name_ + ": the plugin has no interval and no start()");
    emitter_.store(&emitter);
    char err[kErrorSize] = {0};
    const int rc = abi_->start(instance_, &api_, err, sizeof err);
    err[sizeof err - 1] = '\0';
    if (rc == FERRY_OK) return Status::ok();  // may go on serving until stop()
    emitter_.store(nullptr);
    return statusFromCode(rc, name_ + ": " + errorText(err, rc));
  }

  void stop() override {
    if (abi_->stop != nullptr) abi_->stop(instance_);
    // The plugin emits no more once stop() returned; later calls see a stopping host.
    std::lock_guard lock(emit_mu_);
    emitter_.store(nullptr);
  }

 private:
  static int emitThunk(void* ctx, const char* records, size_t size, const char* stream) {
    auto* self = static_cast<AbiInput*>(ctx);
    std::lock_guard lock(self->emit_mu_);  // one lock per batch
    Emitter* e = self->emitter_.load();
    if (e == nullptr) return FERRY_ERR_CANCELLED;
    self->batch_.clear();
    const uint64_t bad = self->reader_.append(records, size, self->batch_);
    if (bad > 0) e->countDropped(kBadRecord, bad);
    if (self->batch_.empty()) return FERRY_OK;
    return codeFromStatus(
        e->emit(self->batch_, stream != nullptr ? std::string_view(stream) : std::string_view()));
  }
  static int stoppingThunk(void* ctx) {
    Emitter* e = static_cast<AbiInput*>(ctx)->emitter_.load();
    return e == nullptr || e->stopping() ? 1 : 0;
  }
  static int waitThunk(void* ctx, int64_t ns) {
    Emitter* e = static_cast<AbiInput*>(ctx)->emitter_.load();
    if (e == nullptr) return 1;
    return e->waitFor(Duration(std::max<int64_t>(0, ns))) ? 1 : 0;
  }

  ferry_emitter api_{};
  std::mutex emit_mu_;
  NdjsonReader reader_;
  RecordBatch batch_;
};

class AbiProcessor final : public Processor, private AbiInstance {
 public:
  AbiProcessor(const LoadedPlugin& p, const PluginContext& ctx) : AbiInstance(p, ctx) {
    out_api_.ctx = this;
    out_api_.append = &appendThunk;
    out_api_.filtered = &filteredThunk;
    tick_api_.ctx = this;
    tick_api_.emit = &tickEmitThunk;
  }
  using AbiInstance::create;

  Status process(std::string_view stream, const RecordBatch& in, RecordBatch& out,
                 ProcessResult& result) override {
    records_.clear();
    in.appendNdjson(records_);
    stream_.assign(stream);
    out_ = &out;
    setResult(&result);
    char err[kErrorSize] = {0};
    const int rc = abi_->process(instance_, stream_.c_str(), records_.data(), records_.size(),
                                 &out_api_, err, sizeof err);
    setResult(nullptr);
    out_ = nullptr;
    err[sizeof err - 1] = '\0';
    if (rc == FERRY_OK) return Status::ok();
    return statusFromCode(rc, name_ + ": " + errorText(err, rc));
  }

  Duration tickInterval() const override {
    if (abi_->tick_interval_ns == nullptr || abi_->tick == nullptr) return Duration::zero();
    return Duration(std::max<int64_t>(0, abi_->tick_interval_ns(instance_)));
  }

  void tick(SteadyTime /*now*/, bool final, TickSink& sink, ProcessResult& result) override {
    if (abi_->tick == nullptr) return;
    sink_ = &sink;
    setResult(&result);
    char err[kErrorSize] = {0};
    const int rc = abi_->tick(instance_, final ? 1 : 0, &tick_api_, err, sizeof err);
    setResult(nullptr);
    sink_ = nullptr;
    err[sizeof err - 1] = '\0';
    if (rc != FERRY_OK) logError(name_, "tick: ", errorText(err, rc));
  }

 private:
  static void appendThunk(void* ctx, const char* records, size_t size) {
    auto* self = static_cast<AbiProcessor*>(ctx);
    if (self->out_ == nullptr) return;  // called outside process(): nothing to append to
    const uint64_t bad = self->reader_.append(records, size, *self->out_);
    if (bad > 0) self->countDropped(kBadRecord, bad);
  }
  static void filteredThunk(void* ctx, uint64_t n) {
    static_cast<AbiProcessor*>(ctx)->addFiltered(n);
  }
  static void tickEmitThunk(void* ctx, const char* stream, const char* records, size_t size) {
    auto* self = static_cast<AbiProcessor*>(ctx);
    if (self->sink_ == nullptr) return;
    self->tick_batch_.clear();
    const uint64_t bad = self->reader_.append(records, size, self->tick_batch_);
    if (bad > 0) self->countDropped(kBadRecord, bad);
    if (self->tick_batch_.empty()) return;
    self->sink_->emit(stream != nullptr ? std::string_view(stream) : std::string_view(self->name_),
                      self->tick_batch_);
  }

  ferry_process_out out_api_{};
  ferry_tick_out tick_api_{};
  std::string records_;  // the input batch as NDJSON, reused
  std::string stream_;
  RecordBatch* out_ = nullptr;
  TickSink* sink_ = nullptr;
  NdjsonReader reader_;
  RecordBatch tick_batch_;
};

const LoadedPlugin* loadedOf(const PluginContext& ctx) {
  return ctx.descriptor != nullptr ? static_cast<const LoadedPlugin*>(ctx.descriptor->loaded)
                                   : nullptr;
}

Result<std::unique_ptr<Input>> makeInput(const PluginContext& ctx, const Options& opts) {
  const LoadedPlugin* p = loadedOf(ctx);
  if (p == nullptr)
    return internalError(
        "plugin loader: a loaded input's factory was called without its descriptor");
  auto in = std::make_unique<AbiInput>(*p, ctx);
  Status st = in->create(*p, opts);
  if (!st.isOk()) return st;
  return std::unique_ptr<Input>(std::move(in));
}

Result<std::unique_ptr<Processor>> makeProcessor(const PluginContext& ctx, const Options& opts) {
  const LoadedPlugin* p = loadedOf(ctx);
  if (p == nullptr) {
    return internalError(
        "plugin loader: a loaded processor's factory was called without its descriptor");
  }
  auto proc = std::make_unique<AbiProcessor>(*p, ctx);
  Status st = proc->create(*p, opts);
  if (!st.isOk()) return st;
  return std::unique_ptr<Processor>(std::move(proc));
}

bool validName(const char* s) {
  if (s == nullptr || s[0] == '\0' || std::strlen(s) > 64) return false;
  for (const char* c = s; *c != '\0'; ++c) {
    if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '_')) return false;
  }
  return true;
}

constexpr std::pair<uint32_t, OptionType> kOptionTypes[] = {
    {FERRY_OPTION_STRING, OptionType::kString},
    {FERRY_OPTION_INT, OptionType::kInt},
    {FERRY_OPTION_BOOL, OptionType::kBool},
    {FERRY_OPTION_DOUBLE, OptionType::kDouble},
    {FERRY_OPTION_DURATION, OptionType::kDuration},
    {FERRY_OPTION_SIZE, OptionType::kSize},
    {FERRY_OPTION_STRING_LIST, OptionType::kStringList},
};

std::optional<OptionType> optionType(uint32_t t) {
  for (const auto& [abi, type] : kOptionTypes) {
    if (abi == t) return type;
  }
  return std::nullopt;
}

// Checks a descriptor whose version and size are right and copies it into `p`. Returns
// the problem, or an empty string.
std::string adopt(const ferry_plugin_descriptor* d, LoadedPlugin* p) {
  if (d->kind != FERRY_PLUGIN_INPUT && d->kind != FERRY_PLUGIN_PROCESSOR) {
    return "unknown plugin kind " + std::to_string(d->kind) + " (1: input, 2: processor)";
  }
  if (!validName(d->name)) return "plugin name must be 1-64 characters of a-z, 0-9 and _";
  p->name = d->name;
  p->summary = d->summary != nullptr ? d->summary : "";
  if (d->create == nullptr || d->destroy == nullptr)
    return p->name + ": create() and destroy() are required";
  if (d->kind == FERRY_PLUGIN_INPUT) {
    const bool polled = d->interval_ns != nullptr && d->collect != nullptr;
    const bool service = d->start != nullptr && d->stop != nullptr;
    if (!polled && !service) {
      return p->name + ": an input needs interval_ns() and collect(), or start() and stop()";
    }
  } else {
    if (d->process == nullptr) return p->name + ": a processor needs process()";
    if ((d->tick_interval_ns == nullptr) != (d->tick == nullptr)) {
      return p->name + ": tick_interval_ns() and tick() go together";
    }
  }
  if (d->option_count > 0 && d->options == nullptr)
    return p->name + ": option_count without options";
  if (d->option_count > 256) return p->name + ": more than 256 options";
  std::set<std::string, std::less<>> keys;
  for (size_t i = 0; i < d->option_count; ++i) {
    const ferry_option& o = d->options[i];
    const std::string where = p->name + ": option " + std::to_string(i);
    if (!validName(o.key)) return where + ": key must be 1-64 characters of a-z, 0-9 and _";
    const std::string_view key(o.key);
    // Keys every entry of this kind has (name, type, stream / match) belong to the core.
    const PluginKind kind =
        d->kind == FERRY_PLUGIN_INPUT ? PluginKind::kInput : PluginKind::kProcessor;
    for (const OptionSpec& common : commonOptions(kind)) {
      if (common.key == key) return where + " \"" + o.key + "\": the core owns this key";
    }
    if (!keys.insert(std::string(key)).second) return where + " \"" + o.key + "\": declared twice";
    std::optional<OptionType> type = optionType(o.type);
    if (!type) return where + " \"" + o.key + "\": unknown type " + std::to_string(o.type);
    const std::string& k = p->strings.emplace_back(o.key);
    const std::string& def =
        p->strings.emplace_back(o.default_value != nullptr ? o.default_value : "");
    const std::string& help = p->strings.emplace_back(o.help != nullptr ? o.help : "");
    p->specs.push_back(OptionSpec{
        .key = k, .type = *type, .default_value = def, .help = help, .required = o.required != 0});
    p->types.push_back(o.type);
  }
  // Defaults must convert like a value in a config would: check with the config loader.
  std::vector<OptionSpec> optional_specs = p->specs;
  for (OptionSpec& s : optional_specs) s.required = false;
  Result<Options> defaults = optionsFromYaml("{}", optional_specs);
  if (!defaults.isOk()) return p->name + ": bad default value: " + defaults.status().message();

  p->descriptor.kind = d->kind == FERRY_PLUGIN_INPUT ? PluginKind::kInput : PluginKind::kProcessor;
  p->descriptor.name = p->name;
  p->descriptor.summary = p->summary;
  p->descriptor.options = p->specs;
  if (d->kind == FERRY_PLUGIN_INPUT) {
    p->descriptor.make_input = &makeInput;
  } else {
    p->descriptor.make_processor = &makeProcessor;
  }
  p->descriptor.loaded = p;
  p->abi = d;
  return {};
}

// What an ELF header says about the machine a file was built for.
struct ElfId {
  bool elf = false;
  int cls = 0;           // 1: 32-bit, 2: 64-bit
  uint32_t machine = 0;  // e_machine, e.g. 62 x86-64, 183 AArch64, 40 ARM
};

ElfId elfId(const std::string& path) {
  ElfId id;
  unsigned char h[20];
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) return id;
  const size_t n = std::fread(h, 1, sizeof h, f);
  std::fclose(f);
  if (n != sizeof h || std::memcmp(h,
                                   "\x7f"
                                   "ELF",
                                   4) != 0)
    return id;
  id.elf = true;
  id.cls = h[4];
  id.machine = h[5] == 2 ? (uint32_t{h[18]} << 8) | h[19]
                         : (uint32_t{h[19]} << 8) | h[18];  // EI_DATA: 2 big-endian
  return id;
}

// Opens one library and checks it. Returns the plugin, or the problem (without the file).
std::unique_ptr<LoadedPlugin> openLibrary(const std::string& path, std::string* problem) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    *problem = std::strerror(errno);
    return nullptr;
  }
  if (!S_ISREG(st.st_mode)) {
    *problem = "not a regular file";
    return nullptr;
  }
  if ((st.st_mode & S_IWOTH) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", st.st_mode & 07777);
    *problem = std::string("writable by anyone (mode ") + mode +
               "): whoever can write it runs code inside the agent; run: chmod o-w " + path;
    return nullptr;
  }
  // dlopen's own words for a library of another machine are misleading ("No such file").
  const ElfId mine = elfId("/proc/self/exe");
  const ElfId theirs = elfId(path);
  if (!theirs.elf) {
    *problem = "not a loadable shared object: not an ELF file";
    return nullptr;
  }
  if (mine.elf && (mine.cls != theirs.cls || mine.machine != theirs.machine)) {
    *problem = "not a loadable shared object: built for another machine (ELF class " +
               std::to_string(theirs.cls) + ", machine " + std::to_string(theirs.machine) +
               "; this ferry: class " + std::to_string(mine.cls) + ", machine " +
               std::to_string(mine.machine) + ")";
    return nullptr;
  }
  auto lib = std::make_shared<Library>();
  lib->path = path;
  ::dlerror();
  lib->handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (lib->handle == nullptr) {
    const char* e = ::dlerror();
    *problem = std::string("not a loadable shared object: ") + (e != nullptr ? e : "dlopen failed");
    return nullptr;
  }
  void* sym = ::dlsym(lib->handle, FERRY_PLUGIN_ENTRY_NAME);
  if (sym == nullptr) {
    *problem =
        "no " FERRY_PLUGIN_ENTRY_NAME "() symbol: not a Ferry plugin (see ferry/plugin_abi.h)";
    return nullptr;
  }
  ferry_plugin_entry_fn entry = nullptr;
  static_assert(sizeof entry == sizeof sym);
  std::memcpy(&entry, &sym, sizeof entry);
  const ferry_plugin_descriptor* d = entry();
  if (d == nullptr) {
    *problem = FERRY_PLUGIN_ENTRY_NAME "() returned no descriptor";
    return nullptr;
  }
  // Only the first two fields are read before the version is known to match.
  if (d->abi_version != FERRY_PLUGIN_ABI_VERSION) {
    *problem = "built for plugin ABI version " + std::to_string(d->abi_version) +
               ", but this ferry speaks version " + std::to_string(FERRY_PLUGIN_ABI_VERSION) +
               "; rebuild the plugin against this ferry's ferry/plugin_abi.h";
    return nullptr;
  }
  if (d->struct_size < sizeof(ferry_plugin_descriptor)) {
    *problem = "descriptor is " + std::to_string(d->struct_size) + " bytes, ABI version " +
               std::to_string(FERRY_PLUGIN_ABI_VERSION) + " needs " +
               std::to_string(sizeof(ferry_plugin_descriptor));
    return nullptr;
  }
  auto p = std::make_unique<LoadedPlugin>();
  p->lib = std::move(lib);
  *problem = adopt(d, p.get());
  if (!problem->empty()) return nullptr;
  return p;
}

}  // namespace

LoadedPlugins::DirResult LoadedPlugins::loadDir(const std::string& dir,
                                                const PluginRegistry& taken) {
  DirResult result;
  auto set = std::make_shared<LoadedPlugins>();
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) {
    result.problems.push_back(dir + ": cannot read the plugins directory: " + std::strerror(errno));
    result.plugins = std::move(set);
    return result;
  }
  std::vector<std::string> names;
  while (dirent* e = ::readdir(d)) {
    const std::string_view n(e->d_name);
    if (n.size() > 3 && n.ends_with(".so")) names.emplace_back(n);
  }
  ::closedir(d);
  std::sort(names.begin(), names.end());
  std::map<std::pair<PluginKind, std::string>, std::string> seen;  // (kind, name) → file
  for (const std::string& n : names) {
    const std::string path = (dir.ends_with('/') ? dir : dir + "/") + n;
    std::string problem;
    std::unique_ptr<LoadedPlugin> p = openLibrary(path, &problem);
    if (p == nullptr) {
      result.problems.push_back(path + ": " + problem);
      continue;
    }
    const PluginKind kind = p->descriptor.kind;
    const std::string kind_name(pluginKindName(kind));
    if (taken.find(kind, p->name) != nullptr) {
      result.problems.push_back(path + ": " + kind_name + " \"" + p->name +
                                "\" is built in; rename the plugin");
      continue;
    }
    auto [it, fresh] = seen.emplace(std::make_pair(kind, p->name), path);
    if (!fresh) {
      result.problems.push_back(path + ": " + kind_name + " \"" + p->name +
                                "\" is already defined by " + it->second);
      continue;
    }
    logDebug("plugins", "loaded ", kind_name, " \"", p->name, "\" from ", path);
    set->descriptors_.push_back(&p->descriptor);
    set->files_.push_back(path);
    set->plugins_.push_back(std::move(p));
  }
  result.plugins = std::move(set);
  return result;
}

}  // namespace ferry
