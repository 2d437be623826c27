// The TLS 1.3 record layer of a terminated connection after its handshake (RFC 8446 §5, §4.6.3,
// §7.1-7.3): application data, alerts and KeyUpdate, sealed and opened with OpenSSL's AEADs.
//
// Why: after the handshake, an OpenSSL connection keeps its whole `SSL` (13.9 KiB of heap per
// idle TLS 1.3 connection, measured: docs/benchmarks-tls.md), and kTLS, which would let it go,
// breaks TLS 1.3 at the first KeyUpdate on Debian 12's OpenSSL 3.0 (docs/tls.md). OpenSSL still
// does the whole handshake, certificates, tickets and all; this takes over only the traffic
// secrets it reports (the key log callback), with the sequence numbers it reached. What an idle
// connection then keeps is two AEAD contexts and two secrets. docs/tls.md, "The record layer".
//
// A record is read and written whole: a partial record from the socket, plaintext the caller had
// no room for, or a record the socket did not take all of, wait in one buffer of the process's
// TLS block pool, held only while they exist.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include <openssl/types.h>

#include "tls/io.hpp"

namespace sluice::tls {

enum class Suite : std::uint8_t { kAes128GcmSha256, kAes256GcmSha384, kChaCha20Poly1305Sha256 };

// The suite of an OpenSSL TLS 1.3 cipher id (SSL_CIPHER_get_id()); nullopt for one not handled
// here (the CCM suites, off by default): such a connection keeps OpenSSL's record layer.
std::optional<Suite> suiteOf(std::uint32_t openssl_cipher_id);
const char* suiteName(Suite suite);     // "TLS_AES_128_GCM_SHA256", as OpenSSL names it
std::size_t secretLength(Suite suite);  // the hash's length: 32 or 48

inline constexpr std::size_t kMaxSecret = 48;
inline constexpr std::size_t kRecordHeader = 5;
inline constexpr std::size_t kTag = 16;
inline constexpr std::size_t kMaxPlaintext = 16384;                 // 2^14
inline constexpr std::size_t kMaxCiphertext = kMaxPlaintext + 256;  // TLSCiphertext.length's cap

// HKDF-Expand-Label(secret, label, "", out.size()) with the suite's hash (RFC 8446 §7.1).
bool expandLabel(Suite suite, std::span<const std::uint8_t> secret, std::string_view label,
                 std::span<std::uint8_t> out);

// One direction's protection: key and IV derived from a traffic secret, the record sequence
// number, and the AEAD context (keyed once; each record sets only its nonce).
class TrafficKey {
public:
  // Records after this many under one key ask for a new one (a KeyUpdate), far inside AES-GCM's
  // limit of 2^24.5 full-size records per key (RFC 8446 §5.5).
  static constexpr std::uint64_t kUpdateAfter = std::uint64_t{1} << 23;

  TrafficKey() = default;
  ~TrafficKey();
  TrafficKey(const TrafficKey&) = delete;
  TrafficKey& operator=(const TrafficKey&) = delete;

  // `encrypt`: this side's sending key, else the peer's. False if OpenSSL failed.
  bool init(Suite suite, std::span<const std::uint8_t> secret, std::uint64_t seq, bool encrypt);
  // The next generation: secret = HKDF-Expand-Label(secret, "traffic upd", "", Hash.length), its
  // key and IV, sequence number 0 (RFC 8446 §7.2).
  bool update();

  // Seals one record: `plain` (at most kMaxPlaintext bytes) with inner content type `type`, into
  // `out`, which must hold plain.size() + kRecordHeader + 1 + kTag bytes (`plain` may be at
  // out + kRecordHeader). The record's length, or 0 if OpenSSL failed.
  std::size_t seal(std::span<const std::uint8_t> plain, std::uint8_t type, std::uint8_t* out);
  // Opens one whole record in place: `record` is the 5-byte header and its body. The inner
  // plaintext (padding and type taken off) is record + kRecordHeader, `len` bytes, of inner
  // content type `type`. Writes the plaintext to `out` instead when it is not null (room for
  // body - kTag bytes). False if it does not authenticate; type 0 if it holds no content type.
  bool open(std::uint8_t* record, std::size_t body, std::uint8_t* out, std::size_t& len,
            std::uint8_t& type);

  std::uint64_t seq() const { return seq_; }

private:
  bool derive();

