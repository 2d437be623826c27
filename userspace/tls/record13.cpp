#include "tls/record13.hpp"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <openssl/ssl.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "common/ready_wait.hpp"

namespace sluice::tls {

namespace {

constexpr std::uint8_t kApplicationData = 23;
constexpr std::uint8_t kAlert = 21;
constexpr std::uint8_t kHandshake = 22;
constexpr std::uint8_t kKeyUpdate = 24;
constexpr std::uint8_t kCloseNotify = 0;

// A connection's waiting bytes: the largest record and what one read may bring behind it. Served
// by the TLS block pool (BlockPool::serves()) when the agent installed it.
constexpr std::size_t kBuffer = 24 * 1024;
static_assert(kBuffer >= kRecordHeader + kMaxCiphertext);

const EVP_CIPHER* cipherOf(Suite suite) {
  // Fetched once: an implicit fetch per key would search the providers every time.
  static EVP_CIPHER* const aes128 = EVP_CIPHER_fetch(nullptr, "AES-128-GCM", nullptr);
  static EVP_CIPHER* const aes256 = EVP_CIPHER_fetch(nullptr, "AES-256-GCM", nullptr);
  static EVP_CIPHER* const chacha = EVP_CIPHER_fetch(nullptr, "ChaCha20-Poly1305", nullptr);
  switch (suite) {
    case Suite::kAes128GcmSha256:
      return aes128;
    case Suite::kAes256GcmSha384:
      return aes256;
    case Suite::kChaCha20Poly1305Sha256:
      return chacha;
  }
  return nullptr;
}

std::size_t keyLength(Suite suite) {
  return suite == Suite::kAes128GcmSha256 ? 16 : 32;
}

const char* digestOf(Suite suite) {
  return suite == Suite::kAes256GcmSha384 ? "SHA384" : "SHA256";
}

}  // namespace

std::optional<Suite> suiteOf(std::uint32_t openssl_cipher_id) {
  switch (openssl_cipher_id) {
    case TLS1_3_CK_AES_128_GCM_SHA256:
      return Suite::kAes128GcmSha256;
    case TLS1_3_CK_AES_256_GCM_SHA384:
      return Suite::kAes256GcmSha384;
    case TLS1_3_CK_CHACHA20_POLY1305_SHA256:
      return Suite::kChaCha20Poly1305Sha256;
    default:
      return std::nullopt;
  }
}

const char* suiteName(Suite suite) {
  switch (suite) {
    case Suite::kAes128GcmSha256:
      return "TLS_AES_128_GCM_SHA256";
    case Suite::kAes256GcmSha384:
      return "TLS_AES_256_GCM_SHA384";
    case Suite::kChaCha20Poly1305Sha256:
      return "TLS_CHACHA20_POLY1305_SHA256";
  }
  return "";
}

std::size_t secretLength(Suite suite) {
  return suite == Suite::kAes256GcmSha384 ? 48 : 32;
}

bool expandLabel(Suite suite, std::span<const std::uint8_t> secret, std::string_view label,
                 std::span<std::uint8_t> out) {
  // struct { uint16 length; opaque label<7..255> = "tls13 " + Label; opaque context<0..255>; }
  static constexpr std::string_view kPrefix = "tls13 ";
  std::array<std::uint8_t, 2 + 1 + 255 + 1> info{};
  if (out.size() > 0xffff || kPrefix.size() + label.size() > 255) {
    return false;
  }
  std::size_t at = 0;
  info[at++] = static_cast<std::uint8_t>(out.size() >> 8);
  info[at++] = static_cast<std::uint8_t>(out.size());
  info[at++] = static_cast<std::uint8_t>(kPrefix.size() + label.size());
  std::memcpy(info.data() + at, kPrefix.data(), kPrefix.size());
  at += kPrefix.size();
  std::memcpy(info.data() + at, label.data(), label.size());
  at += label.size();
  info[at++] = 0;  // an empty context

  static EVP_KDF* const hkdf = EVP_KDF_fetch(nullptr, "HKDF", nullptr);
  if (hkdf == nullptr) {
    return false;
  }
  EVP_KDF_CTX* kctx = EVP_KDF_CTX_new(hkdf);
  if (kctx == nullptr) {
    return false;
  }
  int mode = EVP_KDF_HKDF_MODE_EXPAND_ONLY;
  const OSSL_PARAM params[] = {
      OSSL_PARAM_construct_int(OSSL_KDF_PARAM_MODE, &mode),
      OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, const_cast<char*>(digestOf(suite)),
                                       0),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY,
                                        const_cast<std::uint8_t*>(secret.data()), secret.size()),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, info.data(), at),
      OSSL_PARAM_construct_end(),
  };
  const bool ok = EVP_KDF_derive(kctx, out.data(), out.size(), params) == 1;
  EVP_KDF_CTX_free(kctx);
  return ok;
}

