// A strict, incremental reader of the TLS ClientHello at the start of a connection, for SNI
// passthrough and certificate choice. Fed the connection's raw bytes in any segmentation (one
// byte at a time works), it reassembles the handshake message across any number of handshake
// records, keeps every record it took verbatim (the passthrough path writes them to the backend
// unchanged) and parses the SNI, ALPN, supported_versions and ECH extensions. No exceptions, no
// allocation per byte: one buffer per connection, sized from the record and handshake lengths
// as they arrive and bounded by the handshake cap (plus record headers).
//
// Strict beyond the RFCs: a record header must be type 22 with major version 3 (any minor) and
// a length of 1..16384; the records holding the ClientHello may be interleaved with nothing
// else. In the ClientHello: session_id at most 32 bytes, cipher suites even and non-empty, 1..255
// compression methods, extensions (optional, as from a TLS 1.2-era client) tiling the message
// exactly, no extension type twice (GREASE types included: a client sends distinct ones), and
// exactly one host_name of 1..253 letters, digits, '-' and '.' with no empty label. GREASE
// values (RFC 8701) are never a reason to refuse: suites, groups and unknown extensions are
// skipped, a GREASE version is not TLS 1.3 and a GREASE ALPN name is just a name.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <utility>
#include <vector>

namespace sluice::tls {

inline constexpr std::size_t kRecordHeaderBytes = 5;
inline constexpr std::size_t kMaxRecordPayload = 16384;
inline constexpr std::size_t kHandshakeHeaderBytes = 4;
inline constexpr std::size_t kDefaultMaxHello = 16 * 1024;
inline constexpr std::size_t kMaxHelloLimit = 64 * 1024;
inline constexpr std::size_t kMaxSniBytes = 253;
inline constexpr std::size_t kMaxAlpn = 8;

enum class Status : std::uint8_t {
  kNeedMore,  // a valid prefix of a ClientHello so far: read more
  kDone,      // hello() is parsed; consumed() holds its records
  kError,     // not a ClientHello this reader accepts: close (kNotHandshake: maybe plain HTTP)
};

enum class Error : std::uint8_t {
  kNone,
  kNotHandshake,          // the first byte is not 22: not TLS (plain HTTP, perhaps)
  kBadRecordVersion,      // record major version is not 3
  kEmptyRecord,           // a handshake record of length 0 (RFC 8446 forbids it)
  kRecordTooLong,         // record length over 16384
  kUnexpectedRecordType,  // alert, CCS, application data... before the ClientHello is whole
  kNotClientHello,        // the first handshake message is not a ClientHello (type 1)
  kTooLarge,              // handshake length over the cap, or its records over the raw bound
  kMalformed,             // a length that does not fit, session_id, suites, compression
  kDuplicateExtension,    // an extension type twice
  kBadSni,                // server_name: not exactly one valid host_name
  kBadAlpn,               // ALPN: empty list or name, or lengths that do not tile
  kBadSupportedVersions,  // supported_versions: odd or empty list, or lengths that do not tile
};
inline constexpr std::size_t kErrorCount =
    static_cast<std::size_t>(Error::kBadSupportedVersions) + 1;

// A short stable name for metrics labels and logs, e.g. "not_handshake".
const char* name(Error e);

// What the ClientHello offers. The views point into the reader's buffer: valid while the reader
// lives (moving the reader keeps them valid, the buffer moves with it).
struct ClientHello {
  std::uint16_t legacy_version = 0;  // e.g. 0x0303 (also for TLS 1.3)
  bool has_sni = false;
  std::string_view sni;  // lowercase, one trailing dot removed; empty without SNI
  std::array<std::string_view, kMaxAlpn> alpn{};  // the first kMaxAlpn names, in order
  std::size_t alpn_count = 0;
  bool offers_tls13 = false;  // supported_versions lists 0x0304
  bool has_ech = false;       // encrypted_client_hello (0xfe0d): sni is the outer public_name

  std::span<const std::string_view> protocols() const { return {alpn.data(), alpn_count}; }
};

struct FeedResult {
  Status status = Status::kNeedMore;
  // Bytes of this feed taken. At kDone the rest of the feed follows the ClientHello's last
  // record. At kError they run to the byte that showed the error (to the end of the record for
  // an error inside the ClientHello), so the count does not depend on the segmentation; at
  // kNotHandshake it is 0: the stream is untouched and can go to another protocol.
  std::size_t used = 0;
};

class ClientHelloReader {
public:
  // max_hello caps the handshake message's length (clamped to 1..kMaxHelloLimit). The records
  // holding it may add up to kRecordAllowance bytes of headers.
  explicit ClientHelloReader(std::size_t max_hello = kDefaultMaxHello);
  ClientHelloReader(const ClientHelloReader&) = delete;
  ClientHelloReader& operator=(const ClientHelloReader&) = delete;
  ClientHelloReader(ClientHelloReader&&) noexcept = default;
  ClientHelloReader& operator=(ClientHelloReader&&) noexcept = default;

  static constexpr std::size_t kRecordAllowance = 64 * kRecordHeaderBytes;

  // Takes the next bytes of the connection. After kDone or kError it takes nothing and returns
  // the same status.
  FeedResult feed(std::span<const std::uint8_t> bytes);

  Status status() const { return status_; }
  Error error() const { return error_; }
  // Meaningful at kDone only.
  const ClientHello& hello() const { return hello_; }
  // Every byte taken so far, verbatim, except a record header still incomplete. At kDone: the
  // records that held the ClientHello, whole.
  std::span<const std::uint8_t> consumed() const { return {raw_.data(), raw_size_}; }
  // The same bytes, moved out for whoever replays them (no copy); hello() and consumed() must
  // not be used afterwards (hello()'s views point into this storage).
  std::vector<std::uint8_t> takeConsumed() {
    raw_.resize(raw_size_);
    raw_size_ = 0;
    return std::exchange(raw_, {});
  }

private:
  std::size_t takeHeader(std::span<const std::uint8_t> bytes);
  std::size_t takeBody(std::span<const std::uint8_t> bytes);
  bool checkHeaderByte(std::size_t at, std::uint8_t byte);
  void startRecord();
  std::size_t trackHandshake(std::span<const std::uint8_t> payload);
  bool startMessage();
  void reserveFor(std::size_t record_bytes);
  void finish();
  std::span<const std::uint8_t> message();
  void fail(Error e);

  std::size_t max_hello_;
  std::size_t raw_limit_;
  // [records verbatim (raw_size_ bytes)] [the message defragmented, if split] [lowercase SNI]
  std::vector<std::uint8_t> raw_;
  std::size_t raw_size_ = 0;
  std::array<std::uint8_t, kRecordHeaderBytes> header_{};
  std::size_t header_have_ = 0;
  std::size_t record_left_ = 0;   // payload bytes of the current record still to come
  std::size_t records_ = 0;       // records started
  std::size_t first_record_ = 0;  // payload length of the first record
  std::array<std::uint8_t, kHandshakeHeaderBytes> handshake_header_{};
  std::size_t message_seen_ = 0;   // handshake bytes received, header included
  std::size_t message_total_ = 0;  // header + length, once the header is whole
  Status status_ = Status::kNeedMore;
  Error error_ = Error::kNone;
  ClientHello hello_;
};

}  // namespace sluice::tls
