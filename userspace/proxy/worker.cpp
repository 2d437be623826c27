#include "proxy/worker.hpp"

#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <chrono>

#include <boost/asio/post.hpp>
#include <boost/asio/socket_base.hpp>

#include "common/log.hpp"
#include "common/net.hpp"
#include "proxy/http_session.hpp"
#include "proxy/tcp_session.hpp"

namespace sluice::proxy {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using boost::system::error_code;

namespace {
constexpr auto kSweepInterval = std::chrono::seconds(2);
}  // namespace

Worker::Worker(unsigned index, const ProxyConfig& config, SnapshotHolder& snapshots,
               bpf::SpliceDatapath* datapath)
    : index_(index),
      config_(config),
      snapshots_(snapshots),
      datapath_(datapath),
      sweep_timer_(io_),
      accept_backoff_(io_),
      pool_(config.max_idle_per_endpoint),
      rng_(0x5eed0000ULL + index * 7919ULL +
           static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count())),
      connector_(io_.get_executor(), pool_, rng_, config.upstream_connect_timeout,
                 config.io_buffer_bytes) {}

Worker::~Worker() {
  pool_.clear();
}

Result<void> Worker::listen(const tcp::endpoint& endpoint) {
  acceptor_.emplace(io_);
  auto listening = net::listen(*acceptor_, endpoint, {.reuse_port = true});
  if (!listening) {
    acceptor_.reset();
  }
  return listening;
}

void Worker::setTcpPorts(const asio::ip::address& address, std::vector<std::uint16_t> ports) {
  asio::post(io_, [this, address, ports = std::move(ports)]() {
    if (draining_) {
      return;
    }
    for (auto it = tcp_acceptors_.begin(); it != tcp_acceptors_.end();) {
      if (std::find(ports.begin(), ports.end(), it->first) == ports.end()) {
        error_code ignored;
        it->second->close(ignored);  // its pending accept completes with operation_aborted
        it = tcp_acceptors_.erase(it);
      } else {
        ++it;
      }
    }
    for (std::uint16_t port : ports) {
      if (tcp_acceptors_.contains(port)) {
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
      acceptTcp(port, *acceptor);
      tcp_acceptors_.emplace(port, std::move(acceptor));
    }
  });
}

void Worker::acceptTcp(std::uint16_t port, tcp::acceptor& acceptor) {
  acceptor.async_accept([this, port, &acceptor](error_code ec, tcp::socket socket) {
    if (ec == asio::error::operation_aborted || !acceptor.is_open() || draining_) {
      return;  // closed (route removed or drain): the acceptor may already be destroyed
    }
    if (!ec) {
      startTcpSession(*this, std::move(socket), port);
      acceptTcp(port, acceptor);
      return;
    }
    SPDLOG_LOGGER_WARN(log::get("proxy"), "worker {} accept on TCP route {}: {}", index_, port,
                       ec.message());
    auto backoff = std::make_shared<asio::steady_timer>(io_, std::chrono::milliseconds(50));
    backoff->async_wait([this, port, backoff](error_code wec) {
      auto it = tcp_acceptors_.find(port);
      if (!wec && !draining_ && it != tcp_acceptors_.end()) {
        acceptTcp(port, *it->second);
      }
    });
  });
}

void Worker::run() {
  accept();
  sweepPool();
  io_.run();
}

void Worker::accept() {
  acceptor_->async_accept([this](error_code ec, tcp::socket socket) {
    if (ec) {
      if (ec == asio::error::operation_aborted || !acceptor_ || !acceptor_->is_open()) {
        return;
      }
      // EMFILE and friends: the pending connection stays queued, so retrying at once would
      // spin. Back off briefly and try again; connections closing meanwhile free descriptors.
      SPDLOG_LOGGER_WARN(log::get("proxy"), "worker {} accept: {} (retrying in 50 ms)", index_,
                         ec.message());
      accept_backoff_.expires_after(std::chrono::milliseconds(50));
      accept_backoff_.async_wait([this](error_code wec) {
        if (!wec && !draining_) {
          accept();
        }
      });
      return;
    } else {
      HttpSession::start(*this, std::move(socket));
    }
    if (!draining_) {
      accept();
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
    if (acceptor_) {
      error_code ignored;
      acceptor_->close(ignored);
    }
    for (auto& [port, acceptor] : tcp_acceptors_) {
      error_code ignored;
      acceptor->close(ignored);
    }
    sweep_timer_.cancel();
    accept_backoff_.cancel();
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