// --- TrafficKey ---------------------------------------------------------------------------------

TrafficKey::~TrafficKey() {
  EVP_CIPHER_CTX_free(ctx_);
  OPENSSL_cleanse(secret_.data(), secret_.size());
}

bool TrafficKey::init(Suite suite, std::span<const std::uint8_t> secret, std::uint64_t seq,
                      bool encrypt) {
  if (secret.size() != secretLength(suite) || cipherOf(suite) == nullptr) {
    return false;
  }
  suite_ = suite;
  encrypt_ = encrypt;
  std::memcpy(secret_.data(), secret.data(), secret.size());
  if (ctx_ == nullptr) {
    ctx_ = EVP_CIPHER_CTX_new();
    if (ctx_ == nullptr ||
        EVP_CipherInit_ex(ctx_, cipherOf(suite), nullptr, nullptr, nullptr, encrypt ? 1 : 0) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx_, EVP_CTRL_AEAD_SET_IVLEN, static_cast<int>(iv_.size()), nullptr) !=
            1) {
      return false;
    }
  }
  if (!derive()) {
    return false;
  }
  seq_ = seq;
  return true;
}

bool TrafficKey::derive() {
  std::array<std::uint8_t, 32> key{};
  const std::size_t n = secretLength(suite_);
  const bool ok =
      expandLabel(suite_, {secret_.data(), n}, "key", {key.data(), keyLength(suite_)}) &&
      expandLabel(suite_, {secret_.data(), n}, "iv", iv_) &&
      EVP_CipherInit_ex(ctx_, nullptr, nullptr, key.data(), nullptr, -1) == 1;
  OPENSSL_cleanse(key.data(), key.size());
  return ok;
}

bool TrafficKey::update() {
  const std::size_t n = secretLength(suite_);
  std::array<std::uint8_t, kMaxSecret> next{};
  if (!expandLabel(suite_, {secret_.data(), n}, "traffic upd", {next.data(), n})) {
    return false;
  }
  std::memcpy(secret_.data(), next.data(), n);
  OPENSSL_cleanse(next.data(), next.size());
  seq_ = 0;
  return derive();
}

namespace {

// The per-record nonce: the IV with the sequence number (64 bits, big-endian) XORed into its end.
std::array<std::uint8_t, 12> nonceOf(const std::array<std::uint8_t, 12>& iv, std::uint64_t seq) {
  std::array<std::uint8_t, 12> nonce = iv;
  for (int i = 0; i < 8; ++i) {
    nonce[11 - i] ^= static_cast<std::uint8_t>(seq >> (8 * i));
  }
  return nonce;
}

}  // namespace

