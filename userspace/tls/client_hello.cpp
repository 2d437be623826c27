// ClientHello reading. Every check looks at bytes in stream order and fires at a fixed position
// (record header bytes as they arrive, the handshake header as it arrives, the message once its
// last record is whole), so the verdict never depends on how the bytes were segmented.
#include "tls/client_hello.hpp"

#include <algorithm>
#include <bitset>
#include <limits>

namespace sluice::tls {
namespace {

using Bytes = std::span<const std::uint8_t>;

constexpr std::uint8_t kHandshakeRecord = 22;
constexpr std::uint8_t kTlsMajor = 3;
constexpr std::uint8_t kClientHelloType = 1;
constexpr std::size_t kRandomBytes = 32;
constexpr std::size_t kMaxSessionId = 32;
constexpr std::uint16_t kExtServerName = 0;
constexpr std::uint16_t kExtAlpn = 16;
constexpr std::uint16_t kExtSupportedVersions = 43;
constexpr std::uint16_t kExtEch = 0xfe0d;
constexpr std::uint16_t kTls13 = 0x0304;
constexpr std::uint8_t kHostName = 0;
constexpr std::size_t kMaxLabel = 63;

// Big-endian reads, each checked against what is left.
class Cursor {
public:
  explicit Cursor(Bytes in) : in_(in) {}

  bool empty() const { return in_.empty(); }

  bool u8(std::uint8_t& v) {
    if (in_.empty()) {
      return false;
    }
    v = in_[0];
    in_ = in_.subspan(1);
    return true;
  }

  bool u16(std::uint16_t& v) {
    if (in_.size() < 2) {
      return false;
    }
    v = static_cast<std::uint16_t>((in_[0] << 8) | in_[1]);
    in_ = in_.subspan(2);
    return true;
  }

  bool take(std::size_t n, Bytes& out) {
    if (in_.size() < n) {
      return false;
    }
    out = in_.first(n);
    in_ = in_.subspan(n);
    return true;
  }

  // A vector with a 1- or 2-byte length prefix.
  bool vec8(Bytes& out) {
    std::uint8_t n = 0;
    return u8(n) && take(n, out);
  }

