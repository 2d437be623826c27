// msgs: --conns connections ping-pong --size-byte messages through the path to an echo server;
// each echo is checked against what was sent, and the round trips of the measured interval
// are counted and timed.
#include "flowbench.hpp"

#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <map>

#include "cpu.hpp"

namespace sluice::bench {
namespace {

// Round-trip times in 10 µs buckets up to 1 s, the last bucket catching everything slower.
class Histogram {
public:
  void add(Clock::duration d) {
    auto us = std::chrono::duration_cast<std::chrono::microseconds>(d).count();
    auto i = std::min<std::size_t>(static_cast<std::size_t>(std::max<std::int64_t>(us, 0) / 10),
                                   buckets_.size() - 1);
    ++buckets_[i];
    ++count_;
  }
  // Upper edge of the bucket holding quantile q, in µs.
  double quantileUs(double q) const {
    if (count_ == 0) {
      return 0;
    }
    auto rank = static_cast<std::uint64_t>(std::ceil(q * static_cast<double>(count_)));
    std::uint64_t seen = 0;
    for (std::size_t i = 0; i < buckets_.size(); ++i) {
      seen += buckets_[i];
      if (seen >= rank) {
        return static_cast<double>((i + 1) * 10);
      }
    }
    return static_cast<double>(buckets_.size() * 10);
  }

private:
  std::vector<std::uint64_t> buckets_ = std::vector<std::uint64_t>(100001);
  std::uint64_t count_ = 0;
};

struct EchoStats {
  std::atomic<int> accepted{0};
  std::atomic<std::uint64_t> bytes{0};
};

// Echo server: level-triggered epoll, one thread. Writes what it read; if the socket buffer is
// full, it holds the rest and stops reading that connection until it drains (never for 100 B
// ping-pong, but a proxy may coalesce).
class EchoServer {
public:
  EchoServer(int listener, int stop_fd, EchoStats& stats)
      : listener_(listener), stop_fd_(stop_fd), stats_(stats) {
    if (!ep_) {
      failErrno("epoll_create1");
    }
    setNonBlocking(listener_);
    watch(listener_, EPOLLIN, EPOLL_CTL_ADD);
    watch(stop_fd_, EPOLLIN, EPOLL_CTL_ADD);
  }

  // Serves until the stop eventfd becomes readable.
  void run() {
    std::array<epoll_event, 256> events{};
    for (;;) {
      int n = ::epoll_wait(ep_.get(), events.data(), static_cast<int>(events.size()), -1);
      if (n < 0) {
        if (errno == EINTR) {
          continue;
        }
        failErrno("epoll_wait (server)");
      }
      for (int i = 0; i < n; ++i) {
        int fd = events[static_cast<std::size_t>(i)].data.fd;
        if (fd == stop_fd_) {
          return;
        }
        if (fd == listener_) {
          acceptAll();
        } else {
          serve(fd);
        }
      }
    }
  }

private:
  struct Conn {
    Fd fd;
    std::string pending;
  };

  void watch(int fd, std::uint32_t events, int op) {
    epoll_event ev{};
    ev.events = events;
    ev.data.fd = fd;
    if (::epoll_ctl(ep_.get(), op, fd, &ev) != 0) {
      failErrno("epoll_ctl");
    }
  }

  void acceptAll() {
    for (;;) {
      int c = ::accept4(listener_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (c < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
          return;
        }
        if (errno == ECONNABORTED) {
          continue;
        }
        failErrno("accept (server)");
      }
      setOpt(c, IPPROTO_TCP, TCP_NODELAY, 1, "TCP_NODELAY");
      conns_[c].fd = Fd(c);
      watch(c, EPOLLIN, EPOLL_CTL_ADD);
      stats_.accepted.fetch_add(1, std::memory_order_relaxed);
    }
  }

  // One readiness event on a connection: drain what is held, or read and echo.
  void serve(int fd) {
    auto it = conns_.find(fd);
    if (it == conns_.end()) {
      return;
    }
    bool closed = it->second.pending.empty() ? echo(fd, it->second) : drain(fd, it->second);
    if (closed) {
      conns_.erase(it);  // the Fd closes it, which also removes it from the epoll set
    }
  }

