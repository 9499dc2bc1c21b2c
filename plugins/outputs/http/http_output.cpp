#include "plugins/outputs/http/http_output.h"

#include <curl/curl.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <mutex>

#include "agent/codec/envelope.h"
#include "ferry/log.h"
#include "plugins/outputs/http/influx.h"
#include "plugins/outputs/http/retry_after.h"

namespace ferry {
namespace {

constexpr std::string_view kLogComponent = "output.http";
constexpr size_t kAnswerKeep = 200;  // bytes of an answer's body kept for reasons
constexpr std::chrono::milliseconds kMaxConnectTimeout{10'000};

void initCurlOnce() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

// Headers the output writes itself; a configured header may not replace them.
bool isReservedHeader(std::string_view name) {
  for (std::string_view r : {"Content-Type", "Content-Encoding", "Content-Length",
                             "Transfer-Encoding", "Idempotency-Key", "Expect", "Host",
                             "Connection"}) {
    if (iequals(name, r)) return true;
  }
  return name.size() >= 6 && iequals(name.substr(0, 6), "Ferry-");
}

// An HTTP token (RFC 9110 tchar).
bool isHeaderName(std::string_view s) {
  if (s.empty()) return false;
  for (unsigned char c : s) {
    if (std::isalnum(c) == 0 && std::strchr("!#$%&'*+-.^_`|~", c) == nullptr) return false;
  }
  return true;
}

bool hasLineBreak(std::string_view s) {
  return s.find_first_of("\r\n") != std::string_view::npos || s.find('\0') != std::string_view::npos;
}

// Appends `s` as a header value: control characters (which could end the header) become
// '_'.
void appendHeaderValue(std::string& out, std::string_view s) {
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    out.push_back(u < 0x20 || u == 0x7f ? '_' : c);
  }
}

// One base64 SHA-256 digest: 43 base64 characters and '='.
bool isBase64Sha256(std::string_view s) {
  if (s.size() != 44 || s[43] != '=') return false;
  for (size_t i = 0; i < 43; ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (std::isalnum(c) == 0 && c != '+' && c != '/') return false;
  }
  return true;
}

// The answer's start as printable ASCII, for a dead letter's reason.
std::string sanitised(std::string_view s) {
  std::string out;
  out.reserve(std::min(s.size(), kAnswerKeep));
  for (char c : s.substr(0, kAnswerKeep)) {
    const auto u = static_cast<unsigned char>(c);
    out.push_back(u >= 0x20 && u < 0x7f ? c : ' ');
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  return out;
}

bool isTlsError(CURLcode code) {
  switch (code) {
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_ENGINE_INITFAILED:
      return true;
    default:
      return false;
  }
}

Status checkReadable(const std::string& path, std::string_view what) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    Status s = errnoStatus(std::string(what) + " " + path, err);
    if (err == ENOENT) return notFound(s.message());
    if (err == EACCES) return permissionDenied(s.message());
    return s;
  }
  ::close(fd);
  return Status::ok();
}

}  // namespace

// One connection slot: a curl easy handle (its connection is kept alive between sends)
// with everything a send needs, owned by one sending thread at a time.
struct HttpOutput::Slot {
  CURL* curl = nullptr;
  std::string raw;     // the rendering of the block before compression
  std::string body;    // what goes on the wire
  std::string answer;  // the first kAnswerKeep bytes of the answer's body
  std::string retry_after;
  std::string header_line;  // scratch for the per-request headers
  char errbuf[CURL_ERROR_SIZE] = {};
  WireCompressor compressor;
  InfluxEncoder influx;
  std::unique_ptr<EnvelopeSealer> sealer;  // format envelope, made with the slot
  const std::atomic<bool>* interrupted = nullptr;

  Slot(WireEncoding encoding, int level) : compressor(encoding, level) {}
  ~Slot() {
    if (curl != nullptr) curl_easy_cleanup(curl);
  }
  Slot(const Slot&) = delete;
  Slot& operator=(const Slot&) = delete;