std::size_t TrafficKey::seal(std::span<const std::uint8_t> plain, std::uint8_t type,
                             std::uint8_t* out) {
  if (ctx_ == nullptr || !encrypt_ || plain.size() > kMaxPlaintext) {
    return 0;
  }
  const std::size_t body = plain.size() + 1 + kTag;
  out[0] = kApplicationData;  // opaque_type
  out[1] = 3;                 // legacy_record_version 0x0303
  out[2] = 3;
  out[3] = static_cast<std::uint8_t>(body >> 8);
  out[4] = static_cast<std::uint8_t>(body);
  const auto nonce = nonceOf(iv_, seq_);
  std::uint8_t* ct = out + kRecordHeader;
  int n = 0;
  int total = 0;
  if (EVP_CipherInit_ex(ctx_, nullptr, nullptr, nullptr, nonce.data(), 1) != 1 ||
      EVP_CipherUpdate(ctx_, nullptr, &n, out, static_cast<int>(kRecordHeader)) != 1) {
    return 0;
  }
  if (!plain.empty()) {
    if (EVP_CipherUpdate(ctx_, ct, &n, plain.data(), static_cast<int>(plain.size())) != 1) {
      return 0;
    }
    total += n;
  }
  const std::uint8_t inner = type;
  if (EVP_CipherUpdate(ctx_, ct + total, &n, &inner, 1) != 1) {
    return 0;
  }
  total += n;
  if (EVP_CipherFinal_ex(ctx_, ct + total, &n) != 1) {
    return 0;
  }
  total += n;
  if (static_cast<std::size_t>(total) != plain.size() + 1 ||
      EVP_CIPHER_CTX_ctrl(ctx_, EVP_CTRL_AEAD_GET_TAG, static_cast<int>(kTag), ct + total) != 1) {
    return 0;
  }
  ++seq_;
  return kRecordHeader + body;
}

bool TrafficKey::open(std::uint8_t* record, std::size_t body, std::uint8_t* out, std::size_t& len,
                      std::uint8_t& type) {
  len = 0;
  type = 0;
  if (ctx_ == nullptr || encrypt_ || body < 1 + kTag || body > kMaxCiphertext) {
    return false;
  }
  const std::size_t ct_len = body - kTag;
  std::uint8_t* ct = record + kRecordHeader;
  std::uint8_t* dst = out != nullptr ? out : ct;
  const auto nonce = nonceOf(iv_, seq_);
  int n = 0;
  int total = 0;
  if (EVP_CipherInit_ex(ctx_, nullptr, nullptr, nullptr, nonce.data(), 0) != 1 ||
      EVP_CipherUpdate(ctx_, nullptr, &n, record, static_cast<int>(kRecordHeader)) != 1 ||
      EVP_CipherUpdate(ctx_, dst, &n, ct, static_cast<int>(ct_len)) != 1) {
    return false;
  }
  total = n;
  if (EVP_CIPHER_CTX_ctrl(ctx_, EVP_CTRL_AEAD_SET_TAG, static_cast<int>(kTag), ct + ct_len) != 1 ||
      EVP_CipherFinal_ex(ctx_, dst + total, &n) != 1) {
    return false;  // bad_record_mac
  }
  total += n;
  if (static_cast<std::size_t>(total) != ct_len) {
    return false;
  }
  ++seq_;
  // TLSInnerPlaintext: content, the type, then zeros of padding.
  std::size_t end = ct_len;
  while (end > 0 && dst[end - 1] == 0) {
    --end;
  }
  if (end == 0) {
    return true;  // no content type at all: type 0, which no record may have
  }
  type = dst[end - 1];
  len = end - 1;
  return true;
}

// --- Record13 -----------------------------------------------------------------------------------

namespace {

// The thread's working space: a record is read and opened here, or sealed here before its send.
// Never held across a call (read() and write() do not suspend).
std::uint8_t* scratch() {
  thread_local std::array<std::uint8_t, kBuffer> buffer;
  return buffer.data();
}

std::uint8_t* takeBuffer() {
  return static_cast<std::uint8_t*>(OPENSSL_malloc(kBuffer));
}

void giveBuffer(std::uint8_t*& p) {
  OPENSSL_free(p);
  p = nullptr;
}

// Bytes the first record at `p` needs, header included (5 until the header is there); 0 if the
// header is not one of an encrypted TLS 1.3 record.
std::size_t recordNeeds(const std::uint8_t* p, std::size_t have) {
  if (have < kRecordHeader) {
    return kRecordHeader;
  }
  const std::size_t body = (std::size_t{p[3]} << 8) | p[4];
  // After the handshake every record is application_data on the wire (a change_cipher_spec is
  // allowed only before the peer's Finished: RFC 8446 §5).
  if (p[0] != kApplicationData || p[1] != 3 || body < 1 + kTag || body > kMaxCiphertext) {
    return 0;
  }
  return kRecordHeader + body;
}

}  // namespace

