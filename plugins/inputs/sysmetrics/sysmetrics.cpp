#include "plugins/inputs/sysmetrics/sysmetrics.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <memory>
#include <system_error>
#include <utility>

#include "ferry/log.h"
#include "ferry/json.h"

namespace ferry {
namespace {

constexpr std::string_view kGroupNames[kMetricGroupCount] = {"cpu",  "memory", "disk",   "network",
                                                             "load", "uptime", "diskio", "thermal"};

constexpr Duration kMinInterval = std::chrono::milliseconds(100);

// Proc files are a few KiB (/proc/stat grows with the number of CPUs and interrupts); the
// cap only stops a proc_root pointing at something that is not procfs from eating memory.
constexpr size_t kMinReadChunk = 4096;
constexpr size_t kMaxFileBytes = 4 << 20;

constexpr OptionSpec kOptions[] = {
    {.key = "interval",
     .type = OptionType::kDuration,
     .default_value = "10s",
     .help = "time between two samples; at least 100ms"},
    {.key = "collect",
     .type = OptionType::kStringList,
     .default_value = "[cpu, memory, disk, network, load, uptime, diskio, thermal]",
     .help = "metric groups to sample, any of: cpu, memory, disk, network, load, uptime, diskio, "
             "thermal",
     .choices = kGroupNames},
    {.key = "disks",
     .type = OptionType::kStringList,
     .default_value = "[/]",
     .help = "mount points the disk group reports (absolute paths, read with statvfs)"},
    {.key = "interfaces",
     .type = OptionType::kStringList,
     .default_value = "[]",
     .help = "network interfaces the network group reports; empty: every interface but lo"},
    {.key = "devices",
     .type = OptionType::kStringList,
     .default_value = "[]",
     .help = "block devices the diskio group reports (names as in /proc/diskstats, e.g. sda, "
             "mmcblk0); empty: every device but loop*, ram* and zram*"},
    {.key = "proc_root",
     .type = OptionType::kString,
     .default_value = "/proc",
     .help = "where procfs is mounted, e.g. the host's /proc bind-mounted into a container"},
    {.key = "sys_root",
     .type = OptionType::kString,
     .default_value = "/sys",
     .help = "where sysfs is mounted (the thermal group reads <sys_root>/class/thermal)"},
};

std::string validGroupList() {
  std::string s;
  for (std::string_view name : kGroupNames) {
    if (!s.empty()) s += ", ";
    s += name;
  }
  return s;
}

// ---- Parsing helpers (no allocation; views into the read buffer) ----

std::string_view nextLine(std::string_view* rest) {
  const size_t nl = rest->find('\n');
  std::string_view line = rest->substr(0, nl);
  *rest = nl == std::string_view::npos ? std::string_view() : rest->substr(nl + 1);
  return line;
}

void skipBlanks(std::string_view* s) {
  while (!s->empty() && (s->front() == ' ' || s->front() == '\t')) s->remove_prefix(1);
}

std::string_view trim(std::string_view s) {
  skipBlanks(&s);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) {
    s.remove_suffix(1);
  }
  return s;
}

// Parses the next whitespace-separated number and consumes it. from_chars is used for
// doubles too because it ignores the locale (strtod would read "0,52" under de_DE).
template <typename T>
bool parseNumber(std::string_view* s, T* out) {
  skipBlanks(s);
  if (s->empty()) return false;
  const auto [ptr, ec] = std::from_chars(s->data(), s->data() + s->size(), *out);
  if (ec != std::errc()) return false;
  s->remove_prefix(static_cast<size_t>(ptr - s->data()));
  return true;
}

Status badFormat(const std::string& path, std::string_view what) {
  std::string m = path;
  m += ": unexpected format (";
  m += what;
  m += ")";
  return Status(StatusCode::kIoError, std::move(m));
}

// ---- JSON writing helpers (append into the batch arena) ----


void appendKey(std::string& out, std::string_view key) {
  out += ",\"";
  out += key;
  out += "\":";
}

void appendUint(std::string& out, std::string_view key, uint64_t v) {
  appendKey(out, key);
  char buf[24];
  const auto [ptr, ec] = std::to_chars(buf, buf + sizeof buf, v);
  (void)ec;  // 24 bytes always fit a uint64_t
  out.append(buf, ptr);
}

// Two decimals, as every percentage and load average is reported. JSON has no NaN/Inf.
void appendFixed2(std::string& out, std::string_view key, double v) {
  appendKey(out, key);
  if (!std::isfinite(v)) v = 0;
  if (v == 0) v = 0;  // turns -0 into 0: "-0.00" would look like a bug
  char buf[48];
  const int n = std::snprintf(buf, sizeof buf, "%.2f", v);
  out.append(buf, static_cast<size_t>(std::clamp(n, 0, static_cast<int>(sizeof buf) - 1)));
}

double percent(double part, double whole) {
  if (whole <= 0) return 0;
  return std::clamp(100.0 * part / whole, 0.0, 100.0);
}

// Counter delta that treats a counter going backwards (CPU hot-unplug, iowait, which the
// kernel does not keep monotonic) as "no time passed" instead of wrapping around.
uint64_t delta(uint64_t now, uint64_t before) { return now > before ? now - before : 0; }

std::string stripTrailingSlashes(std::string s) {
  while (!s.empty() && s.back() == '/') s.pop_back();
  return s;
}

Result<std::unique_ptr<Input>> makeSysmetricsInput(const PluginContext& ctx, const Options& opts) {
  Result<SysmetricsSettings> settings = SysmetricsSettings::fromOptions(opts);
  if (!settings.isOk()) return settings.status();
  const Clock& clock = ctx.clock != nullptr ? *ctx.clock : systemClock();
  return std::unique_ptr<Input>(std::make_unique<SysmetricsInput>(std::move(settings).value(),
                                                                  ctx.name, ctx.agent_id, clock));
}

}  // namespace

