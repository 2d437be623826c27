// One connection on a plain TCP route: pick an endpoint of the route's cluster, connect (one retry
// on another endpoint), then hand both sockets to a Relay with the configured strategy. No byte
// is looked at; the route is fixed for the connection's life, which is what sockmap needs.
#pragma once

#include <cstdint>
#include <memory>
#include <span>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "proxy/admission.hpp"

namespace sluice::proxy {

class Worker;
struct Snapshot;

// Connects to an endpoint of `cluster` (its breakers apply), writes `first` to it, then relays
// the connection both ways until it ends. Used by TCP routes and TLS passthrough.
boost::asio::awaitable<void> relayToCluster(Worker& worker, boost::asio::ip::tcp::socket& client,
                                            std::shared_ptr<const Snapshot> snap,
                                            std::uint32_t cluster,
                                            std::span<const std::uint8_t> first);

// `slot`: the connection's place under --max-connections, held until the flow ends.
void startTcpSession(Worker& worker, boost::asio::ip::tcp::socket socket, std::uint16_t port,
                     ConnectionLimit::Slot slot);

}  // namespace sluice::proxy