  static size_t onBody(char* data, size_t size, size_t n, void* self) {
    auto* s = static_cast<Slot*>(self);
    const size_t len = size * n;
    if (s->answer.size() < kAnswerKeep) {
      s->answer.append(data, std::min(len, kAnswerKeep - s->answer.size()));
    }
    return len;
  }

  static size_t onHeader(char* data, size_t size, size_t n, void* self) {
    auto* s = static_cast<Slot*>(self);
    const size_t len = size * n;
    std::string_view line(data, len);
    if (line.size() >= 5 && line.substr(0, 5) == "HTTP/") {
      s->retry_after.clear();  // a new answer (after a 100 Continue): forget the last one's
    } else if (line.size() > 12 && iequals(line.substr(0, 12), "retry-after:")) {
      line.remove_prefix(12);
      while (!line.empty() && (line.back() == '\r' || line.back() == '\n')) line.remove_suffix(1);
      s->retry_after.assign(line);
    }
    return len;
  }

  static int onProgress(void* self, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
    const auto* s = static_cast<Slot*>(self);
    return s->interrupted->load(std::memory_order_relaxed) ? 1 : 0;
  }
};

Result<HttpOutputConfig> httpOutputConfigFromOptions(const Options& opts) {
  initCurlOnce();
  HttpOutputConfig c;
  c.url = opts.getString("url");
  {
    CURLU* u = curl_url();
    if (u == nullptr) return internalError("curl_url: out of memory");
    const CURLUcode rc = curl_url_set(u, CURLUPART_URL, c.url.c_str(), 0);
    char* scheme = nullptr;
    char* host = nullptr;
    std::string problem;
    if (rc != CURLUE_OK) {
      problem = std::string("is not a valid URL (") + curl_url_strerror(rc) + ")";
    } else if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
               (std::strcmp(scheme, "http") != 0 && std::strcmp(scheme, "https") != 0)) {
      problem = "must start with http:// or https://";
    } else if (curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK || *host == '\0') {
      problem = "names no host";
    }
    curl_free(scheme);
    curl_free(host);
    curl_url_cleanup(u);
    if (c.url.rfind("http://", 0) != 0 && c.url.rfind("https://", 0) != 0 && problem.empty()) {
      problem = "must start with http:// or https://";  // curl guesses schemes; we do not
    }
    if (!problem.empty()) {
      return invalidArgument(opts.locate("url") + ": \"" + c.url + "\" " + problem);
    }
  }
  const bool https = c.url.rfind("https://", 0) == 0;

  if (opts.has("method")) c.method = opts.getString("method");
  if (c.method != "POST" && c.method != "PUT") {
    return invalidArgument(opts.locate("method") + ": must be POST or PUT, got \"" +
                           c.method + "\"");
  }
  if (opts.has("headers")) c.headers = opts.getStringMap("headers");
  for (const auto& [name, value] : c.headers) {
    if (!isHeaderName(name)) {
      return invalidArgument(opts.locate("headers") + ": \"" + name +
                             "\" is not a valid header name");
    }
    if (isReservedHeader(name)) {
      return invalidArgument(opts.locate("headers") + ": \"" + name +
                             "\" is set by the output itself and cannot be configured");
    }
    if (hasLineBreak(value)) {
      return invalidArgument(opts.locate("headers") + ": the value of \"" + name +
                             "\" contains a line break");
    }
  }
  const std::string& format = opts.has("format") ? opts.getString("format") : std::string();
  if (format.empty() || format == "ndjson") {
    c.format = HttpOutputConfig::Format::kNdjson;
  } else if (format == "influx") {
    c.format = HttpOutputConfig::Format::kInflux;
  } else if (format == "envelope") {
    c.format = HttpOutputConfig::Format::kEnvelope;
  } else {
    return invalidArgument(opts.locate("format") +
                           ": must be ndjson, envelope or influx, got \"" + format + "\"");
  }
  if (opts.has("compression") &&
      !parseWireEncoding(opts.getString("compression"), &c.compression)) {
    return invalidArgument(opts.locate("compression") +
                           ": must be zstd, gzip or none, got \"" +
                           opts.getString("compression") + "\"");
  }
  if (c.format == HttpOutputConfig::Format::kEnvelope && c.compression != WireEncoding::kZstd) {
    return invalidArgument(opts.locate("compression") +
                           ": an envelope is always compressed with zstd inside; leave "
                           "compression out (compression_level still applies)");
  }
  if (opts.has("compression_level")) {
    const int64_t level = opts.getInt("compression_level");
    const int64_t max = c.compression == WireEncoding::kGzip ? 9 : 19;
    if (level < 0 || level > max) {
      return invalidArgument(opts.locate("compression_level") + ": must be 0 (default) to " +
                             std::to_string(max) + " for " +
                             std::string(wireEncodingName(c.compression)) + ", got " +
                             std::to_string(level));
    }
    c.compression_level = static_cast<int>(level);
  }
  c.envelope_key_file = opts.getString("envelope_key_file");
  if (!c.envelope_key_file.empty() && c.format != HttpOutputConfig::Format::kEnvelope) {
    return invalidArgument(opts.locate("envelope_key_file") +
                           ": only used with format: envelope");
  }

  c.ca_file = opts.getString("tls.ca_file");
  c.cert_file = opts.getString("tls.cert_file");
  c.key_file = opts.getString("tls.key_file");
  if (opts.has("tls.insecure_skip_verify")) {
    c.insecure_skip_verify = opts.getBool("tls.insecure_skip_verify");
  }
  const std::string& pins = opts.getString("tls.pin_sha256");
  if (!pins.empty()) {
    size_t start = 0;
    while (start <= pins.size()) {
      size_t end = pins.find(';', start);
      if (end == std::string::npos) end = pins.size();
      std::string_view pin = std::string_view(pins).substr(start, end - start);
      if (pin.rfind("sha256//", 0) == 0) pin.remove_prefix(8);
      if (!isBase64Sha256(pin)) {
        return invalidArgument(opts.locate("tls.pin_sha256") +
                               ": each pin must be the base64 SHA-256 of the server's public key "
                               "(44 characters ending in '='), optionally prefixed sha256// and "
                               "separated by ';'");
      }
      if (!c.pin_sha256.empty()) c.pin_sha256 += ';';
      c.pin_sha256 += "sha256//";
      c.pin_sha256 += pin;
      start = end + 1;
    }
  }
  if (c.cert_file.empty() != c.key_file.empty()) {
    return invalidArgument(opts.locate(c.cert_file.empty() ? "tls.key_file" : "tls.cert_file") +
                           ": a client certificate needs both tls.cert_file and tls.key_file");
  }
  const bool any_tls = !c.ca_file.empty() || !c.cert_file.empty() || c.insecure_skip_verify ||
                       !c.pin_sha256.empty();
  if (any_tls && !https) {
    return invalidArgument(opts.locate("tls") + ": TLS options need an https:// url");
  }

  c.bearer = opts.getString("auth.bearer");
  c.basic_user = opts.getString("auth.basic.user");
  c.basic_password = opts.getString("auth.basic.password");
  const bool basic = !c.basic_user.empty() || !c.basic_password.empty();
  if (!c.bearer.empty() && basic) {
    return invalidArgument(opts.locate("auth") + ": give either bearer or basic, not both");
  }
  if (basic && c.basic_user.empty()) {
    return invalidArgument(opts.locate("auth.basic") + ": basic auth needs a user");
  }
  if (hasLineBreak(c.bearer)) {
    return invalidArgument(opts.locate("auth.bearer") + ": contains a line break");
  }
  if ((!c.bearer.empty() || basic) &&
      std::any_of(c.headers.begin(), c.headers.end(),
                  [](const auto& h) { return iequals(h.first, "Authorization"); })) {
    return invalidArgument(opts.locate("headers") +
                           ": an Authorization header and auth cannot both be given");
  }
  if (opts.has("max_bytes_per_s")) c.max_bytes_per_s = opts.getSize("max_bytes_per_s");
  if (opts.has("http2")) c.http2 = opts.getBool("http2");
  if (opts.has("retry_statuses")) {
    c.retry_statuses.clear();
    for (const std::string& code : opts.getStringList("retry_statuses")) {
      int v = 0;
      auto [end, ec] = std::from_chars(code.data(), code.data() + code.size(), v);
      if (ec != std::errc() || end != code.data() + code.size() || v < 400 || v > 499) {
        return invalidArgument(opts.where("retry_statuses").describe() + ": \"" + code +
                               "\" is not a 4xx status code (408 and 429 are always retried)");
      }
      c.retry_statuses.push_back(v);
    }
  }
  return c;
}