  bool vec16(Bytes& out) {
    std::uint16_t n = 0;
    return u16(n) && take(n, out);
  }

private:
  Bytes in_;
};

// The parse's findings, as spans into the message.
struct Fields {
  std::uint16_t legacy_version = 0;
  bool has_sni = false;
  Bytes sni;  // validated; may end with one dot
  std::array<Bytes, kMaxAlpn> alpn{};
  std::size_t alpn_count = 0;
  bool offers_tls13 = false;
  bool has_ech = false;
};

bool ldh(std::uint8_t c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
}

// 1..253 bytes of LDH labels of 1..63 bytes separated by dots, with one optional final dot.
bool validHost(Bytes name) {
  if (name.empty() || name.size() > kMaxSniBytes) {
    return false;
  }
  if (name.back() == '.') {
    name = name.first(name.size() - 1);
  }
  std::size_t label = 0;
  for (const std::uint8_t c : name) {
    if (c == '.') {
      if (label == 0) {
        return false;
      }
      label = 0;
    } else if (!ldh(c) || ++label > kMaxLabel) {
      return false;
    }
  }
  return label > 0;
}

// ServerNameList holding exactly one host_name.
Error parseServerName(Bytes data, Fields& f) {
  Cursor ext(data);
  Bytes list;
  if (!ext.vec16(list) || !ext.empty()) {
    return Error::kBadSni;
  }
  Cursor entries(list);
  std::uint8_t type = 0;
  Bytes host;
  if (!entries.u8(type) || type != kHostName || !entries.vec16(host) || !entries.empty() ||
      !validHost(host)) {
    return Error::kBadSni;
  }
  f.has_sni = true;
  f.sni = host;
  return Error::kNone;
}

// ProtocolNameList: 1..255-byte names tiling a non-empty list; names past kMaxAlpn are skipped.
Error parseAlpn(Bytes data, Fields& f) {
  Cursor ext(data);
  Bytes list;
  if (!ext.vec16(list) || !ext.empty() || list.empty()) {
    return Error::kBadAlpn;
  }
  Cursor names(list);
  while (!names.empty()) {
    Bytes name;
    if (!names.vec8(name) || name.empty()) {
      return Error::kBadAlpn;
    }
    if (f.alpn_count < kMaxAlpn) {
      f.alpn[f.alpn_count++] = name;
    }
  }
  return Error::kNone;
}

// The ClientHello form: a 1-byte length, then 2-byte versions.
Error parseSupportedVersions(Bytes data, Fields& f) {
  Cursor ext(data);
  Bytes list;
  if (!ext.vec8(list) || !ext.empty() || list.empty() || list.size() % 2 != 0) {
    return Error::kBadSupportedVersions;
  }
  Cursor versions(list);
  std::uint16_t version = 0;
  while (versions.u16(version)) {
    f.offers_tls13 = f.offers_tls13 || version == kTls13;
  }
  return Error::kNone;
}

Error parseExtension(std::uint16_t type, Bytes data, Fields& f) {
  switch (type) {
    case kExtServerName:
      return parseServerName(data, f);
    case kExtAlpn:
      return parseAlpn(data, f);
    case kExtSupportedVersions:
      return parseSupportedVersions(data, f);
    case kExtEch:
      f.has_ech = true;
      return Error::kNone;
    default:
      return Error::kNone;
  }
}

Error parseExtensions(Bytes block, Fields& f) {
  // 8 KiB of stack: the cap allows thousands of extensions, so no quadratic scan.
  std::bitset<std::numeric_limits<std::uint16_t>::max() + 1> seen;
  Cursor c(block);
  while (!c.empty()) {
    std::uint16_t type = 0;
    Bytes data;
    if (!c.u16(type) || !c.vec16(data)) {
      return Error::kMalformed;
    }
    if (seen.test(type)) {
      return Error::kDuplicateExtension;
    }
    seen.set(type);
    if (const Error e = parseExtension(type, data, f); e != Error::kNone) {
      return e;
    }
  }
  return Error::kNone;
}

// The ClientHello's body (after the 4-byte handshake header), which must end exactly where the
// extensions (if any) end.
Error parseBody(Bytes body, Fields& f) {
  Cursor c(body);
  Bytes random;
  Bytes session_id;
  Bytes suites;
  Bytes compression;
  if (!c.u16(f.legacy_version) || !c.take(kRandomBytes, random) || !c.vec8(session_id) ||
      session_id.size() > kMaxSessionId || !c.vec16(suites) || suites.empty() ||
      suites.size() % 2 != 0 || !c.vec8(compression) || compression.empty()) {
    return Error::kMalformed;
  }
  if (c.empty()) {
    return Error::kNone;
  }
  Bytes extensions;
  if (!c.vec16(extensions) || !c.empty()) {
    return Error::kMalformed;
  }
  return parseExtensions(extensions, f);
}

std::string_view text(Bytes b) {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}

}  // namespace

const char* name(Error e) {
  switch (e) {
    case Error::kNone:
      return "none";
    case Error::kNotHandshake:
      return "not_handshake";
    case Error::kBadRecordVersion:
      return "bad_record_version";
    case Error::kEmptyRecord:
      return "empty_record";
    case Error::kRecordTooLong:
      return "record_too_long";
    case Error::kUnexpectedRecordType:
      return "unexpected_record_type";
    case Error::kNotClientHello:
      return "not_client_hello";
    case Error::kTooLarge:
      return "too_large";
    case Error::kMalformed:
      return "malformed";
    case Error::kDuplicateExtension:
      return "duplicate_extension";
    case Error::kBadSni:
      return "bad_sni";
    case Error::kBadAlpn:
      return "bad_alpn";
    case Error::kBadSupportedVersions:
      return "bad_supported_versions";
  }
  return "unknown";
}

ClientHelloReader::ClientHelloReader(std::size_t max_hello)
    : max_hello_(std::min(max_hello, kMaxHelloLimit)),
      raw_limit_(max_hello_ + kHandshakeHeaderBytes + kRecordAllowance) {}

FeedResult ClientHelloReader::feed(std::span<const std::uint8_t> bytes) {
  std::size_t used = 0;
  while (status_ == Status::kNeedMore && used < bytes.size()) {
    const Bytes rest = bytes.subspan(used);
    used += header_have_ < kRecordHeaderBytes ? takeHeader(rest) : takeBody(rest);
  }
  return {status_, error_ == Error::kNotHandshake ? 0 : used};
}

void ClientHelloReader::fail(Error e) {
  status_ = Status::kError;
  error_ = e;
}

bool ClientHelloReader::checkHeaderByte(std::size_t at, std::uint8_t byte) {
  if (at == 0 && byte != kHandshakeRecord) {
    fail(records_ == 0 ? Error::kNotHandshake : Error::kUnexpectedRecordType);
    return false;
  }
  if (at == 1 && byte != kTlsMajor) {
    fail(Error::kBadRecordVersion);
    return false;
  }
  return true;
}

std::size_t ClientHelloReader::takeHeader(std::span<const std::uint8_t> bytes) {
  std::size_t n = 0;
  while (n < bytes.size() && header_have_ < kRecordHeaderBytes) {
    const std::uint8_t byte = bytes[n++];
    if (!checkHeaderByte(header_have_, byte)) {
      return n;
    }
    header_[header_have_++] = byte;
  }
  if (header_have_ == kRecordHeaderBytes) {
    startRecord();
  }
  return n;
}

void ClientHelloReader::startRecord() {
  const std::size_t length = static_cast<std::size_t>(header_[3] << 8 | header_[4]);
  if (length == 0) {
    fail(Error::kEmptyRecord);
    return;
  }
  if (length > kMaxRecordPayload) {
    fail(Error::kRecordTooLong);
    return;
  }
  if (raw_size_ + kRecordHeaderBytes + length > raw_limit_) {
    fail(Error::kTooLarge);
    return;
  }
  if (records_++ == 0) {
    first_record_ = length;
  }
  reserveFor(kRecordHeaderBytes + length);
  raw_.insert(raw_.end(), header_.begin(), header_.end());
  raw_size_ += kRecordHeaderBytes;
  record_left_ = length;
}

// Room for `more` record bytes, and (when the message is split over records) for the copy of it
// that is parsed and the SNI's lowercase copy, so the buffer is allocated once per record at most
// and usually once per connection.
void ClientHelloReader::reserveFor(std::size_t more) {
  const bool split = records_ > 1 || message_total_ > first_record_;
  raw_.reserve(raw_size_ + more + (split ? message_total_ : 0) + kMaxSniBytes);
}

std::size_t ClientHelloReader::takeBody(std::span<const std::uint8_t> bytes) {
  const Bytes payload =
      bytes.first(trackHandshake(bytes.first(std::min(bytes.size(), record_left_))));
  raw_.insert(raw_.end(), payload.begin(), payload.end());
  raw_size_ += payload.size();
  record_left_ -= payload.size();
  if (status_ == Status::kNeedMore && record_left_ == 0) {
    header_have_ = 0;
    if (message_total_ != 0 && message_seen_ >= message_total_) {
      finish();
    }
  }
  return payload.size();
}

// Reads the handshake header as it arrives: the type and the length fail as soon as they are
// known. Returns the bytes taken: all of them, or up to the one that failed.
std::size_t ClientHelloReader::trackHandshake(std::span<const std::uint8_t> payload) {
  std::size_t i = 0;
  while (i < payload.size() && message_seen_ < kHandshakeHeaderBytes) {
    const std::uint8_t byte = payload[i++];
    handshake_header_[message_seen_++] = byte;
    if (message_seen_ == 1 && byte != kClientHelloType) {
      fail(Error::kNotClientHello);
      return i;
    }
    if (message_seen_ == kHandshakeHeaderBytes && !startMessage()) {
      return i;
    }
  }
  message_seen_ += payload.size() - i;
  return payload.size();
}

// The handshake length is known: check it, and size the buffer for the records still to come.
bool ClientHelloReader::startMessage() {
  const std::size_t length = static_cast<std::size_t>(
      handshake_header_[1] << 16 | handshake_header_[2] << 8 | handshake_header_[3]);
  if (length > max_hello_) {
    fail(Error::kTooLarge);
    return false;
  }
  message_total_ = kHandshakeHeaderBytes + length;
  // Payload of the records so far, including what the current one still owes.
  const std::size_t held = raw_size_ - records_ * kRecordHeaderBytes + record_left_;
  const std::size_t later = message_total_ > held ? kRecordHeaderBytes + message_total_ - held : 0;
  reserveFor(record_left_ + later);
  return true;
}

// The whole handshake message, contiguous: inside the first record, or copied out of the records
// behind them into the reserved space.
std::span<const std::uint8_t> ClientHelloReader::message() {
  const bool split = message_total_ > first_record_;
  raw_.reserve(raw_size_ + (split ? message_total_ : 0) + kMaxSniBytes);
  if (!split) {
    return Bytes(raw_).subspan(kRecordHeaderBytes, message_total_);
  }
  raw_.resize(raw_size_ + message_total_);
  std::size_t record = 0;
  std::size_t copied = 0;
  while (copied < message_total_) {
    const std::size_t length = static_cast<std::size_t>(raw_[record + 3] << 8 | raw_[record + 4]);
    const std::size_t n = std::min(length, message_total_ - copied);
    std::copy_n(raw_.data() + record + kRecordHeaderBytes, n, raw_.data() + raw_size_ + copied);
    copied += n;
    record += kRecordHeaderBytes + length;
  }
  return Bytes(raw_).subspan(raw_size_, message_total_);
}

void ClientHelloReader::finish() {
  const Bytes msg = message();
  Fields f;
  if (const Error e = parseBody(msg.subspan(kHandshakeHeaderBytes), f); e != Error::kNone) {
    fail(e);
    return;
  }
  hello_.legacy_version = f.legacy_version;
  hello_.has_sni = f.has_sni;
  if (f.has_sni) {
    // Lowercased behind the message; the reservation keeps `f`'s spans where they are.
    const std::size_t n = f.sni.size() - (f.sni.back() == '.' ? 1 : 0);
    const std::size_t at = raw_.size();
    raw_.resize(at + n);
    std::transform(f.sni.begin(), f.sni.begin() + static_cast<std::ptrdiff_t>(n),
                   raw_.begin() + static_cast<std::ptrdiff_t>(at), [](std::uint8_t c) {
                     return static_cast<std::uint8_t>(c >= 'A' && c <= 'Z' ? c + 32 : c);
                   });
    hello_.sni = text(Bytes(raw_).subspan(at, n));
  }
  for (std::size_t i = 0; i < f.alpn_count; ++i) {
    hello_.alpn[i] = text(f.alpn[i]);
  }
  hello_.alpn_count = f.alpn_count;
  hello_.offers_tls13 = f.offers_tls13;
  hello_.has_ech = f.has_ech;
  status_ = Status::kDone;
}

}  // namespace sluice::tls
