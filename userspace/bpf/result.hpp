// Result<T>: a value or an Error carrying errno plus the context it happened in, for code at the
// libbpf/syscall boundary. No exceptions: value() on an error aborts with the message, so callers
// test ok() first (tests use EXPECT_OK-style helpers).
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

namespace sluice::bpf {

class Error {
public:
  // `code` is an errno value; negative values (libbpf's convention) are normalized, 0 becomes EIO.
  Error(int code, std::string context)
      : code_(code < 0 ? -code : (code == 0 ? EIO : code)), context_(std::move(context)) {}

  // Positive errno value.
  int code() const noexcept { return code_; }
  // What was being done, e.g. "attach sk_skb/stream_verdict to sluice_socks".
  const std::string& context() const noexcept { return context_; }
  // "context: strerror(code)", the line to log.
  std::string message() const { return context_ + ": " + std::strerror(code_); }
  // The same errno with an outer context prepended: "outer: inner".
  Error wrap(std::string_view outer) const {
    return Error(code_, std::string(outer) + ": " + context_);
  }

private:
  int code_;
  std::string context_;
};

// Error from the current errno (call right after the failing syscall or libbpf pointer API).
inline Error errnoError(std::string context) { return Error(errno, std::move(context)); }

template <typename T>
class [[nodiscard]] Result {
public:
  Result(T value) : v_(std::in_place_index<0>, std::move(value)) {} // NOLINT: implicit by design
  Result(Error error) : v_(std::in_place_index<1>, std::move(error)) {} // NOLINT

  bool ok() const noexcept { return v_.index() == 0; }
  explicit operator bool() const noexcept { return ok(); }

  T& value() & { return *checked(); }
  const T& value() const& { return *checked(); }
  T&& value() && { return std::move(*checked()); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return checked(); }
  const T* operator->() const { return checked(); }

  // Precondition: !ok().
  const Error& error() const {
    const Error* e = std::get_if<1>(&v_);
    if (e == nullptr) {
      std::fputs("sluice::bpf::Result::error() on a value\n", stderr);
      std::abort();
    }
    return *e;
  }

private:
  T* checked() const {
    const T* v = std::get_if<0>(&v_);
    if (v == nullptr) {
      std::fprintf(stderr, "sluice::bpf::Result::value() on error: %s\n",
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
  Result(Error error) : error_(std::move(error)) {} // NOLINT: implicit by design

  bool ok() const noexcept { return !error_.has_value(); }
  explicit operator bool() const noexcept { return ok(); }

  // Precondition: !ok().
  const Error& error() const {
    if (!error_) {
      std::fputs("sluice::bpf::Result<void>::error() on success\n", stderr);
      std::abort();
    }
    return *error_;
  }

private:
  std::optional<Error> error_;
};

// Success for Result<void>.
inline Result<void> success() { return {}; }

} // namespace sluice::bpf
