// Error vocabulary shared by every module.
//
// A Status is a code plus a message. The code says what the caller may do next:
// retry later (retryable() == true), give up on this item, or stop. Modules never
// throw across their boundaries; adapters that call throwing libraries (yaml-cpp,
// Paho) catch and convert to Status in the adapter itself.
//
// Thread-safety: value types, no shared state.
#pragma once

#include <cassert>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace ferry {

enum class StatusCode : int {
  kOk = 0,
  kInvalidArgument,     // bad config, bad input; never retry the same request
  kNotFound,            // missing file, unknown plugin
  kAlreadyExists,
  kPermissionDenied,    // e.g. secret file readable by others
  kFailedPrecondition,  // the system is not in a state to do this
  kUnavailable,         // transient: peer down, buffer full; retry later
  kResourceExhausted,   // transient: quota reached; retry later or shed load
  kDeadlineExceeded,    // transient: timed out
  kCancelled,           // shutdown in progress
  kCorruption,          // stored data failed a check; data may be lost
  kIoError,             // OS-level I/O failure
  kInternal,            // broken invariant
};

std::string_view statusCodeName(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status ok() { return Status(); }

  bool isOk() const { return code_ == StatusCode::kOk; }
  explicit operator bool() const { return isOk(); }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }

  // True when the same operation may succeed if tried again later.
  bool retryable() const {
    return code_ == StatusCode::kUnavailable || code_ == StatusCode::kResourceExhausted ||
           code_ == StatusCode::kDeadlineExceeded;
  }
  // True when the failure means stored data was damaged or lost.
  bool dataLoss() const { return code_ == StatusCode::kCorruption; }

  // "code: message", for logs and CLI output.
  std::string toString() const;

  // Returns a copy whose message is prefixed with `context + ": "`.
  Status withContext(std::string_view context) const;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

inline Status invalidArgument(std::string m) { return {StatusCode::kInvalidArgument, std::move(m)}; }
inline Status notFound(std::string m) { return {StatusCode::kNotFound, std::move(m)}; }
inline Status ioError(std::string m) { return {StatusCode::kIoError, std::move(m)}; }
inline Status unavailable(std::string m) { return {StatusCode::kUnavailable, std::move(m)}; }
inline Status internalError(std::string m) { return {StatusCode::kInternal, std::move(m)}; }
inline Status cancelled(std::string m) { return {StatusCode::kCancelled, std::move(m)}; }
inline Status corruption(std::string m) { return {StatusCode::kCorruption, std::move(m)}; }
inline Status permissionDenied(std::string m) {
  return {StatusCode::kPermissionDenied, std::move(m)};
}
inline Status resourceExhausted(std::string m) {
  return {StatusCode::kResourceExhausted, std::move(m)};
}

// Builds an I/O error from errno: "<what>: <strerror(errno)>".
Status errnoStatus(std::string_view what, int err);

// Either a value or a non-OK Status.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status) : v_(std::move(status)) {  // NOLINT
    assert(!std::get<Status>(v_).isOk() && "Result built from an OK Status");
  }

  bool isOk() const { return std::holds_alternative<T>(v_); }
  explicit operator bool() const { return isOk(); }

  const Status& status() const {
    static const Status kOk;
    return isOk() ? kOk : std::get<Status>(v_);
  }
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace ferry

// Returns early from the enclosing function when `expr` is not OK.
#define FERRY_RETURN_IF_ERROR(expr)           \
  do {                                        \
    ::ferry::Status ferry_status_ = (expr);   \
    if (!ferry_status_.isOk()) return ferry_status_; \
  } while (0)
