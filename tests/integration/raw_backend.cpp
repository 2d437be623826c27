#include "raw_backend.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "harness.hpp"

namespace sluice::test {

namespace {

int msLeft(SteadyClock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - SteadyClock::now());
  return left.count() < 0 ? 0 : static_cast<int>(left.count());
}

// Waits for `events` on fd until the deadline; false on timeout.
bool waitFor(int fd, short events, SteadyClock::time_point deadline) {
  for (;;) {
    pollfd p{fd, events, 0};
    int r = ::poll(&p, 1, msLeft(deadline));
    if (r > 0) {
      return true;
    }
    if (r == 0) {
      return false;
    }
    if (errno != EINTR) {
      return false;
    }
  }
}

}  // namespace

// ---- ByteStream ------------------------------------------------------------------------------

std::uint64_t ByteStream::next() {
  std::uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

void ByteStream::fill(void* out, std::size_t n) {
  auto* p = static_cast<unsigned char*>(out);
  while (n > 0 && left_ > 0) {
    *p++ = static_cast<unsigned char>(word_);
    word_ >>= 8;
    --left_;
    --n;
  }
  while (n >= 8) {
    const std::uint64_t w = next();
    std::memcpy(p, &w, 8);  // little-endian, the same bytes the slow path hands out
    p += 8;
    n -= 8;
  }
  if (n > 0) {
    word_ = next();
    left_ = 8;
    while (n > 0) {
      *p++ = static_cast<unsigned char>(word_);
      word_ >>= 8;
      --left_;
      --n;
    }
  }
}

std::string ByteStream::take(std::size_t n) {
  std::string s(n, '\0');
  fill(s.data(), n);
  return s;
}

// ---- Sha256 ----------------------------------------------------------------------------------

Sha256::Sha256() : ctx_(EVP_MD_CTX_new()) {
  EVP_DigestInit_ex(static_cast<EVP_MD_CTX*>(ctx_), EVP_sha256(), nullptr);
}

Sha256::~Sha256() { EVP_MD_CTX_free(static_cast<EVP_MD_CTX*>(ctx_)); }

void Sha256::update(const void* data, std::size_t n) {
  EVP_DigestUpdate(static_cast<EVP_MD_CTX*>(ctx_), data, n);
}

std::string Sha256::hex() {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(static_cast<EVP_MD_CTX*>(ctx_), md, &len);
  return toHex(md, len);
}

std::string streamSha256(std::uint64_t seed, std::uint64_t n) {
  ByteStream bytes(seed);
  Sha256 sha;
  std::string buf(1 << 20, '\0');
  while (n > 0) {
    const std::size_t k = static_cast<std::size_t>(std::min<std::uint64_t>(n, buf.size()));
    bytes.fill(buf.data(), k);
    sha.update(buf.data(), k);
    n -= k;
  }
  return sha.hex();
}

// ---- Socket ----------------------------------------------------------------------------------

Socket& Socket::operator=(Socket&& o) noexcept {
  if (this != &o) {
    close();
    fd_ = o.fd_;
    on_close_ = std::move(o.on_close_);
    o.fd_ = -1;
  }
  return *this;
}

void Socket::close() {
  if (fd_ >= 0) {
    if (on_close_) {
      on_close_(fd_);
    }
    ::close(fd_);
    fd_ = -1;
  }
}

void Socket::resetClose() {
  if (fd_ >= 0) {
    linger l{1, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    close();
  }
}

int Socket::release() {
  int fd = fd_;
  fd_ = -1;
  return fd;
}

Socket connectLoopback(std::uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return Socket();
  }
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return Socket();
  }
  return Socket(fd);
}

namespace {
// True when /proc/net/tcp or tcp6 has a LISTEN socket on `port`.
bool listenSocketOn(std::uint16_t port) {
  char want[8];
  std::snprintf(want, sizeof want, ":%04X", port);
  for (const char* file : {"/proc/net/tcp", "/proc/net/tcp6"}) {
    std::ifstream in(file);
    std::string line;
    std::getline(in, line);  // header
    while (std::getline(in, line)) {
      std::istringstream fields(line);
      std::string sl, local, remote, state;
      fields >> sl >> local >> remote >> state;
      if (state == "0A" && local.size() > 5 && local.compare(local.size() - 5, 5, want) == 0) {
        return true;
      }
    }
  }
  return false;
}
}  // namespace

