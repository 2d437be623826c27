// The agent's TLS 1.3 record layer: one direction's sealing and opening (sequence numbers,
// padding, KeyUpdate, tampering), and whole connections handed over from OpenSSL's handshake to
// Record13, talking to OpenSSL's own client for each of the three suites: data both ways, large
// writes through a full socket, KeyUpdates asked by the client, close_notify, a forged record.
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <cstring>
#include <ctime>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "support/result.hpp"
#include "support/test_pki.hpp"
#include "tls/certificate.hpp"
#include "tls/connection.hpp"
#include "tls/context.hpp"
#include "tls/record13.hpp"

namespace sluice::tls {
namespace {

using Bytes = std::vector<std::uint8_t>;

constexpr Suite kSuites[] = {Suite::kAes128GcmSha256, Suite::kAes256GcmSha384,
                             Suite::kChaCha20Poly1305Sha256};

Bytes secretFor(Suite s, std::uint8_t fill) {
  return Bytes(secretLength(s), fill);
}

// Seals `plain` as `type` and opens it again with the peer's key: the inner plaintext and type.
struct Pair {
  TrafficKey tx, rx;
  explicit Pair(Suite s, std::uint8_t fill = 7) {
    const Bytes secret = secretFor(s, fill);
    EXPECT_TRUE(tx.init(s, secret, 0, true));
    EXPECT_TRUE(rx.init(s, secret, 0, false));
  }
  Bytes seal(const Bytes& plain, std::uint8_t type) {
    Bytes rec(plain.size() + kRecordHeader + 1 + kTag);
    const std::size_t n = tx.seal(plain, type, rec.data());
    EXPECT_EQ(n, rec.size());
    return rec;
  }
  bool open(Bytes rec, Bytes& plain, std::uint8_t& type) {
    std::size_t len = 0;
    if (!rx.open(rec.data(), rec.size() - kRecordHeader, nullptr, len, type)) {
      return false;
    }
    plain.assign(rec.begin() + kRecordHeader, rec.begin() + kRecordHeader + len);
    return true;
  }
};

TEST(TrafficKey, SealsAndOpensEverySuiteWithSequenceNumbers) {
  for (const Suite s : kSuites) {
    Pair p(s);
    for (int i = 0; i < 3; ++i) {
      const Bytes plain(100 + i, static_cast<std::uint8_t>('a' + i));
      const Bytes rec = p.seal(plain, 23);
      EXPECT_EQ(rec[0], 23);  // application_data on the wire, whatever the inner type
      Bytes out;
      std::uint8_t type = 0;
      ASSERT_TRUE(p.open(rec, out, type)) << suiteName(s) << " record " << i;
      EXPECT_EQ(out, plain);
      EXPECT_EQ(type, 23);
    }
    EXPECT_EQ(p.tx.seq(), 3u);
    EXPECT_EQ(p.rx.seq(), 3u);
  }
}

TEST(TrafficKey, ARecordOutOfOrderOrAlteredDoesNotOpen) {
  Pair p(Suite::kAes128GcmSha256);
  const Bytes first = p.seal({'x'}, 23);
  const Bytes second = p.seal({'y'}, 23);
  Bytes out;
  std::uint8_t type = 0;
  EXPECT_FALSE(p.open(second, out, type)) << "the second record under the first's nonce";
  Pair q(Suite::kAes128GcmSha256);
  Bytes rec = q.seal({'h', 'i'}, 23);
  rec[kRecordHeader] ^= 1;
  EXPECT_FALSE(q.open(rec, out, type));
  Pair r(Suite::kAes128GcmSha256);
  rec = r.seal({'h', 'i'}, 23);
  rec[2] = 1;  // the header is authenticated data: a changed version byte does not open
  EXPECT_FALSE(r.open(rec, out, type));
  Pair other(Suite::kAes128GcmSha256, 8);  // another secret
  rec = Pair(Suite::kAes128GcmSha256).seal({'h', 'i'}, 23);
  EXPECT_FALSE(other.open(rec, out, type));
}

TEST(TrafficKey, PaddingIsTakenOffAndAnAllZeroRecordIsRefused) {
  Pair p(Suite::kAes256GcmSha384);
  // The inner plaintext "hello", type 23, then three zeros of padding (sealed as type 0).
  Bytes padded = {'h', 'e', 'l', 'l', 'o', 23, 0, 0};
  Bytes out;
  std::uint8_t type = 0;
  ASSERT_TRUE(p.open(p.seal(padded, 0), out, type));
  EXPECT_EQ(std::string(out.begin(), out.end()), "hello");
  EXPECT_EQ(type, 23);
  ASSERT_TRUE(p.open(p.seal({0, 0}, 0), out, type));
  EXPECT_EQ(type, 0) << "no content type at all";
  EXPECT_TRUE(out.empty());
}

TEST(TrafficKey, KeyUpdateMovesBothEndsToTheNextSecret) {
  for (const Suite s : kSuites) {
    Pair p(s);
    (void)p.seal({'a'}, 23);
    ASSERT_TRUE(p.tx.update());
    EXPECT_EQ(p.tx.seq(), 0u);
    Bytes out;
    std::uint8_t type = 0;
    const Bytes rec = p.seal({'b'}, 23);
    Pair stale(s);
    EXPECT_FALSE(stale.open(rec, out, type)) << "the old key must not open the new records";
    ASSERT_TRUE(p.rx.update());
    ASSERT_TRUE(p.open(rec, out, type)) << suiteName(s);
    EXPECT_EQ(out, Bytes{'b'});
  }
}

TEST(TrafficKey, ExpandLabelDependsOnLabelAndLength) {
  const Bytes secret = secretFor(Suite::kAes128GcmSha256, 1);
  std::array<std::uint8_t, 16> key{}, key2{}, iv{};
  ASSERT_TRUE(expandLabel(Suite::kAes128GcmSha256, secret, "key", key));
  ASSERT_TRUE(expandLabel(Suite::kAes128GcmSha256, secret, "key", key2));
  ASSERT_TRUE(expandLabel(Suite::kAes128GcmSha256, secret, "iv", iv));
  EXPECT_EQ(key, key2);
  EXPECT_NE(key, iv);
  std::array<std::uint8_t, 12> iv12{};
  ASSERT_TRUE(expandLabel(Suite::kAes128GcmSha256, secret, "iv", iv12));
  EXPECT_NE(0, std::memcmp(iv.data(), iv12.data(), 12)) << "the length is part of the label";
}

// --- Whole connections against OpenSSL's client ---------------------------------------------

// Calls `step` until it stops asking to wait, waiting on `fd` as it asks.
template <typename F>
Io drive(int fd, F step) {
  for (;;) {
    const Io io = step();
    if (io != Io::kWantRead && io != Io::kWantWrite) {
      return io;
    }
    pollfd p{fd, static_cast<short>(io == Io::kWantRead ? POLLIN : POLLOUT), 0};
    ::poll(&p, 1, 5000);
  }
}

std::string readExactly(Connection& c, int fd, std::size_t n, std::size_t chunk = 64 * 1024) {
  std::string out;
  std::vector<char> buf(chunk);
  while (out.size() < n) {
    std::size_t got = 0;
    const Io io = drive(fd, [&] { return c.read(buf.data(), buf.size(), got); });
    if (io != Io::kDone) {
      ADD_FAILURE() << "read: " << c.lastError();
      break;
    }
    out.append(buf.data(), got);
  }
  return out;
}

bool writeAll(Connection& c, int fd, const std::string& data) {
  std::size_t at = 0;
  while (at < data.size()) {
    std::size_t n = 0;
    if (drive(fd, [&] { return c.write(data.data() + at, data.size() - at, n); }) != Io::kDone) {
      return false;
    }
    at += n;
  }
  return true;
}

struct Server {
  std::unique_ptr<ContextFactory> factory;
  ContextPtr ctx;
  Server() {
    auto f = ContextFactory::create({});
    EXPECT_TRUE(f);
    factory = std::move(*f);
    const test::Pem p = test::makeCertificate({.names = {"a.test"}});
    auto c = factory->context(*Certificate::fromPem(p.cert, p.key, std::time(nullptr)));
    EXPECT_TRUE(c);
    ctx = *c;
  }
};

// A client on a blocking socket: OpenSSL's, for one suite.
struct Client {
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  SSL* ssl = nullptr;
  Client(int fd, const char* suite) {
    SSL_CTX_set_ciphersuites(ctx, suite);
    ssl = SSL_new(ctx);
    SSL_set_fd(ssl, fd);
    SSL_set_tlsext_host_name(ssl, "a.test");
  }
  ~Client() {
    SSL_free(ssl);
    SSL_CTX_free(ctx);
  }
  std::string read(std::size_t n) {
    std::string out(n, '\0');
    std::size_t at = 0;
    while (at < n) {
      std::size_t got = 0;
      if (SSL_read_ex(ssl, out.data() + at, n - at, &got) != 1) {
        break;
      }
      at += got;
    }
    out.resize(at);
    return out;
  }
  bool write(const std::string& s) {
    std::size_t n = 0;
    return SSL_write_ex(ssl, s.data(), s.size(), &n) == 1 && n == s.size();
  }
};

std::unique_ptr<Connection> handshake(const Server& server, int fd, bool own) {
  auto conn = Connection::accept(server.ctx.get(), fd, {}, false, own);
  if (!conn) {
    return nullptr;
  }
  if (drive(fd, [&] { return conn->handshake(); }) != Io::kDone) {
    ADD_FAILURE() << "handshake: " << conn->lastError();
    return nullptr;
  }
  return conn;
}

TEST(Record13Connection, TakesOverFromOpenSslAndTalksToItsClientInEverySuite) {
  Server server;
  for (const Suite s : kSuites) {
    SCOPED_TRACE(suiteName(s));
    int fds[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
    const std::string big(300 * 1024, 'z');  // past the socket's buffer: partial sends
    std::string client_got_big, client_got_pong;
    bool client_ok = false;
    std::thread client([&, fd = fds[1]] {
      Client c(fd, suiteName(s));
      if (SSL_connect(c.ssl) != 1 || !c.write("ping")) {
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));  // the server's sends fill up
      client_got_big = c.read(big.size());
      // A KeyUpdate that asks for the server's: both directions move to new keys.
      SSL_key_update(c.ssl, SSL_KEY_UPDATE_REQUESTED);
      if (!c.write("after-update")) {
        return;
      }
      client_got_pong = c.read(4);
      SSL_key_update(c.ssl, SSL_KEY_UPDATE_NOT_REQUESTED);
      client_ok = c.write(std::string(40000, 'u'));  // three records, client's new key
      SSL_shutdown(c.ssl);                           // close_notify
    });
    auto conn = handshake(server, fds[0], true);
    ASSERT_NE(conn, nullptr);
    EXPECT_EQ(conn->recordLayer(), RecordLayer::kTakenOver);
    EXPECT_STREQ(conn->cipher(), suiteName(s));
    EXPECT_STREQ(conn->version(), "TLSv1.3");
    EXPECT_EQ(readExactly(*conn, fds[0], 4), "ping");
    EXPECT_TRUE(writeAll(*conn, fds[0], big)) << conn->lastError();
    EXPECT_EQ(readExactly(*conn, fds[0], 12), "after-update");
    EXPECT_TRUE(writeAll(*conn, fds[0], "pong"));
    // Read in small pieces: what the caller has no room for waits in the connection.
    EXPECT_EQ(readExactly(*conn, fds[0], 40000, 1000), std::string(40000, 'u'));
    char b[8];
    std::size_t got = 0;
    EXPECT_EQ(drive(fds[0], [&] { return conn->read(b, sizeof b, got); }), Io::kClosed);
    client.join();
    EXPECT_TRUE(client_ok);
    EXPECT_EQ(client_got_big.size(), big.size());
    EXPECT_TRUE(client_got_big == big);
    EXPECT_EQ(client_got_pong, "pong");
    ::close(fds[0]);
    ::close(fds[1]);
  }
}

TEST(Record13Connection, WithoutItOpenSslKeepsTheConnection) {
  Server server;
  int fds[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
  std::thread client([fd = fds[1]] {
    Client c(fd, "TLS_AES_128_GCM_SHA256");
    if (SSL_connect(c.ssl) == 1) {
      c.write("ping");
      c.read(4);
    }
  });
  auto conn = handshake(server, fds[0], false);
  ASSERT_NE(conn, nullptr);
  EXPECT_EQ(conn->recordLayer(), RecordLayer::kOpenSsl);
  EXPECT_EQ(readExactly(*conn, fds[0], 4), "ping");
  EXPECT_TRUE(writeAll(*conn, fds[0], "pong"));
  client.join();
  ::close(fds[0]);
  ::close(fds[1]);
}

TEST(Record13Connection, AForgedRecordClosesTheConnection) {
  Server server;
  int fds[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
  std::thread client([fd = fds[1]] {
    Client c(fd, "TLS_AES_256_GCM_SHA384");
    if (SSL_connect(c.ssl) != 1) {
      return;
    }
    // Sealed into memory, then one ciphertext byte changed on its way.
    BIO* mem = BIO_new(BIO_s_mem());
    SSL_set_bio(c.ssl, SSL_get_rbio(c.ssl), mem);  // the socket BIO stays for reading
    c.write("GET / HTTP/1.1\r\n\r\n");
    char* bytes = nullptr;
    const long len = BIO_get_mem_data(mem, &bytes);
    std::string rec(bytes, static_cast<std::size_t>(len));
    rec[10] ^= 0x40;
    (void)::send(fd, rec.data(), rec.size(), 0);
  });
  auto conn = handshake(server, fds[0], true);
  ASSERT_NE(conn, nullptr);
  ASSERT_EQ(conn->recordLayer(), RecordLayer::kTakenOver);
  char b[64];
  std::size_t got = 0;
  EXPECT_EQ(drive(fds[0], [&] { return conn->read(b, sizeof b, got); }), Io::kError);
  EXPECT_NE(conn->lastError().find("bad_record_mac"), std::string::npos) << conn->lastError();
  EXPECT_EQ(got, 0u);
  client.join();
  ::close(fds[0]);
  ::close(fds[1]);
}

TEST(Record13Connection, ResumedSessionsAreTakenOverToo) {
  Server server;
  SSL_SESSION* session = nullptr;
  for (int round = 0; round < 2; ++round) {
    int fds[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
    std::thread client([&, fd = fds[1]] {
      Client c(fd, "TLS_AES_128_GCM_SHA256");
      if (session != nullptr) {
        SSL_set_session(c.ssl, session);
      }
      if (SSL_connect(c.ssl) == 1) {
        c.write("ping");
        c.read(4);  // the ticket arrives before it
        if (session == nullptr) {
          session = SSL_get1_session(c.ssl);
        }
        SSL_shutdown(c.ssl);  // freed unclosed, a client's session is not resumable
      }
    });
    auto conn = handshake(server, fds[0], true);
    ASSERT_NE(conn, nullptr);
    EXPECT_EQ(conn->recordLayer(), RecordLayer::kTakenOver);
    EXPECT_EQ(conn->resumed(), round == 1);
    EXPECT_EQ(readExactly(*conn, fds[0], 4), "ping");
    EXPECT_TRUE(writeAll(*conn, fds[0], "pong"));
    client.join();
    ::close(fds[0]);
    ::close(fds[1]);
  }
  ASSERT_NE(session, nullptr);
  SSL_SESSION_free(session);
}

}  // namespace
}  // namespace sluice::tls

namespace sluice::tls {
namespace {

// A connection whose client side the test writes by hand: OpenSSL's client does the handshake
// and reports its traffic secret, then records of any content are sealed with it and sent raw.
// The client's SSL still reads what the server sends.
struct Crafted {
  Server server;
  int fds[2] = {-1, -1};
  Client* client = nullptr;
  std::unique_ptr<Connection> conn;
  TrafficKey key;  // the client's sending key

  static void keyLog(const SSL* ssl, const char* line) {
    auto* out = static_cast<std::string*>(SSL_get_app_data(ssl));
    const std::string_view l(line);
    if (l.starts_with("CLIENT_TRAFFIC_SECRET_0 ")) {
      *out = std::string(l.substr(l.rfind(' ') + 1));
    }
  }

  explicit Crafted(const char* suite = "TLS_AES_128_GCM_SHA256") {
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
    client = new Client(fds[1], suite);
    std::string hex;
    SSL_CTX_set_keylog_callback(client->ctx, keyLog);
    SSL_set_app_data(client->ssl, &hex);
    std::thread t([this] { EXPECT_EQ(SSL_connect(client->ssl), 1); });
    conn = handshake(server, fds[0], true);
    t.join();
    EXPECT_NE(conn, nullptr);
    if (!conn) {
      return;
    }
    EXPECT_EQ(conn->recordLayer(), RecordLayer::kTakenOver);
    Bytes secret;
    for (std::size_t i = 0; i + 1 < hex.size(); i += 2) {
      secret.push_back(static_cast<std::uint8_t>(std::stoi(hex.substr(i, 2), nullptr, 16)));
    }
    const Suite s = *suiteOf(SSL_CIPHER_get_id(SSL_get_current_cipher(client->ssl)));
    EXPECT_TRUE(key.init(s, secret, 0, true));
  }
  ~Crafted() {
    conn.reset();
    delete client;
    ::close(fds[0]);
    ::close(fds[1]);
  }
  // Seals `inner` (the content, then `type`) and sends it.
  void send(const Bytes& inner, std::uint8_t type) {
    Bytes rec(inner.size() + kRecordHeader + 1 + kTag);
    ASSERT_EQ(key.seal(inner, type, rec.data()), rec.size());
    sendRaw(rec);
  }
  void sendRaw(const Bytes& bytes) {
    ASSERT_EQ(::send(fds[1], bytes.data(), bytes.size(), 0), static_cast<ssize_t>(bytes.size()));
  }
  // The server's next read: what it returned, with the bytes it read.
  Io read(std::string& got) {
    char b[256];
    std::size_t n = 0;
    Io io = Io::kWantRead;
    for (int i = 0; i < 50 && io == Io::kWantRead; ++i) {
      io = conn->read(b, sizeof b, n);
      if (io == Io::kWantRead) {
        pollfd p{fds[0], POLLIN, 0};
        ::poll(&p, 1, 100);
      }
    }
    got.assign(b, n);
    return io;
  }
};

Bytes text(std::string_view s) {
  return {s.begin(), s.end()};
}

TEST(Record13Peer, EmptyAndPaddedRecordsCarryTheirContentOnly) {
  Crafted c;
  ASSERT_NE(c.conn, nullptr);
  c.send({}, 23);                      // zero-length application data
  c.send({'h', 'i', 23, 0, 0, 0}, 0);  // "hi", type 23, three bytes of padding
  std::string got;
  ASSERT_EQ(c.read(got), Io::kDone) << c.conn->lastError();
  EXPECT_EQ(got, "hi");
}

TEST(Record13Peer, AKeyUpdateMovesTheReadKeyAndAnsweredWhenAsked) {
  Crafted c;
  ASSERT_NE(c.conn, nullptr);
  c.send({24, 0, 0, 1, 1}, 22);  // KeyUpdate, update_requested
  ASSERT_TRUE(c.key.update());
  c.send(text("after"), 23);
  std::string got;
  ASSERT_EQ(c.read(got), Io::kDone) << c.conn->lastError();
  EXPECT_EQ(got, "after");
  EXPECT_EQ(c.conn->record13()->readSeq(), 1u);
  std::size_t n = 0;
  ASSERT_EQ(c.conn->write("pong", 4, n), Io::kDone);
  // OpenSSL's client reads the server's KeyUpdate, then "pong" under the server's next key.
  EXPECT_EQ(c.client->read(4), "pong");
  EXPECT_EQ(c.conn->record13()->writeSeq(), 1u) << "pong is the first record of the new key";
}

TEST(Record13Peer, AuthenticatedButMalformedRecordsCloseTheConnection) {
  struct Case {
    const char* name;
    Bytes inner;
    std::uint8_t type;
    const char* error;
  };
  const Case cases[] = {
      {"KeyUpdate of value 2", {24, 0, 0, 1, 2}, 22, "decode_error"},
      {"KeyUpdate longer than 1", {24, 0, 0, 2, 0, 0}, 22, "decode_error"},
      {"data behind a KeyUpdate", {24, 0, 0, 1, 0, 'x'}, 22, "not at the end"},
      {"half a handshake header", {24, 0}, 22, "split across records"},
      {"an empty handshake record", {}, 22, "empty handshake record"},
      {"a message longer than its record", {24, 0, 0, 9, 0}, 22, "split across records"},
      {"a NewSessionTicket from the client", {4, 0, 0, 1, 0}, 22, "handshake message 4"},
      {"change_cipher_spec inside", {1}, 20, "content type 20"},
      {"an unknown content type", {1}, 99, "content type 99"},
      {"a fatal alert", {2, 40}, 21, "alert 40"},
      {"a three-byte alert", {1, 0, 0}, 21, "malformed alert"},
      {"all zeros: no content type", {0, 0, 0}, 0, "content type 0"},
  };
  for (const Case& k : cases) {
    SCOPED_TRACE(k.name);
    Crafted c;
    ASSERT_NE(c.conn, nullptr);
    c.send(k.inner, k.type);
    std::string got;
    EXPECT_EQ(c.read(got), Io::kError);
    EXPECT_NE(c.conn->lastError().find(k.error), std::string::npos) << c.conn->lastError();
    EXPECT_EQ(got, "");
    EXPECT_EQ(c.read(got), Io::kError) << "a failed connection stays failed";
  }
}

TEST(Record13Peer, HeadersThatAreNotTls13ApplicationDataAreRefused) {
  const Bytes headers[] = {
      {22, 3, 3, 0, 20},       // a plaintext handshake record after the handshake
      {20, 3, 3, 0, 1},        // change_cipher_spec after the peer's Finished
      {23, 3, 3, 0x41, 0x01},  // longer than 2^14 + 256
      {23, 3, 3, 0, 16},       // shorter than a tag and a type
      {23, 2, 0, 0, 20},       // not version 3.x
  };
  for (const Bytes& h : headers) {
    Crafted c;
    ASSERT_NE(c.conn, nullptr);
    c.sendRaw(h);
    std::string got;
    EXPECT_EQ(c.read(got), Io::kError) << int(h[0]) << " " << int(h[3]) << " " << int(h[4]);
    EXPECT_NE(c.conn->lastError().find("unexpected_message"), std::string::npos);
  }
}

TEST(Record13Peer, CloseNotifyEndsTheStreamAndARecordCutByEofIsAnError) {
  {
    Crafted c;
    ASSERT_NE(c.conn, nullptr);
    c.send({1, 0}, 21);  // close_notify
    std::string got;
    EXPECT_EQ(c.read(got), Io::kClosed);
  }
  {
    Crafted c;
    ASSERT_NE(c.conn, nullptr);
    Bytes rec(2 + kRecordHeader + 1 + kTag);
    ASSERT_GT(c.key.seal(text("hi"), 23, rec.data()), 0u);
    rec.resize(rec.size() - 3);
    c.sendRaw(rec);
    ::shutdown(c.fds[1], SHUT_WR);
    std::string got;
    EXPECT_EQ(c.read(got), Io::kError);
    EXPECT_NE(c.conn->lastError().find("inside a record"), std::string::npos);
  }
}

TEST(Record13Peer, ARecordInPiecesWaitsAndTwoInOneReadBothArrive) {
  Crafted c;
  ASSERT_NE(c.conn, nullptr);
  Bytes rec(5 + kRecordHeader + 1 + kTag);
  ASSERT_GT(c.key.seal(text("first"), 23, rec.data()), 0u);
  Bytes second(6 + kRecordHeader + 1 + kTag);
  ASSERT_GT(c.key.seal(text("second"), 23, second.data()), 0u);
  c.sendRaw({rec.begin(), rec.begin() + 3});  // not even a header
  char b[64];
  std::size_t n = 0;
  EXPECT_EQ(c.conn->read(b, sizeof b, n), Io::kWantRead);
  EXPECT_FALSE(c.conn->pending());
  Bytes rest(rec.begin() + 3, rec.end());
  rest.insert(rest.end(), second.begin(), second.end());
  c.sendRaw(rest);
  std::string got;
  ASSERT_EQ(c.read(got), Io::kDone) << c.conn->lastError();
  EXPECT_EQ(got, "first");
  EXPECT_TRUE(c.conn->pending()) << "the second record is whole in the buffer";
  ASSERT_EQ(c.conn->read(b, sizeof b, n), Io::kDone);
  EXPECT_EQ(std::string(b, n), "second");
  EXPECT_FALSE(c.conn->pending());
}

TEST(Record13Peer, AKeyUsedTooLongIsUpdatedAndAPeerThatNeverUpdatesIsCut) {
  Crafted c;
  ASSERT_NE(c.conn, nullptr);
  c.conn->record13()->limitKeyUse(3);
  std::string got;
  for (int i = 0; i < 3; ++i) {
    c.send(text("x"), 23);
    ASSERT_EQ(c.read(got), Io::kDone) << i;
  }
  // Three records under the client's key: the server asks for a new one (and moves its own).
  std::size_t n = 0;
  ASSERT_EQ(c.conn->write("pong", 4, n), Io::kDone);
  EXPECT_EQ(c.client->read(4), "pong");
  EXPECT_EQ(c.conn->record13()->writeSeq(), 1u);
  // The client does not answer: past twice the limit the server gives up.
  for (int i = 0; i < 3; ++i) {
    c.send(text("y"), 23);
    ASSERT_EQ(c.read(got), Io::kDone) << i;
  }
  c.send(text("z"), 23);
  EXPECT_EQ(c.read(got), Io::kError);
  EXPECT_NE(c.conn->lastError().find("did not update"), std::string::npos);
}

TEST(Record13Peer, OurKeyIsUpdatedBeforeItsLimit) {
  Crafted c;
  ASSERT_NE(c.conn, nullptr);
  c.conn->record13()->limitKeyUse(2);
  std::size_t n = 0;
  for (int i = 0; i < 5; ++i) {
    ASSERT_EQ(c.conn->write("abcd", 4, n), Io::kDone);
    EXPECT_EQ(c.client->read(4), "abcd") << "record " << i;
  }
  EXPECT_LE(c.conn->record13()->writeSeq(), 2u);
}

}  // namespace
}  // namespace sluice::tls
