#include "plugins/inputs/http/http_input.h"

#include <microhttpd.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <simdjson.h>

#include <cstdarg>
#include <cstdio>
#include <thread>
#include <utility>

#include "agent/codec/wire_compress.h"
#include "agent/common/listen_address.h"
#include "ferry/json.h"
#include "ferry/log.h"

namespace ferry {
namespace {

constexpr uint64_t kMaxBodyLimit = uint64_t{1} << 30;  // max_body_bytes upper bound
constexpr int64_t kMaxConnectionsLimit = 1024;
constexpr unsigned kIdleTimeoutSeconds = 30;  // idle keep-alive connections are closed after
constexpr const char* kRetryAfterSeconds = "5";

constexpr OptionSpec kAuthOptions[] = {
    {.key = "bearer",
     .type = OptionType::kString,
     .help = "when set, requests must carry Authorization: Bearer <token> (else 401)",
     .secret = true},
};

constexpr OptionSpec kOptions[] = {
    {.key = "listen",
     .type = OptionType::kString,
     .default_value = "127.0.0.1:8088",
     .help = "host:port to listen on (\":8088\" for every interface, port 0 for any free port)"},
    {.key = "path",
     .type = OptionType::kString,
     .default_value = "/",
     .help = "the only path served: POST records to it (other paths 404, other methods 405)"},
    {.key = "auth",
     .type = OptionType::kObject,
     .help = "authentication of clients (bearer token)",
     .fields = kAuthOptions},
    {.key = "max_body_bytes",
     .type = OptionType::kSize,
     .default_value = "8MiB",
     .help = "largest request body, before and after decompression (larger: 413)"},
    {.key = "max_connections",
     .type = OptionType::kInt,
     .default_value = "32",
     .help = "most client connections served at once (each has a thread)"},
    {.key = "busy_timeout",
     .type = OptionType::kDuration,
     .default_value = "1s",
     .help = "how long a request waits for room while the buffer is full before it is "
             "answered 503 with Retry-After"},
    {.key = "commit_timeout",
     .type = OptionType::kDuration,
     .default_value = "10s",
     .help = "how long a request waits for its records to be committed (written, fsynced "
             "with durability: fsync) before it is answered 503; the records may still "
             "arrive then, so a client that sends again may duplicate them"},
};

std::string_view trimSpace(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r' ||
                        s.front() == '\n')) {
    s.remove_prefix(1);
  }
  while (!s.empty() &&
         (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n')) {
    s.remove_suffix(1);
  }
  return s;
}

bool equalsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i] >= 'A' && a[i] <= 'Z' ? static_cast<char>(a[i] - 'A' + 'a') : a[i];
    char y = b[i] >= 'A' && b[i] <= 'Z' ? static_cast<char>(b[i] - 'A' + 'a') : b[i];
    if (x != y) return false;
  }
  return true;
}

// Equal-length digests compared with CRYPTO_memcmp: the time taken tells nothing about
// the token, not even its length.
bool tokenMatches(std::string_view given, std::string_view expected) {
  unsigned char a[SHA256_DIGEST_LENGTH];
  unsigned char b[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(given.data()), given.size(), a);
  SHA256(reinterpret_cast<const unsigned char*>(expected.data()), expected.size(), b);
  return CRYPTO_memcmp(a, b, sizeof(a)) == 0;
}

std::string_view header(MHD_Connection* c, const char* name) {
  const char* v = MHD_lookup_connection_value(c, MHD_HEADER_KIND, name);
  return v == nullptr ? std::string_view() : std::string_view(v);
}

void mhdLog(void* cls, const char* fmt, va_list ap) {
  char buf[512];
  std::vsnprintf(buf, sizeof(buf), fmt, ap);
  std::string_view line(buf);
  while (!line.empty() && line.back() == '\n') line.remove_suffix(1);
  logWarn("input", *static_cast<const std::string*>(cls), ": libmicrohttpd: ", line);
}

bool parseU64(std::string_view s, uint64_t* out) {
  if (s.empty() || s.size() > 19) return false;
  uint64_t v = 0;
  for (char ch : s) {
    if (ch < '0' || ch > '9') return false;
    v = v * 10 + static_cast<uint64_t>(ch - '0');
  }
  *out = v;
  return true;
}

