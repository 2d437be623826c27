// A worker: one thread, one io_context, one SO_REUSEPORT listener (plus one per TCP route), its
// own upstream pool, buffer pool and parse scratch. The kernel spreads accepted connections over
// the workers' listeners; nothing on the request path is shared between workers except the
// read-only snapshot, the connection limit and relaxed counters.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>

#include "common/buffer.hpp"
#include "common/result.hpp"
#include "http/parser.hpp"
#include "lb/balancer.hpp"
#include "proxy/admission.hpp"
#include "proxy/config.hpp"
#include "proxy/snapshot.hpp"
#include "upstream/connector.hpp"
#include "upstream/pool.hpp"

namespace sluice::bpf {
class SpliceDatapath;
}

namespace sluice::proxy {

class HttpSession;
class ClientStream;
class Watchdog;
struct ForwarderSlot;

struct RequestText {
  std::string host;     // normalized routing host
  std::string path;     // normalized routing path (what the upstream receives)
  std::string head;     // the head being sent: the request's upstream, then the response's
  std::string scratch;  // X-Forwarded-For assembly
  std::string upgrade;  // the request's Upgrade values, joined, when an upgrade went upstream
};

class Worker {
public:
  // `datapath`: where sockmap relays arm their pairs (null: sockmap is not used). `limit`: the
  // agent-wide connection cap every listener takes a slot from before accepting.
  Worker(unsigned index, const ProxyConfig& config, SnapshotHolder& snapshots,
         bpf::SpliceDatapath* datapath, ConnectionLimit& limit);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // Opens this worker's HTTP (or, with `tls`, HTTPS) listener (SO_REUSEPORT) on `endpoint`.
  Result<void> listen(const boost::asio::ip::tcp::endpoint& endpoint, bool tls = false);
  // Thread-safe: makes this worker listen on exactly these TCP-route ports of `address` (opening
  // and closing listeners; established flows are never touched). Bind failures are logged.
  void setTcpPorts(const boost::asio::ip::address& address, std::vector<std::uint16_t> ports);
  // Thread body: accepts and serves until stop(). Call from the worker's own thread.
  void run();
  // Thread-safe: stop accepting, close idle keep-alive connections, and let in-flight requests
  // finish with "Connection: close".
  void drain();
  // Thread-safe: stop the event loop now (after the drain deadline).
  void stop();

  // --- used by sessions, on the worker thread only ---
  const std::shared_ptr<const Snapshot>& snapshot() {
    const std::uint64_t gen = snapshots_.generation();
    if (gen != cached_generation_) {
      cached_ = snapshots_.load();
      cached_generation_ = cached_ ? cached_->generation : 0;
    }
    return cached_;
  }
  const ProxyConfig& config() const { return config_; }
  upstream::Pool& pool() { return pool_; }
  BufferPool& buffers() { return buffers_; }
  // Parse scratch shared by the worker's sessions: valid only from a parse to the next co_await
  // (another session may parse into it then), so users copy what they keep.
  http::RequestHead& requestHead() { return request_head_; }
  http::ResponseHead& responseHead() { return response_head_; }
  // The access-log line being built (same rule: used between two co_awaits).
  std::string& logLine() { return log_line_; }
  // Strings one request needs while it is on its way (normalized host and path, the head being
  // sent), lent for the request and given back with their capacity.
  std::unique_ptr<RequestText> takeText();
  void giveText(std::unique_ptr<RequestText> text);
  // A Forwarder for one request of the session that owns `client`, `in` and `watchdog`, in
  // storage the worker keeps; give it back when the request is done (that destroys it, closing
  // any upstream connection it still holds).
  std::unique_ptr<ForwarderSlot> takeForwarder(ClientStream& client, Buffer& in, Watchdog& watchdog,
                                               std::uint64_t connection_id);
  void giveForwarder(std::unique_ptr<ForwarderSlot> slot);
  upstream::Connector& connector() { return connector_; }
  bpf::SpliceDatapath* datapath() const { return datapath_; }
  lb::Rng& rng() { return rng_; }
  bool draining() const { return draining_; }
  boost::asio::io_context& io() { return io_; }
  unsigned index() const { return index_; }
  std::uint64_t nextConnectionId() { return (next_conn_id_++ << 8) | index_; }
  void attach(HttpSession* s);
  void detach(HttpSession* s);

private:
  struct Listener {
    std::unique_ptr<boost::asio::ip::tcp::acceptor> acceptor;
    std::uint64_t id = 0;  // a removed and re-added port is another listener
    bool http = false;     // the HTTP or HTTPS listener; otherwise a TCP route
    bool tls = false;      // the HTTPS listener
  };
  // One accept on listener `port`/`id` holding a connection slot; at the cap it waits for one.
  void accept(std::uint16_t port, std::uint64_t id);
  void onAccepted(std::uint16_t port, std::uint64_t id, boost::asio::ip::tcp::socket socket,
                  ConnectionLimit::Slot slot);
  void retryAccept(std::uint16_t port, std::uint64_t id);
  Listener* listener(std::uint16_t port, std::uint64_t id);
  void sweepPool();

  const unsigned index_;
  const ProxyConfig& config_;
  SnapshotHolder& snapshots_;
  bpf::SpliceDatapath* const datapath_;
  ConnectionLimit& limit_;
  boost::asio::io_context io_{1};
  std::map<std::uint16_t, Listener> listeners_;  // by local port
  std::uint64_t next_listener_id_ = 1;
  boost::asio::steady_timer sweep_timer_;
  BufferPool buffers_;
  http::RequestHead request_head_;
  http::ResponseHead response_head_;
  std::string log_line_;
  std::vector<std::unique_ptr<RequestText>> free_texts_;
  std::vector<std::unique_ptr<ForwarderSlot>> free_forwarders_;
  upstream::Pool pool_;
  lb::Rng rng_;
  upstream::Connector connector_;
  std::shared_ptr<const Snapshot> cached_;
  std::uint64_t cached_generation_ = UINT64_MAX;
  bool draining_ = false;
  std::uint64_t next_conn_id_ = 1;
  HttpSession* sessions_ = nullptr;  // intrusive list of live sessions (worker thread only)
};

}  // namespace sluice::proxy
