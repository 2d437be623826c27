// The downstream side of a connection: a plain TCP socket, or the same socket with a TLS
// connection over it once the handshake is done. Sessions and the forwarder read and write
// through it and never ask which it is, except to decide whether bytes may move with splice(2)
// (plain, or kTLS in that direction). The plain path is Asio's own operation, unwrapped.
#pragma once

#include <array>
#include <cstddef>
#include <memory>
#include <span>
#include <tuple>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include "common/ready_wait.hpp"
#include "tls/connection.hpp"

namespace sluice::proxy {

class ClientStream {
public:
  using IoResult = std::tuple<boost::system::error_code, std::size_t>;
  static constexpr std::size_t kMaxBuffers = 17;            // a head plus a chunked decoder's spans
  static constexpr std::size_t kCoalesceBytes = 16 * 1024;  // one TLS record's plaintext

  explicit ClientStream(boost::asio::ip::tcp::socket socket) : socket_(std::move(socket)) {}

  boost::asio::ip::tcp::socket& socket() { return socket_; }
  bool tls() const { return tls_ != nullptr; }
  tls::Connection* tlsConnection() const { return tls_.get(); }
  void startTls(std::unique_ptr<tls::Connection> conn) { tls_ = std::move(conn); }
  // Drives the TLS handshake to its end; an error or a closed socket (the watchdog's deadline)
  // gives false.
  boost::asio::awaitable<bool> handshake();

  boost::asio::awaitable<IoResult> readSome(boost::asio::mutable_buffer buf) {
    if (!tls_) {
      return socket_.async_read_some(buf, boost::asio::as_tuple(boost::asio::use_awaitable));
    }
    return tlsRead(buf);
  }
  // One read that never waits (plain: recv(2); TLS: one SSL_read): after a wait said readable,
  // it saves queueing an operation. asio::error::would_block: call readSome().
  IoResult readNow(boost::asio::mutable_buffer buf);
  // One send that never waits, plain connections only: the bytes the socket took. TLS, or a full
  // socket: asio::error::would_block (write() the rest).
  std::size_t sendNow(std::span<const boost::asio::const_buffer> buffers,
                      boost::system::error_code& ec);
  // Writes every byte of `buffers` (a buffer or a sequence of up to kMaxBuffers).
  template <typename Buffers>
  boost::asio::awaitable<IoResult> write(const Buffers& buffers) {
    if (!tls_) {
      return boost::asio::async_write(socket_, buffers,
                                      boost::asio::as_tuple(boost::asio::use_awaitable));
    }
    std::array<boost::asio::const_buffer, kMaxBuffers> list{};
    std::size_t count = 0;
    for (auto it = boost::asio::buffer_sequence_begin(buffers);
         it != boost::asio::buffer_sequence_end(buffers) && count < kMaxBuffers; ++it) {
      list[count++] = *it;
    }
    return tlsWrite(list, count);
  }
  // TLS records already buffered: a read would not wait.
  bool readableNow() const { return tls_ && tls_->pending(); }
  // Until the socket is readable (bytes, EOF or an error). An operation, not a coroutine: an idle
  // connection waits here (HttpSession::park() passes a plain handler), and a frame per idle
  // connection is memory. After a read that drained the socket it costs no system call
  // (net::waitReadable()).
  template <typename Token>
  auto waitReadable(Token&& token) {
    return net::waitReadable(socket_, std::forward<Token>(token));
  }
  // Whether the kernel may move bytes of this direction with splice(2): a plain socket, or kTLS
  // (reading: only once OpenSSL holds no decrypted bytes of its own, which splicing would skip;
  // measured on 6.12, where a record half-read into OpenSSL's buffer stalled an upload).
  bool spliceRead() const { return !tls_ || (tls_->ktlsRecv() && !tls_->pending()); }
  bool spliceWrite() const { return !tls_ || tls_->ktlsSend(); }
  // close_notify (TLS), then FIN.
  void shutdownSend();
  void close();

private:
  boost::asio::awaitable<IoResult> tlsRead(boost::asio::mutable_buffer buf);
  boost::asio::awaitable<IoResult> tlsWrite(std::array<boost::asio::const_buffer, kMaxBuffers> list,
                                            std::size_t count);
  // One SSL_read; a read that drained the socket tells the reactor (net::markDrained()).
  tls::Io tlsReadNow(void* data, std::size_t len, std::size_t& n);
  // After an OpenSSL call that read: tells the reactor if its reads left the socket drained.
  void passDrained();
  // Waits for what a TLS call asked (kWantRead/kWantWrite); an error code if the wait failed.
  boost::asio::awaitable<boost::system::error_code> waitFor(tls::Io io);

  boost::asio::ip::tcp::socket socket_;
  std::unique_ptr<tls::Connection> tls_;
};

}  // namespace sluice::proxy
