#include "admin_client.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstring>

namespace sluice::cli {
namespace {

using Clock = std::chrono::steady_clock;

constexpr std::size_t kMaxReply = 8 << 20;  // /debug/state of a big cluster is well below this

class Socket {
public:
  explicit Socket(int fd) : fd_(fd) {}
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;
  ~Socket() {
    if (fd_ >= 0) {
      ::close(fd_);
    }
  }
  int get() const { return fd_; }

private:
  int fd_;
};

// Waits for `events` on fd until `deadline`; ETIMEDOUT when it passes.
Result<void> waitFor(int fd, short events, Clock::time_point deadline, const char* what) {
  for (;;) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) {
      return Error(ETIMEDOUT, what);
    }
    pollfd p{fd, events, 0};
    const int ready = ::poll(&p, 1, static_cast<int>(left));
    if (ready > 0) {
      return success();
    }
    if (ready < 0 && errno != EINTR) {
      return errnoError(what);
    }
  }
}

std::string lower(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

// Value of header `name` (lower case) in a raw header block, or nullopt.
std::optional<std::string> headerValue(std::string_view head, std::string_view name) {
  std::size_t pos = head.find("\r\n");
  while (pos != std::string_view::npos && pos + 2 < head.size()) {
    const std::size_t start = pos + 2;
    const std::size_t end = std::min(head.find("\r\n", start), head.size());
    const std::string_view line = head.substr(start, end - start);
    const std::size_t colon = line.find(':');
    if (colon != std::string_view::npos && lower(line.substr(0, colon)) == name) {
      std::string_view value = line.substr(colon + 1);
      while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) {
        value.remove_prefix(1);
      }
      while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) {
        value.remove_suffix(1);
      }
      return std::string(value);
    }
    pos = end < head.size() ? end : std::string_view::npos;
  }
  return std::nullopt;
}

// Decodes a complete chunked body; nullopt if it is not complete or malformed.
std::optional<std::string> dechunk(std::string_view raw) {
  std::string out;
  std::size_t pos = 0;
  for (;;) {
    const std::size_t eol = raw.find("\r\n", pos);
    if (eol == std::string_view::npos) {
      return std::nullopt;
    }
    std::size_t size = 0;
    const auto parsed = std::from_chars(raw.data() + pos, raw.data() + eol, size, 16);
    if (parsed.ec != std::errc() || parsed.ptr == raw.data() + pos) {
      return std::nullopt;
    }
    if (size == 0) {
      return out;
    }
    if (eol + 2 + size + 2 > raw.size()) {
      return std::nullopt;
    }
    out.append(raw.substr(eol + 2, size));
    pos = eol + 2 + size + 2;
  }
}

}  // namespace

Result<AdminEndpoint> parseAdminEndpoint(const std::string& text) {
  const std::size_t colon = text.rfind(':');
  if (colon == std::string::npos) {
    return Error("'" + text + "' is not ADDR:PORT");
  }
  std::string host = text.substr(0, colon);
  const std::string port_text = text.substr(colon + 1);
  unsigned port = 0;
  const auto parsed = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (port_text.empty() || parsed.ec != std::errc() ||
      parsed.ptr != port_text.data() + port_text.size() || port == 0 || port > 65535) {
    return Error("'" + text + "': port must be a number from 1 to 65535");
  }
  AdminEndpoint out;
  out.text = text;
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
    sockaddr_in6 a6{};
    a6.sin6_family = AF_INET6;
    a6.sin6_port = htons(static_cast<std::uint16_t>(port));
    if (::inet_pton(AF_INET6, host.c_str(), &a6.sin6_addr) == 1) {
      std::memcpy(&out.address, &a6, sizeof(a6));
      out.length = sizeof(a6);
      return out;
    }
  } else {
    sockaddr_in a4{};
    a4.sin_family = AF_INET;
    a4.sin_port = htons(static_cast<std::uint16_t>(port));
    if (::inet_pton(AF_INET, host.c_str(), &a4.sin_addr) == 1) {
      std::memcpy(&out.address, &a4, sizeof(a4));
      out.length = sizeof(a4);
      return out;
    }
  }
  return Error("'" + text + "': '" + host + "' is not an IPv4 address or a bracketed IPv6 address");
}