HttpOutput::HttpOutput(HttpOutputConfig config, const PluginContext& ctx)
    : config_(std::move(config)),
      agent_(ctx.agent_id),
      name_(ctx.name),
      clock_(ctx.clock != nullptr ? ctx.clock : &systemClock()),
      metrics_(ctx.metrics),
      wire_bytes_(ctx.metrics == nullptr
                      ? nullptr
                      : &ctx.metrics->counter("ferry_output_wire_bytes_total", {{"output", ctx.name}},
                                              "request body bytes sent upstream (every attempt, after compression)")) {
  initCurlOnce();
  switch (config_.format) {
    case HttpOutputConfig::Format::kNdjson: content_type_ = "application/x-ndjson"; break;
    case HttpOutputConfig::Format::kEnvelope: content_type_ = "application/vnd.ferry.envelope"; break;
    case HttpOutputConfig::Format::kInflux: content_type_ = "text/plain; charset=utf-8"; break;
  }
}

HttpOutput::~HttpOutput() { close(); }

Status HttpOutput::open(std::string_view /*committed_state*/) {
  interrupted_.store(false);
  for (const auto& [path, what] : {std::pair{&config_.ca_file, "tls.ca_file"},
                                   std::pair{&config_.cert_file, "tls.cert_file"},
                                   std::pair{&config_.key_file, "tls.key_file"}}) {
    if (path->empty()) continue;
    if (Status s = checkReadable(*path, what); !s.isOk()) {
      return s.withContext("output " + name_);
    }
  }
  // Slots made before hold a sealer with the key of the last open(); the key file may have
  // changed since (open() is never concurrent with send()).
  {
    std::lock_guard lock(mu_);
    free_.clear();
  }
  envelope_key_.reset();
  if (config_.format == HttpOutputConfig::Format::kEnvelope) {
    if (config_.envelope_key_file.empty()) {
      logWarn(kLogComponent, "output ", name_,
              ": format envelope without envelope_key_file: envelopes are compressed and "
              "checksummed but NOT encrypted");
    } else {
      Result<KeyMaterial> key = loadKeyFile(config_.envelope_key_file);
      if (!key) return key.status().withContext("output " + name_ + ": envelope_key_file");
      envelope_key_ = key.value();
    }
  }
  if (config_.insecure_skip_verify) {
    logWarn(kLogComponent, "output ", name_,
            ": INSECURE: tls.insecure_skip_verify is on, the server's certificate and name are "
            "NOT verified; anyone on the path can read and change what is sent to ",
            config_.url);
  }
  return Status::ok();
}

