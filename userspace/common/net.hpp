// Small socket and address helpers shared by the proxy, the admin port and the relays.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "common/result.hpp"

namespace sluice::net {

struct ListenOptions {
  bool reuse_port = false;  // SO_REUSEPORT: every worker binds the same address
  int backlog = boost::asio::socket_base::max_listen_connections;
};

// Opens, binds and listens `acceptor` on `endpoint` (IPv6 listeners also accept IPv4). On an
// error the acceptor is closed and the error names the address.
Result<void> listen(boost::asio::ip::tcp::acceptor& acceptor,
                    const boost::asio::ip::tcp::endpoint& endpoint, const ListenOptions& options);

// An address as text, an IPv4-mapped IPv6 address as plain IPv4 ("::ffff:10.0.0.1" → "10.0.0.1").
std::string addressText(boost::asio::ip::address address);
// "10.0.0.1:80" or "[fd00::1]:80", IPv4-mapped addresses unmapped.
std::string endpointText(const boost::asio::ip::tcp::endpoint& endpoint);
// The remote address of a connected socket as addressText(), or "" when it is not connected.
std::string peerAddress(const boost::asio::ip::tcp::socket& socket);

// The IP addresses of this host's interfaces (getifaddrs; in a hostNetwork pod, the node's), as
// addressText(); IPv6 link-local ones without their zone. Empty if they cannot be listed.
std::vector<std::string> localAddresses();

// I/O that never waits, for a socket the reactor just reported ready: the proxy reads a request
// or writes a response in the same turn instead of queueing an operation and resuming later,
// so a buffer taken for it is back in the pool before the worker moves on.
// One recv(2): the bytes read; `ec` is asio::error::would_block when nothing is there yet and
// asio::error::eof at the end of the stream. A read that left the socket drained (TCP_INQ, which
// listen() sets) tells the reactor so (markDrained()): the next wait on it costs no system call.
std::size_t receiveNow(boost::asio::ip::tcp::socket& socket, boost::asio::mutable_buffer buffer,
                       boost::system::error_code& ec);
// One sendmsg(2) of up to 16 buffers (SIGPIPE off): the bytes the kernel took, maybe fewer than
// offered; `ec` is asio::error::would_block when it took none because the socket is full.
std::size_t sendNow(boost::asio::ip::tcp::socket& socket,
                    std::span<const boost::asio::const_buffer> buffers,
                    boost::system::error_code& ec);

// Nanoseconds on the steady clock (CLOCK_MONOTONIC, the clock bpf_ktime_get_ns reads).
inline std::int64_t monotonicNs(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}
inline std::int64_t monotonicNs() {
  return monotonicNs(std::chrono::steady_clock::now());
}

}  // namespace sluice::net
