// ClientHelloReader: every Error, each from the smallest input that shows it, read whole and in
// every chunking the shared driver tries.
#include <gtest/gtest.h>

#include <string>

#include "test_support.hpp"
#include "tls/client_hello.hpp"

namespace sluice::tls {
namespace {

using testing::alpnExt;
using testing::append;
using testing::Bytes;
using testing::bytesOf;
using testing::ext;
using testing::feedChunks;
using testing::HelloSpec;
using testing::kWhole;
using testing::Outcome;
using testing::read;
using testing::readError;
using testing::readOk;
using testing::recordHeader;
using testing::records;
using testing::sniExt;
using testing::vec16;
using testing::vec8;
using testing::versionsExt;

HelloSpec withExtensions(std::vector<Bytes> extensions) {
  HelloSpec spec;
  spec.extensions = std::move(extensions);
  return spec;
}

Error sniError(const Bytes& ext_data) {
  return readError(records(withExtensions({ext(testing::kSni, ext_data)})));
}

Error hostError(std::string_view host) {
  return readError(records(withExtensions({sniExt(host)})));
}

// --- records -------------------------------------------------------------------------------

TEST(ClientHelloErrors, NotHandshakeTakesNothing) {
  for (const std::string_view in : {"GET / HTTP/1.1\r\n", "\x80\x2e\x01", "\x15\x03\x03"}) {
    const Bytes bytes = bytesOf(in);
    const Outcome o = read(bytes);
    EXPECT_EQ(o.status, Status::kError);
    EXPECT_EQ(o.error, Error::kNotHandshake);
    EXPECT_EQ(o.used, 0U);
    EXPECT_TRUE(o.reader.consumed().empty());
  }
  // Known from the first byte alone.
  ClientHelloReader reader;
  EXPECT_EQ(reader.feed(bytesOf("G")).status, Status::kError);
}

TEST(ClientHelloErrors, BadRecordVersion) {
  Bytes in = records(HelloSpec{});
  in[1] = 2;
  EXPECT_EQ(readError(in), Error::kBadRecordVersion);
  in[1] = 0x03;
  in[2] = 0x7f;  // any minor version
  readOk(in);
  // In a later record too.
  Bytes split = records(testing::message(HelloSpec{}), {10});
  split[5 + 10 + 1] = 0x13;
  EXPECT_EQ(readError(split), Error::kBadRecordVersion);
}

TEST(ClientHelloErrors, EmptyRecord) {
  EXPECT_EQ(readError(recordHeader(0)), Error::kEmptyRecord);
  Bytes in = records(testing::message(HelloSpec{}), {10});
  const Bytes empty = recordHeader(0);
  in.insert(in.begin() + 15, empty.begin(), empty.end());
  EXPECT_EQ(readError(in), Error::kEmptyRecord);
}

TEST(ClientHelloErrors, RecordTooLong) {
  Bytes in = recordHeader(kMaxRecordPayload + 1);
  append(in, testing::message(HelloSpec{}));
  EXPECT_EQ(readError(in), Error::kRecordTooLong);
  EXPECT_EQ(readError(recordHeader(0xffff)), Error::kRecordTooLong);
}

TEST(ClientHelloErrors, LargestRecordIsAccepted) {
  HelloSpec spec;
  spec.extensions.push_back(ext(21, Bytes(kMaxRecordPayload, 0)));
  const Bytes msg = testing::message(spec);
  const Bytes in = records(msg, {kMaxRecordPayload});
  EXPECT_EQ(in[3] << 8 | in[4], 0x4000);
  readOk(in, kMaxHelloLimit);
}

TEST(ClientHelloErrors, UnexpectedRecordTypeBeforeTheHelloIsWhole) {
  const Bytes msg = testing::message(HelloSpec{});
  for (const std::uint8_t type : {20, 21, 23, 24, 0x16 + 0x80}) {
    Bytes in = records(msg, {10});
    in[15] = type;
    EXPECT_EQ(readError(in), Error::kUnexpectedRecordType) << int{type};
  }
}

TEST(ClientHelloErrors, NotClientHello) {
  HelloSpec spec;
  spec.handshake_type = 2;
  EXPECT_EQ(readError(records(spec)), Error::kNotClientHello);
  // Known from the handshake type alone.
  ClientHelloReader reader;
  const Bytes in = {22, 3, 1, 0, 100, 2};
  EXPECT_EQ(reader.feed(in).status, Status::kError);
  EXPECT_EQ(reader.error(), Error::kNotClientHello);
}

// --- size limits ---------------------------------------------------------------------------

TEST(ClientHelloErrors, HandshakeOverTheCap) {
  HelloSpec spec;
  spec.extensions.push_back(ext(21, Bytes(kDefaultMaxHello, 0)));
  const Bytes msg = testing::message(spec);
  EXPECT_EQ(readError(records(msg, {kMaxRecordPayload})), Error::kTooLarge);
  // Known from the handshake header alone, before the body arrives.
  ClientHelloReader reader;
  const Bytes head = {22, 3, 1, 0x40, 0x00, 1, 0, 0x40, 0x01};
  EXPECT_EQ(reader.feed(head).status, Status::kError);
  EXPECT_EQ(reader.error(), Error::kTooLarge);
}

TEST(ClientHelloErrors, CapIsConfigurable) {
  HelloSpec spec;
  spec.extensions.push_back(ext(21, Bytes(1000, 0)));
  const Bytes in = records(spec);
  EXPECT_EQ(readError(in, 512), Error::kTooLarge);
  readOk(in, 2048);
}

TEST(ClientHelloErrors, CapGoesUpTo64KiB) {
  HelloSpec spec;
  spec.extensions.push_back(ext(21, Bytes(40000, 0)));
  const Bytes msg = testing::message(spec);
  const Bytes in = records(msg, {kMaxRecordPayload, kMaxRecordPayload});
  EXPECT_EQ(readError(in), Error::kTooLarge);
  readOk(in, kMaxHelloLimit);
  // Asking for more is clamped to 64 KiB (the limit shows in the handshake header).
  const Bytes over = records(testing::handshake(Bytes(kMaxHelloLimit + 1, 0)),
                             {kMaxRecordPayload, kMaxRecordPayload, kMaxRecordPayload,
                              kMaxRecordPayload, kMaxRecordPayload});
  EXPECT_EQ(feedChunks(over, kWhole, 1 << 20).error, Error::kTooLarge);
  EXPECT_EQ(feedChunks(over, kWhole, 1 << 20).used, kRecordHeaderBytes + kHandshakeHeaderBytes);
}

TEST(ClientHelloErrors, RecordHeadersAreBounded) {
  // 1-byte records multiply the bytes held by six; the record headers may add only
  // kRecordAllowance to the cap.
  HelloSpec spec;
  spec.extensions.clear();
  const Bytes msg = testing::message(spec);
  const std::size_t cap = msg.size();
  readOk(records(msg, {1, 1, 1}), cap);
  EXPECT_EQ(readError(records(msg, std::vector<std::size_t>(msg.size(), 1)), cap),
            Error::kTooLarge);
}

// --- the ClientHello's fields ----------------------------------------------------------------

TEST(ClientHelloErrors, SessionId) {
  HelloSpec spec;
  spec.session_id = Bytes(33, 1);
  EXPECT_EQ(readError(records(spec)), Error::kMalformed);
  spec.session_id.clear();
  readOk(records(spec));
}

TEST(ClientHelloErrors, CipherSuites) {
  HelloSpec spec;
  spec.suites = {0x13, 0x01, 0x13};
  EXPECT_EQ(readError(records(spec)), Error::kMalformed);
  spec.suites.clear();
  EXPECT_EQ(readError(records(spec)), Error::kMalformed);
}

TEST(ClientHelloErrors, CompressionMethods) {
  HelloSpec spec;
  spec.compression.clear();
  EXPECT_EQ(readError(records(spec)), Error::kMalformed);
  spec.compression = Bytes(255, 0);
  readOk(records(spec));
}

TEST(ClientHelloErrors, ExtensionsMustEndAtTheMessageEnd) {
  HelloSpec spec;
  spec.trailer = {0};
  EXPECT_EQ(readError(records(spec)), Error::kMalformed);
  // A stray byte where the extensions block would start.
  HelloSpec bare;
  bare.has_extensions = false;
  bare.trailer = {0};
  EXPECT_EQ(readError(records(bare)), Error::kMalformed);
}

TEST(ClientHelloErrors, ExtensionsBlockLongerOrShorterThanItsExtensions) {
  Bytes body = testing::body(HelloSpec{});
  // The block length is the message's last-but-block-size bytes; find it from the end.
  const std::size_t block = testing::body(withExtensions({})).size() - 2;
  Bytes longer = body;
  longer[block + 1] += 1;
  EXPECT_EQ(readError(records(testing::handshake(longer))), Error::kMalformed);
  Bytes shorter = body;
  shorter[block + 1] -= 1;
  EXPECT_EQ(readError(records(testing::handshake(shorter))), Error::kMalformed);
}

TEST(ClientHelloErrors, ExtensionDataPastTheBlock) {
  Bytes truncated = ext(0x7777, Bytes(10, 0));
  truncated.resize(truncated.size() - 3);
  EXPECT_EQ(readError(records(withExtensions({truncated}))), Error::kMalformed);
  EXPECT_EQ(readError(records(withExtensions({Bytes{0x00}}))), Error::kMalformed);
}

TEST(ClientHelloErrors, MessageShorterThanItsFields) {
  EXPECT_EQ(readError(records(testing::handshake({}))), Error::kMalformed);
  EXPECT_EQ(readError(records(testing::handshake({3, 3}))), Error::kMalformed);
  Bytes body = testing::body(HelloSpec{});
  body.resize(40);
  EXPECT_EQ(readError(records(testing::handshake(body))), Error::kMalformed);
}

TEST(ClientHelloErrors, DuplicateExtension) {
  EXPECT_EQ(readError(records(withExtensions({sniExt("a.example"), sniExt("b.example")}))),
            Error::kDuplicateExtension);
  EXPECT_EQ(readError(records(withExtensions({ext(0x7777), ext(0x1234), ext(0x7777)}))),
            Error::kDuplicateExtension);
  EXPECT_EQ(readError(records(withExtensions({ext(0xfafa), ext(0xfafa)}))),
            Error::kDuplicateExtension);
  // Distinct GREASE types are fine.
  readOk(records(withExtensions({ext(0x0a0a), ext(0xfafa)})));
}

TEST(ClientHelloErrors, BadHostNames) {
  EXPECT_EQ(hostError(""), Error::kBadSni);
  EXPECT_EQ(hostError("."), Error::kBadSni);
  EXPECT_EQ(hostError(".example.com"), Error::kBadSni);
  EXPECT_EQ(hostError("a..example.com"), Error::kBadSni);
  EXPECT_EQ(hostError("example.com.."), Error::kBadSni);
  EXPECT_EQ(hostError("under_score.example"), Error::kBadSni);
  EXPECT_EQ(hostError("sp ace.example"), Error::kBadSni);
  EXPECT_EQ(hostError(std::string_view("nul\0.example", 12)), Error::kBadSni);
  EXPECT_EQ(hostError("caf\xc3\xa9.example"), Error::kBadSni);
  EXPECT_EQ(hostError("host:443"), Error::kBadSni);
  EXPECT_EQ(hostError(std::string(64, 'a') + ".example"), Error::kBadSni);
  EXPECT_EQ(hostError(std::string(127, 'a') + "." + std::string(126, 'b')), Error::kBadSni);
}

TEST(ClientHelloErrors, BadServerNameLists) {
  const Bytes host = vec16(bytesOf("a.example"));
  Bytes entry{0};
  append(entry, host);
  Bytes other_type{1};
  append(other_type, host);
  Bytes two = entry;
  append(two, entry);
  EXPECT_EQ(sniError({}), Error::kBadSni);
  EXPECT_EQ(sniError(vec16({})), Error::kBadSni);
  EXPECT_EQ(sniError(vec16(other_type)), Error::kBadSni);
  EXPECT_EQ(sniError(vec16(two)), Error::kBadSni);
  Bytes trailing = vec16(entry);
  trailing.push_back(0);
  EXPECT_EQ(sniError(trailing), Error::kBadSni);
  Bytes short_list = vec16(entry);
  short_list[1] -= 1;
  EXPECT_EQ(sniError(short_list), Error::kBadSni);
  Bytes truncated_entry{0, 0, 20, 'a'};
  EXPECT_EQ(sniError(vec16(truncated_entry)), Error::kBadSni);
}

TEST(ClientHelloErrors, BadAlpn) {
  EXPECT_EQ(readError(records(withExtensions({ext(testing::kAlpn)}))), Error::kBadAlpn);
  EXPECT_EQ(readError(records(withExtensions({ext(testing::kAlpn, vec16({}))}))), Error::kBadAlpn);
  EXPECT_EQ(readError(records(withExtensions({alpnExt({"h2", ""})}))), Error::kBadAlpn);
  EXPECT_EQ(readError(records(withExtensions({ext(testing::kAlpn, vec16({5, 'h', '2'}))}))),
            Error::kBadAlpn);
  Bytes trailing = vec16(vec8(bytesOf("h2")));
  trailing.push_back(0);
  EXPECT_EQ(readError(records(withExtensions({ext(testing::kAlpn, trailing)}))), Error::kBadAlpn);
}

TEST(ClientHelloErrors, BadSupportedVersions) {
  const auto versions = [](const Bytes& data) {
    return readError(records(withExtensions({ext(testing::kVersions, data)})));
  };
  EXPECT_EQ(versions({}), Error::kBadSupportedVersions);
  EXPECT_EQ(versions(vec8({})), Error::kBadSupportedVersions);
  EXPECT_EQ(versions(vec8({3, 4, 3})), Error::kBadSupportedVersions);
  EXPECT_EQ(versions({4, 3, 4}), Error::kBadSupportedVersions);
  EXPECT_EQ(versions({2, 3, 4, 0}), Error::kBadSupportedVersions);
  // The ServerHello form (one bare version) is not a ClientHello's.
  EXPECT_EQ(versions({3, 4}), Error::kBadSupportedVersions);
}

TEST(ClientHelloErrors, FeedAfterErrorTakesNothing) {
  ClientHelloReader reader;
  ASSERT_EQ(reader.feed(recordHeader(0)).status, Status::kError);
  const FeedResult again = reader.feed(records(HelloSpec{}));
  EXPECT_EQ(again.status, Status::kError);
  EXPECT_EQ(again.used, 0U);
  EXPECT_EQ(reader.error(), Error::kEmptyRecord);
}

}  // namespace
}  // namespace sluice::tls
