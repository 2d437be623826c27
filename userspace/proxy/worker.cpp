#include "proxy/worker.hpp"

#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <chrono>

#include <boost/asio/post.hpp>
#include <boost/asio/socket_base.hpp>

#include "common/log.hpp"
#include "common/net.hpp"
#include "proxy/forwarder.hpp"
#include "proxy/http_session.hpp"
#include "proxy/tcp_session.hpp"

namespace sluice::proxy {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using boost::system::error_code;

namespace {
constexpr auto kSweepInterval = std::chrono::seconds(2);
// Free blocks a worker keeps for the next busy moment; more are freed as they come back.
constexpr std::size_t kMaxFreeBuffers = 256;
constexpr std::size_t kMaxFreeTexts = 1024;
constexpr std::size_t kMaxFreeForwarders = 256;  // about 330 bytes each
// A lent request string grown past this (a huge head) is dropped instead of kept.
constexpr std::size_t kMaxKeptTextBytes = 16 * 1024;
}  // namespace

Worker::Worker(unsigned index, const ProxyConfig& config, SnapshotHolder& snapshots,
               bpf::SpliceDatapath* datapath, ConnectionLimit& limit)
    : index_(index),
      config_(config),
      snapshots_(snapshots),
      datapath_(datapath),
      limit_(limit),
      sweep_timer_(io_),
      buffers_(config.io_buffer_bytes, kMaxFreeBuffers),
      pool_(config.max_idle_per_endpoint),
      rng_(0x5eed0000ULL + index * 7919ULL +
           static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count())),
      connector_(io_.get_executor(), pool_, rng_, config.upstream_connect_timeout) {}

Worker::~Worker() {
  pool_.clear();
}

std::unique_ptr<RequestText> Worker::takeText() {
  if (free_texts_.empty()) {
    auto text = std::make_unique<RequestText>();
    text->host.reserve(64);
    text->path.reserve(128);
    text->head.reserve(512);
    return text;
  }
  auto text = std::move(free_texts_.back());
  free_texts_.pop_back();
  return text;
}

void Worker::giveText(std::unique_ptr<RequestText> text) {
  if (text && free_texts_.size() < kMaxFreeTexts && text->head.capacity() <= kMaxKeptTextBytes &&
      text->scratch.capacity() <= kMaxKeptTextBytes) {
    free_texts_.push_back(std::move(text));
  }
}

std::unique_ptr<ForwarderSlot> Worker::takeForwarder(ClientStream& client, Buffer& in,
                                                     Watchdog& watchdog,
                                                     std::uint64_t connection_id) {
  std::unique_ptr<ForwarderSlot> slot;
  if (free_forwarders_.empty()) {
    slot = std::make_unique<ForwarderSlot>();
  } else {
    slot = std::move(free_forwarders_.back());
    free_forwarders_.pop_back();
  }
  slot->forwarder.emplace(*this, client, in, watchdog, connection_id);
  return slot;
}

void Worker::giveForwarder(std::unique_ptr<ForwarderSlot> slot) {
  if (!slot) {
    return;
  }
  slot->forwarder.reset();
  if (free_forwarders_.size() < kMaxFreeForwarders) {
    free_forwarders_.push_back(std::move(slot));
  }
}

Result<void> Worker::listen(const tcp::endpoint& endpoint, bool tls) {
  auto acceptor = std::make_unique<tcp::acceptor>(io_);
  SLUICE_CHECK(net::listen(*acceptor, endpoint, {.reuse_port = true}));
  error_code ec;
  const std::uint16_t port = acceptor->local_endpoint(ec).port();
  listeners_[port] = Listener{std::move(acceptor), next_listener_id_++, true, tls};
  return success();
}

void Worker::setTcpPorts(const asio::ip::address& address, std::vector<std::uint16_t> ports) {
  asio::post(io_, [this, address, ports = std::move(ports)]() {
    if (draining_) {
      return;
    }
    for (auto it = listeners_.begin(); it != listeners_.end();) {
      if (!it->second.http && std::find(ports.begin(), ports.end(), it->first) == ports.end()) {
        error_code ignored;
        it->second.acceptor->close(ignored);  // its pending accept completes with an abort
        it = listeners_.erase(it);
      } else {
        ++it;
      }
    }
    for (std::uint16_t port : ports) {
      if (listeners_.contains(port)) {
        continue;
      }
      auto acceptor = std::make_unique<tcp::acceptor>(io_);
      if (auto listening =
              net::listen(*acceptor, tcp::endpoint(address, port), {.reuse_port = true});
          !listening) {
        // Retried at the next configuration change; the route stays configured.
        SPDLOG_LOGGER_WARN(log::get("proxy"), "worker {} TCP route: {}", index_,
                           listening.error().message());
        continue;
      }
      const std::uint64_t id = next_listener_id_++;
      listeners_[port] = Listener{std::move(acceptor), id, false};
      accept(port, id);
    }
  });
}