void HttpOutput::interrupt() { interrupted_.store(true); }

void HttpOutput::close() {
  std::lock_guard lock(mu_);
  free_.clear();
}

std::unique_ptr<HttpOutput::Slot> HttpOutput::takeSlot() {
  {
    std::lock_guard lock(mu_);
    if (!free_.empty()) {
      std::unique_ptr<Slot> s = std::move(free_.back());
      free_.pop_back();
      return s;
    }
  }
  auto s = std::make_unique<Slot>(config_.compression, config_.compression_level);
  s->interrupted = &interrupted_;
  if (config_.format == HttpOutputConfig::Format::kEnvelope) {
    s->sealer = std::make_unique<EnvelopeSealer>(envelope_key_, config_.compression_level);
  }
  s->curl = curl_easy_init();
  if (s->curl == nullptr) return nullptr;
  CURL* h = s->curl;
  // Everything that is the same for every request is set once per handle.
  curl_easy_setopt(h, CURLOPT_URL, config_.url.c_str());
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, s->errbuf);
  curl_easy_setopt(h, CURLOPT_POST, 1L);
  if (config_.method == "PUT") curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, "PUT");
  curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(h, CURLOPT_USERAGENT, "ferry");
  curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(h, CURLOPT_TCP_KEEPIDLE, 30L);
  curl_easy_setopt(h, CURLOPT_TCP_KEEPINTVL, 15L);
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, &Slot::onBody);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, s.get());
  curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, &Slot::onHeader);
  curl_easy_setopt(h, CURLOPT_HEADERDATA, s.get());
  curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, &Slot::onProgress);
  curl_easy_setopt(h, CURLOPT_XFERINFODATA, s.get());
  curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(h, CURLOPT_HTTP_VERSION,
                   config_.http2 ? CURL_HTTP_VERSION_2TLS : CURL_HTTP_VERSION_1_1);
  curl_easy_setopt(h, CURLOPT_SSLVERSION, CURL_SSLVERSION_TLSv1_2);
  curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, config_.insecure_skip_verify ? 0L : 1L);
  curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, config_.insecure_skip_verify ? 0L : 2L);
  if (!config_.ca_file.empty()) curl_easy_setopt(h, CURLOPT_CAINFO, config_.ca_file.c_str());
  if (!config_.cert_file.empty()) {
    curl_easy_setopt(h, CURLOPT_SSLCERT, config_.cert_file.c_str());
    curl_easy_setopt(h, CURLOPT_SSLKEY, config_.key_file.c_str());
  }
  if (!config_.pin_sha256.empty()) {
    curl_easy_setopt(h, CURLOPT_PINNEDPUBLICKEY, config_.pin_sha256.c_str());
  }
  if (!config_.bearer.empty()) {
    curl_easy_setopt(h, CURLOPT_HTTPAUTH, CURLAUTH_BEARER);
    curl_easy_setopt(h, CURLOPT_XOAUTH2_BEARER, config_.bearer.c_str());
  } else if (!config_.basic_user.empty()) {
    curl_easy_setopt(h, CURLOPT_HTTPAUTH, CURLAUTH_BASIC);
    curl_easy_setopt(h, CURLOPT_USERNAME, config_.basic_user.c_str());
    curl_easy_setopt(h, CURLOPT_PASSWORD, config_.basic_password.c_str());
  }
  if (config_.max_bytes_per_s > 0) {
    curl_easy_setopt(h, CURLOPT_MAX_SEND_SPEED_LARGE,
                     static_cast<curl_off_t>(config_.max_bytes_per_s));
  }
  return s;
}

