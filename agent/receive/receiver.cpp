#include "agent/receive/receiver.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstdarg>
#include <charconv>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <mutex>

#include "agent/codec/envelope.h"
#include "agent/common/listen_address.h"
#include "agent/codec/wire_compress.h"
#include "ferry/log.h"

namespace ferry {
namespace {

constexpr std::string_view kEnvelopeType = "application/vnd.ferry.envelope";
constexpr const char* kRetryAfterSeconds = "5";

// One HTTP answer.
struct Reply {
  unsigned code = 200;
  std::string body;
  std::string content_type = "text/plain; charset=utf-8";
  bool retry_after = false;
};

Reply textReply(unsigned code, std::string text) {
  Reply r;
  r.code = code;
  r.body = std::move(text);
  r.body += '\n';
  return r;
}

// State of one request while its body arrives.
struct Request {
  std::string body;
  bool too_large = false;
};

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool parseU64(std::string_view s, uint64_t* out) {
  s = trim(s);
  if (s.empty()) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && p == s.data() + s.size();
}

// A name that becomes one path component: not empty, not "." or "..", no '/' or NUL, no
// control characters, and short enough for a file name.
bool safeName(std::string_view s) {
  if (s.empty() || s == "." || s == ".." || s.size() > 200) return false;
  for (char c : s) {
    if (c == '/' || static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return false;
  }
  return true;
}

// fsync of a directory, so that a rename or a new entry in it survives a crash.
Status syncDir(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return errnoStatus("open " + dir, errno);
  int rc = ::fsync(fd);
  int err = errno;
  ::close(fd);
  if (rc != 0) return errnoStatus("fsync " + dir, err);
  return Status::ok();
}

// mkdir that tolerates an existing directory; a newly made one is made durable in its parent.
Status ensureDir(const std::string& parent, const std::string& dir, bool fsync) {
  if (::mkdir(dir.c_str(), 0755) == 0) {
    if (fsync) return syncDir(parent);
    return Status::ok();
  }
  if (errno == EEXIST) return Status::ok();
  return errnoStatus("mkdir " + dir, errno);
}

bool isNoSpace(int err) { return err == ENOSPC || err == EDQUOT; }

struct WriteError {
  Status status;
  bool no_space = false;
};

// libmicrohttpd's own complaints (bind failures, broken connections) go to our log.
void mhdLog(void* /*cls*/, const char* fmt, va_list ap) {
  char buf[512];
  std::vsnprintf(buf, sizeof(buf), fmt, ap);
  std::string_view line(buf);
  while (!line.empty() && line.back() == '\n') line.remove_suffix(1);
  logAt(LogLevel::kWarn, "receive", "libmicrohttpd: ", line);
}

}  // namespace

struct Receiver::Impl {
  MHD_Daemon* daemon = nullptr;
  std::string out_dir;
  std::vector<KeyMaterial> keys;
  ReceiverOptions options;
  sockaddr_storage bound{};
  std::atomic<uint64_t> temp_counter{0};

  std::atomic<uint64_t> batches{0};
  std::atomic<uint64_t> records{0};
  std::atomic<uint64_t> bytes{0};
  std::atomic<uint64_t> duplicates{0};
  std::atomic<uint64_t> rejected{0};
  std::atomic<uint64_t> unavailable{0};
  std::atomic<uint64_t> errors{0};

  static MHD_Result onRequest(void* cls, MHD_Connection* conn, const char* url, const char* method,
                              const char* version, const char* upload_data, size_t* upload_data_size,
                              void** con_cls);
  static void onCompleted(void* cls, MHD_Connection* conn, void** con_cls,
                          MHD_RequestTerminationCode toe);

