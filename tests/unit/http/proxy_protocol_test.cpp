// PROXY protocol v1/v2: one test per rule, and every input also judged byte by byte (a prefix is
// "incomplete" or the whole input's verdict).
#include <arpa/inet.h>

#include <string>

#include <gtest/gtest.h>

#include "http/proxy_protocol.hpp"

namespace sluice::http {
namespace {

constexpr ProxyStatus kOk = ProxyStatus::kComplete;
constexpr ProxyStatus kMore = ProxyStatus::kIncomplete;
constexpr ProxyStatus kErr = ProxyStatus::kError;

ProxyHeader parse(std::string_view in, std::size_t max_v2 = kProxyV2DefaultMax) {
  const ProxyHeader whole = parseProxyProtocol(in, max_v2);
  for (std::size_t n = 0; n < in.size(); ++n) {
    const ProxyHeader part = parseProxyProtocol(in.substr(0, n), max_v2);
    if (part.status == kMore) {
      continue;
    }
    EXPECT_EQ(part.status, whole.status) << "prefix " << n;
    EXPECT_EQ(part.error, whole.error) << "prefix " << n;
    EXPECT_EQ(part.consumed, whole.consumed) << "prefix " << n;
    break;
  }
  if (whole.status == kOk) {
    EXPECT_LE(whole.consumed, in.size());
    const ProxyHeader exact = parseProxyProtocol(in.substr(0, whole.consumed), max_v2);
    EXPECT_EQ(exact.status, kOk);
    EXPECT_EQ(parseProxyProtocol(in.substr(0, whole.consumed - 1), max_v2).status, kMore);
  } else {
    EXPECT_EQ(whole.consumed, 0U);
  }
  return whole;
}

ProxyError error(std::string_view in, std::size_t max_v2 = kProxyV2DefaultMax) {
  const ProxyHeader r = parse(in, max_v2);
  EXPECT_EQ(r.status, kErr) << ::testing::PrintToString(std::string(in));
  return r.error;
}

std::string text(const ProxyAddress& a) {
  char buf[INET6_ADDRSTRLEN];
  inet_ntop(a.v6 ? AF_INET6 : AF_INET, a.bytes.data(), buf, sizeof buf);
  return std::string(buf) + (a.v6 ? "." : ":") + std::to_string(a.port);
}

// --- v1 ---------------------------------------------------------------------------------------

TEST(ProxyV1, Tcp4) {
  const std::string in = "PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\nGET / HTTP/1.1\r\n";
  const ProxyHeader r = parse(in);
  ASSERT_EQ(r.status, kOk);
  EXPECT_EQ(r.version, 1);
  EXPECT_EQ(r.command, ProxyCommand::kProxy);
  EXPECT_EQ(r.consumed, in.find("GET"));
  EXPECT_EQ(text(r.source), "192.0.2.1:56324");
  EXPECT_EQ(text(r.destination), "198.51.100.2:443");
}

TEST(ProxyV1, Tcp6) {
  const ProxyHeader r = parse("PROXY TCP6 2001:db8::1 ::ffff:10.0.0.1 0 65535\r\n");
  ASSERT_EQ(r.status, kOk);
  EXPECT_EQ(text(r.source), "2001:db8::1.0");
  EXPECT_EQ(text(r.destination), "::ffff:10.0.0.1.65535");
}

TEST(ProxyV1, Unknown) {
  for (const char* in : {"PROXY UNKNOWN\r\n", "PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n",
                         "PROXY UNKNOWN anything at all\r\n"}) {
    const ProxyHeader r = parse(in);
    ASSERT_EQ(r.status, kOk) << in;
    EXPECT_EQ(r.command, ProxyCommand::kUnknown);
    EXPECT_EQ(r.consumed, std::string_view(in).size());
  }
}

TEST(ProxyV1, LongestLineIs107Bytes) {
  // The longest legal line, as the spec computes it, and the longest TCP6 line.
  const std::string v6 =
      "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535";
  const std::string longest = "PROXY UNKNOWN " + v6 + "\r\n";
  ASSERT_EQ(longest.size(), kProxyV1MaxLine);
  EXPECT_EQ(parse(longest).status, kOk);
  EXPECT_EQ(parse("PROXY TCP6 " + v6 + "\r\n").status, kOk);
  const std::string unknown = "PROXY UNKNOWN " + std::string(91, 'x') + "\r\n";
  ASSERT_EQ(unknown.size(), 107U);
  EXPECT_EQ(parse(unknown).status, kOk);
  EXPECT_EQ(error("PROXY UNKNOWN " + std::string(92, 'x') + "\r\n"), ProxyError::kV1TooLong);
  EXPECT_EQ(error(std::string("PROXY UNKNOWN ") + std::string(200, 'x')), ProxyError::kV1TooLong);
  EXPECT_EQ(parseProxyProtocol("PROXY UNKNOWN " + std::string(91, 'x') + "\r").status, kMore);
}

TEST(ProxyV1, StrictSpacingAndLineEnd) {
  EXPECT_EQ(error("PROXY TCP4  192.0.2.1 198.51.100.2 1 2\r\n"), ProxyError::kV1BadLine);
  EXPECT_EQ(error("PROXY TCP4 192.0.2.1 198.51.100.2 1 2 \r\n"), ProxyError::kV1BadLine);
  EXPECT_EQ(error("PROXY TCP4 192.0.2.1 198.51.100.2 1\r\n"), ProxyError::kV1BadLine);
  EXPECT_EQ(error("PROXY TCP4 192.0.2.1 198.51.100.2 1 2 3\r\n"), ProxyError::kV1BadLine);
  EXPECT_EQ(error("PROXY TCP4\r\n"), ProxyError::kV1BadLine);
  EXPECT_EQ(error("PROXY \r\n"), ProxyError::kV1BadLine);
  EXPECT_EQ(error("PROXY TCP4 192.0.2.1\t198.51.100.2 1 2\r\n"), ProxyError::kV1BadLine);
  EXPECT_EQ(error("PROXY TCP4 192.0.2.1 198.51.100.2 1 2\n"), ProxyError::kV1BadLine);
  EXPECT_EQ(error("PROXY TCP4 192.0.2.1 198.51.100.2 1 2\rX"), ProxyError::kV1BadLine);
  EXPECT_EQ(error("PROXY UNKNOWN \x80\r\n"), ProxyError::kV1BadLine);
  EXPECT_EQ(error(std::string("PROXY TCP4 \0", 12)), ProxyError::kV1BadLine);
}

TEST(ProxyV1, ProtocolAndAddresses) {
  EXPECT_EQ(error("PROXY TCP5 192.0.2.1 198.51.100.2 1 2\r\n"), ProxyError::kV1BadProtocol);
  EXPECT_EQ(error("PROXY tcp4 192.0.2.1 198.51.100.2 1 2\r\n"), ProxyError::kV1BadProtocol);
  EXPECT_EQ(error("PROXY UDP4 192.0.2.1 198.51.100.2 1 2\r\n"), ProxyError::kV1BadProtocol);
  EXPECT_EQ(error("PROXY UNKNOWNX\r\n"), ProxyError::kV1BadProtocol);
  EXPECT_EQ(error("PROXY TCP4 2001:db8::1 198.51.100.2 1 2\r\n"), ProxyError::kV1BadAddress);
  EXPECT_EQ(error("PROXY TCP6 192.0.2.1 2001:db8::2 1 2\r\n"), ProxyError::kV1BadAddress);
  EXPECT_EQ(error("PROXY TCP4 192.0.2.01 198.51.100.2 1 2\r\n"), ProxyError::kV1BadAddress);
  EXPECT_EQ(error("PROXY TCP4 192.0.2.256 198.51.100.2 1 2\r\n"), ProxyError::kV1BadAddress);
  EXPECT_EQ(error("PROXY TCP4 localhost 198.51.100.2 1 2\r\n"), ProxyError::kV1BadAddress);
  EXPECT_EQ(error("PROXY TCP6 [2001:db8::1] 2001:db8::2 1 2\r\n"), ProxyError::kV1BadAddress);
  EXPECT_EQ(error("PROXY TCP6 fe80::1%eth0 2001:db8::2 1 2\r\n"), ProxyError::kV1BadAddress);
}

TEST(ProxyV1, Ports) {
  EXPECT_EQ(parse("PROXY TCP4 192.0.2.1 198.51.100.2 0 65535\r\n").status, kOk);
  EXPECT_EQ(error("PROXY TCP4 192.0.2.1 198.51.100.2 65536 1\r\n"), ProxyError::kV1BadPort);
  EXPECT_EQ(error("PROXY TCP4 192.0.2.1 198.51.100.2 1 080\r\n"), ProxyError::kV1BadPort);
  EXPECT_EQ(error("PROXY TCP4 192.0.2.1 198.51.100.2 -1 2\r\n"), ProxyError::kV1BadPort);
  EXPECT_EQ(error("PROXY TCP4 192.0.2.1 198.51.100.2 +1 2\r\n"), ProxyError::kV1BadPort);
  EXPECT_EQ(error("PROXY TCP4 192.0.2.1 198.51.100.2 1 123456\r\n"), ProxyError::kV1BadPort);
  EXPECT_EQ(error("PROXY TCP4 192.0.2.1 198.51.100.2 0x1 2\r\n"), ProxyError::kV1BadPort);
}

TEST(ProxyCommon, NoSignatureFailsOnTheFirstWrongByte) {
  EXPECT_EQ(parseProxyProtocol("").status, kMore);
  EXPECT_EQ(parseProxyProtocol("PROX").status, kMore);
  EXPECT_EQ(parseProxyProtocol("\r\n\r\n").status, kMore);
  EXPECT_EQ(error("GET / HTTP/1.1\r\n"), ProxyError::kNoSignature);
  EXPECT_EQ(error("PROXI"), ProxyError::kNoSignature);
  EXPECT_EQ(error("proxy TCP4"), ProxyError::kNoSignature);
  EXPECT_EQ(error("\r\n\r\n\r"), ProxyError::kNoSignature);
  EXPECT_EQ(error("\x16\x03\x01"), ProxyError::kNoSignature) << "a TLS ClientHello";
}

TEST(ProxyCommon, ErrorNames) {
  EXPECT_EQ(proxyErrorName(ProxyError::kNone), "none");
  EXPECT_EQ(proxyErrorName(ProxyError::kV1BadAddress), "v1_bad_address");
  EXPECT_EQ(proxyErrorName(ProxyError::kV2BadTlv), "v2_bad_tlv");
  EXPECT_EQ(proxyErrorName(static_cast<ProxyError>(200)), "unknown");
  for (std::size_t i = 0; i < kProxyErrorCount; ++i) {
    EXPECT_NE(proxyErrorName(static_cast<ProxyError>(i)), "unknown") << i;
  }
}

// --- v2 ---------------------------------------------------------------------------------------

const std::string kSig("\r\n\r\n\0\r\nQUIT\n", 12);

std::string v2(unsigned char ver_cmd, unsigned char family, const std::string& rest) {
  std::string out = kSig;
  out += static_cast<char>(ver_cmd);
  out += static_cast<char>(family);
  out += static_cast<char>(rest.size() >> 8);
  out += static_cast<char>(rest.size() & 0xff);
  return out + rest;
}

std::string bytes(std::initializer_list<int> b) {
  std::string out;
  for (const int c : b) {
    out += static_cast<char>(c);
  }
  return out;
}

const std::string kTcp4Block = bytes({192, 0, 2, 1, 198, 51, 100, 2, 0xdc, 0x04, 0x01, 0xbb});

std::string tcp6Block() {
  std::string block(36, '\0');
  block[0] = 0x20;
  block[1] = 0x01;
  block[2] = 0x0d;
  block[3] = static_cast<char>(0xb8);
  block[15] = 1;
  block[16] = 0x20;
  block[17] = 0x01;
  block[18] = 0x0d;
  block[19] = static_cast<char>(0xb8);
  block[31] = 2;
  block[32] = 0x30;
  block[33] = 0x39;  // 12345
  block[34] = 0x00;
  block[35] = 0x50;  // 80
  return block;
}

TEST(ProxyV2, Tcp4) {
  const std::string in = v2(0x21, 0x11, kTcp4Block) + "GET";
  const ProxyHeader r = parse(in);
  ASSERT_EQ(r.status, kOk);
  EXPECT_EQ(r.version, 2);
  EXPECT_EQ(r.command, ProxyCommand::kProxy);
  EXPECT_EQ(r.consumed, 28U);
  EXPECT_EQ(text(r.source), "192.0.2.1:56324");
  EXPECT_EQ(text(r.destination), "198.51.100.2:443");
}

TEST(ProxyV2, Tcp6WithTlvs) {
  const std::string tlvs = bytes({0x01, 0x00, 0x02, 'h', '2'}) + bytes({0x04, 0x00, 0x00}) +
                           bytes({0xee, 0x00, 0x01, 0x00});
  const std::string in = v2(0x21, 0x21, tcp6Block() + tlvs);
  const ProxyHeader r = parse(in);
  ASSERT_EQ(r.status, kOk);
  EXPECT_EQ(r.consumed, in.size());
  EXPECT_EQ(text(r.source), "2001:db8::1.12345");
  EXPECT_EQ(text(r.destination), "2001:db8::2.80");
}

TEST(ProxyV2, LocalSkipsTheAddressBlockOfAnyFamily) {
  for (const int family : {0x00, 0x11, 0x21, 0x31, 0x12}) {
    const std::string in = v2(0x20, static_cast<unsigned char>(family), std::string(7, 'z'));
    const ProxyHeader r = parse(in);
    ASSERT_EQ(r.status, kOk) << family;
    EXPECT_EQ(r.command, ProxyCommand::kLocal);
    EXPECT_EQ(r.consumed, 23U);
  }
  EXPECT_EQ(parse(v2(0x20, 0x00, "")).consumed, 16U);
}

TEST(ProxyV2, VersionCommandAndFamily) {
  EXPECT_EQ(error(v2(0x11, 0x11, kTcp4Block)), ProxyError::kV2BadVersion);
  EXPECT_EQ(error(v2(0x31, 0x11, kTcp4Block)), ProxyError::kV2BadVersion);
  EXPECT_EQ(error(v2(0x22, 0x11, kTcp4Block)), ProxyError::kV2BadCommand);
  EXPECT_EQ(error(v2(0x2f, 0x11, kTcp4Block)), ProxyError::kV2BadCommand);
  for (const int family : {0x00, 0x01, 0x10, 0x12, 0x22, 0x31, 0x32, 0x13}) {
    EXPECT_EQ(error(v2(0x21, static_cast<unsigned char>(family), tcp6Block())),
              ProxyError::kV2BadFamily)
        << family;
  }
  // Decided on byte 13, before the length is known.
  EXPECT_EQ(parseProxyProtocol(kSig + bytes({0x21, 0x31})).error, ProxyError::kV2BadFamily);
  EXPECT_EQ(parseProxyProtocol(kSig + bytes({0x11})).error, ProxyError::kV2BadVersion);
}

TEST(ProxyV2, LengthIsBoundsChecked) {
  EXPECT_EQ(error(v2(0x21, 0x11, kTcp4Block.substr(0, 11))), ProxyError::kV2ShortAddress);
  EXPECT_EQ(error(v2(0x21, 0x21, tcp6Block().substr(0, 35))), ProxyError::kV2ShortAddress);
  EXPECT_EQ(error(v2(0x21, 0x21, kTcp4Block)), ProxyError::kV2ShortAddress);
  // The limit: the whole header, decided once the length field is in.
  const std::string big =
      v2(0x21, 0x11, kTcp4Block + bytes({0x20, 0x0f, 0xdd}) + std::string(4061, 'x'));
  ASSERT_EQ(big.size(), 4092U);
  EXPECT_EQ(parse(big).status, kOk);
  EXPECT_EQ(parse(big, 4092).status, kOk);
  EXPECT_EQ(error(big, 4091), ProxyError::kV2TooLong);
  EXPECT_EQ(parseProxyProtocol(big.substr(0, 16), 4091).error, ProxyError::kV2TooLong);
  EXPECT_EQ(parseProxyProtocol(v2(0x20, 0, "").substr(0, 15)).status, kMore);
  const std::string max_length = kSig + bytes({0x21, 0x11, 0xff, 0xff});
  EXPECT_EQ(parseProxyProtocol(max_length).error, ProxyError::kV2TooLong);
  EXPECT_EQ(parseProxyProtocol(max_length, 16 + 65535).status, kMore);
}

TEST(ProxyV2, TlvsMustTileTheRest) {
  EXPECT_EQ(error(v2(0x21, 0x11, kTcp4Block + bytes({0x01}))), ProxyError::kV2BadTlv);
  EXPECT_EQ(error(v2(0x21, 0x11, kTcp4Block + bytes({0x01, 0x00}))), ProxyError::kV2BadTlv);
  EXPECT_EQ(error(v2(0x21, 0x11, kTcp4Block + bytes({0x01, 0x00, 0x02, 'a'}))),
            ProxyError::kV2BadTlv);
  EXPECT_EQ(error(v2(0x21, 0x11, kTcp4Block + bytes({0x01, 0x00, 0x00, 0x02}))),
            ProxyError::kV2BadTlv);
  EXPECT_EQ(error(v2(0x21, 0x11, kTcp4Block + bytes({0x01, 0xff, 0xff}))), ProxyError::kV2BadTlv);
}

TEST(ProxyV2, SignatureMustBeExact) {
  std::string in = v2(0x21, 0x11, kTcp4Block);
  for (std::size_t i = 0; i < 12; ++i) {
    std::string bad = in;
    bad[i] = static_cast<char>(bad[i] ^ 0x20);
    EXPECT_EQ(error(bad), ProxyError::kNoSignature) << i;
  }
}

}  // namespace
// What the agent sends to a passthrough backend, read back by the agent's own strict parser.
TEST(ProxyV2Encoder, RoundTripsThroughTheParser) {
  ProxyAddress src{.v6 = false, .bytes = {203, 0, 113, 7}, .port = 51000};
  ProxyAddress dst{.v6 = false, .bytes = {10, 0, 0, 1}, .port = 443};
  std::string out = "x";  // appended, not replaced
  appendProxyV2(src, dst, out);
  ASSERT_EQ(out.size(), 1u + 16 + 12);
  ProxyHeader h = parseProxyProtocol(std::string_view(out).substr(1));
  ASSERT_EQ(h.status, ProxyStatus::kComplete);
  EXPECT_EQ(h.version, 2);
  EXPECT_EQ(h.command, ProxyCommand::kProxy);
  EXPECT_EQ(h.consumed, 28u);
  EXPECT_FALSE(h.source.v6);
  EXPECT_EQ(h.source.bytes[0], 203);
  EXPECT_EQ(h.source.bytes[3], 7);
  EXPECT_EQ(h.source.port, 51000);
  EXPECT_EQ(h.destination.port, 443);
  // A v6 client to a v4 listener: both sent as IPv6, the IPv4 one mapped.
  ProxyAddress src6{.v6 = true, .bytes = {0x20, 0x01, 0x0d, 0xb8}, .port = 1};
  std::string out6;
  appendProxyV2(src6, dst, out6);
  ASSERT_EQ(out6.size(), 16u + 36);
  h = parseProxyProtocol(out6);
  ASSERT_EQ(h.status, ProxyStatus::kComplete);
  EXPECT_TRUE(h.destination.v6);
  EXPECT_EQ(h.destination.bytes[10], 0xff);
  EXPECT_EQ(h.destination.bytes[12], 10);
}

}  // namespace sluice::http