void HttpOutput::giveBack(std::unique_ptr<Slot> slot) {
  std::lock_guard lock(mu_);
  free_.push_back(std::move(slot));
}

Status HttpOutput::renderBody(Slot& slot, const Block& block, bool* empty) {
  *empty = false;
  slot.raw.clear();
  switch (config_.format) {
    case HttpOutputConfig::Format::kNdjson:
      block.records.appendNdjson(slot.raw);
      break;
    case HttpOutputConfig::Format::kInflux: {
      const InfluxEncoder::Stats st = slot.influx.encode(block, &slot.raw);
      if (metrics_ != nullptr) {
        if (st.no_fields > 0) {
          metrics_->counter("ferry_dropped_records_total", {{"reason", "influx_no_fields"}},
                            "records dropped, by reason")
              .add(st.no_fields);
        }
        if (st.not_object > 0) {
          metrics_->counter("ferry_dropped_records_total", {{"reason", "influx_not_object"}},
                            "records dropped, by reason")
              .add(st.not_object);
        }
      }
      if (st.lines == 0) {
        *empty = true;
        return Status::ok();
      }
      break;
    }
    case HttpOutputConfig::Format::kEnvelope:
      return slot.sealer->seal(block, agent_, &slot.body);
  }
  return slot.compressor.compress(slot.raw, &slot.body);
}