std::unique_ptr<Record13> Record13::create(int fd, Suite suite, const Secrets& secrets,
                                           std::uint64_t read_seq, std::uint64_t write_seq) {
  std::unique_ptr<Record13> r(new Record13(fd, suite));
  const std::size_t n = secretLength(suite);
  if (!r->rx_.init(suite, {secrets.client.data(), n}, read_seq, false) ||
      !r->tx_.init(suite, {secrets.server.data(), n}, write_seq, true)) {
    return nullptr;
  }
  return r;
}

Record13::~Record13() {
  giveBuffer(in_);
  giveBuffer(out_);
}

Io Record13::fail(std::string why) {
  failed_ = true;
  last_error_ = std::move(why);
  return Io::kError;
}

void Record13::releaseBuffer() {
  giveBuffer(in_);
  plain_at_ = plain_len_ = raw_at_ = raw_len_ = 0;
}

bool Record13::keep(std::span<const std::uint8_t> plain, std::span<const std::uint8_t> raw) {
  if (plain.empty() && raw.empty()) {
    return true;
  }
  if (in_ == nullptr && (in_ = takeBuffer()) == nullptr) {
    return false;
  }
  if (!plain.empty()) {
    std::memmove(in_, plain.data(), plain.size());
  }
  if (!raw.empty()) {
    std::memmove(in_ + plain.size(), raw.data(), raw.size());
  }
  plain_at_ = 0;
  plain_len_ = plain.size();
  raw_at_ = plain.size();
  raw_len_ = raw.size();
  return true;
}

bool Record13::pending() const {
  if (plain_len_ > 0) {
    return true;
  }
  if (raw_len_ < kRecordHeader) {
    return false;
  }
  const std::size_t need = recordNeeds(in_ + raw_at_, raw_len_);
  return need == 0 || raw_len_ >= need;  // a whole record, or a bad one for read() to report
}

Io Record13::read(void* data, std::size_t len, std::size_t& n) {
  n = 0;
  drained_ = false;
  if (failed_) {
    return Io::kError;
  }
  if (out_len_ > 0 && out_for_ == 0 && flush() == Io::kError) {
    return Io::kError;  // a KeyUpdate of ours still waiting: best effort
  }
  auto* dst = static_cast<std::uint8_t*>(data);
  for (;;) {
    if (plain_len_ > 0) {
      const std::size_t k = std::min(len, plain_len_);
      std::memcpy(dst, in_ + plain_at_, k);
      plain_at_ += k;
      plain_len_ -= k;
      n = k;
      if (plain_len_ == 0 && raw_len_ == 0) {
        releaseBuffer();
      }
      return Io::kDone;
    }
    if (peer_closed_) {
      return Io::kClosed;
    }
    // Whatever waits goes to the thread's scratch, where the next record is completed.
    std::uint8_t* work = scratch();
    std::size_t have = raw_len_;
    if (have > 0) {
      std::memcpy(work, in_ + raw_at_, have);
      releaseBuffer();
    }
    std::size_t need = 0;
    if (const Io io = fill(work, have, need); io != Io::kDone) {
      return io;
    }
    if (const std::optional<Io> io = openRecord(work, need, have, dst, len, n)) {
      return *io;
    }
  }
}

Io Record13::fill(std::uint8_t* work, std::size_t& have, std::size_t& need) {
  for (;;) {
    need = recordNeeds(work, have);
    if (need == 0) {
      return fail("a record that is not TLS 1.3 application data (unexpected_message)");
    }
    if (have >= need) {
      return Io::kDone;
    }
    const ssize_t got = net::readWithHint(fd_, work + have, kBuffer - have, drained_);
    if (got > 0) {
      have += static_cast<std::size_t>(got);
      continue;
    }
    if (got == 0) {
      if (have > 0) {
        return fail("the connection ended inside a record");
      }
      peer_closed_ = true;  // EOF without close_notify: as OpenSSL with IGNORE_UNEXPECTED_EOF
      return Io::kClosed;
    }
    if (errno == EINTR) {
      continue;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      return keep({}, {work, have}) ? Io::kWantRead : fail("out of memory");
    }
    return fail(std::strerror(errno));
  }
}