  EVP_CIPHER_CTX* ctx_ = nullptr;
  Suite suite_ = Suite::kAes128GcmSha256;
  bool encrypt_ = false;
  std::array<std::uint8_t, kMaxSecret> secret_{};
  std::array<std::uint8_t, 12> iv_{};
  std::uint64_t seq_ = 0;
};

// The record layer of one connection, on a non-blocking socket it does not own.
class Record13 {
public:
  struct Secrets {
    std::array<std::uint8_t, kMaxSecret> client{};  // CLIENT_TRAFFIC_SECRET_0
    std::array<std::uint8_t, kMaxSecret> server{};  // SERVER_TRAFFIC_SECRET_0
  };
  // `read_seq`, `write_seq`: the records each side has already protected with its traffic
  // secret (the server's tickets). Null if OpenSSL failed.
  static std::unique_ptr<Record13> create(int fd, Suite suite, const Secrets& secrets,
                                          std::uint64_t read_seq, std::uint64_t write_seq);
  ~Record13();
  Record13(const Record13&) = delete;
  Record13& operator=(const Record13&) = delete;

  // As Connection's: a read returns what one record holds (or what the caller had room for); a
  // write sends up to one record's worth (`n` says how much), or, after kWantWrite, completes
  // the record it had begun when called again.
  Io read(void* data, std::size_t len, std::size_t& n);
  Io write(const void* data, std::size_t len, std::size_t& n);
  // close_notify, best effort (never waits).
  void shutdown();
  bool pending() const;
  bool drained() const { return drained_; }
  Suite suite() const { return suite_; }
  const std::string& lastError() const { return last_error_; }

  // For tests: a key's records before a KeyUpdate (TrafficKey::kUpdateAfter), and the sequence
  // numbers reached.
  void limitKeyUse(std::uint64_t records) { update_after_ = records; }
  std::uint64_t readSeq() const { return rx_.seq(); }
  std::uint64_t writeSeq() const { return tx_.seq(); }

private:
  Record13(int fd, Suite suite) : fd_(fd), suite_(suite) {}
  Io fail(std::string why);
  // Sends what `out_` holds; kDone once it is empty.
  Io flush();
  // Seals a KeyUpdate (`request`: update_requested) into `out_`, moves to the next key, and
  // sends what the socket takes. False (the connection failed) if any of it failed.
  bool sendKeyUpdate(bool request);
  // After a record of the peer's: a KeyUpdate request once its key has sealed kUpdateAfter.
  void askForKeyUpdate();
  // Reads until `work` (`have` bytes) starts with a whole record of `need` bytes: kDone, or what
  // the socket said (the bytes so far kept for the next call).
  Io fill(std::uint8_t* work, std::size_t& have, std::size_t& need);
  // Opens that record; keeps what the caller has no room for and the bytes behind it. What read()
  // returns, or nullopt to go on with the next record (this one held no application data).
  std::optional<Io> openRecord(std::uint8_t* work, std::size_t need, std::size_t have,
                               std::uint8_t* dst, std::size_t len, std::size_t& n);
  bool handshakeMessages(const std::uint8_t* p, std::size_t len);
  // Keeps what a read left: plaintext the caller had no room for, and the bytes behind it.
  bool keep(std::span<const std::uint8_t> plain, std::span<const std::uint8_t> raw);
  void releaseBuffer();

  int fd_;
  Suite suite_;
  TrafficKey rx_, tx_;
  // One buffer from the block pool while anything waits in it: [plain_][raw_] for reading, and
  // the unsent tail of a record (out_) for writing, in a buffer of its own.
  std::uint8_t* in_ = nullptr;
  std::size_t plain_at_ = 0, plain_len_ = 0, raw_at_ = 0, raw_len_ = 0;
  std::uint8_t* out_ = nullptr;
  std::size_t out_at_ = 0, out_len_ = 0;
  std::size_t out_for_ = 0;  // the caller's plaintext bytes the record in out_ carries
  bool drained_ = false;
  bool peer_closed_ = false;
  bool failed_ = false;
  bool update_requested_ = false;  // we asked the peer for a KeyUpdate and wait for it
  bool owe_update_ = false;        // the peer asked for ours: it goes before our next record
  // A key's records before its KeyUpdate; the peer's may go to twice this before it is refused.
  std::uint64_t update_after_ = TrafficKey::kUpdateAfter;
  std::string last_error_;
};

}  // namespace sluice::tls
