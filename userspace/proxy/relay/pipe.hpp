// splice(2) between two sockets through a pipe: no copy into userspace, exact byte counts.
// Used by the pipe and adaptive relays and for bounded HTTP bodies.
#pragma once

#include <cstddef>
#include <cstdint>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>

namespace sluice::proxy {

enum class SpliceEnd : std::uint8_t { kDone, kEof, kError };
// Called whenever bytes move; `sent` is what just left for `to` (0 when bytes only entered the
// pipe).
using SpliceProgress = void (*)(void* context, std::size_t sent);

// Moves bytes from `from` to `to` until `limit` bytes moved or `from` reaches EOF. Both sockets
// must be non-blocking. kDone: `limit` moved; kEof: EOF before it (everything read was sent).
boost::asio::awaitable<SpliceEnd> spliceLoop(boost::asio::ip::tcp::socket& from,
                                             boost::asio::ip::tcp::socket& to, std::uint64_t limit,
                                             std::size_t pipe_bytes, SpliceProgress progress,
                                             void* context);

// Moves exactly `length` bytes from `from` to `to`. The caller sets the deadline before the
// call; `progress(context, sent)` runs whenever bytes move. False on EOF before `length`, an
// error, or cancellation (the caller's watchdog cancels the sockets).
boost::asio::awaitable<bool> spliceExactly(boost::asio::ip::tcp::socket& from,
                                           boost::asio::ip::tcp::socket& to, std::uint64_t length,
                                           std::size_t pipe_bytes, SpliceProgress progress,
                                           void* context);

}  // namespace sluice::proxy
