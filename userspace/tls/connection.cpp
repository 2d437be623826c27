#include "tls/connection.hpp"

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <mutex>
#include <string_view>
#include <vector>

#include "common/ready_wait.hpp"

namespace sluice::tls {

namespace {

// A read filter that returns the replayed bytes first, then reads through to the socket BIO
// below it. Control calls (kTLS set-up among them) go to the socket BIO.
struct Replay {
  std::vector<std::uint8_t> bytes;
  std::size_t offset = 0;
};

int replayRead(BIO* b, char* out, int len) {
  auto* r = static_cast<Replay*>(BIO_get_data(b));
  BIO_clear_retry_flags(b);
  if (r != nullptr && r->offset < r->bytes.size()) {
    const std::size_t n = std::min(r->bytes.size() - r->offset, static_cast<std::size_t>(len));
    std::memcpy(out, r->bytes.data() + r->offset, n);
    r->offset += n;
    if (r->offset == r->bytes.size()) {
      std::vector<std::uint8_t>().swap(r->bytes);  // the ClientHello's memory goes back now
      r->offset = 0;
    }
    return static_cast<int>(n);
  }
  BIO* next = BIO_next(b);
  if (next == nullptr) {
    return 0;
  }
  const int ret = BIO_read(next, out, len);
  BIO_copy_next_retry(b);
  return ret;
}

int replayWrite(BIO* b, const char* in, int len) {
  BIO* next = BIO_next(b);
  if (next == nullptr) {
    return 0;
  }
  BIO_clear_retry_flags(b);
  const int ret = BIO_write(next, in, len);
  BIO_copy_next_retry(b);
  return ret;
}

long replayCtrl(BIO* b, int cmd, long num, void* ptr) {
  auto* r = static_cast<Replay*>(BIO_get_data(b));
  BIO* next = BIO_next(b);
  if (cmd == BIO_CTRL_PENDING && r != nullptr && r->offset < r->bytes.size()) {
    return static_cast<long>(r->bytes.size() - r->offset);
  }
  return next != nullptr ? BIO_ctrl(next, cmd, num, ptr) : 0;
}

int replayCreate(BIO* b) {
  BIO_set_init(b, 1);
  return 1;
}

int replayDestroy(BIO* b) {
  delete static_cast<Replay*>(BIO_get_data(b));
  BIO_set_data(b, nullptr);
  return 1;
}

BIO_METHOD* replayMethod() {
  static BIO_METHOD* method = [] {
    BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_FILTER, "sluice replay");
    BIO_meth_set_read(m, replayRead);
    BIO_meth_set_write(m, replayWrite);
    BIO_meth_set_ctrl(m, replayCtrl);
    BIO_meth_set_create(m, replayCreate);
    BIO_meth_set_destroy(m, replayDestroy);
    return m;
  }();
  return method;
}

// The socket BIO with one change: its reads are recvmsg(2) with TCP_INQ's hint (see
// net::readWithHint()), and a read that drained the socket leaves the BIO's data pointer (which
// OpenSSL's socket BIO does not use) set, for Connection::drained(): no byte more per
// connection. Everything else, kTLS set-up included, is OpenSSL's socket BIO. Used only for
// connections without kTLS, whose reads OpenSSL's own socket BIO must make (a record at a time).
int hintRead(BIO* b, char* out, int len) {
  BIO_clear_retry_flags(b);
  BIO_set_data(b, nullptr);
  if (out == nullptr || len <= 0) {
    return 0;
  }
  bool drained = false;
  const int ret = static_cast<int>(net::readWithHint(static_cast<int>(BIO_get_fd(b, nullptr)), out,
                                                     static_cast<std::size_t>(len), drained, 0));
  if (drained) {
    BIO_set_data(b, b);
  }
  if (ret <= 0) {
    if (BIO_sock_should_retry(ret)) {
      BIO_set_retry_read(b);
    } else if (ret == 0) {
      BIO_set_flags(b, BIO_FLAGS_IN_EOF);  // as OpenSSL's socket BIO marks the end of the stream
    }
  }
  return ret;
}

// The method's type, for recognising its BIOs. Taken at first use, not at static
// initialisation: OpenSSL must not allocate before main() installs tls::BlockPool.
int hintType() {
  static const int type = BIO_get_new_index() | BIO_TYPE_SOURCE_SINK | BIO_TYPE_DESCRIPTOR;
  return type;
}

BIO_METHOD* hintSocketMethod() {
  static BIO_METHOD* method = [] {
    const BIO_METHOD* socket = BIO_s_socket();
    BIO_METHOD* m = BIO_meth_new(hintType(), "sluice socket");
    BIO_meth_set_read(m, hintRead);
    BIO_meth_set_write(m, BIO_meth_get_write(socket));
    BIO_meth_set_puts(m, BIO_meth_get_puts(socket));
    BIO_meth_set_ctrl(m, BIO_meth_get_ctrl(socket));
    BIO_meth_set_create(m, BIO_meth_get_create(socket));
    BIO_meth_set_destroy(m, BIO_meth_get_destroy(socket));
    return m;
  }();
  return method;
}

// A socket BIO on `fd`: OpenSSL's own under kTLS, else the one above.
BIO* newSocketBio(int fd, bool ktls) {
  if (ktls) {
    return BIO_new_socket(fd, BIO_NOCLOSE);
  }
  BIO* b = BIO_new(hintSocketMethod());
  if (b != nullptr) {
    BIO_set_fd(b, fd, BIO_NOCLOSE);
  }
  return b;
}

}  // namespace