  // Writes what was held back; true when the connection is gone.
  bool drain(int fd, Conn& c) {
    ssize_t w = ::send(fd, c.pending.data(), c.pending.size(), MSG_NOSIGNAL);
    if (w > 0) {
      c.pending.erase(0, static_cast<std::size_t>(w));
    } else if (w < 0 && errno != EAGAIN && errno != EINTR) {
      return true;
    }
    if (c.pending.empty()) {
      watch(fd, EPOLLIN, EPOLL_CTL_MOD);
    }
    return false;
  }

  // Reads and writes it back, holding what does not fit; true when the connection is gone.
  bool echo(int fd, Conn& c) {
    ssize_t r = ::recv(fd, buf_.data(), buf_.size(), 0);
    if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
      return true;  // EOF or reset at the end of a run
    }
    if (r < 0) {
      return false;
    }
    stats_.bytes.fetch_add(static_cast<std::uint64_t>(r), std::memory_order_relaxed);
    ssize_t w = ::send(fd, buf_.data(), static_cast<std::size_t>(r), MSG_NOSIGNAL);
    if (w < 0 && errno != EAGAIN && errno != EINTR) {
      return true;
    }
    auto done = static_cast<std::size_t>(std::max<ssize_t>(w, 0));
    if (done < static_cast<std::size_t>(r)) {
      c.pending.assign(buf_.data() + done, static_cast<std::size_t>(r) - done);
      watch(fd, EPOLLOUT, EPOLL_CTL_MOD);
    }
    return false;
  }

  int listener_;
  int stop_fd_;
  EchoStats& stats_;
  Fd ep_{::epoll_create1(EPOLL_CLOEXEC)};
  std::map<int, Conn> conns_;
  std::vector<char> buf_ = std::vector<char>(64 << 10);
};

struct PingConn {
  Fd fd;
  std::uint64_t seq = 0;
  std::size_t sent = 0;  // bytes of the current message written
  std::size_t got = 0;   // bytes of its echo received
  Clock::time_point sent_at;
  std::vector<char> out;
  std::vector<char> in;
  bool dead = false;
};

Clock::duration toDuration(double seconds) {
  return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
}

// What the client saw.
struct PingTally {
  double connect_s = 0;    // connecting all connections
  CpuSnapshot begin, end;  // the measured interval
  std::uint64_t round_trips = 0, warm_round_trips = 0;
  Histogram rtt;             // of the measured round trips
  std::uint64_t errors = 0;  // connections dropped
  std::string first_error;
};

// The client: every connection keeps one message in flight. A connection that fails (closed,
// reset, a wrong echo) is dropped and counted; the first reason is kept.
class PingClient {
public:
  PingClient(const Options& o, const Endpoint& target) : o_(o), target_(target) {
    if (!ep_) {
      failErrno("epoll_create1");
    }
  }

  // Connects everything first (retrying while the proxy's listener comes up), so that all
  // ping-pongs start at once.
  void connectAll() {
    const auto start = Clock::now();
    const auto deadline =
        start + std::chrono::milliseconds(static_cast<int>(o_.connect_timeout_s * 1000));
    conns_ = std::vector<PingConn>(static_cast<std::size_t>(o_.conns));
    for (std::size_t i = 0; i < conns_.size(); ++i) {
      PingConn& c = conns_[i];
      c.fd = connectRetrying(target_, std::max(deadline, Clock::now() + std::chrono::seconds(2)));
      setNonBlocking(c.fd.get());
      setOpt(c.fd.get(), IPPROTO_TCP, TCP_NODELAY, 1, "TCP_NODELAY");
      c.out.assign(o_.size, 'm');
      c.in.resize(o_.size);
      std::memcpy(c.out.data(), &i, sizeof i);
      arm(c, i, EPOLLIN, EPOLL_CTL_ADD);
    }
    tally_.connect_s = secondsBetween(start, Clock::now());
  }