std::string_view metricGroupName(MetricGroup group) {
  return kGroupNames[static_cast<size_t>(group)];
}

Result<SysmetricsSettings> SysmetricsSettings::fromOptions(const Options& opts) {
  SysmetricsSettings s;

  // has() tells "not set" (take the default) from an explicit "0s" (rejected below).
  if (opts.has("interval")) {
    const Duration d = opts.getDuration("interval");
    if (d < kMinInterval) {
      return invalidArgument(opts.locate("interval") + ": interval " + formatDuration(d) +
                             " is below the minimum of " + formatDuration(kMinInterval));
    }
    s.interval = d;
  }

  const std::vector<std::string>& collect = opts.getStringList("collect");
  if (!collect.empty()) {
    s.groups.fill(false);
    for (size_t i = 0; i < collect.size(); ++i) {
      const auto* it = std::find(std::begin(kGroupNames), std::end(kGroupNames), collect[i]);
      if (it == std::end(kGroupNames)) {
        return invalidArgument(opts.locate("collect", static_cast<int>(i)) +
                               ": unknown metric group \"" + collect[i] +
                               "\" in collect; valid groups: " + validGroupList());
      }
      s.groups[static_cast<size_t>(it - std::begin(kGroupNames))] = true;
    }
  }

  const std::vector<std::string>& disks = opts.getStringList("disks");
  if (!disks.empty()) {
    for (size_t i = 0; i < disks.size(); ++i) {
      // statvfs of a relative path would depend on the agent's working directory.
      if (disks[i].empty() || disks[i].front() != '/') {
        return invalidArgument(opts.locate("disks", static_cast<int>(i)) + ": \"" + disks[i] +
                               "\" is not an absolute mount point path");
      }
    }
    s.disks = disks;
  }

  for (const std::string& name : opts.getStringList("interfaces")) {
    if (!name.empty()) s.interfaces.push_back(name);
  }

  for (const std::string& name : opts.getStringList("devices")) {
    if (!name.empty()) s.devices.push_back(name);
  }

  const std::string& proc_root = opts.getString("proc_root");
  if (!proc_root.empty()) s.proc_root = proc_root;
  const std::string& sys_root = opts.getString("sys_root");
  if (!sys_root.empty()) s.sys_root = sys_root;
  return s;
}

