// libFuzzer harness for the TLS ClientHello reader (tls/client_hello). Besides "no crash, no
// sanitizer report" it checks what the passthrough path relies on: the verdict and the bytes
// used do not depend on the segmentation (the input is fed whole and again in chunks whose sizes
// come from the input), a reader never takes more than it was given, the bytes it keeps are the
// input's own, a hello ends exactly where it says, and an SNI is always a clean lowercase name.
#include <algorithm>
#include <cstdint>
#include <span>
#include <string_view>

#include "fuzz_check.hpp"
#include "tls/client_hello.hpp"

namespace {

using sluice::tls::ClientHello;
using sluice::tls::ClientHelloReader;
using sluice::tls::Error;
using sluice::tls::FeedResult;
using sluice::tls::Status;

using Bytes = std::span<const std::uint8_t>;

struct Run {
  Status status = Status::kNeedMore;
  std::size_t used = 0;
};

// A small deterministic generator seeded from the input, for chunk sizes.
struct Chunks {
  std::uint32_t state;
  std::size_t max;

  std::size_t next() {
    state ^= state << 13;
    state ^= state >> 17;
    state ^= state << 5;
    return 1 + state % max;
  }
};

Run feedAll(ClientHelloReader& reader, Bytes in, Chunks* chunks) {
  Run run;
  std::size_t at = 0;
  while (at < in.size() && run.status == Status::kNeedMore) {
    const std::size_t n = chunks ? std::min(chunks->next(), in.size() - at) : in.size();
    const FeedResult r = reader.feed(in.subspan(at, n));
    FUZZ_CHECK(r.used <= n);
    FUZZ_CHECK(r.status == Status::kDone || r.status == Status::kError || r.used == n);
    run.status = r.status;
    run.used += r.used;
    at += n;
  }
  return run;
}

bool cleanSni(std::string_view sni) {
  if (sni.empty() || sni.size() > sluice::tls::kMaxSniBytes || sni.front() == '.' ||
      sni.back() == '.' || sni.find("..") != std::string_view::npos) {
    return false;
  }
  return std::all_of(sni.begin(), sni.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.';
  });
}

void checkHello(const ClientHello& h) {
  FUZZ_CHECK(h.has_sni ? cleanSni(h.sni) : h.sni.empty());
  FUZZ_CHECK(h.alpn_count <= sluice::tls::kMaxAlpn);
  for (const std::string_view p : h.protocols()) {
    FUZZ_CHECK(!p.empty() && p.size() <= 255);
  }
}

bool sameHello(const ClientHello& a, const ClientHello& b) {
  if (a.has_sni != b.has_sni || a.sni != b.sni || a.alpn_count != b.alpn_count ||
      a.offers_tls13 != b.offers_tls13 || a.has_ech != b.has_ech ||
      a.legacy_version != b.legacy_version) {
    return false;
  }
  return std::equal(a.protocols().begin(), a.protocols().end(), b.protocols().begin());
}

void checkDone(const ClientHelloReader& reader, Bytes in, const Run& run, std::size_t max_hello) {
  checkHello(reader.hello());
  const Bytes kept = reader.consumed();
  FUZZ_CHECK(kept.size() == run.used);
  FUZZ_CHECK(run.used >= sluice::tls::kRecordHeaderBytes + sluice::tls::kHandshakeHeaderBytes);
  FUZZ_CHECK(std::equal(kept.begin(), kept.end(), in.begin()));
  // The hello ends where the reader says: exactly its bytes complete it, one fewer does not.
  ClientHelloReader exact(max_hello);
  FUZZ_CHECK(exact.feed(in.first(run.used)).status == Status::kDone);
  ClientHelloReader shorter(max_hello);
  FUZZ_CHECK(shorter.feed(in.first(run.used - 1)).status == Status::kNeedMore);
  const FeedResult again = exact.feed(in);
  FUZZ_CHECK(again.status == Status::kDone && again.used == 0);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const Bytes in(data, size);
  const std::uint32_t seed =
      size == 0 ? 1 : static_cast<std::uint32_t>(data[0] * 251 + data[size - 1] * 7 + size) | 1;
  // Mostly the default cap; sometimes a small one, so the limits are reachable with short inputs.
  const std::size_t max_hello = (seed & 6) == 0   ? 64 + seed % 512
                                : (seed & 6) == 2 ? sluice::tls::kMaxHelloLimit
                                                  : sluice::tls::kDefaultMaxHello;
  Chunks chunks{seed, (seed >> 3) % 3 == 0 ? 1 : 1 + (seed >> 5) % 64};

  ClientHelloReader whole(max_hello);
  const Run a = feedAll(whole, in, nullptr);
  ClientHelloReader chunked(max_hello);
  const Run b = feedAll(chunked, in, &chunks);

  FUZZ_CHECK(a.status == b.status && a.used == b.used && whole.error() == chunked.error());
  FUZZ_CHECK(a.used <= size);
  FUZZ_CHECK((whole.error() == Error::kNone) == (a.status != Status::kError));
  FUZZ_CHECK(std::string_view(sluice::tls::name(whole.error())) != "unknown");
  switch (a.status) {
    case Status::kNeedMore:
      FUZZ_CHECK(a.used == size);
      break;
    case Status::kError:
      if (whole.error() == Error::kNotHandshake) {
        FUZZ_CHECK(a.used == 0 && whole.consumed().empty() && size > 0 && data[0] != 22);
      }
      break;
    case Status::kDone:
      FUZZ_CHECK(sameHello(whole.hello(), chunked.hello()));
      checkDone(whole, in, a, max_hello);
      break;
  }
  return 0;
}