void HttpOutput::countRequest(const std::string& code) {
  if (metrics_ == nullptr) return;
  metrics_->counter("ferry_output_http_requests_total", {{"output", name_}, {"code", code}},
                    "HTTP requests of http outputs by answer status (\"error\": no answer)")
      .add();
}

SendResult HttpOutput::send(const Block& block, SteadyTime deadline) {
  if (interrupted_.load()) return SendResult::retry("interrupted: the agent is stopping");
  std::unique_ptr<Slot> slot = takeSlot();
  if (slot == nullptr) return SendResult::retry("cannot create a curl handle (out of memory?)");

  bool empty = false;
  if (Status s = renderBody(*slot, block, &empty); !s.isOk()) {
    giveBack(std::move(slot));
    return SendResult::retry("cannot encode the block: " + s.toString());
  }
  if (empty) {  // every record was dropped (and counted) by the influx conversion
    giveBack(std::move(slot));
    return SendResult::delivered();
  }

  const auto remaining =
      std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock_->now());
  if (remaining.count() <= 0) {
    giveBack(std::move(slot));
    return SendResult::retry("deadline passed before the request started");
  }

  curl_slist* headers = nullptr;
  bool headers_ok = true;
  auto add = [&](const std::string& line) {
    curl_slist* next = curl_slist_append(headers, line.c_str());
    if (next == nullptr) {
      headers_ok = false;
      return;
    }
    headers = next;
  };
  std::string& line = slot->header_line;
  line.assign("Content-Type: ").append(content_type_);
  add(line);
  if (config_.format != HttpOutputConfig::Format::kEnvelope) {
    line.assign("Content-Encoding: ").append(wireEncodingName(config_.compression));
    add(line);
  }
  add("Expect:");  // no 100-continue round trip: the body is small and already in memory
  line.assign("Idempotency-Key: ");
  appendHeaderValue(line, agent_);
  line.push_back('/');
  appendHeaderValue(line, name_);
  line.append("/").append(std::to_string(block.seq));
  add(line);
  line.assign("Ferry-Agent: ");
  appendHeaderValue(line, agent_);
  add(line);
  line.assign("Ferry-Stream: ");
  appendHeaderValue(line, block.lineage.stream);
  add(line);
  line.assign("Ferry-First-Seq: ").append(std::to_string(block.seq));
  add(line);
  line.assign("Ferry-Count: ").append(std::to_string(block.records.size()));
  add(line);
  for (const auto& [k, v] : config_.headers) {
    line.assign(k).append(v.empty() ? ";" : ": ").append(v);  // "X;" sends an empty value
    add(line);
  }
  if (!headers_ok) {
    curl_slist_free_all(headers);
    giveBack(std::move(slot));
    return SendResult::retry("cannot build the request headers (out of memory?)");
  }

  CURL* h = slot->curl;
  slot->answer.clear();
  slot->retry_after.clear();
  slot->errbuf[0] = '\0';
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(h, CURLOPT_POSTFIELDS, slot->body.data());
  curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(slot->body.size()));
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, static_cast<long>(remaining.count()));
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
                   static_cast<long>(std::min(remaining, kMaxConnectTimeout).count()));
  const CURLcode rc = curl_easy_perform(h);
  long status = 0;
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
  curl_off_t uploaded = 0;
  if (wire_bytes_ != nullptr && curl_easy_getinfo(h, CURLINFO_SIZE_UPLOAD_T, &uploaded) == CURLE_OK && uploaded > 0) {
    wire_bytes_->add(static_cast<uint64_t>(uploaded));
  }
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, nullptr);
  curl_easy_setopt(h, CURLOPT_POSTFIELDS, nullptr);
  curl_slist_free_all(headers);

  SendResult result = classify(*slot, static_cast<int>(rc), status);
  giveBack(std::move(slot));
  return result;
}