SysmetricsInput::SysmetricsInput(SysmetricsSettings settings, std::string instance,
                                 std::string_view agent_id, const Clock& clock)
    : settings_(std::move(settings)), instance_(std::move(instance)), clock_(clock) {
  appendJsonString(agent_json_, agent_id);
  const std::string root = stripTrailingSlashes(settings_.proc_root);
  stat_path_ = root + "/stat";
  meminfo_path_ = root + "/meminfo";
  netdev_path_ = root + "/net/dev";
  loadavg_path_ = root + "/loadavg";
  uptime_path_ = root + "/uptime";
  diskstats_path_ = root + "/diskstats";
  thermal_dir_ = stripTrailingSlashes(settings_.sys_root) + "/class/thermal";
  disk_failing_.assign(settings_.disks.size(), 0);
  // Enough for a typical host's records so that even the first collect rarely grows it.
  batch_.reserve(16 + settings_.disks.size(), 4096);
  file_buf_.reserve(16 * 1024);
}

Status SysmetricsInput::collect(Emitter& emitter) {
  batch_.clear();
  // One timestamp for the whole sample: records of a collect describe the same moment.
  const int64_t ms = clock_.wallMs();
  int64_t secs = ms / 1000;
  int64_t millis = ms % 1000;
  if (millis < 0) {
    millis += 1000;
    --secs;
  }
  const std::time_t t = static_cast<std::time_t>(secs);
  std::tm tm{};
  gmtime_r(&t, &tm);
  const int n = std::snprintf(ts_, sizeof ts_, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
                              tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                              tm.tm_sec, static_cast<int>(millis));
  ts_len_ = static_cast<size_t>(std::clamp(n, 0, static_cast<int>(sizeof ts_) - 1));

  bool any_ok = false;
  auto run = [&](MetricGroup group, Status (SysmetricsInput::*fn)()) {
    if (!settings_.groups[static_cast<size_t>(group)]) return;
    Status st = (this->*fn)();
    noteGroup(group, st);
    any_ok = any_ok || st.isOk();
  };
  run(MetricGroup::kCpu, &SysmetricsInput::collectCpu);
  run(MetricGroup::kMemory, &SysmetricsInput::collectMemory);
  if (settings_.groups[static_cast<size_t>(MetricGroup::kDisk)]) {
    // Per-mount failures are logged by collectDisks itself.
    any_ok = collectDisks() || any_ok;
  }
  run(MetricGroup::kNetwork, &SysmetricsInput::collectNetwork);
  run(MetricGroup::kLoad, &SysmetricsInput::collectLoad);
  run(MetricGroup::kUptime, &SysmetricsInput::collectUptime);
  run(MetricGroup::kDiskIo, &SysmetricsInput::collectDiskIo);
  run(MetricGroup::kThermal, &SysmetricsInput::collectThermal);

  if (!any_ok) {
    return Status(StatusCode::kIoError,
                  "no metric group could be collected (the reasons were logged as warnings)");
  }
  // A selected network group with no matching interface is not an error, just no records.
  if (batch_.empty()) return Status::ok();
  // Not accepted (buffer full, or stopping): the sample is dropped, see the header.
  return emitter.emit(batch_);
}

