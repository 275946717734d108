// engine/base/ owns what every other engine folder stands on: Status and StatusOr<T> (this file, the
// one error convention of lanlm, STYLE.md; codes mirror gRPC's so services convert them in one place;
// broken invariants use LANLM_CHECK, check.h), the thread pool, hashes and checksums, UTF-8, random.
#pragma once

#include <optional>
#include <string>
#include <utility>

#include "engine/base/check.h"

namespace lanlm {

enum class StatusCode : int {
  kOk = 0,
  kCancelled = 1,
  kUnknown = 2,
  kInvalidArgument = 3,
  kDeadlineExceeded = 4,
  kNotFound = 5,
  kAlreadyExists = 6,
  kPermissionDenied = 7,
  kResourceExhausted = 8,
  kFailedPrecondition = 9,
  kAborted = 10,
  kOutOfRange = 11,
  kUnimplemented = 12,
  kInternal = 13,
  kUnavailable = 14,
  kDataLoss = 15,
  kUnauthenticated = 16,
};

const char* StatusCodeName(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // "INVALID_ARGUMENT: top_p = 1.5 is outside (0, 1]"
  std::string ToString() const;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

inline Status OkStatus() { return Status(); }
inline Status InvalidArgumentError(std::string m) { return {StatusCode::kInvalidArgument, std::move(m)}; }
inline Status NotFoundError(std::string m) { return {StatusCode::kNotFound, std::move(m)}; }
inline Status OutOfRangeError(std::string m) { return {StatusCode::kOutOfRange, std::move(m)}; }
inline Status ResourceExhaustedError(std::string m) { return {StatusCode::kResourceExhausted, std::move(m)}; }
inline Status FailedPreconditionError(std::string m) { return {StatusCode::kFailedPrecondition, std::move(m)}; }
inline Status DataLossError(std::string m) { return {StatusCode::kDataLoss, std::move(m)}; }
inline Status InternalError(std::string m) { return {StatusCode::kInternal, std::move(m)}; }
inline Status UnavailableError(std::string m) { return {StatusCode::kUnavailable, std::move(m)}; }
inline Status AbortedError(std::string m) { return {StatusCode::kAborted, std::move(m)}; }
inline Status CancelledError(std::string m) { return {StatusCode::kCancelled, std::move(m)}; }
inline Status UnauthenticatedError(std::string m) { return {StatusCode::kUnauthenticated, std::move(m)}; }

// Holds either a value or a non-OK Status.
template <typename T>
class [[nodiscard]] StatusOr {
 public:
  StatusOr(const T& value) : value_(value) {}
  StatusOr(T&& value) : value_(std::move(value)) {}
  StatusOr(Status status) : status_(std::move(status)) {
    LANLM_CHECK(!status_.ok(), "StatusOr built from an OK status without a value");
  }

  bool ok() const { return status_.ok(); }
  const Status& status() const { return status_; }
  T& value() & { LANLM_CHECK(ok(), status_.ToString()); return *value_; }
  const T& value() const& { LANLM_CHECK(ok(), status_.ToString()); return *value_; }
  T&& value() && { LANLM_CHECK(ok(), status_.ToString()); return std::move(*value_); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

 private:
  Status status_;
  std::optional<T> value_;
};

}  // namespace lanlm

// Returns early from the enclosing function when `expr` yields a non-OK Status.
#define LANLM_RETURN_IF_ERROR(expr)            \
  do {                                         \
    ::lanlm::Status lanlm_status_ = (expr);    \
    if (!lanlm_status_.ok()) return lanlm_status_; \
  } while (0)

#define LANLM_CONCAT_INNER_(a, b) a##b
#define LANLM_CONCAT_(a, b) LANLM_CONCAT_INNER_(a, b)
// LANLM_ASSIGN_OR_RETURN(auto x, Foo());  declares x from a StatusOr or returns its error.
#define LANLM_ASSIGN_OR_RETURN(lhs, expr) \
  LANLM_ASSIGN_OR_RETURN_IMPL_(LANLM_CONCAT_(lanlm_statusor_, __LINE__), lhs, expr)
#define LANLM_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                 \
  if (!tmp.ok()) return tmp.status();                \
  lhs = std::move(tmp).value()