// Parses `text` as exactly one JSON object; on failure says why in *why.
bool isOneObject(simdjson::dom::parser& parser, std::string_view text, simdjson::dom::element* out,
                 std::string* why) {
  auto parsed = parser.parse(text.data(), text.size(), true);
  if (parsed.error() != simdjson::SUCCESS) {
    *why = std::string("invalid JSON: ") + simdjson::error_message(parsed.error());
    return false;
  }
  if (!parsed.value_unsafe().is_object()) {
    *why = "not a JSON object";
    return false;
  }
  *out = parsed.value_unsafe();
  return true;
}

void refuse(HttpBodyParse& r, std::string why) {
  if (r.refused++ == 0) r.first_error = std::move(why);
}

void parseLines(simdjson::dom::parser& parser, std::string_view body, HttpBodyParse& r) {
  size_t line_no = 0;
  while (!body.empty()) {
    ++line_no;
    const size_t nl = body.find('\n');
    std::string_view line = trimSpace(body.substr(0, nl));
    body = nl == std::string_view::npos ? std::string_view() : body.substr(nl + 1);
    if (line.empty()) continue;
    simdjson::dom::element e;
    std::string why;
    if (isOneObject(parser, line, &e, &why)) {
      r.records.append(line);
    } else {
      refuse(r, "line " + std::to_string(line_no) + ": " + why);
    }
  }
}

}  // namespace

HttpBodyParse parseHttpBody(std::string_view body) {
  HttpBodyParse r;
  const std::string_view text = trimSpace(body);
  if (text.empty()) return r;
  simdjson::dom::parser parser;
  // A whole-body document first: an array, or one object that may span lines. A body that
  // is not one document (NDJSON, or broken JSON) is read line by line.
  auto whole = parser.parse(text.data(), text.size(), true);
  if (whole.error() == simdjson::SUCCESS) {
    simdjson::dom::element root = whole.value_unsafe();
    if (root.is_object()) {
      r.records.append(simdjson::minify(root));
      return r;
    }
    if (root.is_array()) {
      simdjson::dom::array elements;
      if (root.get(elements) != simdjson::SUCCESS) {
        refuse(r, "body: unreadable JSON array");
        return r;
      }
      size_t index = 0;
      for (simdjson::dom::element e : elements) {
        if (e.is_object()) {
          r.records.append(simdjson::minify(e));
        } else {
          refuse(r, "element " + std::to_string(index) + ": not a JSON object");
        }
        ++index;
      }
      return r;
    }
  }
  parseLines(parser, text, r);
  return r;
}

Result<HttpInputSettings> HttpInputSettings::fromOptions(const Options& opts) {
  HttpInputSettings s;
  if (opts.has("listen")) s.listen = opts.getString("listen");
  sockaddr_storage addr{};
  socklen_t len = 0;
  Status parsed = parseListenAddress(s.listen, &addr, &len);
  if (!parsed.isOk()) return invalidArgument(opts.where("listen").describe() + ": " + parsed.message());
  if (opts.has("path")) s.path = opts.getString("path");
  if (s.path.empty() || s.path.front() != '/') {
    return invalidArgument(opts.where("path").describe() + ": must start with '/'");
  }
  s.bearer = opts.getString("auth.bearer");
  if (opts.has("auth.bearer") && s.bearer.empty()) {
    return invalidArgument(opts.where("auth.bearer").describe() + ": must not be empty");
  }
  if (opts.has("max_body_bytes")) s.max_body_bytes = opts.getSize("max_body_bytes");
  if (s.max_body_bytes == 0 || s.max_body_bytes > kMaxBodyLimit) {
    return invalidArgument(opts.where("max_body_bytes").describe() + ": must be between 1 and " +
                           formatSize(kMaxBodyLimit));
  }
  if (opts.has("max_connections")) {
    const int64_t n = opts.getInt("max_connections");
    if (n < 1 || n > kMaxConnectionsLimit) {
      return invalidArgument(opts.where("max_connections").describe() + ": must be between 1 and " +
                             std::to_string(kMaxConnectionsLimit));
    }
    s.max_connections = static_cast<unsigned>(n);
  }
  if (opts.has("busy_timeout")) s.busy_timeout = opts.getDuration("busy_timeout");
  if (opts.has("commit_timeout")) s.commit_timeout = opts.getDuration("commit_timeout");
  if (s.busy_timeout > std::chrono::minutes(1)) {
    return invalidArgument(opts.where("busy_timeout").describe() + ": must be at most 1m");
  }
  if (s.commit_timeout <= Duration::zero() || s.commit_timeout > std::chrono::minutes(10)) {
    return invalidArgument(opts.where("commit_timeout").describe() + ": must be between 1ns and 10m");
  }
  return s;
}