Status SysmetricsInput::readFile(const std::string& path) {
  file_buf_.clear();
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errnoStatus("cannot open " + path, errno);
  // Proc files report size 0, so read until EOF into the reused buffer, growing it
  // (once, in practice) when a file is larger than anything read before.
  file_buf_.resize(std::max(file_buf_.capacity(), kMinReadChunk));
  size_t len = 0;
  Status st;
  for (;;) {
    if (len == file_buf_.size()) {
      if (len >= kMaxFileBytes) {
        st = badFormat(path, "larger than 4 MiB");
        break;
      }
      file_buf_.resize(len * 2);
    }
    const ssize_t r = ::read(fd, file_buf_.data() + len, file_buf_.size() - len);
    if (r < 0) {
      if (errno == EINTR) continue;
      st = errnoStatus("cannot read " + path, errno);
      break;
    }
    if (r == 0) break;
    len += static_cast<size_t>(r);
  }
  ::close(fd);
  file_buf_.resize(st.isOk() ? len : 0);
  return st;
}

void SysmetricsInput::beginRecord(std::string_view group) {
  std::string& out = batch_.mutableData();
  out += "{\"ts\":\"";
  out.append(ts_, ts_len_);
  out += "\",\"agent\":";
  out += agent_json_;
  out += ",\"metric\":\"";
  out += group;
  out += '"';
}

void SysmetricsInput::endRecord() {
  batch_.mutableData().push_back('}');
  batch_.commitRecord();
}

void SysmetricsInput::noteGroup(MetricGroup group, const Status& status) {
  bool& failing = group_failing_[static_cast<size_t>(group)];
  if (!status.isOk()) {
    if (!failing) {
      logWarn("input", instance_, ": skipping ", metricGroupName(group),
              " metrics: ", status.message(), " (not logged again until it works)");
    }
    failing = true;
  } else if (failing) {
    logInfo("input", instance_, ": ", metricGroupName(group), " metrics are readable again");
    failing = false;
  }
}

Status SysmetricsInput::collectCpu() {
  FERRY_RETURN_IF_ERROR(readFile(stat_path_));
  CpuTimes cur;
  bool found = false;
  uint64_t cores = 0;
  std::string_view rest = file_buf_;
  while (!rest.empty()) {
    std::string_view line = nextLine(&rest);
    if (!line.starts_with("cpu")) {
      // The cpu lines come first; the intr line after them can be kilobytes long.
      if (found) break;
      continue;
    }
    line.remove_prefix(3);
    if (!line.empty() && line.front() >= '0' && line.front() <= '9') {
      ++cores;  // one "cpuN" line per online CPU
      continue;
    }
    // user nice system idle iowait irq softirq steal [guest guest_nice]; kernels before
    // 2.6.x had only the first four.
    uint64_t v[8] = {};
    size_t n = 0;
    while (n < 8 && parseNumber(&line, &v[n])) ++n;
    if (n < 4) return badFormat(stat_path_, "short cpu line");
    cur = {v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]};
    found = true;
  }
  if (!found) return badFormat(stat_path_, "no cpu line");

  const uint64_t user = delta(cur.user, prev_cpu_.user) + delta(cur.nice, prev_cpu_.nice);
  const uint64_t system = delta(cur.system, prev_cpu_.system) + delta(cur.irq, prev_cpu_.irq) +
                          delta(cur.softirq, prev_cpu_.softirq);
  const uint64_t idle = delta(cur.idle, prev_cpu_.idle);
  const uint64_t iowait = delta(cur.iowait, prev_cpu_.iowait);
  const uint64_t steal = delta(cur.steal, prev_cpu_.steal);
  const uint64_t total = user + system + idle + iowait + steal;
  prev_cpu_ = cur;
  // Two reads within one clock tick carry no information: repeat the last figures rather
  // than report a host that is neither busy nor idle.
  if (total > 0 || !have_cpu_pct_) {
    const auto t = static_cast<double>(total);
    last_cpu_.usage = percent(static_cast<double>(user + system + steal), t);
    last_cpu_.user = percent(static_cast<double>(user), t);
    last_cpu_.system = percent(static_cast<double>(system), t);
    last_cpu_.iowait = percent(static_cast<double>(iowait), t);
    last_cpu_.idle = percent(static_cast<double>(idle), t);
    have_cpu_pct_ = true;
  }

  std::string& out = batch_.mutableData();
  beginRecord("cpu");
  appendFixed2(out, "usage_pct", last_cpu_.usage);
  appendFixed2(out, "user_pct", last_cpu_.user);
  appendFixed2(out, "system_pct", last_cpu_.system);
  appendFixed2(out, "iowait_pct", last_cpu_.iowait);
  appendFixed2(out, "idle_pct", last_cpu_.idle);
  appendUint(out, "cores", cores);
  endRecord();
  return Status::ok();
}

