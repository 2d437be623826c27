// One server-side TLS connection over a non-blocking socket: OpenSSL reads and writes the file
// descriptor itself (a socket BIO, which is what kTLS needs), and the bytes the agent already
// consumed to route the connection (the ClientHello) are replayed to it first. Every call
// returns at once: the caller waits for the readiness the call asked for and calls again.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <openssl/types.h>

namespace sluice::tls {

enum class Io : std::uint8_t {
  kDone,       // the call completed (n bytes for read/write)
  kWantRead,   // wait until the socket is readable, then call again
  kWantWrite,  // wait until the socket is writable, then call again
  kClosed,     // the peer closed (close_notify or EOF)
  kError,      // a protocol or socket error: close the connection
};

class Connection {
public:
  // `ctx`: the certificate's context (chosen from the SNI); `fd`: a connected non-blocking
  // socket, owned by the caller; `replay`: bytes already read from it, handed to OpenSSL first
  // (kept, not copied, until the handshake has read them).
  // `ktls`: let OpenSSL move the record layer into the kernel after the handshake (only where
  // the caller decided it is safe: docs/tls.md). Null on allocation failure.
  static std::unique_ptr<Connection> accept(SSL_CTX* ctx, int fd, std::vector<std::uint8_t> replay,
                                            bool ktls);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  Io handshake();
  Io read(void* data, std::size_t len, std::size_t& n);
  // Writes all of `len` or nothing: after kWantRead/kWantWrite call again with the same bytes.
  Io write(const void* data, std::size_t len, std::size_t& n);
  // Sends close_notify (best effort, never waits).
  void shutdown();
  // Decrypted bytes (or a whole record) are buffered: a read will not wait for the socket.
  bool pending() const;
  bool ktlsSend() const;
  bool ktlsRecv() const;
  bool resumed() const;
  // The replay filter is still in the read path (until the handshake has consumed it).
  bool replaying() const;
  // "TLSv1.3", "TLSv1.2"
  const char* version() const;
  const char* cipher() const;
  // The last handshake() or read() left the socket drained (its last read(2) took everything and
  // no FIN is behind it, or found nothing): a wait for more needs no look at the socket
  // (net::markDrained()). Cleared by the next call; always false under kTLS.
  bool drained() const;
  // Why the last call gave kError (OpenSSL's reason), for debug logs and counters.
  const std::string& lastError() const { return last_error_; }

private:
  explicit Connection(SSL* ssl) : ssl_(ssl) {}
  Io result(int ret);
  void dropReplay();
  // The BIO that reads the socket (under the replay filter while there is one); null under kTLS.
  BIO* socketBio() const;
  void forgetDrained();

  SSL* ssl_;
  std::string last_error_;
};

}  // namespace sluice::tls