  // Ping-pongs through --warmup, then counts for --seconds between two CPU snapshots.
  void run() {
    const auto start = Clock::now();
    for (std::size_t i = 0; i < conns_.size(); ++i) {
      startMessage(conns_[i], i, start);
    }
    const auto warm_end = start + toDuration(o_.warmup);
    last_progress_ = Clock::now();
    for (;;) {
      auto now = Clock::now();
      if (phase_ == Phase::kWarmup && now >= warm_end) {
        tally_.begin = snapshotBegin();
        measure_end_ = tally_.begin.at + toDuration(o_.seconds);
        phase_ = Phase::kMeasure;
        now = tally_.begin.at;
      }
      if (phase_ == Phase::kMeasure && now >= measure_end_) {
        tally_.end = snapshotEnd();
        break;
      }
      if (tally_.errors == conns_.size()) {
        break;
      }
      if (secondsBetween(last_progress_, now) > o_.stall_timeout_s) {
        throw Failure("stalled: no echo for " + std::to_string(o_.stall_timeout_s) + " s");
      }
      poll(phase_ == Phase::kWarmup ? warm_end : measure_end_, now);
    }
    if (phase_ != Phase::kMeasure) {
      throw Failure("all " + std::to_string(conns_.size()) +
                    " connections failed during warm-up: " + tally_.first_error);
    }
  }

  // Closes the client side (before the server stops, so no reset is in flight meanwhile).
  void close() { conns_.clear(); }

  const PingTally& tally() const { return tally_; }

private:
  enum class Phase { kWarmup, kMeasure };

  void arm(PingConn& c, std::size_t index, std::uint32_t events, int op) {
    epoll_event ev{};
    ev.events = events;
    ev.data.u64 = index;
    if (::epoll_ctl(ep_.get(), op, c.fd.get(), &ev) != 0 && op == EPOLL_CTL_ADD) {
      failErrno("epoll_ctl");
    }
  }

  void kill(PingConn& c, std::string why) {
    if (!c.dead) {
      c.dead = true;
      if (tally_.errors++ == 0) {
        tally_.first_error = std::move(why);
      }
      ::epoll_ctl(ep_.get(), EPOLL_CTL_DEL, c.fd.get(), nullptr);
    }
  }

  // Writes the rest of the current message; when the socket is full, waits for EPOLLOUT.
  void flush(PingConn& c, std::size_t index) {
    while (c.sent < c.out.size()) {
      ssize_t w = ::send(c.fd.get(), c.out.data() + c.sent, c.out.size() - c.sent, MSG_NOSIGNAL);
      if (w < 0) {
        if (errno == EINTR) {
          continue;
        }
        if (errno == EAGAIN) {
          arm(c, index, EPOLLIN | EPOLLOUT, EPOLL_CTL_MOD);
          return;
        }
        kill(c, std::string("send: ") + std::strerror(errno));
        return;
      }
      c.sent += static_cast<std::size_t>(w);
    }
  }

  void startMessage(PingConn& c, std::size_t index, Clock::time_point now) {
    ++c.seq;
    std::memcpy(c.out.data() + sizeof(std::uint64_t), &c.seq, sizeof c.seq);
    c.sent = 0;
    c.got = 0;
    c.sent_at = now;
    flush(c, index);
  }

  // One epoll_wait, at most until `until` (and 100 ms, to notice stalls), and its events.
  void poll(Clock::time_point until, Clock::time_point now) {
    int timeout_ms =
        static_cast<int>(std::chrono::ceil<std::chrono::milliseconds>(until - now).count());
    timeout_ms = std::clamp(timeout_ms, 0, 100);
    int n = ::epoll_wait(ep_.get(), events_.data(), static_cast<int>(events_.size()), timeout_ms);
    if (n < 0) {
      if (errno == EINTR) {
        return;
      }
      failErrno("epoll_wait (client)");
    }
    for (int k = 0; k < n; ++k) {
      onEvent(events_[static_cast<std::size_t>(k)]);
    }
  }

  void onEvent(const epoll_event& ev) {
    auto index = static_cast<std::size_t>(ev.data.u64);
    PingConn& c = conns_[index];
    if (c.dead) {
      return;
    }
    if ((ev.events & EPOLLOUT) != 0) {
      arm(c, index, EPOLLIN, EPOLL_CTL_MOD);
      flush(c, index);
    }
    if ((ev.events & (EPOLLIN | EPOLLERR | EPOLLHUP)) != 0) {
      receive(c, index);
    }
  }

