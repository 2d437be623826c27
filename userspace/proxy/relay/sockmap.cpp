// The sockmap relay: the kernel redirects each direction's bytes to the peer socket; the agent
// only watches for FIN, reset, a held direction and duplicated bytes (bpf::SplicedPair).
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "bpf/spliced_pair.hpp"
#include "common/log.hpp"
#include "proxy/relay/relay.hpp"

namespace sluice::proxy {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);

SpliceStrategy Relay::armSockmap(std::uint64_t flow_id) {
  auto armed = datapath_->arm(client_.native_handle(), backend_.native_handle(), flow_id,
                              config_.flow_budget);
  if (armed) {
    pair_.emplace(std::move(*armed));
    return SpliceStrategy::kSockmap;
  }
  // Map full, socket closed meanwhile, or a kernel refusal: this flow is relayed by pipe.
  spliceStats().fallbacks.fetch_add(1, std::memory_order_relaxed);
  SPDLOG_LOGGER_DEBUG(log::get("splice"), "sockmap arm failed ({}): using pipe",
                      armed.error().message());
  return SpliceStrategy::kPipe;
}

bool Relay::intact() {
  if (auto checked = pair_->intact(); !checked) {
    SPDLOG_LOGGER_WARN(log::get("splice"), "{}: resetting the flow", checked.error().message());
    spliceStats().integrity.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  return true;
}

asio::awaitable<bool> Relay::waitRedirected(tcp::socket& from) {
  // Bytes the verdict redirected may still sit in the peer's psock queue; a FIN the agent sends
  // the peer must come after them.
  const auto side = &from == &client_ ? bpf::SplicedPair::kClient : bpf::SplicedPair::kBackend;
  asio::steady_timer wait(from.get_executor());
  auto step = std::chrono::microseconds(200);
  while (!failed_) {
    auto drained = pair_->drained(side);
    if (!drained) {
      co_return false;
    }
    if (*drained) {
      co_return true;
    }
    wait.expires_after(step);
    step = std::min<std::chrono::microseconds>(step * 2, std::chrono::milliseconds(20));
    auto [ec] = co_await wait.async_wait(kNoThrow);
    if (ec) {
      co_return false;
    }
  }
  co_return false;
}

asio::awaitable<bool> Relay::sockmapDirection(tcp::socket& from, tcp::socket& to, Buffer& buf) {
  // The kernel moves the bytes; the socket becomes readable only for what the verdict leaves to
  // userspace (a held direction, or bytes whose peer was gone), a FIN, or an error.
  for (;;) {
    auto [ec] = co_await from.async_wait(tcp::socket::wait_read, kNoThrow);
    if (ec) {
      co_return false;
    }
    auto space = buf.prepare();
    const ssize_t n = ::recv(from.native_handle(), space.data(), space.size(), MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
      continue;
    }
    if (n < 0) {
      co_return false;  // reset or error: fail() resets the other side
    }
    if (n == 0) {
      if (!co_await waitRedirected(from) || !intact()) {
        co_return false;
      }
      boost::system::error_code ignored;
      to.shutdown(tcp::socket::shutdown_send, ignored);
      co_return true;
    }
    // Held: the peer fell behind by the flow budget (or was gone), and the verdict parks this
    // direction's bytes on this socket, where TCP flow control stops the sender. Relaying them
    // from here is not safe on 6.18: under load the kernel's pass path delivered one skb twice
    // (about once per GiB passed; tests/bpf and docs/splice.md). A reset loses the flow but
    // never corrupts it, and memory stays bounded.
    spliceStats().held.fetch_add(1, std::memory_order_relaxed);
    SPDLOG_LOGGER_DEBUG(log::get("splice"),
                        "flow {:#x}: peer fell behind by the budget: resetting the flow", info_.id);
    co_return false;
  }
}

}  // namespace sluice::proxy