Status SysmetricsInput::collectMemory() {
  FERRY_RETURN_IF_ERROR(readFile(meminfo_path_));
  // Values in kB; -1 marks "line absent".
  int64_t total = -1, available = -1, mem_free = -1, buffers = 0, cached = 0, swap_total = 0,
          swap_free = 0;
  const struct {
    std::string_view key;
    int64_t* slot;
  } fields[] = {{"MemTotal", &total},    {"MemAvailable", &available}, {"MemFree", &mem_free},
                {"Buffers", &buffers},   {"Cached", &cached},          {"SwapTotal", &swap_total},
                {"SwapFree", &swap_free}};
  std::string_view rest = file_buf_;
  while (!rest.empty()) {
    std::string_view line = nextLine(&rest);
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    const std::string_view key = line.substr(0, colon);
    int64_t* slot = nullptr;
    for (const auto& f : fields) {
      if (f.key == key) slot = f.slot;
    }
    if (slot == nullptr) continue;
    std::string_view value = line.substr(colon + 1);
    if (!parseNumber(&value, slot) || *slot < 0) return badFormat(meminfo_path_, key);
  }
  if (total < 0) return badFormat(meminfo_path_, "no MemTotal");
  if (available < 0) {
    // Kernels before 3.14 have no MemAvailable; free + buffers + page cache is the
    // estimate `free` used then.
    if (mem_free < 0) return badFormat(meminfo_path_, "neither MemAvailable nor MemFree");
    available = std::min(total, mem_free + buffers + cached);
  }
  const auto kib = [](int64_t v) { return static_cast<uint64_t>(v) * 1024; };

  std::string& out = batch_.mutableData();
  beginRecord("memory");
  appendUint(out, "total_bytes", kib(total));
  appendUint(out, "available_bytes", kib(available));
  appendFixed2(
      out, "used_pct",
      percent(static_cast<double>(total - std::min(available, total)), static_cast<double>(total)));
  appendUint(out, "swap_total_bytes", kib(swap_total));
  appendUint(out, "swap_free_bytes", kib(swap_free));
  endRecord();
  return Status::ok();
}

bool SysmetricsInput::collectDisks() {
  bool any = false;
  std::string& out = batch_.mutableData();
  for (size_t i = 0; i < settings_.disks.size(); ++i) {
    const std::string& mount = settings_.disks[i];
    struct statvfs st {};
    if (::statvfs(mount.c_str(), &st) != 0) {
      const int err = errno;
      if (disk_failing_[i] == 0) {
        logWarn("input", instance_, ": skipping disk ", mount, ": ",
                errnoStatus("statvfs", err).message(), " (not logged again until it works)");
      }
      disk_failing_[i] = 1;
      continue;
    }
    if (disk_failing_[i] != 0) {
      logInfo("input", instance_, ": disk ", mount, " is readable again");
      disk_failing_[i] = 0;
    }
    const uint64_t frsize = st.f_frsize != 0 ? st.f_frsize : st.f_bsize;
    const uint64_t total = static_cast<uint64_t>(st.f_blocks) * frsize;
    const uint64_t free_bytes = static_cast<uint64_t>(st.f_bfree) * frsize;
    const uint64_t avail = static_cast<uint64_t>(st.f_bavail) * frsize;
    const uint64_t used = total > free_bytes ? total - free_bytes : 0;

    beginRecord("disk");
    appendKey(out, "mount");
    appendJsonString(out, mount);
    appendUint(out, "total_bytes", total);
    appendUint(out, "free_bytes", free_bytes);
    appendUint(out, "avail_bytes", avail);
    // As df computes Use%: blocks reserved for root count neither as used nor as available.
    appendFixed2(out, "used_pct",
                 percent(static_cast<double>(used), static_cast<double>(used + avail)));
    endRecord();
    any = true;
  }
  return any;
}