  Reply handleBatch(MHD_Connection* conn, const std::string& body);
  // Writes `ndjson` as the batch file; sets *duplicate when it already existed.
  WriteError writeBatch(const std::string& agent, const std::string& output, uint64_t first_seq,
                        const std::string& ndjson, bool* duplicate);
  Reply count(Reply r) {
    if (r.code == 503) {
      unavailable.fetch_add(1);
    } else if (r.code >= 500) {
      errors.fetch_add(1);
    } else if (r.code >= 400) {
      rejected.fetch_add(1);
    }
    return r;
  }
};

namespace {

MHD_Result sendReply(MHD_Connection* conn, const Reply& r) {
  MHD_Response* resp = MHD_create_response_from_buffer(r.body.size(), const_cast<char*>(r.body.data()),
                                                       MHD_RESPMEM_MUST_COPY);
  if (resp == nullptr) return MHD_NO;
  MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, r.content_type.c_str());
  if (r.retry_after) MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, kRetryAfterSeconds);
  MHD_Result rc = MHD_queue_response(conn, r.code, resp);
  MHD_destroy_response(resp);
  return rc;
}

std::string_view header(MHD_Connection* conn, const char* name) {
  const char* v = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, name);
  return v == nullptr ? std::string_view() : std::string_view(v);
}

}  // namespace

