// The copy relay: read and write through the session's buffer, the fallback that always works.
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "proxy/relay/relay.hpp"

namespace sluice::proxy {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);

asio::awaitable<Relay::CopyEnd> Relay::copyDirection(tcp::socket& from, tcp::socket& to,
                                                     Buffer& buf, bool until_streaming) {
  int full_reads = 0;
  for (;;) {
    if (!co_await writeAll(to, buf)) {
      co_return CopyEnd::kFailed;
    }
    if (until_streaming && full_reads >= kFullReadsForPipe) {
      co_return CopyEnd::kStreaming;
    }
    auto [ec, n] = co_await from.async_read_some(buf.prepare(), kNoThrow);
    if (ec == asio::error::eof) {
      // Half-close: pass the FIN on and keep the other direction running.
      boost::system::error_code ignored;
      to.shutdown(tcp::socket::shutdown_send, ignored);
      co_return CopyEnd::kDone;
    }
    if (ec) {
      co_return CopyEnd::kFailed;
    }
    buf.commit(n);
    last_activity_ = Clock::now();
    full_reads = n == buf.capacity() ? full_reads + 1 : 0;
  }
}

}  // namespace sluice::proxy