SendResult HttpOutput::classify(Slot& slot, int curl_code, long status) {
  const auto rc = static_cast<CURLcode>(curl_code);
  if (rc != CURLE_OK) {
    countRequest("error");
    std::string why = std::string(curl_easy_strerror(rc));
    if (slot.errbuf[0] != '\0') why += std::string(": ") + slot.errbuf;
    if (rc == CURLE_ABORTED_BY_CALLBACK && interrupted_.load()) {
      return SendResult::retry("interrupted: the agent is stopping");
    }
    if (isTlsError(rc)) {
      if (!tls_error_logged_.exchange(true)) {
        logError(kLogComponent, "output ", name_, ": TLS with ", config_.url, " failed: ", why,
                 " (nothing was sent; check tls.ca_file, tls.pin_sha256, the client certificate "
                 "and the server's certificate; retrying)");
      }
      return SendResult::retry("TLS: " + why);
    }
    return SendResult::retry(why);
  }
  countRequest(std::to_string(status));
  tls_error_logged_.store(false);
  if (status >= 200 && status < 300) return SendResult::delivered();
  std::optional<Duration> after;
  if (!slot.retry_after.empty()) {
    after = parseRetryAfter(slot.retry_after, std::chrono::system_clock::now());
  }
  const std::string answer = sanitised(slot.answer);
  std::string why = "HTTP " + std::to_string(status);
  if (!answer.empty()) why += ": " + answer;
  if (status >= 300 && status < 400) {
    if (!redirect_logged_.exchange(true)) {
      logError(kLogComponent, "output ", name_, ": ", config_.url, " answered ", status,
               " (a redirect); redirects are not followed: set url to the final address. "
               "Retrying.");
    }
    return SendResult::retry(why, after);
  }
  if (status == 408 || status == 429 || status >= 500 || status < 200) {
    return SendResult::retry(why, after);
  }
  if (std::find(config_.retry_statuses.begin(), config_.retry_statuses.end(), static_cast<int>(status)) !=
      config_.retry_statuses.end()) {
    if (!client_error_logged_.exchange(true)) {
      logError(kLogComponent, "output ", name_, ": ", config_.url, " answered ", why,
               "; that means the url or the credentials are wrong, so the batch is kept and retried "
               "(retry_statuses) until the endpoint accepts it");
    }
    return SendResult::retry(why, after);
  }
  client_error_logged_.store(false);
  return SendResult::rejected(why);
}