MHD_Result Receiver::Impl::onRequest(void* cls, MHD_Connection* conn, const char* url, const char* method,
                                     const char* /*version*/, const char* upload_data,
                                     size_t* upload_data_size, void** con_cls) {
  auto* self = static_cast<Impl*>(cls);
  const std::string_view m(method);
  const bool is_upload = m == MHD_HTTP_METHOD_POST || m == MHD_HTTP_METHOD_PUT;
  if (*con_cls == nullptr) {
    if (!is_upload) {
      if ((m == MHD_HTTP_METHOD_GET || m == MHD_HTTP_METHOD_HEAD) && std::string_view(url) == "/healthz") {
        return sendReply(conn, textReply(200, "ok"));
      }
      if (m == MHD_HTTP_METHOD_GET || m == MHD_HTTP_METHOD_HEAD) {
        return sendReply(conn, self->count(textReply(404, "not found (POST batches to any path; GET /healthz)")));
      }
      return sendReply(conn, self->count(textReply(405, "method not allowed: POST or PUT a batch")));
    }
    // Refuse a declared oversized body before reading it.
    uint64_t declared = 0;
    std::string_view cl = header(conn, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (!cl.empty() && parseU64(cl, &declared) && declared > self->options.max_body) {
      return sendReply(conn, self->count(textReply(413, "body of " + std::to_string(declared) +
                                                             " bytes is larger than the limit of " +
                                                             std::to_string(self->options.max_body))));
    }
    *con_cls = new Request();
    return MHD_YES;
  }
  auto* req = static_cast<Request*>(*con_cls);
  if (*upload_data_size > 0) {
    if (!req->too_large) {
      if (req->body.size() + *upload_data_size > self->options.max_body) {
        req->too_large = true;
        req->body.clear();
        req->body.shrink_to_fit();
      } else {
        req->body.append(upload_data, *upload_data_size);
      }
    }
    *upload_data_size = 0;
    return MHD_YES;
  }
  if (req->too_large) {
    return sendReply(conn, self->count(textReply(413, "body larger than the limit of " +
                                                          std::to_string(self->options.max_body) + " bytes")));
  }
  Reply r = self->count(self->handleBatch(conn, req->body));
  return sendReply(conn, r);
}

void Receiver::Impl::onCompleted(void* /*cls*/, MHD_Connection* /*conn*/, void** con_cls,
                                 MHD_RequestTerminationCode /*toe*/) {
  delete static_cast<Request*>(*con_cls);
  *con_cls = nullptr;
}

Reply Receiver::Impl::handleBatch(MHD_Connection* conn, const std::string& body) {
  std::string_view key = trim(header(conn, "Idempotency-Key"));
  if (key.empty()) {
    return textReply(400, "missing Idempotency-Key header (expected <agent>/<output>/<first-seq>)");
  }
  size_t a = key.find('/');
  size_t b = a == std::string_view::npos ? a : key.find('/', a + 1);
  if (b == std::string_view::npos || key.find('/', b + 1) != std::string_view::npos) {
    return textReply(400, "bad Idempotency-Key \"" + std::string(key) +
                              "\": expected <agent>/<output>/<first-seq>");
  }
  const std::string agent(key.substr(0, a));
  const std::string output(key.substr(a + 1, b - a - 1));
  uint64_t first_seq = 0;
  if (!safeName(agent) || !safeName(output)) {
    return textReply(400, "bad Idempotency-Key \"" + std::string(key) +
                              "\": agent and output must be non-empty names without '/', "
                              "control characters, '.' or '..'");
  }
  if (!parseU64(key.substr(b + 1), &first_seq)) {
    return textReply(400, "bad Idempotency-Key \"" + std::string(key) + "\": first seq is not a number");
  }
  std::string_view header_seq = header(conn, "Ferry-First-Seq");
  uint64_t hs = 0;
  if (!header_seq.empty() && (!parseU64(header_seq, &hs) || hs != first_seq)) {
    return textReply(400, "Ferry-First-Seq " + std::string(header_seq) +
                              " does not match the Idempotency-Key's " + std::to_string(first_seq));
  }

  WireEncoding encoding = WireEncoding::kIdentity;
  std::string_view ce = trim(header(conn, MHD_HTTP_HEADER_CONTENT_ENCODING));
  if (!parseWireEncoding(ce, &encoding)) {
    return textReply(400, "unsupported Content-Encoding \"" + std::string(ce) + "\" (zstd, gzip or identity)");
  }
  std::string decoded;
  Status st = decompressWire(encoding, body, &decoded, options.max_body);
  if (!st.isOk()) {
    if (st.code() == StatusCode::kInvalidArgument) return textReply(413, st.message());
    return textReply(400, "body does not decode as " + std::string(wireEncodingName(encoding)) + ": " +
                              st.message());
  }

  std::string ndjson;
  std::string_view ct = header(conn, MHD_HTTP_HEADER_CONTENT_TYPE);
  ct = trim(ct.substr(0, ct.find(';')));
  if (ct == kEnvelopeType) {
    auto opened = openEnvelope(decoded, keys, /*require_encryption=*/!keys.empty(), options.max_body);
    if (!opened.isOk()) {
      if (opened.status().code() == StatusCode::kInvalidArgument) {
        return textReply(413, opened.status().message());
      }
      if (opened.status().code() == StatusCode::kNotFound) {
        // Sealed with a key this receiver was not given: its configuration (or a key
        // rotation) is behind, not the batch. 503 keeps the batch with the sender.
        logError("receive", "envelope from ", agent, " refused: ", opened.status().message(),
                 "; answering 503 until the key is given (--key)");
        Reply r = textReply(503, "envelope key not available here: " + opened.status().message());
        r.retry_after = true;
        return r;
      }
      return textReply(400, "envelope refused: " + opened.status().message());
    }
    if (opened->info.first_seq != first_seq) {
      return textReply(400, "envelope first seq " + std::to_string(opened->info.first_seq) +
                                " does not match the Idempotency-Key's " + std::to_string(first_seq));
    }
    if (opened->info.agent != agent) {
      return textReply(400, "envelope agent \"" + opened->info.agent +
                                "\" does not match the Idempotency-Key's \"" + agent + "\"");
    }
    ndjson = std::move(opened->ndjson);
  } else {
    ndjson = std::move(decoded);
    if (!ndjson.empty() && ndjson.back() != '\n') ndjson.push_back('\n');
  }
  // Records are JSON objects, one a line. A full parse is the upstream's business; this
  // catches bodies that are not NDJSON at all (binary, a JSON array, blank lines).
  uint64_t n = 0;
  for (size_t pos = 0; pos < ndjson.size();) {
    size_t end = ndjson.find('\n', pos);
    std::string_view line = std::string_view(ndjson).substr(pos, end - pos);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    ++n;
    if (line.size() < 2 || line.front() != '{' || line.back() != '}' ||
        line.find('\0') != std::string_view::npos) {
      return textReply(400, "record " + std::to_string(n) + " of the body is not a JSON object on one line");
    }
    pos = end + 1;
  }
  std::string_view header_count = header(conn, "Ferry-Count");
  uint64_t hc = 0;
  if (!header_count.empty() && (!parseU64(header_count, &hc) || hc != n)) {
    return textReply(400, "Ferry-Count " + std::string(header_count) + " but the body holds " +
                              std::to_string(n) + " records");
  }

  bool duplicate = false;
  WriteError we = writeBatch(agent, output, first_seq, ndjson, &duplicate);
  if (!we.status.isOk()) {
    if (we.no_space) {
      Reply r = textReply(503, "no space: " + we.status.message());
      r.retry_after = true;
      return r;
    }
    logAt(LogLevel::kError, "receive", "cannot write batch ", key, ": ", we.status.toString());
    return textReply(500, "cannot store the batch: " + we.status.message());
  }
  if (duplicate) {
    duplicates.fetch_add(1);
  } else {
    batches.fetch_add(1);
    records.fetch_add(n);
    bytes.fetch_add(ndjson.size());
  }
  Reply r;
  r.content_type = "application/json";
  r.body = "{\"accepted\":" + std::to_string(n) + ",\"duplicate\":" + (duplicate ? "true" : "false") + "}\n";
  return r;
}

WriteError Receiver::Impl::writeBatch(const std::string& agent, const std::string& output, uint64_t first_seq,
                                      const std::string& ndjson, bool* duplicate) {
  const std::string agent_dir = out_dir + "/" + agent;
  const std::string dir = agent_dir + "/" + output;
  char name[32];
  std::snprintf(name, sizeof(name), "%020" PRIu64 ".ndjson", first_seq);
  const std::string final_path = dir + "/" + name;

  struct stat sb{};
  if (::stat(final_path.c_str(), &sb) == 0) {
    *duplicate = true;
    return {};
  }
  struct statvfs vfs{};
  if (::statvfs(out_dir.c_str(), &vfs) != 0) return {errnoStatus("statvfs " + out_dir, errno), false};
  const uint64_t free_bytes = static_cast<uint64_t>(vfs.f_bavail) * vfs.f_frsize;
  if (free_bytes < options.min_free) {
    return {resourceExhausted(std::to_string(free_bytes) + " bytes free in " + out_dir + ", below --min-free " +
                              std::to_string(options.min_free)),
            true};
  }
  auto mkdirs = [&]() -> WriteError {
    Status s = ensureDir(out_dir, agent_dir, options.fsync);
    if (s.isOk()) s = ensureDir(agent_dir, dir, options.fsync);
    return {s, false};
  };
  if (WriteError e = mkdirs(); !e.status.isOk()) return e;

  const std::string tmp = dir + "/." + name + ".tmp." + std::to_string(::getpid()) + "." +
                          std::to_string(temp_counter.fetch_add(1));
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) {
    int err = errno;
    return {errnoStatus("create " + tmp, err), isNoSpace(err)};
  }
  auto fail = [&](const std::string& what, int err) -> WriteError {
    ::close(fd);
    ::unlink(tmp.c_str());
    return {errnoStatus(what + " " + tmp, err), isNoSpace(err)};
  };
  size_t off = 0;
  while (off < ndjson.size()) {
    ssize_t w = ::write(fd, ndjson.data() + off, ndjson.size() - off);
    if (w < 0) {
      if (errno == EINTR) continue;
      return fail("write", errno);
    }
    off += static_cast<size_t>(w);
  }
  if (options.fsync && ::fsync(fd) != 0) return fail("fsync", errno);
  if (::close(fd) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    return {errnoStatus("close " + tmp, err), isNoSpace(err)};
  }
  // No-overwrite move: of two concurrent requests with the same key exactly one wins, and
  // the other sees EEXIST and answers "duplicate".
  if (::renameat2(AT_FDCWD, tmp.c_str(), AT_FDCWD, final_path.c_str(), RENAME_NOREPLACE) != 0) {
    int err = errno;
    if (err == EINVAL || err == ENOSYS) {
      // A filesystem without RENAME_NOREPLACE: link() also refuses to replace.
      err = ::link(tmp.c_str(), final_path.c_str()) == 0 ? 0 : errno;
      ::unlink(tmp.c_str());
      if (err == 0) return {options.fsync ? syncDir(dir) : Status::ok(), false};
    } else {
      ::unlink(tmp.c_str());
    }
    if (err == EEXIST) {
      *duplicate = true;
      return {};
    }
    return {errnoStatus("rename to " + final_path, err), isNoSpace(err)};
  }
  if (options.fsync) return {syncDir(dir), false};
  return {};
}

