// The `syslog` input: receives syslog messages over UDP or TCP and emits one JSON record
// per message (see syslog_parser.h for the record).
//
// UDP: one datagram is one message (RFC 5426). TCP: each connection is split into
// messages by `framing`: octet_counted ("<length> <message>", RFC 6587 3.4.1), newline
// ("<message>\n", a trailing '\r' removed, empty lines skipped) or auto (per message: a
// run of digits followed by a space starts an octet-counted frame, anything else is
// newline-terminated). At end of connection an unterminated newline message is kept; an
// incomplete octet-counted frame is dropped as bad.
// Drops, counted in ferry_dropped_records_total{reason=...}:
//   syslog_too_long     the message is longer than max_message_bytes (the rest of its
//                       frame or line is skipped; the connection stays open);
//   syslog_bad_message  no valid <PRI>, an incomplete frame at end of connection, or a bad
//                       frame header with framing octet_counted (the connection is closed).
// Bad messages are logged at most once per 10 s (with the number dropped since).
//
// Batching: messages are collected into one RecordBatch and emitted when it holds 1000
// records or 50 ms after its first record, whichever comes first. When the emitter
// answers kResourceExhausted, the batch is kept and reading stops (UDP: the kernel drops
// when its receive buffer fills; TCP: senders block) until a retry 100 ms later succeeds.
// TCP: at most max_connections are served; further clients wait in the listen backlog.
//
// Threading: start() is called on the input's thread; it binds the socket, starts one
// serving thread (a poll loop over the socket, every TCP connection and a wake-up
// eventfd) and returns. Only that thread calls the emitter, so emits never overlap.
// stop() may be called from any thread: it wakes the loop, which emits what it holds
// (once; a refusal loses it), closes every socket and ends; stop() joins it. It returns
// within 1 s unless an emit() is blocked, which the core's stop (inputs first) ends.
// Ownership: the input owns its sockets and thread; the emitter given to start() and the
// metrics registry are borrowed and must outlive stop().
// Memory: per TCP connection a buffer of at most max_message_bytes + 64 KiB; for UDP one
// buffer of min(max_message_bytes, 64 KiB) + 1; plus the batch.
#pragma once

#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "ferry/input.h"
#include "ferry/metrics.h"
#include "ferry/options.h"
#include "ferry/plugin.h"
#include "ferry/record.h"

namespace ferry {

enum class SyslogProtocol { kUdp, kTcp };
enum class SyslogFraming { kAuto, kOctetCounted, kNewline };

struct SyslogSettings {
  std::string listen = "127.0.0.1:5514";
  SyslogProtocol protocol = SyslogProtocol::kUdp;
  SyslogFraming framing = SyslogFraming::kAuto;  // TCP only
  uint64_t max_message_bytes = 64 << 10;
  unsigned max_connections = 64;  // TCP only

  // Reads the validated options; checks what the table cannot (address syntax, limits),
  // with errors naming the key's location.
  static Result<SyslogSettings> fromOptions(const Options& opts);
};

class SyslogInput final : public Input {
 public:
  SyslogInput(SyslogSettings settings, std::string instance, MetricsRegistry* metrics);
  ~SyslogInput() override;
  SyslogInput(const SyslogInput&) = delete;
  SyslogInput& operator=(const SyslogInput&) = delete;

  // Binds `listen` and starts the serving thread; returns at once. kInvalidArgument for a
  // bad address, kUnavailable (naming `listen`) when it cannot be bound,
  // kFailedPrecondition when already started.
  Status start(Emitter& emitter) override;
  void stop() override;

  // The bound address (after a successful start(); port 0 in `listen` gives the kernel's
  // choice here). Any thread.
  std::string boundAddress() const;
  uint16_t port() const;

 private:
  struct Connection;

  std::string boundAddressLocked() const;  // life_mu_ held

  void run();
  void readDatagrams();
  void acceptConnections(std::vector<std::unique_ptr<Connection>>& connections);
  bool readConnection(Connection& c);  // false: close it
  bool splitMessages(Connection& c, bool eof);
  void addMessage(std::string_view message);
  void noteBad(std::string_view why);
  void flush();

  const SyslogSettings settings_;
  const std::string instance_;
  Counter own_too_long_;  // used when no metrics registry is given
  Counter own_bad_;
  Counter* too_long_ = &own_too_long_;
  Counter* bad_ = &own_bad_;

  mutable std::mutex life_mu_;  // thread_, bound_, the fds' lifetime
  std::thread thread_;
  sockaddr_storage bound_{};
  int listen_fd_ = -1;
  int wake_fd_ = -1;
  std::atomic<bool> stop_{false};

  // Serving thread only.
  Emitter* emitter_ = nullptr;
  RecordBatch pending_;
  std::chrono::steady_clock::time_point first_pending_{};
  bool paused_ = false;  // the emitter refused pending_ (buffer full)
  std::chrono::steady_clock::time_point retry_at_{};
  std::vector<char> read_buf_;
  uint64_t bad_since_log_ = 0;
  std::chrono::steady_clock::time_point next_bad_log_{};
};

const PluginDescriptor& syslogInputDescriptor();

}  // namespace ferry
