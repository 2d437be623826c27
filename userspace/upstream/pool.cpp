#include "upstream/pool.hpp"

#include <sys/socket.h>

#include <cerrno>

namespace sluice::upstream {
namespace {

// Below this idle time we trust the connection and rely on the request retry instead of paying
// a syscall per request; upstream keep-alive timeouts are seconds, not milliseconds.
constexpr auto kProbeAfter = std::chrono::milliseconds(500);

bool stillOpen(Connection& conn) {
  char byte;
  ssize_t n = ::recv(conn.socket.native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  // EAGAIN: open and quiet. 0: the upstream closed. Data: an unsolicited response — unusable.
  return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

}  // namespace

ConnectionPtr Pool::acquire(std::uint32_t endpoint_id, Clock::time_point now) {
  auto it = idle_.find(endpoint_id);
  if (it == idle_.end()) {
    return nullptr;
  }
  auto& stack = it->second;
  while (!stack.empty()) {
    ConnectionPtr conn = std::move(stack.back());
    stack.pop_back();
    if ((now - conn->idle_since < kProbeAfter && !conn->probe_before_reuse) || stillOpen(*conn)) {
      return conn;
    }
    boost::system::error_code ignored;
    conn->socket.close(ignored);
  }
  return nullptr;
}

void Pool::release(ConnectionPtr conn, Clock::time_point now) {
  auto& stack = idle_[conn->endpoint_id];
  if (stack.size() >= max_idle_) {
    boost::system::error_code ignored;
    conn->socket.close(ignored);
    return;
  }
  conn->idle_since = now;
  conn->buffer.clear();
  stack.push_back(std::move(conn));
}

std::size_t Pool::sweep(Clock::time_point now, Clock::duration idle_timeout) {
  std::size_t closed = 0;
  for (auto it = idle_.begin(); it != idle_.end();) {
    auto& stack = it->second;
    std::erase_if(stack, [&](ConnectionPtr& conn) {
      if (now - conn->idle_since < idle_timeout) {
        return false;
      }
      boost::system::error_code ignored;
      conn->socket.close(ignored);
      ++closed;
      return true;
    });
    it = stack.empty() ? idle_.erase(it) : std::next(it);
  }
  return closed;
}

void Pool::clear() {
  for (auto& [id, stack] : idle_) {
    for (auto& conn : stack) {
      boost::system::error_code ignored;
      conn->socket.close(ignored);
    }
  }
  idle_.clear();
}

std::size_t Pool::idleCount() const {
  std::size_t n = 0;
  for (const auto& [id, stack] : idle_) {
    n += stack.size();
  }
  return n;
}

}  // namespace sluice::upstream
