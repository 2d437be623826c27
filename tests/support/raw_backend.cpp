#include "support/raw_backend.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string_view>

namespace sluice::test {

namespace {
struct HandlerStart {
  RawBackend* backend;
  int fd;
};
}  // namespace

RawBackend::RawBackend(Handler handler) : handler_(std::move(handler)) {
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(listen_fd_, 4096) != 0) {
    throw std::runtime_error(std::string("raw backend listen: ") + std::strerror(errno));
  }
  socklen_t len = sizeof addr;
  ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
  port_ = ntohs(addr.sin_port);
  acceptor_ = std::thread([this] { acceptLoop(); });
}

RawBackend::~RawBackend() {
  stop();
}

std::size_t RawBackend::active() const {
  std::lock_guard lock(mutex_);
  return running_;
}

bool RawBackend::waitIdle(std::chrono::milliseconds timeout) const {
  std::unique_lock lock(mutex_);
  return idle_cv_.wait_for(lock, timeout, [this] { return running_ == 0; });
}

bool RawBackend::waitAccepted(std::size_t n, std::chrono::milliseconds timeout) const {
  const auto deadline = SteadyClock::now() + timeout;
  while (accepted_.load() < n) {
    if (SteadyClock::now() >= deadline) {
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

void RawBackend::stop() {
  {
    std::lock_guard lock(mutex_);
    if (stopped_) {
      return;
    }
    stopped_ = true;
    ::shutdown(listen_fd_, SHUT_RDWR);  // wakes accept()
  }
  if (acceptor_.joinable()) {
    acceptor_.join();
  }
  ::close(listen_fd_);
  std::unique_lock lock(mutex_);
  for (int fd : live_) {
    ::shutdown(fd, SHUT_RDWR);
  }
  idle_cv_.wait(lock, [this] { return running_ == 0; });
}

void RawBackend::acceptLoop() {
  for (;;) {
    int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) {
        continue;
      }
      if (errno == EMFILE || errno == ENFILE) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
        continue;
      }
      return;  // listener shut down
    }
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    {
      std::lock_guard lock(mutex_);
      if (stopped_) {
        ::close(fd);
        return;
      }
      live_.insert(fd);
      ++running_;
    }
    accepted_.fetch_add(1);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_t tid;
    auto* start = new HandlerStart{this, fd};
    if (::pthread_create(&tid, &attr, &RawBackend::runHandler, start) != 0) {
      delete start;
      std::lock_guard lock(mutex_);
      live_.erase(fd);
      ::close(fd);
      --running_;
      idle_cv_.notify_all();
    }
    pthread_attr_destroy(&attr);
  }
}

void* RawBackend::runHandler(void* arg) {
  auto* start = static_cast<HandlerStart*>(arg);
  RawBackend* self = start->backend;
  {
    Socket s(start->fd);
    delete start;
    s.onClose([self](int fd) {
      std::lock_guard lock(self->mutex_);
      self->live_.erase(fd);
    });
    self->handler_(s);
    s.close();
  }
  std::lock_guard lock(self->mutex_);
  --self->running_;
  self->idle_cv_.notify_all();
  return nullptr;
}

// ---- handlers --------------------------------------------------------------------------------

namespace {

// Echoes until EOF; `pending` is written first. Returns false on an error.
bool echoLoop(int fd, std::string_view pending) {
  if (!pending.empty() && !sendAll(fd, pending)) {
    return false;
  }
  std::string buf(1 << 16, '\0');
  for (;;) {
    ssize_t n = ::recv(fd, buf.data(), buf.size(), 0);
    if (n == 0) {
      ::shutdown(fd, SHUT_WR);
      return true;
    }
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return false;
    }
    if (!sendAll(fd, std::string_view(buf.data(), static_cast<std::size_t>(n)))) {
      return false;
    }
  }
}

}  // namespace

void echoHandler(Socket& s) {
  echoLoop(s.fd(), {});
}

RawBackend::Handler upgradeEchoHandler(std::string early_prefix) {
  return [early_prefix](Socket& s) {
    auto head = recvUntil(s.fd(), "\r\n\r\n", std::chrono::seconds(30));
    if (!head) {
      return;
    }
    const std::size_t end = head->find("\r\n\r\n") + 4;
    std::string path;
    if (auto sp = head->find(' '); sp != std::string::npos) {
      path = head->substr(sp + 1, head->find(' ', sp + 1) - sp - 1);
    }
    const std::string reply =
        "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n" +
        early_prefix + path + "\n";
    if (!sendAll(s.fd(), reply)) {
      return;
    }
    echoLoop(s.fd(), std::string_view(*head).substr(end));
  };
}

RawBackend::Handler firstThenEcho(RawBackend::Handler first) {
  auto taken = std::make_shared<std::atomic<bool>>(false);
  return [first = std::move(first), taken](Socket& s) {
    if (!taken->exchange(true)) {
      first(s);
    } else {
      echoHandler(s);
    }
  };
}

}  // namespace sluice::test