Status SysmetricsInput::collectNetwork() {
  FERRY_RETURN_IF_ERROR(readFile(netdev_path_));
  std::string& out = batch_.mutableData();
  std::string_view rest = file_buf_;
  while (!rest.empty()) {
    const std::string_view line = nextLine(&rest);
    // The two header lines contain '|'; interface names contain neither '|' nor ':'.
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos || line.find('|') != std::string_view::npos) continue;
    const std::string_view name = trim(line.substr(0, colon));
    if (name.empty()) continue;
    if (settings_.interfaces.empty()) {
      if (name == "lo") continue;
    } else if (std::find(settings_.interfaces.begin(), settings_.interfaces.end(), name) ==
               settings_.interfaces.end()) {
      continue;
    }
    // Receive: bytes packets errs drop fifo frame compressed multicast;
    // transmit: bytes packets errs drop fifo colls carrier compressed.
    uint64_t v[16] = {};
    std::string_view numbers = line.substr(colon + 1);
    size_t n = 0;
    while (n < 16 && parseNumber(&numbers, &v[n])) ++n;
    if (n < 12) continue;  // a torn or foreign line: skip it, keep the other interfaces

    beginRecord("network");
    appendKey(out, "interface");
    appendJsonString(out, name);
    appendUint(out, "rx_bytes", v[0]);
    appendUint(out, "tx_bytes", v[8]);
    appendUint(out, "rx_packets", v[1]);
    appendUint(out, "tx_packets", v[9]);
    appendUint(out, "rx_errors", v[2]);
    appendUint(out, "tx_errors", v[10]);
    appendUint(out, "rx_dropped", v[3]);
    appendUint(out, "tx_dropped", v[11]);
    endRecord();
  }
  return Status::ok();
}

Status SysmetricsInput::collectLoad() {
  FERRY_RETURN_IF_ERROR(readFile(loadavg_path_));
  std::string_view rest = file_buf_;
  double load[3] = {};
  for (double& l : load) {
    if (!parseNumber(&rest, &l) || !std::isfinite(l) || l < 0) {
      return badFormat(loadavg_path_, "expected three load averages");
    }
  }
  std::string& out = batch_.mutableData();
  beginRecord("load");
  appendFixed2(out, "load1", load[0]);
  appendFixed2(out, "load5", load[1]);
  appendFixed2(out, "load15", load[2]);
  endRecord();
  return Status::ok();
}

Status SysmetricsInput::collectUptime() {
  FERRY_RETURN_IF_ERROR(readFile(uptime_path_));
  std::string_view rest = file_buf_;
  double uptime = 0;
  if (!parseNumber(&rest, &uptime) || !std::isfinite(uptime) || uptime < 0 || uptime > 1e15) {
    return badFormat(uptime_path_, "expected seconds since boot");
  }
  std::string& out = batch_.mutableData();
  beginRecord("uptime");
  appendUint(out, "uptime_s", static_cast<uint64_t>(uptime));  // whole seconds
  endRecord();
  return Status::ok();
}

