// Result<T>: a value or an Error. The one error convention of the control plane, the Kubernetes
// client, the loaders and the CLI (STYLE.md rule 3); the HTTP parser's ParseResult is the one
// documented hot-path exception. No exceptions: value() on an error aborts with the message, so
// callers test ok() first (tests use EXPECT_OK-style helpers).
//
// An Error is either a failed system or library call (an errno value plus what was being done:
// "attach xdp to eth0: Operation not permitted") or anything else (bad input, a protocol
// violation), whose text says everything ("--listen-http: port out of range").
#pragma once

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace sluice {

class Error {
public:
  // A failed call: `code` is an errno value; negative values (libbpf's convention) are
  // normalised, 0 becomes EIO.
  Error(int code, std::string context)
      : code_(code < 0 ? -code : (code == 0 ? EIO : code)), context_(std::move(context)) {}
  // Anything that is not a system error: `what` is the whole message, and code() is 0.
  explicit Error(std::string what) : code_(0), context_(std::move(what)) {}

  // Positive errno value, or 0 when this is not a system error.
  int code() const noexcept { return code_; }
  // What was being done ("attach sk_skb/stream_verdict to sluice_socks"), or the whole message.
  const std::string& context() const noexcept { return context_; }
  // The line to log: "context: strerror(code)", or the message itself.
  std::string message() const {
    return code_ == 0 ? context_ : context_ + ": " + std::strerror(code_);
  }
  // The same error with an outer context prepended: "outer: inner".
  Error wrap(std::string_view outer) const {
    Error e = *this;
    e.context_ = std::string(outer) + ": " + context_;
    return e;
  }

private:
  int code_;
  std::string context_;
};

// Error from the current errno (call right after the failing syscall or libbpf pointer API).
inline Error errnoError(std::string context) {
  return Error(errno, std::move(context));
}

template <typename T>
class [[nodiscard]] Result {
public:
  Result(T value) : v_(std::in_place_index<0>, std::move(value)) {}  // NOLINT: implicit by design
  Result(Error error) : v_(std::in_place_index<1>, std::move(error)) {}  // NOLINT

  bool ok() const noexcept { return v_.index() == 0; }
  explicit operator bool() const noexcept { return ok(); }

  T& value() & { return *checked(); }
  const T& value() const& { return *checked(); }
  T&& value() && { return std::move(*checked()); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*checked()); }
  T* operator->() { return checked(); }
  const T* operator->() const { return checked(); }
  // The value, or `fallback` on an error.
  T valueOr(T fallback) const& { return ok() ? *checked() : std::move(fallback); }

  // Precondition: !ok().
  const Error& error() const {
    const Error* e = std::get_if<1>(&v_);
    if (e == nullptr) {
      std::fputs("sluice::Result::error() on a value\n", stderr);
      std::abort();
    }
    return *e;
  }

private:
  T* checked() const {
    const T* v = std::get_if<0>(&v_);
    if (v == nullptr) {
      std::fprintf(stderr, "sluice::Result::value() on error: %s\n",
                   std::get<1>(v_).message().c_str());
      std::abort();
    }
    return const_cast<T*>(v);
  }

  std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
public:
  Result() = default;
  Result(Error error) : error_(std::move(error)) {}  // NOLINT: implicit by design

  bool ok() const noexcept { return !error_.has_value(); }
  explicit operator bool() const noexcept { return ok(); }

  // Precondition: !ok().
  const Error& error() const {
    if (!error_) {
      std::fputs("sluice::Result<void>::error() on success\n", stderr);
      std::abort();
    }
    return *error_;
  }

private:
  std::optional<Error> error_;
};

// Success for Result<void>.
inline Result<void> success() {
  return {};
}

}  // namespace sluice

// Inside a function returning a Result: evaluates `expr` (a Result<T>); on an error returns that
// error from the enclosing function, otherwise declares `lhs` from the value:
//   SLUICE_TRY(const std::string server, scalar(cluster, "server", where));
#define SLUICE_TRY(lhs, expr) SLUICE_TRY_IMPL_(SLUICE_TRY_NAME_(sluice_try_, __LINE__), lhs, expr)
// The same for a Result<void>: returns its error, if any.
#define SLUICE_CHECK(expr)                           \
  do {                                               \
    if (auto sluice_check_ = (expr); !sluice_check_) \
      return sluice_check_.error();                  \
  } while (false)
#define SLUICE_TRY_NAME_(a, b) SLUICE_TRY_CAT_(a, b)
#define SLUICE_TRY_CAT_(a, b) a##b
#define SLUICE_TRY_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                     \
  if (!tmp) {                            \
    return tmp.error();                  \
  }                                      \
  lhs = std::move(*tmp)