bool waitListening(std::uint16_t port, std::chrono::milliseconds timeout) {
  const auto deadline = SteadyClock::now() + timeout;
  for (;;) {
    if (listenSocketOn(port)) {
      return true;
    }
    if (SteadyClock::now() >= deadline) {
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

bool setNonBlocking(int fd, bool on) {
  int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0) {
    return false;
  }
  flags = on ? (flags | O_NONBLOCK) : (flags & ~O_NONBLOCK);
  return ::fcntl(fd, F_SETFL, flags) == 0;
}

bool sendAll(int fd, std::string_view bytes, std::chrono::milliseconds timeout) {
  const auto deadline = SteadyClock::now() + timeout;
  while (!bytes.empty()) {
    ssize_t n = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      bytes.remove_prefix(static_cast<std::size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (!waitFor(fd, POLLOUT, deadline)) {
        return false;
      }
      continue;
    }
    return false;
  }
  return true;
}

bool recvExact(int fd, std::string& out, std::size_t n, std::chrono::milliseconds timeout) {
  const auto deadline = SteadyClock::now() + timeout;
  const std::size_t base = out.size();
  out.resize(base + n);
  std::size_t got = 0;
  while (got < n) {
    ssize_t r = ::recv(fd, out.data() + base + got, n - got, MSG_DONTWAIT);
    if (r > 0) {
      got += static_cast<std::size_t>(r);
      continue;
    }
    if (r < 0 && errno == EINTR) {
      continue;
    }
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (!waitFor(fd, POLLIN, deadline)) {
        out.resize(base + got);
        return false;
      }
      continue;
    }
    out.resize(base + got);
    return false;
  }
  return true;
}

std::optional<std::string> recvUntil(int fd, std::string_view delim,
                                     std::chrono::milliseconds timeout) {
  const auto deadline = SteadyClock::now() + timeout;
  std::string buf;
  char tmp[4096];
  while (buf.find(delim) == std::string::npos) {
    ssize_t r = ::recv(fd, tmp, sizeof tmp, MSG_DONTWAIT);
    if (r > 0) {
      buf.append(tmp, static_cast<std::size_t>(r));
      continue;
    }
    if (r < 0 && errno == EINTR) {
      continue;
    }
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (!waitFor(fd, POLLIN, deadline)) {
        return std::nullopt;
      }
      continue;
    }
    return std::nullopt;
  }
  return buf;
}

ReadEnd waitPeerClosed(int fd, std::chrono::milliseconds timeout, std::size_t* discarded) {
  const auto deadline = SteadyClock::now() + timeout;
  std::size_t total = 0;
  std::string tmp(1 << 16, '\0');
  ReadEnd end = ReadEnd::kTimeout;
  for (;;) {
    ssize_t r = ::recv(fd, tmp.data(), tmp.size(), MSG_DONTWAIT);
    if (r > 0) {
      total += static_cast<std::size_t>(r);
      continue;
    }
    if (r == 0) {
      end = ReadEnd::kEof;
      break;
    }
    if (errno == EINTR) {
      continue;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      if (!waitFor(fd, POLLIN, deadline)) {
        end = ReadEnd::kTimeout;
        break;
      }
      continue;
    }
    end = errno == ECONNRESET ? ReadEnd::kReset : ReadEnd::kError;
    break;
  }
  if (discarded) {
    *discarded = total;
  }
  return end;
}

const char* readEndName(ReadEnd e) {
  switch (e) {
    case ReadEnd::kData:
      return "data";
    case ReadEnd::kEof:
      return "eof";
    case ReadEnd::kReset:
      return "reset";
    case ReadEnd::kError:
      return "error";
    case ReadEnd::kTimeout:
      return "timeout";
  }
  return "?";
}

// ---- RawBackend ------------------------------------------------------------------------------

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

RawBackend::~RawBackend() { stop(); }

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

void echoHandler(Socket& s) { echoLoop(s.fd(), {}); }

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

long tcpMemPages() {
  std::ifstream in("/proc/net/sockstat");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("TCP:", 0) == 0) {
      auto pos = line.find(" mem ");
      if (pos != std::string::npos) {
        return std::stol(line.substr(pos + 5));
      }
    }
  }
  return -1;
}

}  // namespace sluice::test