Status SysmetricsInput::collectDiskIo() {
  FERRY_RETURN_IF_ERROR(readFile(diskstats_path_));
  std::string& out = batch_.mutableData();
  std::string_view rest = file_buf_;
  while (!rest.empty()) {
    std::string_view line = nextLine(&rest);
    // major minor name, then (since Linux 2.6) 11 counters, 15 with discards, 17 with flushes.
    uint64_t major = 0;
    uint64_t minor = 0;
    if (!parseNumber(&line, &major) || !parseNumber(&line, &minor)) continue;
    skipBlanks(&line);
    const size_t end = line.find_first_of(" \t");
    if (end == std::string_view::npos) continue;
    const std::string_view name = line.substr(0, end);
    line.remove_prefix(end);
    if (settings_.devices.empty()) {
      if (name.starts_with("loop") || name.starts_with("ram") || name.starts_with("zram")) continue;
    } else if (std::find(settings_.devices.begin(), settings_.devices.end(), name) == settings_.devices.end()) {
      continue;
    }
    uint64_t v[11] = {};
    size_t n = 0;
    while (n < 11 && parseNumber(&line, &v[n])) ++n;
    if (n < 11) continue;  // a torn or foreign line: skip it, keep the other devices
    // Fields: reads, reads merged, sectors read, ms reading, writes, writes merged, sectors
    // written, ms writing, I/Os in progress, ms doing I/O, weighted ms. Sectors are 512 bytes
    // here whatever the device's own sector size (the kernel's block layer unit).
    beginRecord("diskio");
    appendKey(out, "device");
    appendJsonString(out, name);
    appendUint(out, "reads", v[0]);
    appendUint(out, "writes", v[4]);
    appendUint(out, "read_bytes", v[2] * 512);
    appendUint(out, "write_bytes", v[6] * 512);
    appendUint(out, "read_time_ms", v[3]);
    appendUint(out, "write_time_ms", v[7]);
    appendUint(out, "in_progress", v[8]);
    appendUint(out, "io_time_ms", v[9]);
    endRecord();
  }
  return Status::ok();
}

Status SysmetricsInput::collectThermal() {
  // No thermal class (many VMs and containers): nothing to report, not an error.
  DIR* dir = ::opendir(thermal_dir_.c_str());
  if (dir == nullptr) {
    if (errno == ENOENT) return Status::ok();
    return errnoStatus("cannot list " + thermal_dir_, errno);
  }
  // Zones in name order, so records come in a stable order.
  zones_.clear();
  while (const dirent* e = ::readdir(dir)) {
    const std::string_view name = e->d_name;
    if (name.starts_with("thermal_zone")) zones_.emplace_back(name);
  }
  ::closedir(dir);
  std::sort(zones_.begin(), zones_.end(), [](const std::string& a, const std::string& b) {
    return a.size() != b.size() ? a.size() < b.size() : a < b;  // thermal_zone2 before thermal_zone10
  });
  std::string& out = batch_.mutableData();
  for (const std::string& zone : zones_) {
    path_buf_.assign(thermal_dir_).append("/").append(zone).append("/temp");
    // A zone whose sensor cannot be read right now (EAGAIN/ENODATA from some drivers) is
    // left out of this sample; the others are still reported.
    if (!readFile(path_buf_).isOk()) continue;
    std::string_view text = file_buf_;
    int64_t milli = 0;
    skipBlanks(&text);
    const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), milli);
    if (ec != std::errc() || ptr == text.data()) continue;
    type_buf_.clear();
    path_buf_.assign(thermal_dir_).append("/").append(zone).append("/type");
    if (readFile(path_buf_).isOk()) {
      std::string_view first = file_buf_;
      type_buf_.assign(trim(nextLine(&first)));
    }
    beginRecord("thermal");
    appendKey(out, "zone");
    appendJsonString(out, zone);
    appendKey(out, "type");
    appendJsonString(out, type_buf_);
    appendFixed2(out, "temp_c", static_cast<double>(milli) / 1000.0);
    endRecord();
  }
  return Status::ok();
}

const PluginDescriptor& sysmetricsInputDescriptor() {
  static const PluginDescriptor kDescriptor{
      .kind = PluginKind::kInput,
      .name = "sysmetrics",
      .summary = "samples host CPU, memory, disks, disk I/O, network, load, uptime and temperatures",
      .options = kOptions,
      .make_input = &makeSysmetricsInput,
  };
  return kDescriptor;
}

}  // namespace ferry