std::optional<Io> Record13::openRecord(std::uint8_t* work, std::size_t need, std::size_t have,
                                       std::uint8_t* dst, std::size_t len, std::size_t& n) {
  const std::size_t body = need - kRecordHeader;
  const std::span<const std::uint8_t> rest(work + need, have - need);
  // Straight into the caller's buffer when any plaintext the record may hold fits there.
  std::uint8_t* out = len >= body - kTag ? dst : nullptr;
  std::size_t plen = 0;
  std::uint8_t type = 0;
  if (!rx_.open(work, body, out, plen, type)) {
    return fail("a record did not authenticate (bad_record_mac)");
  }
  if (rx_.seq() > 2 * update_after_) {
    return fail("the peer did not update its key when asked");
  }
  const std::uint8_t* plain = out != nullptr ? out : work + kRecordHeader;
  switch (type) {
    case kApplicationData: {
      if (plen == 0) {
        break;  // a zero-length record is allowed: on to the next one
      }
      const std::size_t k = std::min(len, plen);
      if (out == nullptr) {
        std::memcpy(dst, plain, k);
      }
      n = k;
      if (!keep({plain + k, plen - k}, rest)) {
        n = 0;
        return fail("out of memory");
      }
      askForKeyUpdate();
      return Io::kDone;
    }
    case kAlert:
      if (plen != 2) {
        return fail("a malformed alert (decode_error)");
      }
      if (plain[1] == kCloseNotify) {
        peer_closed_ = true;  // anything behind it is ignored
        return Io::kClosed;
      }
      return fail("the peer sent alert " + std::to_string(plain[1]));
    case kHandshake:
      if (!handshakeMessages(plain, plen)) {
        return Io::kError;
      }
      break;
    default:
      return fail("a record of content type " + std::to_string(type) +
                  " after the handshake (unexpected_message)");
  }
  if (!keep({}, rest)) {
    return fail("out of memory");
  }
  return std::nullopt;  // no application data in it: on to the next record
}

bool Record13::handshakeMessages(const std::uint8_t* p, std::size_t len) {
  // Messages are not reassembled across records: the only one a client may send after the
  // handshake here is a KeyUpdate (5 bytes; no post-handshake authentication is offered), and a
  // key change ends its record, so a record holds at most that one message.
  if (len == 0) {
    // "Implementations MUST NOT send zero-length fragments of Handshake types" (RFC 8446 §5.1).
    fail("an empty handshake record (unexpected_message)");
    return false;
  }
  const std::size_t body =
      len < 4 ? 0 : (std::size_t{p[1]} << 16) | (std::size_t{p[2]} << 8) | p[3];
  if (len < 4 || body > len - 4) {
    fail("a handshake message split across records (unexpected_message)");
    return false;
  }
  if (p[0] != kKeyUpdate) {
    fail("handshake message " + std::to_string(p[0]) + " after the handshake (unexpected_message)");
    return false;
  }
  if (body != 1 || p[4] > 1) {
    fail("a malformed KeyUpdate (decode_error)");
    return false;
  }
  if (!rx_.update()) {
    fail("deriving the peer's next key failed");
    return false;
  }
  update_requested_ = false;
  owe_update_ = owe_update_ || p[4] == 1;  // ours goes before our next application data
  if (len != 4 + body) {
    // What follows a key change in its record was sealed under the old key.
    fail("a KeyUpdate not at the end of its record (unexpected_message)");
    return false;
  }
  return !owe_update_ || out_len_ > 0 || sendKeyUpdate(false);
}

void Record13::askForKeyUpdate() {
  // The peer's key nears its limit and this side may not write soon (an upload): ask now.
  if (rx_.seq() >= update_after_ && !update_requested_ && out_len_ == 0) {
    (void)sendKeyUpdate(true);  // a failure leaves the connection failed for the next call
  }
}