  // Reads what there is of the echo; a complete and correct one is counted and the next
  // message goes out.
  void receive(PingConn& c, std::size_t index) {
    ssize_t r = ::recv(c.fd.get(), c.in.data() + c.got, c.in.size() - c.got, 0);
    if (r == 0) {
      kill(c, "connection closed by peer");
      return;
    }
    if (r < 0) {
      if (errno != EAGAIN && errno != EINTR) {
        kill(c, std::string("recv: ") + std::strerror(errno));
      }
      return;
    }
    c.got += static_cast<std::size_t>(r);
    if (c.got < c.in.size()) {
      return;
    }
    if (c.sent < c.out.size()) {
      kill(c, "echo arrived before the message was fully sent");
      return;
    }
    if (std::memcmp(c.in.data(), c.out.data(), c.in.size()) != 0) {
      kill(c, "echo differs from the message sent");
      return;
    }
    auto done = Clock::now();
    last_progress_ = done;
    if (phase_ == Phase::kMeasure && done < measure_end_) {
      ++tally_.round_trips;
      tally_.rtt.add(done - c.sent_at);
    } else if (phase_ == Phase::kWarmup) {
      ++tally_.warm_round_trips;
    }
    startMessage(c, index, done);
  }

  const Options& o_;
  Endpoint target_;
  Fd ep_{::epoll_create1(EPOLL_CLOEXEC)};
  std::vector<PingConn> conns_;
  Phase phase_ = Phase::kWarmup;
  Clock::time_point measure_end_ = Clock::time_point::max();
  Clock::time_point last_progress_;
  std::array<epoll_event, 512> events_{};
  PingTally tally_;
};

std::string msgsJson(const Options& o, const Endpoint& listen, const Endpoint& target,
                     const PingTally& client, int server_connections) {
  CpuReport cpu = cpuBetween(client.begin, client.end, o.proxy_pids);
  const double messages = 2.0 * static_cast<double>(client.round_trips);
  JsonLine j;
  j.add("ok", client.errors == 0)
      .add("mode", "msgs")
      .add("label", o.label)
      .add("server", listen.text)
      .add("connect", target.text)
      .add("connections", o.conns)
      .add("message_bytes", static_cast<std::uint64_t>(o.size))
      .add("connect_seconds", client.connect_s, 3)
      .add("warmup_seconds", o.warmup, 1)
      .add("warmup_round_trips", client.warm_round_trips)
      .add("seconds", cpu.seconds, 4)
      .add("round_trips", client.round_trips)
      .add("messages", static_cast<std::uint64_t>(messages))
      .add("messages_per_s", messages / cpu.seconds, 0)
      .add("round_trips_per_s", static_cast<double>(client.round_trips) / cpu.seconds, 0)
      .add("rtt_p50_us", client.rtt.quantileUs(0.5), 0)
      .add("rtt_p99_us", client.rtt.quantileUs(0.99), 0)
      .add("server_connections", server_connections);
  addCpu(j, cpu);
  j.add("cpu_seconds_per_million_messages", messages > 0 ? cpu.system_busy_s / messages * 1e6 : NAN,
        3)
      .add("messages_per_cpu_second", cpu.system_busy_s > 0 ? messages / cpu.system_busy_s : NAN, 0)
      .add("connection_errors", client.errors)
      .add("first_error", client.first_error);
  return j.str();
}

}  // namespace

std::string runMsgs(const Options& o) {
  raiseFdLimit();
  Endpoint listen = o.listen;
  Fd listener = listenOn(listen);
  Endpoint target = o.connect.value_or(listen);
  Fd stop(::eventfd(0, EFD_CLOEXEC));
  if (!stop) {
    failErrno("eventfd");
  }
  EchoStats echo;
  Worker server_thread([&] { EchoServer(listener.get(), stop.get(), echo).run(); });

  std::string result;
  std::string client_error;
  try {
    PingClient client(o, target);
    client.connectAll();
    client.run();
    client.close();
    result = msgsJson(o, listen, target, client.tally(), echo.accepted.load());
  } catch (const std::exception& e) {
    client_error = e.what();
  }
  std::uint64_t one = 1;
  [[maybe_unused]] ssize_t w = ::write(stop.get(), &one, sizeof one);
  std::string server_error = server_thread.join();
  if (!client_error.empty()) {
    throw Failure("client: " + client_error +
                  (server_error.empty() ? "" : "; server: " + server_error));
  }
  if (!server_error.empty()) {
    throw Failure("server: " + server_error);
  }
  return result;
}

}  // namespace sluice::bench
