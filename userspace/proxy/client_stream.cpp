#include "proxy/client_stream.hpp"

#include <cstring>

#include <boost/asio/error.hpp>

#include "common/net.hpp"

namespace sluice::proxy {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using boost::system::error_code;
constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);

namespace {

// A TLS failure as Asio sees a socket failure: the callers only distinguish EOF from the rest.
error_code errorOf(tls::Io io) {
  return io == tls::Io::kClosed ? error_code(asio::error::eof)
                                : error_code(asio::error::connection_reset);
}

}  // namespace

asio::awaitable<error_code> ClientStream::waitFor(tls::Io io) {
  if (io == tls::Io::kWantWrite) {
    auto [ec] = co_await socket_.async_wait(tcp::socket::wait_write, kNoThrow);
    co_return ec;
  }
  auto [ec] = co_await net::waitReadable(socket_, kNoThrow);
  co_return ec;
}

tls::Io ClientStream::tlsReadNow(void* data, std::size_t len, std::size_t& n) {
  const tls::Io io = tls_->read(data, len, n);
  passDrained();
  return io;
}

void ClientStream::passDrained() {
  if (tls_->drained()) {
    net::markDrained(socket_);  // in the same turn as the read: nothing can have arrived unseen
  }
}

asio::awaitable<bool> ClientStream::handshake() {
  error_code ignored;
  socket_.native_non_blocking(true, ignored);
  for (;;) {
    const tls::Io io = tls_->handshake();
    passDrained();
    if (io == tls::Io::kDone) {
      co_return true;
    }
    if (io != tls::Io::kWantRead && io != tls::Io::kWantWrite) {
      co_return false;
    }
    if (const error_code ec = co_await waitFor(io)) {
      co_return false;
    }
  }
}

asio::awaitable<ClientStream::IoResult> ClientStream::tlsRead(asio::mutable_buffer buf) {
  for (;;) {
    std::size_t n = 0;
    const tls::Io io = tlsReadNow(buf.data(), buf.size(), n);
    if (io == tls::Io::kDone) {
      co_return IoResult{error_code(), n};
    }
    if (io != tls::Io::kWantRead && io != tls::Io::kWantWrite) {
      co_return IoResult{errorOf(io), 0};
    }
    if (const error_code ec = co_await waitFor(io)) {
      co_return IoResult{ec, 0};
    }
  }
}

asio::awaitable<ClientStream::IoResult> ClientStream::tlsWrite(
    std::array<asio::const_buffer, kMaxBuffers> list, std::size_t count) {
  // Small pieces (a response head and its body) go out as one record and one send: each
  // SSL_write is a record of its own. One record is encrypted whole by the first SSL_write, so the
  // worker's scratch may be reused by another session while this one waits to retry it.
  thread_local std::array<char, kCoalesceBytes> scratch;
  std::size_t joined = 0;
  for (std::size_t i = 0; i < count; ++i) {
    joined += list[i].size();
  }
  if (count > 1 && joined <= scratch.size()) {
    std::size_t at = 0;
    for (std::size_t i = 0; i < count; ++i) {
      std::memcpy(scratch.data() + at, list[i].data(), list[i].size());
      at += list[i].size();
    }
    list[0] = asio::const_buffer(scratch.data(), joined);
    count = 1;
  }
  std::size_t total = 0;
  for (std::size_t i = 0; i < count; ++i) {
    while (list[i].size() > 0) {
      std::size_t n = 0;
      const tls::Io io = tls_->write(list[i].data(), list[i].size(), n);
      if (io == tls::Io::kDone) {
        list[i] += n;
        total += n;
        continue;
      }
      if (io != tls::Io::kWantRead && io != tls::Io::kWantWrite) {
        co_return IoResult{errorOf(io), total};
      }
      if (const error_code ec = co_await waitFor(io)) {
        co_return IoResult{ec, total};
      }
    }
  }
  co_return IoResult{error_code(), total};
}

ClientStream::IoResult ClientStream::readNow(asio::mutable_buffer buf) {
  error_code ec;
  if (!tls_) {
    const std::size_t n = net::receiveNow(socket_, buf, ec);
    return {ec, n};
  }
  std::size_t n = 0;
  const tls::Io io = tlsReadNow(buf.data(), buf.size(), n);
  if (io == tls::Io::kDone) {
    return {ec, n};
  }
  if (io == tls::Io::kWantRead || io == tls::Io::kWantWrite) {
    return {asio::error::would_block, 0};
  }
  return {errorOf(io), 0};
}

std::size_t ClientStream::sendNow(std::span<const asio::const_buffer> buffers, error_code& ec) {
  if (tls_) {
    ec = asio::error::would_block;
    return 0;
  }
  return net::sendNow(socket_, buffers, ec);
}

void ClientStream::shutdownSend() {
  if (tls_) {
    tls_->shutdown();
  }
  error_code ignored;
  socket_.shutdown(tcp::socket::shutdown_send, ignored);
}

void ClientStream::close() {
  error_code ignored;
  socket_.close(ignored);
}

}  // namespace sluice::proxy