bool Record13::sendKeyUpdate(bool request) {
  const std::uint8_t msg[] = {kKeyUpdate, 0, 0, 1, static_cast<std::uint8_t>(request ? 1 : 0)};
  std::size_t rec = 0;
  if ((out_ == nullptr && (out_ = takeBuffer()) == nullptr) ||
      (rec = tx_.seal(msg, kHandshake, out_)) == 0 || !tx_.update()) {
    fail("sealing a KeyUpdate failed");
    return false;
  }
  out_at_ = 0;
  out_len_ = rec;
  out_for_ = 0;
  owe_update_ = false;  // whether the peer asked for it or not, ours is on its way
  update_requested_ = update_requested_ || request;
  return flush() != Io::kError;  // what the socket does not take goes first at the next write
}

Io Record13::flush() {
  while (out_len_ > 0) {
    const ssize_t s = ::send(fd_, out_ + out_at_, out_len_, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (s > 0) {
      out_at_ += static_cast<std::size_t>(s);
      out_len_ -= static_cast<std::size_t>(s);
      continue;
    }
    if (s < 0 && errno == EINTR) {
      continue;
    }
    if (s < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      return Io::kWantWrite;
    }
    return fail(s < 0 ? std::strerror(errno) : "send took nothing");
  }
  giveBuffer(out_);
  out_at_ = 0;
  return Io::kDone;
}

Io Record13::write(const void* data, std::size_t len, std::size_t& n) {
  n = 0;
  if (failed_) {
    return Io::kError;
  }
  if (out_len_ > 0) {
    const Io f = flush();
    if (f != Io::kDone) {
      return f;
    }
    if (out_for_ > 0) {
      n = out_for_;  // the record the last call began, for the same bytes
      out_for_ = 0;
      return Io::kDone;
    }
  }
  const bool ask = rx_.seq() >= update_after_ && !update_requested_;
  if (owe_update_ || ask || tx_.seq() >= update_after_) {
    if (!sendKeyUpdate(ask)) {
      return Io::kError;
    }
    if (out_len_ > 0) {
      return Io::kWantWrite;  // the next call sends the rest, then the data
    }
  }
  if (len == 0) {
    return Io::kDone;
  }
  const std::size_t take = std::min(len, kMaxPlaintext);
  std::uint8_t* rec = scratch();
  const std::size_t size =
      tx_.seal({static_cast<const std::uint8_t*>(data), take}, kApplicationData, rec);
  if (size == 0) {
    return fail("sealing a record failed");
  }
  ssize_t s = 0;
  do {
    s = ::send(fd_, rec, size, MSG_NOSIGNAL | MSG_DONTWAIT);
  } while (s < 0 && errno == EINTR);
  if (s == static_cast<ssize_t>(size)) {
    n = take;
    return Io::kDone;
  }
  if (s < 0) {
    if (errno != EAGAIN && errno != EWOULDBLOCK) {
      return fail(std::strerror(errno));
    }
    s = 0;
  }
  // The record is sealed (its sequence number used): the rest of it must go out before anything
  // else, so it waits in the connection's buffer.
  if ((out_ = takeBuffer()) == nullptr) {
    return fail("out of memory");
  }
  out_at_ = 0;
  out_len_ = size - static_cast<std::size_t>(s);
  std::memcpy(out_, rec + s, out_len_);
  out_for_ = take;
  return Io::kWantWrite;
}

void Record13::shutdown() {
  if (failed_) {
    return;
  }
  if (out_len_ > 0 && flush() != Io::kDone) {
    return;  // never waits: the close_notify is skipped
  }
  const std::uint8_t alert[] = {1 /* warning */, kCloseNotify};
  std::array<std::uint8_t, kRecordHeader + sizeof alert + 1 + kTag> rec{};
  const std::size_t size = tx_.seal(alert, kAlert, rec.data());
  if (size != 0) {
    (void)::send(fd_, rec.data(), size, MSG_NOSIGNAL | MSG_DONTWAIT);
  }
}

}  // namespace sluice::tls
