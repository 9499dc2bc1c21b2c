// The byte stream under the mqtt input: one TCP connection to the broker, optionally TLS
// (OpenSSL 3). The socket is non-blocking; every wait is a poll(2) over the socket and a
// wake-up fd, so a stop request ends a connect, handshake, read or write at once.
//
// TLS: TlsContext is built once from the input's settings (CA file or the system's CAs,
// an optional client certificate and key, TLS 1.2 or newer). The broker's certificate
// chain and its host name (or IP address) are verified unless insecure_skip_verify.
//
// Threading: a TlsContext is immutable after make() and may be shared; a BrokerStream is
// used by one thread at a time. Ownership: BrokerStream owns its socket and SSL object;
// the wake fd is borrowed.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include "agent/common/broker_uri.h"
#include "ferry/status.h"

typedef struct ssl_ctx_st SSL_CTX;
typedef struct ssl_st SSL;

namespace ferry::mqttc {

using SteadyPoint = std::chrono::steady_clock::time_point;

struct TlsFiles {
  std::string ca_file;    // empty: the system's CAs
  std::string cert_file;  // client certificate (with key_file)
  std::string key_file;
  bool insecure_skip_verify = false;
};

class TlsContext {
 public:
  // Errors name the file that cannot be loaded (kInvalidArgument / kNotFound).
  static Result<std::shared_ptr<TlsContext>> make(const TlsFiles& files);
  ~TlsContext();
  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;
  SSL_CTX* get() const { return ctx_; }
  bool verify() const { return verify_; }

 private:
  TlsContext(SSL_CTX* ctx, bool verify) : ctx_(ctx), verify_(verify) {}
  SSL_CTX* ctx_;
  bool verify_;
};

class BrokerStream {
 public:
  BrokerStream() = default;
  ~BrokerStream();
  BrokerStream(const BrokerStream&) = delete;
  BrokerStream& operator=(const BrokerStream&) = delete;

  // Resolves and connects to `address` (TLS handshake with `tls` when address.tls) before
  // `deadline`. kUnavailable naming the broker and the cause; kCancelled when `wake_fd`
  // became readable (stop).
  Status open(const BrokerAddress& address, const TlsContext* tls, int wake_fd,
              SteadyPoint deadline);

  // Reads what is available into `buf` (up to `cap` bytes), waiting until `deadline` for
  // the first byte. Returns the byte count; 0 when the deadline passed or `wake_fd` became
  // readable first; kUnavailable when the peer closed or the connection failed.
  Result<size_t> read(char* buf, size_t cap, int wake_fd, SteadyPoint deadline);

  // Writes all of `data` before `deadline` (not interrupted by the wake fd, so a DISCONNECT
  // goes out during a stop). kUnavailable on failure or timeout.
  Status writeAll(std::string_view data, SteadyPoint deadline);

  // True when read() would return at once (bytes already decrypted by TLS).
  bool pending() const;

  void close();
  bool isOpen() const { return fd_ >= 0; }
  int fd() const { return fd_; }

 private:
  // Waits for `events` on the socket (and readability of wake_fd when >= 0).
  // 1: ready; 0: deadline; -1: woken; -2: poll failed.
  int waitFor(short events, int wake_fd, SteadyPoint deadline) const;
  void quickAck() const;  // one setsockopt per read: ACK what arrived at once
  Status handshake(const BrokerAddress& address, const TlsContext& tls, int wake_fd,
                   SteadyPoint deadline);

  int fd_ = -1;
  SSL* ssl_ = nullptr;
  std::string peer_;  // "host:port" for messages
};

}  // namespace ferry::mqttc