// What OpenSSL's callbacks report during a handshake that may end in Record13: the traffic
// secrets (key log) and, from the message callback, the records each side protected with them
// before the handshake returned (the server's tickets; none of the client's, as nothing is read
// ahead of its Finished).
struct Connection::Handshake {
  Record13::Secrets secrets;
  std::size_t client_len = 0, server_len = 0;  // 0 until reported
  bool sent_finished = false, got_finished = false;
  std::uint64_t written_after = 0;  // records we wrote after our Finished
  std::uint64_t read_after = 0;     // records read after the client's Finished
  std::uint64_t tickets = 0;        // NewSessionTicket messages we sent
  ~Handshake() { OPENSSL_cleanse(&secrets, sizeof secrets); }
};

namespace {

int connectionIndex() {
  static const int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

// Parses "LABEL <client random, 64 hex digits> <secret, hex>" into `out`: the secret's length,
// or 0 if the line is not that.
std::size_t secretOf(std::string_view line, std::string_view label,
                     std::array<std::uint8_t, kMaxSecret>& out) {
  if (line.size() < label.size() + 1 + 64 + 1 || line.substr(0, label.size()) != label ||
      line[label.size()] != ' ' || line[label.size() + 65] != ' ') {
    return 0;
  }
  // The secret runs to the end of the line, so its view is NUL-terminated, as OpenSSL's decoder
  // wants (no separator between the digits).
  const std::string_view hex = line.substr(label.size() + 66);
  if (hex.size() != 64 && hex.size() != 96) {
    return 0;
  }
  std::size_t n = 0;
  ERR_set_mark();  // a refused line leaves nothing on the handshake's error queue
  const bool ok = OPENSSL_hexstr2buf_ex(out.data(), out.size(), &n, hex.data(), '\0') == 1;
  ERR_pop_to_mark();
  if (!ok) {
    OPENSSL_cleanse(out.data(), out.size());
    return 0;
  }
  return n;
}

void messageCallback(int write_p, int /*version*/, int content_type, const void* buf,
                     std::size_t len, SSL* /*ssl*/, void* arg) {
  auto* hs = static_cast<Connection::Handshake*>(arg);
  if (hs == nullptr) {
    return;
  }
  if (content_type == SSL3_RT_HEADER) {
    // A record's header, reported as the record is made (written) or taken (read): after the
    // Finished messages these are the records under the traffic secrets.
    if (write_p != 0 && hs->sent_finished) {
      ++hs->written_after;
    } else if (write_p == 0 && hs->got_finished) {
      ++hs->read_after;
    }
    return;
  }
  if (content_type != SSL3_RT_HANDSHAKE || len == 0) {
    return;
  }
  const auto type = *static_cast<const std::uint8_t*>(buf);
  if (type == SSL3_MT_FINISHED) {
    (write_p != 0 ? hs->sent_finished : hs->got_finished) = true;
  } else if (type == SSL3_MT_NEWSESSION_TICKET && write_p != 0) {
    ++hs->tickets;
  }
}

}  // namespace

void keyLogCallback(const SSL* ssl, const char* line) {
  auto* c = static_cast<Connection*>(SSL_get_ex_data(ssl, connectionIndex()));
  if (c == nullptr || line == nullptr) {
    return;
  }
  Connection::Handshake* hs = c->hs_.get();
  if (hs == nullptr) {
    return;
  }
  const std::string_view text(line);
  if (const std::size_t n = secretOf(text, "CLIENT_TRAFFIC_SECRET_0", hs->secrets.client)) {
    hs->client_len = n;
  } else if (const std::size_t m = secretOf(text, "SERVER_TRAFFIC_SECRET_0", hs->secrets.server)) {
    hs->server_len = m;
  }
}

BIO* Connection::socketBio() const {
  BIO* rbio = SSL_get_rbio(ssl_);
  BIO* next = BIO_next(rbio);
  BIO* sock = next != nullptr ? next : rbio;
  // Under kTLS it is OpenSSL's socket BIO, whose data is not ours to touch.
  return BIO_method_type(sock) == hintType() ? sock : nullptr;
}

bool Connection::drained() const {
  if (own_) {
    return own_->drained();
  }
  BIO* sock = socketBio();
  return sock != nullptr && BIO_get_data(sock) != nullptr;
}

void Connection::forgetDrained() {
  if (own_) {
    return;
  }
  if (BIO* sock = socketBio()) {
    BIO_set_data(sock, nullptr);  // drained() speaks of the next call's reads only
  }
}

Connection::Connection(SSL* ssl) : ssl_(ssl) {}

std::unique_ptr<Connection> Connection::accept(SSL_CTX* ctx, int fd,
                                               std::vector<std::uint8_t> replay, bool ktls,
                                               bool own13) {
  SSL* ssl = SSL_new(ctx);
  if (ssl == nullptr) {
    return nullptr;
  }
  std::unique_ptr<Connection> c(new Connection(ssl));
  c->fd_ = fd;
  if (ktls) {
    SSL_set_options(ssl, SSL_OP_ENABLE_KTLS);
  } else if (own13) {
    // Record13 may take the connection over after the handshake: OpenSSL must then hold no byte
    // of the socket beyond the client's Finished, so it reads a record at a time (no read-ahead)
    // until then, and reports the secrets and records it uses.
    c->hs_ = std::make_unique<Handshake>();
    if (SSL_set_ex_data(ssl, connectionIndex(), c.get()) != 1) {
      return nullptr;
    }
    SSL_set_msg_callback(ssl, messageCallback);
    SSL_set_msg_callback_arg(ssl, c->hs_.get());
  } else {
    // Read whole records (and whatever follows) in one read(2), not a header then a body; kTLS
    // receive wants the socket's queue untouched, so only without it.
    SSL_set_read_ahead(ssl, 1);
  }
  BIO* wbio = newSocketBio(fd, ktls);
  if (wbio == nullptr) {
    return nullptr;
  }
  if (replay.empty()) {
    SSL_set_bio(ssl, wbio, wbio);  // one BIO for both: SSL_set_bio() takes the second reference
  } else {
    BIO* sock = newSocketBio(fd, ktls);
    BIO* filter = BIO_new(replayMethod());
    if (sock == nullptr || filter == nullptr) {
      BIO_free(sock);
      BIO_free(filter);
      BIO_free(wbio);
      return nullptr;
    }
    BIO_set_data(filter, new Replay{std::move(replay), 0});
    SSL_set_bio(ssl, BIO_push(filter, sock), wbio);
  }
  SSL_set_accept_state(ssl);
  return c;
}

Connection::~Connection() {
  SSL_free(ssl_);
}

void Connection::takeOver() {
  std::unique_ptr<Handshake> hs = std::move(hs_);
  if (!hs) {
    return;
  }
  SSL_set_msg_callback(ssl_, nullptr);
  SSL_set_msg_callback_arg(ssl_, nullptr);
  SSL_set_ex_data(ssl_, connectionIndex(), nullptr);
  layer_ = RecordLayer::kOpenSsl;
  std::unique_ptr<Record13> own;
  if (SSL_version(ssl_) == TLS1_3_VERSION) {
    const SSL_CIPHER* cipher = SSL_get_current_cipher(ssl_);
    const std::optional<Suite> suite =
        cipher != nullptr ? suiteOf(SSL_CIPHER_get_id(cipher)) : std::nullopt;
    if (!suite) {
      layer_ = RecordLayer::kOtherSuite;
    } else if (hs->client_len != secretLength(*suite) || hs->server_len != secretLength(*suite) ||
               !hs->sent_finished || !hs->got_finished || hs->read_after != 0 ||
               hs->written_after != hs->tickets || replaying() || SSL_has_pending(ssl_) == 1) {
      layer_ = RecordLayer::kUnsure;
    } else if (!(own = Record13::create(fd_, *suite, hs->secrets, 0, hs->written_after))) {
      layer_ = RecordLayer::kSetupFailed;
    } else {
      layer_ = RecordLayer::kTakenOver;
    }
  }
  if (!own) {
    SSL_set_read_ahead(ssl_, 1);  // OpenSSL keeps it: whole records in one read(2) from now on
    return;
  }
  resumed_ = SSL_session_reused(ssl_) == 1;
  // Freed as a connection that ended cleanly, so that OpenSSL does not drop its session.
  SSL_set_shutdown(ssl_, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
  SSL_free(ssl_);
  ssl_ = nullptr;
  own_ = std::move(own);
}

Io Connection::result(int ret) {
  const int err = SSL_get_error(ssl_, ret);
  switch (err) {
    case SSL_ERROR_WANT_READ:
      return Io::kWantRead;
    case SSL_ERROR_WANT_WRITE:
      return Io::kWantWrite;
    case SSL_ERROR_ZERO_RETURN:
      ERR_clear_error();
      return Io::kClosed;
    case SSL_ERROR_SYSCALL:
      last_error_ = errno != 0 ? std::strerror(errno) : "connection closed";
      ERR_clear_error();
      return Io::kError;
    default: {
      std::array<char, 256> buf{};
      ERR_error_string_n(ERR_peek_error(), buf.data(), buf.size());
      last_error_ = buf.data();
      ERR_clear_error();
      return Io::kError;
    }
  }
}

Io Connection::handshake() {
  if (own_) {
    return Io::kDone;
  }
  ERR_clear_error();
  errno = 0;
  forgetDrained();
  const int ret = SSL_do_handshake(ssl_);
  if (ret != 1) {
    return result(ret);
  }
  dropReplay();
  takeOver();
  return Io::kDone;
}

void Connection::dropReplay() {
  // Once OpenSSL has read the whole replay, the filter and the socket BIO under it are dead
  // weight for the connection's life (about 400 bytes with their locks): reads go through the
  // write side's socket BIO instead, as they do for a connection without a replay. Not under
  // kTLS receive, whose state is the flag on the socket BIO below the filter.
  BIO* rbio = SSL_get_rbio(ssl_);
  BIO* wbio = SSL_get_wbio(ssl_);
  if (rbio == wbio || BIO_get_ktls_recv(rbio) != 0) {
    return;
  }
  if (const auto* r = static_cast<const Replay*>(BIO_get_data(rbio));
      r != nullptr && r->offset < r->bytes.size()) {
    return;
  }
  BIO_up_ref(wbio);
  SSL_set0_rbio(ssl_, wbio);  // frees the filter chain and its Replay
}

bool Connection::replaying() const {
  return ssl_ != nullptr && SSL_get_rbio(ssl_) != SSL_get_wbio(ssl_);
}

Io Connection::read(void* data, std::size_t len, std::size_t& n) {
  if (own_) {
    return own_->read(data, len, n);
  }
  ERR_clear_error();
  errno = 0;
  n = 0;
  forgetDrained();
  const int ret = SSL_read_ex(ssl_, data, len, &n);
  return ret == 1 ? Io::kDone : result(ret);
}

Io Connection::write(const void* data, std::size_t len, std::size_t& n) {
  if (own_) {
    return own_->write(data, len, n);
  }
  ERR_clear_error();
  errno = 0;
  n = 0;
  const int ret = SSL_write_ex(ssl_, data, len, &n);
  return ret == 1 ? Io::kDone : result(ret);
}

void Connection::shutdown() {
  if (own_) {
    own_->shutdown();
    return;
  }
  ERR_clear_error();
  if (SSL_is_init_finished(ssl_)) {
    SSL_shutdown(ssl_);
  }
  ERR_clear_error();
}

bool Connection::pending() const {
  return own_ ? own_->pending() : SSL_has_pending(ssl_) == 1;
}

bool Connection::ktlsSend() const {
  return !own_ && BIO_get_ktls_send(SSL_get_wbio(ssl_)) != 0;
}

bool Connection::ktlsRecv() const {
  return !own_ && BIO_get_ktls_recv(SSL_get_rbio(ssl_)) != 0;
}

bool Connection::resumed() const {
  return own_ ? resumed_ : SSL_session_reused(ssl_) == 1;
}

const char* Connection::version() const {
  return own_ ? "TLSv1.3" : SSL_get_version(ssl_);
}

const char* Connection::cipher() const {
  return own_ ? suiteName(own_->suite()) : SSL_get_cipher_name(ssl_);
}

}  // namespace sluice::tls