struct HttpInput::Request {
  std::string body;
  bool too_large = false;
};

struct HttpInput::Reply {
  unsigned code = 200;
  std::string body;  // JSON
  bool retry_after = false;
  bool allow_post = false;
};

namespace {

HttpInput::Reply errorReply(unsigned code, std::string_view message) {
  std::string body = "{\"error\":";
  appendJsonString(body, message);
  body += "}\n";
  return {code, std::move(body), false, false};
}

MHD_Result sendReply(MHD_Connection* c, const HttpInput::Reply& r) {
  MHD_Response* resp = MHD_create_response_from_buffer(
      r.body.size(), const_cast<char*>(r.body.data()), MHD_RESPMEM_MUST_COPY);
  if (resp == nullptr) return MHD_NO;
  MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
  if (r.retry_after) MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, kRetryAfterSeconds);
  if (r.allow_post) MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, "POST");
  if (r.code == 401) MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
  const MHD_Result rc = MHD_queue_response(c, r.code, resp);
  MHD_destroy_response(resp);
  return rc;
}

MHD_Result onRequest(void* cls, MHD_Connection* c, const char* url, const char* method,
                     const char* /*version*/, const char* upload_data, size_t* upload_data_size,
                     void** con_cls) {
  return static_cast<HttpInput*>(cls)->handle(c, url, method, upload_data, upload_data_size,
                                              con_cls) != 0
             ? MHD_YES
             : MHD_NO;
}

void onCompleted(void* /*cls*/, MHD_Connection* /*c*/, void** con_cls,
                 MHD_RequestTerminationCode /*toe*/) {
  delete static_cast<HttpInput::Request*>(*con_cls);
  *con_cls = nullptr;
}

}  // namespace

HttpInput::HttpInput(HttpInputSettings settings, std::string instance, MetricsRegistry* metrics)
    : settings_(std::move(settings)), instance_(std::move(instance)) {
  if (metrics != nullptr) {
    bad_json_ = &metrics->counter("ferry_dropped_records_total", {{"reason", "http_bad_json"}},
                                  "records dropped, by reason");
  }
}

HttpInput::~HttpInput() { stop(); }

Status HttpInput::start(Emitter& emitter) {
  std::lock_guard life(life_mu_);
  if (daemon_ != nullptr) return {StatusCode::kFailedPrecondition, "http input already started"};
  sockaddr_storage addr{};
  socklen_t len = 0;
  Status parsed = parseListenAddress(settings_.listen, &addr, &len);
  if (!parsed.isOk()) return invalidArgument("listen: " + parsed.message());
  {
    std::lock_guard lock(emit_mu_);
    emitter_ = &emitter;
  }
  unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;
  if (addr.ss_family == AF_INET6) flags |= MHD_USE_IPv6;
  daemon_ = MHD_start_daemon(
      flags, 0, nullptr, nullptr, &onRequest, this,
      MHD_OPTION_EXTERNAL_LOGGER, &mhdLog, const_cast<std::string*>(&instance_),
      MHD_OPTION_SOCK_ADDR, reinterpret_cast<sockaddr*>(&addr),
      MHD_OPTION_CONNECTION_LIMIT, settings_.max_connections,
      MHD_OPTION_CONNECTION_TIMEOUT, kIdleTimeoutSeconds,
      MHD_OPTION_NOTIFY_COMPLETED, &onCompleted, nullptr,
      MHD_OPTION_END);
  if (daemon_ == nullptr) {
    return unavailable("listen " + settings_.listen +
                       ": cannot listen (address in use, or not available on this host)");
  }
  const MHD_DaemonInfo* info = MHD_get_daemon_info(daemon_, MHD_DAEMON_INFO_LISTEN_FD);
  socklen_t blen = sizeof(bound_);
  if (info == nullptr ||
      ::getsockname(info->listen_fd, reinterpret_cast<sockaddr*>(&bound_), &blen) != 0) {
    bound_ = addr;
  }
  logInfo("input", instance_, ": listening on ",
          describeAddress(reinterpret_cast<const sockaddr*>(&bound_)), " for POST ",
          settings_.path);
  return Status::ok();
}

