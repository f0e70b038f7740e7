// Status and StatusOr: errors as values, in the leveldb/abseil style.
//
// Every boundary (files, recipes, RPCs, user data) returns a Status whose message
// names the culprit: InvalidArgument("grpo.group_size=3: must be >= 2"). Tensor
// invariants inside the model use TORCH_CHECK instead. Status is cheap to copy when
// ok (no allocation). Not thread-safe to mutate; safe to share const.
#pragma once

#include <fmt/format.h>

#include <cassert>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace r1kit {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,     // the caller gave something malformed (a recipe key, a flag)
  kNotFound,            // a file, tensor, key or name does not exist
  kAlreadyExists,       // refusing to overwrite
  kOutOfRange,          // a value outside its allowed range
  kDataLoss,            // a file is corrupt or truncated
  kFailedPrecondition,  // the system is not in a state for this operation
  kUnimplemented,       // a feature or format this build does not support
  kResourceExhausted,   // a size or memory limit was hit
  kDeadlineExceeded,    // a timeout
  kUnavailable,         // a peer (worker, server) cannot be reached
  kUnauthenticated,     // missing or wrong credentials
  kCancelled,           // the operation was aborted
  kInternal,            // a bug: an invariant of r1kit itself was broken
};

std::string_view status_code_name(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;  // ok
  Status(StatusCode code, std::string message)
      : rep_(code == StatusCode::kOk ? nullptr
                                     : std::make_shared<Rep>(Rep{code, std::move(message)})) {}

  bool ok() const { return rep_ == nullptr; }
  StatusCode code() const { return rep_ ? rep_->code : StatusCode::kOk; }
  const std::string& message() const;
  // "INVALID_ARGUMENT: grpo.group_size=3: must be >= 2", or "OK".
  std::string to_string() const;

  // Returns a copy with "context: " put before the message (no-op when ok).
  Status with_context(std::string_view context) const;

 private:
  struct Rep {
    StatusCode code;
    std::string message;
  };
  std::shared_ptr<const Rep> rep_;
};

inline Status OkStatus() {
  return Status();
}

#define R1KIT_STATUS_FACTORY(Name)                                                   \
  inline Status Name(std::string message) {                                          \
    return Status(StatusCode::k##Name, std::move(message));                          \
  }                                                                                  \
  template <typename... Args>                                                        \
  Status Name(fmt::format_string<Args...> f, Args&&... args) {                       \
    return Status(StatusCode::k##Name, fmt::format(f, std::forward<Args>(args)...)); \
  }
R1KIT_STATUS_FACTORY(InvalidArgument)
R1KIT_STATUS_FACTORY(NotFound)
R1KIT_STATUS_FACTORY(AlreadyExists)
R1KIT_STATUS_FACTORY(OutOfRange)
R1KIT_STATUS_FACTORY(DataLoss)
R1KIT_STATUS_FACTORY(FailedPrecondition)
R1KIT_STATUS_FACTORY(Unimplemented)
R1KIT_STATUS_FACTORY(ResourceExhausted)
R1KIT_STATUS_FACTORY(DeadlineExceeded)
R1KIT_STATUS_FACTORY(Unavailable)
R1KIT_STATUS_FACTORY(Unauthenticated)
R1KIT_STATUS_FACTORY(Cancelled)
R1KIT_STATUS_FACTORY(Internal)
#undef R1KIT_STATUS_FACTORY

// Holds either a T or a non-ok Status.
template <typename T>
class [[nodiscard]] StatusOr {
 public:
  StatusOr(const Status& status) : v_(status) {  // NOLINT: implicit by design
    if (status.ok()) v_ = Internal("StatusOr constructed from an ok Status");
  }
  StatusOr(Status&& status) : v_(std::move(status)) {  // NOLINT
    if (std::get<Status>(v_).ok()) v_ = Internal("StatusOr constructed from an ok Status");
  }
  StatusOr(const T& value) : v_(value) {}        // NOLINT
  StatusOr(T&& value) : v_(std::move(value)) {}  // NOLINT
  template <typename U, typename = std::enable_if_t<std::is_constructible_v<T, U&&> &&
                                                    !std::is_same_v<std::decay_t<U>, Status> &&
                                                    !std::is_same_v<std::decay_t<U>, StatusOr<T>>>>
  StatusOr(U&& value) : v_(T(std::forward<U>(value))) {}  // NOLINT

  bool ok() const { return std::holds_alternative<T>(v_); }
  Status status() const { return ok() ? OkStatus() : std::get<Status>(v_); }

  const T& value() const& { return std::get<T>(v_); }
  T& value() & { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  const T& operator*() const& { return value(); }
  T& operator*() & { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  const T* operator->() const { return &value(); }
  T* operator->() { return &value(); }

 private:
  std::variant<Status, T> v_;
};

namespace internal {
inline Status as_status(const Status& s) {
  return s;
}
template <typename T>
Status as_status(const StatusOr<T>& s) {
  return s.status();
}
}  // namespace internal

}  // namespace r1kit

#define R1KIT_CONCAT_INNER(a, b) a##b
#define R1KIT_CONCAT(a, b) R1KIT_CONCAT_INNER(a, b)

// Returns the Status of `expr` from the enclosing function when it is not ok.
#define RETURN_IF_ERROR(expr)                                             \
  do {                                                                    \
    ::r1kit::Status _r1kit_status = ::r1kit::internal::as_status((expr)); \
    if (!_r1kit_status.ok()) return _r1kit_status;                        \
  } while (0)

// `ASSIGN_OR_RETURN(auto x, f());` binds the value or returns the error.
#define ASSIGN_OR_RETURN(lhs, expr) \
  R1KIT_ASSIGN_OR_RETURN_IMPL(R1KIT_CONCAT(_r1kit_statusor_, __LINE__), lhs, expr)
#define R1KIT_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                                \
  if (!tmp.ok()) return tmp.status();               \
  lhs = std::move(tmp).value()