Worker::Listener* Worker::listener(std::uint16_t port, std::uint64_t id) {
  auto it = listeners_.find(port);
  return it != listeners_.end() && it->second.id == id && it->second.acceptor->is_open()
             ? &it->second
             : nullptr;
}

void Worker::run() {
  for (auto& [port, l] : listeners_) {
    accept(port, l.id);
  }
  sweepPool();
  io_.run();
}

void Worker::accept(std::uint16_t port, std::uint64_t id) {
  Listener* l = listener(port, id);
  if (draining_ || l == nullptr) {
    return;
  }
  if (!limit_.tryAcquire()) {
    // At --max-connections: stop accepting; the kernel's backlog holds the next connections
    // until a slot frees (on any worker), which posts this accept again.
    auto again = [this, port, id] { asio::post(io_, [this, port, id] { accept(port, id); }); };
    if (!limit_.waitForSlot(again)) {
      again();
    }
    return;
  }
  l->acceptor->async_accept([this, port, id, slot = ConnectionLimit::Slot(&limit_)](
                                error_code ec, tcp::socket socket) mutable {
    if (ec == asio::error::operation_aborted || draining_ || listener(port, id) == nullptr) {
      return;  // closed (route removed or drain); the slot goes with the handler
    }
    if (ec) {
      // EMFILE and friends: the pending connection stays queued, so retrying at once
      // would spin. Back off briefly; connections closing meanwhile free descriptors.
      SPDLOG_LOGGER_WARN(log::get("proxy"),
                         "worker {} accept on port {}: {} (retrying in "
                         "50 ms)",
                         index_, port, ec.message());
      retryAccept(port, id);
      return;
    }
    onAccepted(port, id, std::move(socket), std::move(slot));
  });
}

void Worker::onAccepted(std::uint16_t port, std::uint64_t id, tcp::socket socket,
                        ConnectionLimit::Slot slot) {
  if (const Listener* l = listener(port, id); l->http) {
    HttpSession::start(*this, std::move(socket), std::move(slot), l->tls);
  } else {
    startTcpSession(*this, std::move(socket), port, std::move(slot));
  }
  accept(port, id);
}

void Worker::retryAccept(std::uint16_t port, std::uint64_t id) {
  auto backoff = std::make_shared<asio::steady_timer>(io_, std::chrono::milliseconds(50));
  backoff->async_wait([this, port, id, backoff](error_code ec) {
    if (!ec) {
      accept(port, id);
    }
  });
}

void Worker::sweepPool() {
  sweep_timer_.expires_after(kSweepInterval);
  sweep_timer_.async_wait([this](error_code ec) {
    if (ec) {
      return;
    }
    pool_.sweep(std::chrono::steady_clock::now(), config_.upstream_idle_timeout);
    if (!draining_) {
      sweepPool();
    }
  });
}

void Worker::drain() {
  asio::post(io_, [this]() {
    draining_ = true;
    for (auto& [port, l] : listeners_) {
      error_code ignored;
      l.acceptor->close(ignored);
    }
    sweep_timer_.cancel();
    pool_.clear();
    for (HttpSession* s = sessions_; s != nullptr;) {
      HttpSession* next = s->next;  // closeIfIdle only cancels; the session unlinks later
      s->closeIfIdle();
      s = next;
    }
  });
}

void Worker::stop() {
  io_.stop();
}

void Worker::attach(HttpSession* s) {
  s->next = sessions_;
  s->prev = nullptr;
  if (sessions_ != nullptr) {
    sessions_->prev = s;
  }
  sessions_ = s;
}

void Worker::detach(HttpSession* s) {
  if (s->prev != nullptr) {
    s->prev->next = s->next;
  } else if (sessions_ == s) {
    sessions_ = s->next;
  }
  if (s->next != nullptr) {
    s->next->prev = s->prev;
  }
  s->prev = s->next = nullptr;
}

}  // namespace sluice::proxy