void HttpInput::stop() {
  MHD_Daemon* d = nullptr;
  {
    std::lock_guard life(life_mu_);
    d = std::exchange(daemon_, nullptr);
  }
  if (d == nullptr) return;
  // Requests being processed get their answer first: the core is stopping, so an emit
  // answers at once and a commit wait ends within its stop grace (500 ms).
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(700);
  while (in_flight_.load() > 0 && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  // Closes the listener and every connection, then joins the connection threads.
  MHD_stop_daemon(d);
}

std::string HttpInput::boundAddress() const {
  std::lock_guard life(life_mu_);
  return describeAddress(reinterpret_cast<const sockaddr*>(&bound_));
}

uint16_t HttpInput::port() const {
  std::lock_guard life(life_mu_);
  if (bound_.ss_family == AF_INET6) {
    return ntohs(reinterpret_cast<const sockaddr_in6*>(&bound_)->sin6_port);
  }
  if (bound_.ss_family == AF_INET) {
    return ntohs(reinterpret_cast<const sockaddr_in*>(&bound_)->sin_port);
  }
  return 0;
}

bool HttpInput::authorized(MHD_Connection* c) const {
  if (settings_.bearer.empty()) return true;
  std::string_view v = trimSpace(header(c, MHD_HTTP_HEADER_AUTHORIZATION));
  constexpr std::string_view kScheme = "bearer ";
  if (v.size() < kScheme.size() || !equalsIgnoreCase(v.substr(0, kScheme.size()), kScheme)) {
    return false;
  }
  return tokenMatches(trimSpace(v.substr(kScheme.size())), settings_.bearer);
}

int HttpInput::handle(MHD_Connection* c, const char* url, const char* method,
                      const char* upload_data, size_t* upload_data_size, void** con_cls) {
  if (*con_cls == nullptr) {
    // Headers are in: everything that needs no body is decided before reading it.
    if (settings_.path != url) {
      return sendReply(c, errorReply(404, "not found: POST records to " + settings_.path));
    }
    if (std::string_view(method) != MHD_HTTP_METHOD_POST) {
      Reply r = errorReply(405, "method not allowed: POST records to " + settings_.path);
      r.allow_post = true;
      return sendReply(c, r);
    }
    if (!authorized(c)) {
      return sendReply(c, errorReply(401, "missing or wrong Authorization: Bearer token"));
    }
    uint64_t declared = 0;
    if (parseU64(trimSpace(header(c, MHD_HTTP_HEADER_CONTENT_LENGTH)), &declared) &&
        declared > settings_.max_body_bytes) {
      return sendReply(c, errorReply(413, "body of " + std::to_string(declared) +
                                              " bytes is larger than max_body_bytes (" +
                                              std::to_string(settings_.max_body_bytes) + ")"));
    }
    *con_cls = new Request();
    return MHD_YES;
  }
  auto* req = static_cast<Request*>(*con_cls);
  if (*upload_data_size > 0) {
    if (!req->too_large) {
      if (req->body.size() + *upload_data_size > settings_.max_body_bytes) {
        req->too_large = true;
        std::string().swap(req->body);
      } else {
        req->body.append(upload_data, *upload_data_size);
      }
    }
    *upload_data_size = 0;
    return MHD_YES;
  }
  if (req->too_large) {
    return sendReply(c, errorReply(413, "body larger than max_body_bytes (" +
                                            std::to_string(settings_.max_body_bytes) + ")"));
  }
  return sendReply(c, process(c, req->body));
}

HttpInput::Reply HttpInput::process(MHD_Connection* c, const std::string& body) {
  // stop() lets requests being processed finish (their 200 or 503 reach the client).
  in_flight_.fetch_add(1);
  struct Done {
    std::atomic<int>& n;
    ~Done() { n.fetch_sub(1); }
  } done{in_flight_};
  WireEncoding encoding = WireEncoding::kIdentity;
  const std::string_view ce = trimSpace(header(c, MHD_HTTP_HEADER_CONTENT_ENCODING));
  if (!ce.empty() && !parseWireEncoding(ce, &encoding)) {
    return errorReply(415, "unsupported Content-Encoding \"" + std::string(ce) +
                               "\" (identity, gzip or zstd)");
  }
  std::string decoded;
  std::string_view text = body;
  if (encoding != WireEncoding::kIdentity) {
    Status st = decompressWire(encoding, body, &decoded, settings_.max_body_bytes);
    if (!st.isOk()) {
      if (st.code() == StatusCode::kInvalidArgument) {
        return errorReply(413, "decoded body larger than max_body_bytes (" +
                                   std::to_string(settings_.max_body_bytes) + ")");
      }
      return errorReply(400, "body does not decode as " + std::string(wireEncodingName(encoding)) +
                                 ": " + st.message());
    }
    text = decoded;
  }

  HttpBodyParse parsed = parseHttpBody(text);
  if (parsed.refused > 0) {
    if (bad_json_ != nullptr) bad_json_->add(parsed.refused);
    logDebug("input", instance_, ": refused ", parsed.refused, " record(s): ", parsed.first_error);
  }
  Reply r;
  r.body = "{\"accepted\":" + std::to_string(parsed.records.size()) +
           ",\"refused\":" + std::to_string(parsed.refused);
  if (parsed.refused > 0) {
    r.body += ",\"error\":";
    appendJsonString(r.body, parsed.first_error);
  }
  r.body += "}\n";
  if (parsed.records.empty()) {
    r.code = parsed.refused > 0 ? 400 : 200;
    return r;
  }

  // 200 only once the records are committed: a crash after the answer loses nothing.
  Result<uint64_t> ticket = uint64_t{0};
  {
    std::lock_guard lock(emit_mu_);
    ticket = emitter_->emitTracked(parsed.records, {}, settings_.busy_timeout);
  }
  Status st = ticket.isOk() ? emitter_->waitCommitted(*ticket, settings_.commit_timeout) : ticket.status();
  if (st.isOk()) return r;
  if (ticket.isOk()) {
    // Accepted but not (yet) committed: the client should send again; that may duplicate.
    logWarn("input", instance_, ": ", parsed.records.size(), " record(s) not committed in time: ", st.toString());
    Reply busy = errorReply(503, "records not committed: " + st.toString() + "; send again later");
    busy.retry_after = true;
    return busy;
  }
  // Nothing of the request was accepted: the refused ones were counted as dropped, the
  // valid ones stay with the client, which sends the whole body again.
  if (st.retryable() || st.code() == StatusCode::kCancelled) {
    Reply busy = errorReply(503, st.code() == StatusCode::kCancelled
                                     ? "agent is stopping; send again later"
                                     : "buffer full; send again later");
    busy.retry_after = true;
    return busy;
  }
  logWarn("input", instance_, ": emit failed: ", st.toString());
  return errorReply(500, "records not accepted: " + st.toString());
}

namespace {

Result<std::unique_ptr<Input>> makeHttpInput(const PluginContext& ctx, const Options& opts) {
  Result<HttpInputSettings> settings = HttpInputSettings::fromOptions(opts);
  if (!settings.isOk()) return settings.status();
  return std::unique_ptr<Input>(
      std::make_unique<HttpInput>(std::move(settings).value(), ctx.name, ctx.metrics));
}

}  // namespace

const PluginDescriptor& httpInputDescriptor() {
  static const PluginDescriptor kDescriptor{
      .kind = PluginKind::kInput,
      .name = "http",
      .summary = "listens for POSTed records: NDJSON, a JSON array or one object",
      .options = kOptions,
      .make_input = &makeHttpInput,
  };
  return kDescriptor;
}

}  // namespace ferry
