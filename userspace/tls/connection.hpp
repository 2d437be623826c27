// One server-side TLS connection over a non-blocking socket: OpenSSL reads and writes the file
// descriptor itself (a socket BIO, which is what kTLS needs), and the bytes the agent already
// consumed to route the connection (the ClientHello) are replayed to it first. Every call
// returns at once: the caller waits for the readiness the call asked for and calls again.
// A TLS 1.3 connection may leave OpenSSL once its handshake is done: its records are then
// Record13's, and the `SSL` is freed (record13.hpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <openssl/types.h>

#include "tls/io.hpp"
#include "tls/record13.hpp"

namespace sluice::tls {

// Why a TLS 1.3 connection kept OpenSSL's record layer after its handshake, or kTakenOver.
enum class RecordLayer : std::uint8_t {
  kOpenSsl,      // not asked for (--tls13-record-layer openssl, TLS 1.2, or kTLS)
  kTakenOver,    // Record13's
  kOtherSuite,   // a TLS 1.3 suite Record13 does not do (CCM)
  kUnsure,       // the secrets or the sequence numbers were not what OpenSSL's reports said
  kSetupFailed,  // deriving the keys failed
};

// The key log callback every server context sets (context.cpp): how Record13 learns the traffic
// secrets of a connection that asked for it; ignores every other connection and line.
void keyLogCallback(const SSL* ssl, const char* line);

class Connection {
public:
  // `ctx`: the certificate's context (chosen from the SNI); `fd`: a connected non-blocking
  // socket, owned by the caller; `replay`: bytes already read from it, handed to OpenSSL first
  // (kept, not copied, until the handshake has read them).
  // `ktls`: let OpenSSL move the record layer into the kernel after the handshake (only where
  // the caller decided it is safe: docs/tls.md). `own13`: a TLS 1.3 connection's records move
  // to Record13 after the handshake (not with `ktls`). Null on allocation failure.
  static std::unique_ptr<Connection> accept(SSL_CTX* ctx, int fd, std::vector<std::uint8_t> replay,
                                            bool ktls, bool own13 = false);
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
  const std::string& lastError() const { return own_ ? own_->lastError() : last_error_; }
  // After the handshake: whose record layer this connection has, and Record13 if it is its.
  RecordLayer recordLayer() const { return layer_; }
  Record13* record13() const { return own_.get(); }

  struct Handshake;  // what the callbacks learn during the handshake (connection.cpp)

private:
  friend void keyLogCallback(const SSL* ssl, const char* line);
  explicit Connection(SSL* ssl);
  Io result(int ret);
  // After a completed handshake: moves a TLS 1.3 connection to Record13 when it asked to and
  // everything checks; else it stays OpenSSL's, reading ahead again.
  void takeOver();
  void dropReplay();
  // The BIO that reads the socket (under the replay filter while there is one); null under kTLS.
  BIO* socketBio() const;
  void forgetDrained();

  SSL* ssl_;  // null once Record13 has the connection
  int fd_ = -1;
  std::unique_ptr<Handshake> hs_;
  std::unique_ptr<Record13> own_;
  RecordLayer layer_ = RecordLayer::kOpenSsl;
  bool resumed_ = false;
  std::string last_error_;
};

}  // namespace sluice::tls
