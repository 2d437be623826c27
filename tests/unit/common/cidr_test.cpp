// common/cidr: parsing (with errors that name the entry), membership for both families and for
// IPv4-mapped IPv6 addresses, and the text round trip.
#include "common/cidr.hpp"

#include <gtest/gtest.h>

#include "support/result.hpp"

namespace sluice::net {
namespace {

using boost::asio::ip::make_address;

CidrSet set(std::string_view text) {
  Result<CidrSet> s = parseCidrs(text);
  EXPECT_OK(s);
  return s ? *s : CidrSet();
}

std::string errorFor(std::string_view text) {
  Result<CidrSet> s = parseCidrs(text);
  EXPECT_FALSE(s) << text;
  return s ? std::string() : s.error().message();
}

TEST(Cidr, ParsesBothFamiliesAndSingleAddresses) {
  const struct {
    const char* in;
    const char* text;
  } cases[] = {
      {"10.0.0.0/8", "10.0.0.0/8"},
      {"192.0.2.1", "192.0.2.1/32"},
      {"0.0.0.0/0", "0.0.0.0/0"},
      {"192.0.2.128/25", "192.0.2.128/25"},
      {"fd00::/8", "fd00::/8"},
      {"2001:DB8::/32", "2001:db8::/32"},
      {"::1", "::1/128"},
      {"::/0", "::/0"},
      {"::ffff:10.0.0.0/104", "10.0.0.0/8"},
      {"::ffff:192.0.2.1", "192.0.2.1/32"},
      {"::ffff:0:0/96", "0.0.0.0/0"},
  };
  for (const auto& c : cases) {
    Result<Cidr> r = parseCidr(c.in);
    ASSERT_OK(r);
    EXPECT_EQ(r->text(), c.text) << c.in;
  }
}

TEST(Cidr, RefusesWhatIsNotARange) {
  for (const char* bad : {"",
                          "/8",
                          "10.0.0.0/",
                          "10.0.0.0/33",
                          "fd00::/129",
                          "10.0.0.0/-1",
                          "10.0.0.0/+8",
                          "10.0.0.0/08",
                          "10.0.0.0/8/8",
                          "10.0.0.0/ 8",
                          "10.0.0",
                          "10.0.0.0.0",
                          "010.0.0.0/8",
                          "256.0.0.0/8",
                          "example.com/8",
                          "[::1]/128",
                          "fe80::1%eth0/64",
                          "fd00::/8x",
                          " 10.0.0.0/8",
                          "10.0.0.1/8",
                          "fd00::1/8",
                          "10.0.0.0/0x8"}) {
    EXPECT_FALSE(parseCidr(bad)) << bad;
  }
  Result<Cidr> host_bits = parseCidr("10.0.0.1/8");
  ASSERT_FALSE(host_bits);
  EXPECT_EQ(host_bits.error().message(),
            "bad CIDR \"10.0.0.1/8\": host bits are set (write 10.0.0.0/8 or a single address)");
}

TEST(CidrSet, ListErrorsNameTheEntry) {
  EXPECT_EQ(errorFor("10.0.0.0/8, 10.0.0.300/8"),
            "entry 2: bad CIDR \"10.0.0.300/8\": not an IP address");
  EXPECT_EQ(errorFor("10.0.0.0/8,,fd00::/8"), "entry 2: empty CIDR in \"10.0.0.0/8,,fd00::/8\"");
  EXPECT_EQ(errorFor("10.0.0.0/8,"), "entry 2: empty CIDR in \"10.0.0.0/8,\"");
  EXPECT_EQ(errorFor("fd00::/200"),
            "entry 1: bad CIDR \"fd00::/200\": the prefix length must be 0-128");
}

TEST(CidrSet, EmptyTextIsTheEmptySet) {
  EXPECT_TRUE(set("").empty());
  EXPECT_TRUE(set("  ").empty());
  EXPECT_FALSE(set("").contains(make_address("10.0.0.1")));
}

TEST(CidrSet, Membership) {
  const CidrSet s = set(" 10.0.0.0/8 , 192.0.2.128/25,2001:db8::/32, 198.51.100.7");
  for (const char* in : {"10.0.0.0", "10.255.255.255", "192.0.2.128", "192.0.2.255", "2001:db8::1",
                         "2001:db8:ffff::", "198.51.100.7"}) {
    EXPECT_TRUE(s.contains(make_address(in))) << in;
    EXPECT_TRUE(s.containsText(in)) << in;
  }
  for (const char* in :
       {"11.0.0.0", "9.255.255.255", "192.0.2.127", "2001:db9::", "198.51.100.8", "::", "::1"}) {
    EXPECT_FALSE(s.contains(make_address(in))) << in;
    EXPECT_FALSE(s.containsText(in)) << in;
  }
}

TEST(CidrSet, Ipv4MappedAddressesAreIpv4) {
  const CidrSet v4 = set("10.0.0.0/8");
  EXPECT_TRUE(v4.contains(make_address("::ffff:10.1.2.3")));
  EXPECT_TRUE(v4.containsText("::ffff:10.1.2.3"));
  EXPECT_FALSE(v4.contains(make_address("::ffff:11.1.2.3")));
  // A mapped range is the IPv4 range.
  EXPECT_TRUE(set("::ffff:10.0.0.0/104").contains(make_address("10.9.9.9")));
  // IPv6 ranges do not cover IPv4 addresses, mapped or not.
  const CidrSet any6 = set("::/0");
  EXPECT_TRUE(any6.contains(make_address("2001:db8::1")));
  EXPECT_FALSE(any6.contains(make_address("10.0.0.1")));
  EXPECT_FALSE(any6.contains(make_address("::ffff:10.0.0.1")));
  const CidrSet any4 = set("0.0.0.0/0");
  EXPECT_TRUE(any4.contains(make_address("::ffff:203.0.113.1")));
  EXPECT_FALSE(any4.contains(make_address("64:ff9b::1")));
}

TEST(CidrSet, ContainsTextRefusesNonAddresses) {
  const CidrSet s = set("0.0.0.0/0,::/0");
  for (const char* in : {"", "unknown", "10.0.0.1:80", "[::1]", "010.0.0.1", "10.0.0.1/32",
                         "fe80::1%eth0", "10.0.0.1 "}) {
    EXPECT_FALSE(s.containsText(in)) << in;
  }
  EXPECT_TRUE(CidrSet::matchText(&s, "10.0.0.1"));
  EXPECT_FALSE(CidrSet::matchText(&s, "x"));
}

TEST(CidrSet, PrefixBoundaries) {
  const CidrSet s = set("192.0.2.4/30,2001:db8:0:2::/63");
  EXPECT_FALSE(s.containsText("192.0.2.3"));
  EXPECT_TRUE(s.containsText("192.0.2.4"));
  EXPECT_TRUE(s.containsText("192.0.2.7"));
  EXPECT_FALSE(s.containsText("192.0.2.8"));
  EXPECT_FALSE(s.containsText("2001:db8:0:1:ffff:ffff:ffff:ffff"));
  EXPECT_TRUE(s.containsText("2001:db8:0:2::"));
  EXPECT_TRUE(s.containsText("2001:db8:0:3:ffff:ffff:ffff:ffff"));
  EXPECT_FALSE(s.containsText("2001:db8:0:4::"));
  EXPECT_TRUE(set("2001:db8::/32").containsText("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff"));
}

TEST(CidrSet, TextRoundTrips) {
  const CidrSet s = set("10.0.0.0/8, 2001:DB8::/32,192.0.2.1");
  EXPECT_EQ(s.text(), "10.0.0.0/8,2001:db8::/32,192.0.2.1/32");
  EXPECT_EQ(set(s.text()), s);
  EXPECT_EQ(s.ranges().size(), 3U);
}

}  // namespace
}  // namespace sluice::net
