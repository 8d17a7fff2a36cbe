// Status and Result<T>: how every fallible sluice function reports failure.
//
// A Status is either OK or carries a code, a message, and whether retrying
// the operation could succeed. Result<T> holds a value or a non-OK Status.
// Both are [[nodiscard]] and cheap to move. They are plain values: safe to
// pass between threads, not safe to mutate from two threads at once.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>

namespace sluice {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,   // bad config or usage: fix the input, do not retry
  kDataError,         // bad input data (a row, a file): stop or reject
  kSchemaMismatch,    // destination shape does not fit the result
  kNotFound,
  kIoError,           // local I/O failure
  kUnavailable,       // connection lost, server down, 5xx, timeout: retryable
  kCancelled,         // stopped by Ctrl-C, SIGTERM or another stage's failure
  kInternal,          // a bug in sluice
};

const char* StatusCodeName(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message, bool retryable = false)
      : state_(code == StatusCode::kOk
                   ? nullptr
                   : std::make_shared<State>(State{code, std::move(message), retryable})) {}

  static Status OK() { return Status(); }
  static Status InvalidArgument(std::string m) { return {StatusCode::kInvalidArgument, std::move(m)}; }
  static Status DataError(std::string m) { return {StatusCode::kDataError, std::move(m)}; }
  static Status SchemaMismatch(std::string m) { return {StatusCode::kSchemaMismatch, std::move(m)}; }
  static Status NotFound(std::string m) { return {StatusCode::kNotFound, std::move(m)}; }
  static Status IoError(std::string m) { return {StatusCode::kIoError, std::move(m)}; }
  static Status Unavailable(std::string m) { return {StatusCode::kUnavailable, std::move(m), true}; }
  static Status Cancelled(std::string m) { return {StatusCode::kCancelled, std::move(m)}; }
  static Status Internal(std::string m) { return {StatusCode::kInternal, std::move(m)}; }

  bool ok() const { return state_ == nullptr; }
  StatusCode code() const { return state_ ? state_->code : StatusCode::kOk; }
  const std::string& message() const;
  /// Whether the same operation may succeed if tried again later.
  bool retryable() const { return state_ && state_->retryable; }
  /// A copy whose message is "context: message".
  Status WithContext(const std::string& context) const;
  std::string ToString() const;

 private:
  struct State {
    StatusCode code;
    std::string message;
    bool retryable;
  };
  std::shared_ptr<const State> state_;
};

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT: implicit by design
  /// From anything that converts to T: a factory returning
  /// Result<std::unique_ptr<Base>> may return std::make_unique<Derived>(...).
  template <typename U, typename = std::enable_if_t<!std::is_same_v<std::decay_t<U>, T> &&
                                                    !std::is_same_v<std::decay_t<U>, Status> &&
                                                    !std::is_same_v<std::decay_t<U>, Result> &&
                                                    std::is_convertible_v<U&&, T>>>
  Result(U&& value) : v_(T(std::forward<U>(value))) {}  // NOLINT: implicit by design
  /// A Result holds a value or an error. Built from an OK Status (a bug in
  /// the caller: there is no value) it holds an internal error instead, so
  /// that SLUICE_ASSIGN_OR_RETURN can never pass OK along a failed path.
  Result(Status status)  // NOLINT: implicit by design
      : v_(status.ok() ? Status::Internal("Result built from an OK Status without a value")
                       : std::move(status)) {}

  bool ok() const { return std::holds_alternative<T>(v_); }
  const Status& status() const {
    static const Status kOkStatus;
    return ok() ? kOkStatus : std::get<Status>(v_);
  }
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T ValueOr(T fallback) const& { return ok() ? value() : std::move(fallback); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace sluice

#define SLUICE_CONCAT_INNER_(a, b) a##b
#define SLUICE_CONCAT_(a, b) SLUICE_CONCAT_INNER_(a, b)

#define SLUICE_RETURN_IF_ERROR(expr)            \
  do {                                          \
    ::sluice::Status sluice_status_ = (expr);   \
    if (!sluice_status_.ok()) return sluice_status_; \
  } while (0)

#define SLUICE_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, rexpr) \
  auto tmp = (rexpr);                                  \
  if (!tmp.ok()) return tmp.status();                  \
  lhs = std::move(tmp).value()

#define SLUICE_ASSIGN_OR_RETURN(lhs, rexpr) \
  SLUICE_ASSIGN_OR_RETURN_IMPL_(SLUICE_CONCAT_(sluice_result_, __LINE__), lhs, rexpr)
