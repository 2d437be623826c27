// libFuzzer harness for the PROXY protocol parser (http/proxy_protocol). Besides "no crash, no
// sanitizer report" it checks what the listener relies on: a prefix of the bytes is "incomplete"
// or the verdict of the whole, a header ends where it says and is found again in exactly its own
// bytes, the limits hold, and a parsed header written back out in the other version parses to
// the same addresses.
#include <arpa/inet.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_check.hpp"
#include "http/proxy_protocol.hpp"

namespace {

using sluice::http::kProxyV1MaxLine;
using sluice::http::parseProxyProtocol;
using sluice::http::ProxyAddress;
using sluice::http::ProxyCommand;
using sluice::http::ProxyError;
using sluice::http::ProxyHeader;
using sluice::http::ProxyStatus;

bool same(const ProxyHeader& a, const ProxyHeader& b) {
  return a.status == b.status && a.error == b.error && a.consumed == b.consumed;
}

bool sameAddress(const ProxyAddress& a, const ProxyAddress& b) {
  return a.v6 == b.v6 && a.port == b.port && a.bytes == b.bytes;
}

std::string v1Line(const ProxyHeader& h) {
  char src[INET6_ADDRSTRLEN];
  char dst[INET6_ADDRSTRLEN];
  const int family = h.source.v6 ? AF_INET6 : AF_INET;
  inet_ntop(family, h.source.bytes.data(), src, sizeof src);
  inet_ntop(family, h.destination.bytes.data(), dst, sizeof dst);
  return std::string("PROXY ") + (h.source.v6 ? "TCP6 " : "TCP4 ") + src + " " + dst + " " +
         std::to_string(h.source.port) + " " + std::to_string(h.destination.port) + "\r\n";
}

std::string v2Header(const ProxyHeader& h) {
  std::string out("\r\n\r\n\0\r\nQUIT\n", 12);
  const std::size_t len = h.source.v6 ? 16 : 4;
  out += '\x21';
  out += h.source.v6 ? '\x21' : '\x11';
  const std::size_t block = 2 * len + 4;
  out += static_cast<char>(block >> 8);
  out += static_cast<char>(block & 0xff);
  out.append(reinterpret_cast<const char*>(h.source.bytes.data()), len);
  out.append(reinterpret_cast<const char*>(h.destination.bytes.data()), len);
  for (const std::uint16_t port : {h.source.port, h.destination.port}) {
    out += static_cast<char>(port >> 8);
    out += static_cast<char>(port & 0xff);
  }
  return out;
}

void checkRoundTrip(const ProxyHeader& h) {
  for (const std::string& again : {v1Line(h), v2Header(h)}) {
    const ProxyHeader r = parseProxyProtocol(again);
    FUZZ_CHECK(r.status == ProxyStatus::kComplete && r.consumed == again.size());
    FUZZ_CHECK(r.command == ProxyCommand::kProxy);
    FUZZ_CHECK(sameAddress(r.source, h.source) && sameAddress(r.destination, h.destination));
  }
}

void check(std::string_view in, std::size_t split, std::size_t max_v2) {
  const ProxyHeader whole = parseProxyProtocol(in, max_v2);
  FUZZ_CHECK(sluice::http::proxyErrorName(whole.error) != "unknown");
  const ProxyHeader prefix = parseProxyProtocol(in.substr(0, split), max_v2);
  FUZZ_CHECK(prefix.status == ProxyStatus::kIncomplete || same(prefix, whole));
  switch (whole.status) {
    case ProxyStatus::kIncomplete:
      FUZZ_CHECK(whole.error == ProxyError::kNone && whole.consumed == 0);
      return;
    case ProxyStatus::kError:
      FUZZ_CHECK(whole.error != ProxyError::kNone && whole.consumed == 0);
      return;
    case ProxyStatus::kComplete:
      break;
  }
  FUZZ_CHECK(whole.error == ProxyError::kNone);
  FUZZ_CHECK(whole.consumed > 0 && whole.consumed <= in.size());
  FUZZ_CHECK(same(parseProxyProtocol(in.substr(0, whole.consumed), max_v2), whole));
  FUZZ_CHECK(parseProxyProtocol(in.substr(0, whole.consumed - 1), max_v2).status ==
             ProxyStatus::kIncomplete);
  if (whole.version == 1) {
    FUZZ_CHECK(whole.consumed <= kProxyV1MaxLine && in.substr(0, whole.consumed).ends_with("\r\n"));
    FUZZ_CHECK(whole.command != ProxyCommand::kLocal);
  } else {
    FUZZ_CHECK(whole.version == 2 && whole.consumed >= 16 && whole.consumed <= max_v2);
    FUZZ_CHECK(whole.command != ProxyCommand::kUnknown);
  }
  if (whole.command == ProxyCommand::kProxy) {
    FUZZ_CHECK(whole.source.v6 == whole.destination.v6);
    checkRoundTrip(whole);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  const std::size_t split = sluice::fuzz::splitPoint(data, size);
  check(in, split, sluice::http::kProxyV2DefaultMax);
  // A tiny limit, so the length checks are reachable with short inputs.
  check(in, split, 16 + (size > 1 ? data[1] % 64 : 0));
  return 0;
}