namespace {

// A non-blocking socket connected to `endpoint` before `deadline`.
Result<void> connectTo(const Socket& sock, const AdminEndpoint& endpoint,
                       Clock::time_point deadline, const std::string& what) {
  if (sock.get() < 0) {
    return errnoError(what);
  }
  if (::connect(sock.get(), reinterpret_cast<const sockaddr*>(&endpoint.address),
                endpoint.length) == 0) {
    return success();
  }
  if (errno != EINPROGRESS) {
    return errnoError(what);
  }
  SLUICE_CHECK(waitFor(sock.get(), POLLOUT, deadline, what.c_str()));
  int err = 0;
  socklen_t len = sizeof(err);
  ::getsockopt(sock.get(), SOL_SOCKET, SO_ERROR, &err, &len);
  if (err != 0) {
    return Error(err, what);
  }
  return success();
}

Result<void> sendAll(const Socket& sock, std::string_view data, Clock::time_point deadline,
                     const std::string& what) {
  std::size_t sent = 0;
  while (sent < data.size()) {
    const ssize_t n = ::send(sock.get(), data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<std::size_t>(n);
    } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
      SLUICE_CHECK(waitFor(sock.get(), POLLOUT, deadline, what.c_str()));
    } else {
      return errnoError(what);
    }
  }
  return success();
}

// What the reply's head says about its body, once the head is complete.
struct Framing {
  std::size_t body_start = 0;
  std::optional<std::size_t> content_length;
  bool chunked = false;
};

std::optional<Framing> framingOf(std::string_view raw) {
  const std::size_t end = raw.find("\r\n\r\n");
  if (end == std::string_view::npos) {
    return std::nullopt;
  }
  Framing f;
  f.body_start = end + 4;
  const std::string_view head = raw.substr(0, end);
  if (auto length = headerValue(head, "content-length")) {
    std::size_t value = 0;
    const char* end_of_value = length->data() + length->size();
    const auto parsed = std::from_chars(length->data(), end_of_value, value);
    if (parsed.ec == std::errc() && parsed.ptr == end_of_value) {
      f.content_length = value;
    }
  }
  if (auto te = headerValue(head, "transfer-encoding")) {
    f.chunked = lower(*te).find("chunked") != std::string::npos;
  }
  return f;
}

bool complete(std::string_view raw, const std::optional<Framing>& f) {
  if (!f) {
    return false;
  }
  if (f->content_length) {
    return raw.size() >= f->body_start + *f->content_length;
  }
  return f->chunked && dechunk(raw.substr(f->body_start)).has_value();
}

// Reads until the reply is complete by its framing, or the peer closes.
Result<std::string> receiveReply(const Socket& sock, Clock::time_point deadline,
                                 const std::string& what, std::optional<Framing>& framing) {
  std::string raw;
  char buf[16384];
  while (!complete(raw, framing)) {
    SLUICE_CHECK(waitFor(sock.get(), POLLIN, deadline, what.c_str()));
    const ssize_t n = ::recv(sock.get(), buf, sizeof(buf), 0);
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) {
        continue;
      }
      return errnoError(what);
    }
    if (n == 0) {
      break;
    }
    raw.append(buf, static_cast<std::size_t>(n));
    if (raw.size() > kMaxReply) {
      return Error(EMSGSIZE, what + ": reply larger than " + std::to_string(kMaxReply) + " bytes");
    }
    if (!framing) {
      framing = framingOf(raw);
    }
  }
  return raw;
}

Result<HttpReply> decodeReply(std::string_view raw, const std::optional<Framing>& framing,
                              const std::string& what) {
  if (raw.compare(0, 7, "HTTP/1.") != 0 || raw.size() < 12 || !framing) {
    return Error(EPROTO, what + ": not an HTTP/1.x reply");
  }
  HttpReply reply;
  const auto parsed = std::from_chars(raw.data() + 9, raw.data() + 12, reply.status);
  if (parsed.ec != std::errc()) {
    return Error(EPROTO, what + ": bad status line");
  }
  std::string_view body = raw.substr(framing->body_start);
  if (framing->chunked) {
    auto decoded = dechunk(body);
    if (!decoded) {
      return Error(EPROTO, what + ": truncated chunked body");
    }
    reply.body = std::move(*decoded);
    return reply;
  }
  if (framing->content_length) {
    if (body.size() < *framing->content_length) {
      return Error(EPROTO, what + ": truncated body");
    }
    body = body.substr(0, *framing->content_length);
  }
  reply.body = std::string(body);
  return reply;
}

}  // namespace

Result<HttpReply> adminGet(const AdminEndpoint& endpoint, std::string_view path,
                           std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  const std::string what = "GET http://" + endpoint.text + std::string(path);
  Socket sock(::socket(endpoint.address.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  SLUICE_CHECK(connectTo(sock, endpoint, deadline, what));
  const std::string request = "GET " + std::string(path) + " HTTP/1.1\r\nHost: " + endpoint.text +
                              "\r\nAccept: application/json\r\nUser-Agent: ingressctl\r\n"
                              "Connection: close\r\n\r\n";
  SLUICE_CHECK(sendAll(sock, request, deadline, what));
  std::optional<Framing> framing;
  SLUICE_TRY(const std::string raw, receiveReply(sock, deadline, what, framing));
  return decodeReply(raw, framing, what);
}

}  // namespace sluice::cli
