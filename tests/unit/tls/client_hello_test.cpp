// ClientHelloReader: one test per rule. Every input is also read one byte at a time and in
// chunks of 2, 3, 7 and 64 bytes, which must give the verdict (and the bytes used) of the whole.
#include <gtest/gtest.h>

#include <set>
#include <string>

#include "test_support.hpp"
#include "tls/client_hello.hpp"

namespace sluice::tls {
namespace {

using testing::alpnExt;
using testing::Bytes;
using testing::bytesOf;
using testing::ext;
using testing::feedChunks;
using testing::groupsExt;
using testing::HelloSpec;
using testing::keyShareExt;
using testing::kWhole;
using testing::Outcome;
using testing::read;
using testing::readError;
using testing::readOk;
using testing::records;
using testing::sniExt;
using testing::sniOf;
using testing::versionsExt;

HelloSpec withExtensions(std::vector<Bytes> extensions) {
  HelloSpec spec;
  spec.extensions = std::move(extensions);
  return spec;
}

HelloSpec withSni(std::string_view host) {
  HelloSpec spec;
  spec.extensions.insert(spec.extensions.begin(), sniExt(host));
  return spec;
}

// --- valid hellos ---------------------------------------------------------------------------

TEST(ClientHello, SniAndDefaults) {
  const Bytes in = records(withSni("www.example.com"));
  const Outcome o = readOk(in);
  EXPECT_EQ(o.used, in.size());
  const ClientHello& h = o.reader.hello();
  EXPECT_TRUE(h.has_sni);
  EXPECT_EQ(h.sni, "www.example.com");
  EXPECT_EQ(h.legacy_version, 0x0303);
  EXPECT_TRUE(h.offers_tls13);
  EXPECT_FALSE(h.has_ech);
  EXPECT_EQ(h.alpn_count, 0U);
  EXPECT_TRUE(h.protocols().empty());
}

TEST(ClientHello, SniIsLowercasedAndLosesOneTrailingDot) {
  EXPECT_EQ(sniOf(readOk(records(withSni("WWW.Example.COM")))), "www.example.com");
  EXPECT_EQ(sniOf(readOk(records(withSni("api.example.com.")))), "api.example.com");
  EXPECT_EQ(sniOf(readOk(records(withSni("A-1.B2.")))), "a-1.b2");
  EXPECT_EQ(sniOf(readOk(records(withSni("localhost")))), "localhost");
  // Digits and hyphens anywhere: an IP-looking name is a name (routing will not match it).
  EXPECT_EQ(sniOf(readOk(records(withSni("192.0.2.1")))), "192.0.2.1");
  EXPECT_EQ(sniOf(readOk(records(withSni("-x-.y")))), "-x-.y");
}

TEST(ClientHello, RawBytesKeepTheOriginalCase) {
  const Bytes in = records(withSni("Mixed.Example"));
  const Outcome o = readOk(in);
  const std::span<const std::uint8_t> raw = o.reader.consumed();
  const std::string raw_text(raw.begin(), raw.end());
  EXPECT_NE(raw_text.find("Mixed.Example"), std::string::npos);
  EXPECT_EQ(sniOf(o), "mixed.example");
}

TEST(ClientHello, LongestSni) {
  // 253 bytes: three 63-byte labels and a 61-byte one.
  const std::string host = std::string(63, 'a') + "." + std::string(63, 'b') + "." +
                           std::string(63, 'c') + "." + std::string(61, 'd');
  ASSERT_EQ(host.size(), kMaxSniBytes);
  EXPECT_EQ(sniOf(readOk(records(withSni(host)))), host);
  const std::string dotted = host.substr(0, 252) + ".";
  EXPECT_EQ(sniOf(readOk(records(withSni(dotted)))), host.substr(0, 252));
}

TEST(ClientHello, WildcardsAreNotHostNames) {
  // Wildcards belong to certificates, never to a client's SNI: '*' is not an LDH character.
  EXPECT_EQ(readError(records(withSni("*.example.com"))), Error::kBadSni);
}

TEST(ClientHello, NoSni) {
  const Outcome o = readOk(records(HelloSpec{}));
  EXPECT_FALSE(o.reader.hello().has_sni);
  EXPECT_TRUE(o.reader.hello().sni.empty());
}

TEST(ClientHello, NoExtensionsAtAll) {
  HelloSpec spec;
  spec.has_extensions = false;
  spec.session_id.clear();
  spec.suites = testing::u16s({0x002f});
  const Outcome o = readOk(records(spec));
  EXPECT_FALSE(o.reader.hello().has_sni);
  EXPECT_FALSE(o.reader.hello().offers_tls13);
}

TEST(ClientHello, EmptyExtensionsBlock) {
  const Outcome o = readOk(records(withExtensions({})));
  EXPECT_FALSE(o.reader.hello().has_sni);
}

TEST(ClientHello, Alpn) {
  const Outcome o = readOk(records(withExtensions({alpnExt({"h2", "http/1.1"})})));
  const std::span<const std::string_view> p = o.reader.hello().protocols();
  ASSERT_EQ(p.size(), 2U);
  EXPECT_EQ(p[0], "h2");
  EXPECT_EQ(p[1], "http/1.1");
}

TEST(ClientHello, AlpnKeepsTheFirstEight) {
  const Outcome o = readOk(records(
      withExtensions({alpnExt({"p0", "p1", "p2", "p3", "p4", "p5", "p6", "p7", "p8", "p9"})})));
  const std::span<const std::string_view> p = o.reader.hello().protocols();
  ASSERT_EQ(p.size(), kMaxAlpn);
  EXPECT_EQ(p.front(), "p0");
  EXPECT_EQ(p.back(), "p7");
}

TEST(ClientHello, AlpnLongestName) {
  const std::string longest(255, 'x');
  const Outcome o = readOk(records(withExtensions({alpnExt({longest})})));
  EXPECT_EQ(o.reader.hello().protocols()[0], longest);
}

TEST(ClientHello, Tls13Detection) {
  EXPECT_TRUE(readOk(records(withExtensions({versionsExt({0x0304})}))).reader.hello().offers_tls13);
  EXPECT_TRUE(
      readOk(records(withExtensions({versionsExt({0x0303, 0x0304})}))).reader.hello().offers_tls13);
  EXPECT_FALSE(
      readOk(records(withExtensions({versionsExt({0x0303, 0x0302})}))).reader.hello().offers_tls13);
  EXPECT_FALSE(readOk(records(withExtensions({}))).reader.hello().offers_tls13);
  EXPECT_FALSE(
      readOk(records(withExtensions({versionsExt({0x7a7a})}))).reader.hello().offers_tls13);
}

TEST(ClientHello, LegacyVersionIsReported) {
  HelloSpec spec;
  spec.legacy_version = 0x0301;
  EXPECT_EQ(readOk(records(spec)).reader.hello().legacy_version, 0x0301);
}

TEST(ClientHello, EchMeansTheSniIsThePublicName) {
  const Outcome o = readOk(records(withExtensions(
      {sniExt("public.example.com"), ext(testing::kEch, Bytes(48, 0x01)), versionsExt({0x0304})})));
  EXPECT_TRUE(o.reader.hello().has_ech);
  EXPECT_EQ(sniOf(o), "public.example.com");
}

TEST(ClientHello, GreaseEverywhere) {
  HelloSpec spec;
  spec.suites = testing::u16s({0x0a0a, 0x1301, 0xc02f});
  spec.extensions = {ext(0x1a1a),
                     sniExt("grease.example.com"),
                     groupsExt({0x2a2a, 0x001d}),
                     keyShareExt({{0x2a2a, 1}, {0x001d, 32}}),
                     versionsExt({0x3a3a, 0x0304, 0x0303}),
                     alpnExt({"\x4a\x4a", "h2"}),
                     ext(0xfafa, Bytes{0})};
  const Outcome o = readOk(records(spec));
  EXPECT_EQ(sniOf(o), "grease.example.com");
  EXPECT_TRUE(o.reader.hello().offers_tls13);
  ASSERT_EQ(o.reader.hello().alpn_count, 2U);
  EXPECT_EQ(o.reader.hello().alpn[0], "JJ");
}

TEST(ClientHello, UnknownExtensionsAreSkipped) {
  const Outcome o = readOk(records(withExtensions(
      {ext(0x7777, Bytes(300, 0xff)), sniExt("x.example"), ext(21, Bytes(100, 0)), ext(0xffff)})));
  EXPECT_EQ(sniOf(o), "x.example");
}

// A post-quantum sized hello (X25519MLKEM768: a 1,216-byte key share) as browsers send it.
HelloSpec postQuantum() {
  HelloSpec spec;
  spec.extensions = {sniExt("pq.example.com"),    versionsExt({0x0304}),
                     groupsExt({0x11ec, 0x001d}), keyShareExt({{0x11ec, 1216}, {0x001d, 32}}),
                     alpnExt({"h2", "http/1.1"}), ext(21, Bytes(200, 0))};
  return spec;
}

TEST(ClientHello, PostQuantumHelloInTwoRecordsByteByByte) {
  const Bytes msg = testing::message(postQuantum());
  ASSERT_GT(msg.size(), 1600U);
  const Bytes in = records(msg, {1000});
  const Outcome o = feedChunks(in, 1);
  ASSERT_EQ(o.status, Status::kDone) << name(o.error);
  EXPECT_EQ(o.used, in.size());
  EXPECT_EQ(sniOf(o), "pq.example.com");
  EXPECT_EQ(o.reader.hello().alpn_count, 2U);
  EXPECT_TRUE(
      std::equal(in.begin(), in.end(), o.reader.consumed().begin(), o.reader.consumed().end()));
  readOk(in);
  // What the agent hands to OpenSSL: the same bytes, moved out of the reader.
  Outcome taken = feedChunks(in, 7);
  ASSERT_EQ(taken.status, Status::kDone);
  const std::vector<std::uint8_t> replay = taken.reader.takeConsumed();
  EXPECT_EQ(Bytes(replay.begin(), replay.end()), in);
  EXPECT_TRUE(taken.reader.consumed().empty());
}

TEST(ClientHello, SplitAcrossRecordsAtEveryOffset) {
  const Bytes msg = testing::message(withSni("split.example.com"));
  for (std::size_t at = 1; at < msg.size(); ++at) {
    const Bytes in = records(msg, {at});
    const Outcome o = feedChunks(in, kWhole);
    ASSERT_EQ(o.status, Status::kDone) << "split at " << at << ": " << name(o.error);
    ASSERT_EQ(o.used, in.size());
    ASSERT_EQ(sniOf(o), "split.example.com") << "split at " << at;
    const Outcome bytewise = feedChunks(in, 1);
    ASSERT_EQ(bytewise.status, Status::kDone) << "split at " << at;
    ASSERT_EQ(sniOf(bytewise), "split.example.com") << "split at " << at;
  }
}

TEST(ClientHello, HandshakeHeaderOverThreeRecords) {
  const Bytes msg = testing::message(withSni("three.example.com"));
  EXPECT_EQ(sniOf(readOk(records(msg, {1, 2}))), "three.example.com");
  EXPECT_EQ(sniOf(readOk(records(msg, {3, 1, 50}))), "three.example.com");
}

TEST(ClientHello, ManyTinyRecords) {
  const Bytes msg = testing::message(withSni("tiny.example.com"));
  EXPECT_EQ(sniOf(readOk(records(msg, std::vector<std::size_t>(msg.size(), 1)))),
            "tiny.example.com");
}

TEST(ClientHello, BytesAfterTheHelloAreNotTaken) {
  const Bytes hello = records(withSni("a.example"));
  Bytes in = hello;
  const Bytes app_data = {23, 3, 3, 0, 2, 0xde, 0xad};
  in.insert(in.end(), app_data.begin(), app_data.end());
  const Outcome o = read(in);
  ASSERT_EQ(o.status, Status::kDone);
  EXPECT_EQ(o.used, hello.size());
  EXPECT_EQ(o.reader.consumed().size(), hello.size());
}

TEST(ClientHello, FeedAfterDoneTakesNothing) {
  const Bytes in = records(withSni("a.example"));
  ClientHelloReader reader;
  ASSERT_EQ(reader.feed(in).status, Status::kDone);
  const FeedResult again = reader.feed(in);
  EXPECT_EQ(again.status, Status::kDone);
  EXPECT_EQ(again.used, 0U);
  EXPECT_EQ(reader.consumed().size(), in.size());
}

TEST(ClientHello, TheRestOfTheLastRecordIsTaken) {
  // More handshake data in the record that completes the hello: the record is taken whole.
  Bytes payload = testing::message(withSni("a.example"));
  payload.insert(payload.end(), {0x10, 0, 0, 1, 0});
  const Bytes in = records(payload);
  const Outcome o = readOk(in);
  EXPECT_EQ(o.used, in.size());
}

TEST(ClientHello, EmptyFeedNeedsMore) {
  ClientHelloReader reader;
  const FeedResult r = reader.feed({});
  EXPECT_EQ(r.status, Status::kNeedMore);
  EXPECT_EQ(r.used, 0U);
}

TEST(ClientHello, ViewsSurviveAMove) {
  const Bytes in = records(withExtensions({sniExt("Moved.Example"), alpnExt({"h2"})}));
  ClientHelloReader first;
  ASSERT_EQ(first.feed(in).status, Status::kDone);
  const ClientHelloReader second = std::move(first);
  EXPECT_EQ(second.hello().sni, "moved.example");
  EXPECT_EQ(second.hello().alpn[0], "h2");
  EXPECT_EQ(second.consumed().size(), in.size());
}

TEST(ClientHello, ErrorNamesAreDistinctLabels) {
  std::set<std::string> names;
  for (std::size_t i = 0; i < kErrorCount; ++i) {
    const std::string n = name(static_cast<Error>(i));
    EXPECT_NE(n, "unknown");
    EXPECT_EQ(n.find_first_not_of("abcdefghijklmnopqrstuvwxyz_"), std::string::npos) << n;
    names.insert(n);
  }
  EXPECT_EQ(names.size(), kErrorCount);
  EXPECT_STREQ(name(Error::kNotHandshake), "not_handshake");
  EXPECT_STREQ(name(Error::kTooLarge), "too_large");
}

}  // namespace
}  // namespace sluice::tls