Receiver::Receiver() : impl_(std::make_unique<Impl>()) {}

Receiver::~Receiver() { stop(); }

Status Receiver::start(const std::string& listen, const std::string& out_dir, std::vector<KeyMaterial> keys,
                       const ReceiverOptions& options) {
  if (impl_->daemon != nullptr) return {StatusCode::kFailedPrecondition, "receiver already started"};
  if (out_dir.empty()) return invalidArgument("--out DIR is required");
  if (options.max_body == 0) return invalidArgument("max body must be > 0");
  sockaddr_storage addr_storage{};
  socklen_t addr_len = 0;
  Status parsed = parseListenAddress(listen, &addr_storage, &addr_len);
  if (!parsed.isOk()) return invalidArgument("--listen: " + parsed.message());
  const sockaddr_storage* addr = &addr_storage;
  if (::mkdir(out_dir.c_str(), 0755) != 0 && errno != EEXIST) return errnoStatus("mkdir " + out_dir, errno);
  struct stat sb{};
  if (::stat(out_dir.c_str(), &sb) != 0 || !S_ISDIR(sb.st_mode)) {
    return ioError(out_dir + " is not a directory");
  }
  impl_->out_dir = out_dir;
  while (impl_->out_dir.size() > 1 && impl_->out_dir.back() == '/') impl_->out_dir.pop_back();
  impl_->keys = std::move(keys);
  impl_->options = options;

  unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;
  if (addr->ss_family == AF_INET6) flags |= MHD_USE_IPv6;
  impl_->daemon = MHD_start_daemon(
      flags, 0, nullptr, nullptr, &Impl::onRequest, impl_.get(),
      MHD_OPTION_EXTERNAL_LOGGER, &mhdLog, nullptr,  // first, so that it sees every message
      MHD_OPTION_SOCK_ADDR, reinterpret_cast<const sockaddr*>(addr),
      MHD_OPTION_CONNECTION_LIMIT, static_cast<unsigned>(options.max_connections),
      MHD_OPTION_CONNECTION_TIMEOUT, static_cast<unsigned>(options.connection_timeout_s),
      MHD_OPTION_NOTIFY_COMPLETED, &Impl::onCompleted, impl_.get(),
      MHD_OPTION_END);
  if (impl_->daemon == nullptr) {
    return ioError("cannot listen on " + listen + " (address in use, or not permitted)");
  }
  const MHD_DaemonInfo* info = MHD_get_daemon_info(impl_->daemon, MHD_DAEMON_INFO_LISTEN_FD);
  socklen_t len = sizeof(impl_->bound);
  if (info == nullptr ||
      ::getsockname(info->listen_fd, reinterpret_cast<sockaddr*>(&impl_->bound), &len) != 0) {
    impl_->bound = *addr;
  }
  return Status::ok();
}

void Receiver::stop() {
  if (impl_->daemon != nullptr) {
    MHD_stop_daemon(impl_->daemon);
    impl_->daemon = nullptr;
  }
}

std::string Receiver::boundAddress() const { return describeAddress(reinterpret_cast<const sockaddr*>(&impl_->bound)); }

uint16_t Receiver::port() const {
  if (impl_->bound.ss_family == AF_INET6) {
    return ntohs(reinterpret_cast<const sockaddr_in6*>(&impl_->bound)->sin6_port);
  }
  return ntohs(reinterpret_cast<const sockaddr_in*>(&impl_->bound)->sin_port);
}

ReceiverStats Receiver::stats() const {
  ReceiverStats s;
  s.batches = impl_->batches.load();
  s.records = impl_->records.load();
  s.bytes = impl_->bytes.load();
  s.duplicates = impl_->duplicates.load();
  s.rejected = impl_->rejected.load();
  s.unavailable = impl_->unavailable.load();
  s.errors = impl_->errors.load();
  return s;
}

}  // namespace ferry