namespace {

const std::string_view kMethods[] = {"POST", "PUT"};
const std::string_view kFormats[] = {"ndjson", "envelope", "influx"};
const std::string_view kCompressions[] = {"zstd", "gzip", "none"};

const OptionSpec kTlsOptions[] = {
    {.key = "ca_file", .type = OptionType::kString,
     .help = "PEM file of the CA certificates that verify the server (default: the system's)"},
    {.key = "cert_file", .type = OptionType::kString,
     .help = "PEM client certificate for mutual TLS (with key_file)"},
    {.key = "key_file", .type = OptionType::kString,
     .help = "PEM private key of cert_file"},
    {.key = "insecure_skip_verify", .type = OptionType::kBool, .default_value = "false",
     .help = "do not verify the server's certificate and name (testing only; warned loudly)"},
    {.key = "pin_sha256", .type = OptionType::kString,
     .help = "base64 SHA-256 of the server's public key (several separated by ';'); a "
             "server whose key does not match is refused"},
};
const OptionSpec kBasicOptions[] = {
    {.key = "user", .type = OptionType::kString, .help = "user name"},
    {.key = "password", .type = OptionType::kString, .help = "password", .secret = true},
};
const OptionSpec kAuthOptions[] = {
    {.key = "bearer", .type = OptionType::kString,
     .help = "token sent as Authorization: Bearer <token>", .secret = true},
    {.key = "basic", .type = OptionType::kObject, .help = "HTTP basic authentication",
     .fields = kBasicOptions},
};

const OptionSpec kHttpOptions[] = {
    {.key = "url", .type = OptionType::kString,
     .help = "http:// or https:// URL each batch is sent to", .required = true},
    {.key = "method", .type = OptionType::kEnum, .default_value = "POST",
     .help = "request method", .choices = kMethods},
    {.key = "headers", .type = OptionType::kStringMap,
     .help = "extra request headers (not those the output sets itself)"},
    {.key = "format", .type = OptionType::kEnum, .default_value = "ndjson",
     .help = "body: ndjson (records, one per line), envelope (docs/envelope.md; compressed, "
             "sealed with envelope_key_file) or influx (InfluxDB line protocol)",
     .choices = kFormats},
    {.key = "compression", .type = OptionType::kEnum, .default_value = "zstd",
     .help = "Content-Encoding of the body (ndjson, influx; an envelope is zstd inside)",
     .choices = kCompressions},
    {.key = "compression_level", .type = OptionType::kInt, .default_value = "0",
     .help = "zstd 1..19, gzip 1..9; 0: the codec's default (zstd 3, gzip 6)"},
    {.key = "envelope_key_file", .type = OptionType::kString,
     .help = "format envelope: aes256 key file (ferry keygen) that seals the envelope; "
             "absent: unencrypted envelope (warned)"},
    {.key = "tls", .type = OptionType::kObject, .help = "TLS settings for https:// URLs",
     .fields = kTlsOptions},
    {.key = "auth", .type = OptionType::kObject, .help = "authentication (bearer or basic)",
     .fields = kAuthOptions},
    {.key = "max_bytes_per_s", .type = OptionType::kSize, .default_value = "0",
     .help = "upload rate limit per connection; 0: unlimited"},
    {.key = "http2", .type = OptionType::kBool, .default_value = "true",
     .help = "negotiate HTTP/2 over TLS when the server offers it (HTTP/1.1 otherwise)"},
    {.key = "retry_statuses", .type = OptionType::kStringList, .default_value = "[\"401\", \"403\", \"404\", \"407\"]",
     .help = "4xx answers retried (with an error log) instead of dead-lettered: they mean the url or the "
             "credentials are wrong, not the batch, and dead-lettering would empty the backlog into the "
             "queue; [] dead-letters every 4xx but 408/429"},
};

Result<std::unique_ptr<Output>> makeHttpOutput(const PluginContext& ctx, const Options& opts) {
  Result<HttpOutputConfig> config = httpOutputConfigFromOptions(opts);
  if (!config) return config.status();
  return std::unique_ptr<Output>(std::make_unique<HttpOutput>(std::move(config).value(), ctx));
}

}  // namespace

const PluginDescriptor& httpOutputDescriptor() {
  static const PluginDescriptor kDescriptor{
      .kind = PluginKind::kOutput,
      .name = "http",
      .summary = "sends each batch to an HTTP(S) endpoint (NDJSON, envelope or InfluxDB line "
                 "protocol), with idempotency keys",
      .options = kHttpOptions,
      .make_output = &makeHttpOutput,
  };
  return kDescriptor;
}

}  // namespace ferry
