#include "support/byte_stream.hpp"

#include <openssl/evp.h>

#include <algorithm>
#include <sstream>

namespace sluice::test {

std::uint64_t ByteStream::next() {
  std::uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

void ByteStream::fill(void* out, std::size_t n) {
  auto* p = static_cast<unsigned char*>(out);
  while (n > 0 && left_ > 0) {
    *p++ = static_cast<unsigned char>(word_);
    word_ >>= 8;
    --left_;
    --n;
  }
  while (n >= 8) {
    const std::uint64_t w = next();
    std::memcpy(p, &w, 8);  // little-endian, the same bytes the slow path hands out
    p += 8;
    n -= 8;
  }
  if (n > 0) {
    word_ = next();
    left_ = 8;
    while (n > 0) {
      *p++ = static_cast<unsigned char>(word_);
      word_ >>= 8;
      --left_;
      --n;
    }
  }
}

std::string ByteStream::take(std::size_t n) {
  std::string s(n, '\0');
  fill(s.data(), n);
  return s;
}

// ---- Sha256 ----------------------------------------------------------------------------------

Sha256::Sha256() : ctx_(EVP_MD_CTX_new()) {
  EVP_DigestInit_ex(static_cast<EVP_MD_CTX*>(ctx_), EVP_sha256(), nullptr);
}

Sha256::~Sha256() {
  EVP_MD_CTX_free(static_cast<EVP_MD_CTX*>(ctx_));
}

void Sha256::update(const void* data, std::size_t n) {
  EVP_DigestUpdate(static_cast<EVP_MD_CTX*>(ctx_), data, n);
}

std::string Sha256::hex() {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(static_cast<EVP_MD_CTX*>(ctx_), md, &len);
  return toHex(md, len);
}

std::string streamSha256(std::uint64_t seed, std::uint64_t n) {
  ByteStream bytes(seed);
  Sha256 sha;
  std::string buf(1 << 20, '\0');
  while (n > 0) {
    const std::size_t k = static_cast<std::size_t>(std::min<std::uint64_t>(n, buf.size()));
    bytes.fill(buf.data(), k);
    sha.update(buf.data(), k);
    n -= k;
  }
  return sha.hex();
}

std::string sha256Hex(std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr);
  return toHex(md, len);
}

std::string toHex(const unsigned char* data, std::size_t size) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(size * 2);
  for (std::size_t i = 0; i < size; ++i) {
    out += kHex[data[i] >> 4];
    out += kHex[data[i] & 15];
  }
  return out;
}

std::string describeMismatch(const StreamResult& r, std::uint64_t seed) {
  if (!r.first_mismatch) {
    return "";
  }
  const std::uint64_t at = *r.first_mismatch;
  std::ostringstream os;
  os << "first differing byte at offset " << at << " (" << at / kMiB << " MiB + " << at % kMiB
     << ")";
  if (r.mismatch_bytes.size() < 16) {
    return os.str();
  }
  const std::uint64_t from = at > 64 * kMiB ? at - 64 * kMiB : 0;
  ByteStream bytes(seed);
  std::string skip(kMiB, '\0');
  for (std::uint64_t left = from; left > 0;) {
    const std::size_t k = static_cast<std::size_t>(std::min<std::uint64_t>(left, kMiB));
    bytes.fill(skip.data(), k);
    left -= k;
  }
  std::string window(128 * kMiB + r.mismatch_bytes.size(), '\0');
  bytes.fill(window.data(), window.size());
  const auto pos = window.find(r.mismatch_bytes);
  if (pos == std::string::npos) {
    os << "; the bytes received there were never sent within +-64 MiB (corrupted)";
  } else {
    const auto sent_at = from + pos;
    os << "; the bytes received there were sent at offset " << sent_at << " ("
       << static_cast<std::int64_t>(sent_at) - static_cast<std::int64_t>(at)
       << " bytes away: reordered, lost or duplicated)";
  }
  return os.str();
}

StreamResult sendStream(int fd, std::uint64_t seed, std::uint64_t n) {
  StreamResult r;
  ByteStream bytes(seed);
  Sha256 sha;
  std::string buf(kMiB, '\0');
  while (r.bytes < n) {
    const std::size_t k = static_cast<std::size_t>(std::min<std::uint64_t>(n - r.bytes, kMiB));
    bytes.fill(buf.data(), k);
    sha.update(buf.data(), k);
    if (!sendAll(fd, std::string_view(buf.data(), k), 30s)) {
      r.error = std::string("send failed or stalled 30 s: ") + std::strerror(errno);
      r.sha = sha.hex();
      return r;
    }
    r.bytes += k;
  }
  r.sha = sha.hex();
  r.ok = true;
  return r;
}

StreamResult recvStream(int fd, std::uint64_t n, std::optional<std::uint64_t> expect_seed) {
  StreamResult r;
  Sha256 sha;
  std::string buf(kMiB, '\0');
  std::optional<ByteStream> expected;
  std::string want_bytes;
  if (expect_seed) {
    expected.emplace(*expect_seed);
    want_bytes.resize(kMiB);
  }
  while (r.bytes < n) {
    const std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(n - r.bytes, kMiB));
    ssize_t got = ::recv(fd, buf.data(), want, MSG_DONTWAIT);
    if (got > 0) {
      sha.update(buf.data(), static_cast<std::size_t>(got));
      if (expected && !r.first_mismatch) {
        const auto k = static_cast<std::size_t>(got);
        expected->fill(want_bytes.data(), k);
        if (std::memcmp(buf.data(), want_bytes.data(), k) != 0) {
          std::size_t i = 0;
          while (buf[i] == want_bytes[i]) {
            ++i;
          }
          r.first_mismatch = r.bytes + i;
          r.mismatch_bytes = buf.substr(i, std::min<std::size_t>(64, k - i));
        }
      }
      r.bytes += static_cast<std::uint64_t>(got);
      continue;
    }
    if (got == 0) {
      r.error = "EOF after " + std::to_string(r.bytes) + " bytes";
      break;
    }
    if (errno == EINTR) {
      continue;
    }
    if (errno != EAGAIN && errno != EWOULDBLOCK) {
      r.error = std::string("recv: ") + std::strerror(errno);
      break;
    }
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 30'000) == 0) {
      r.error = "stalled 30 s after " + std::to_string(r.bytes) + " bytes";
      break;
    }
  }
  r.sha = sha.hex();
  r.ok = r.bytes == n;
  return r;
}

StreamResult recvToEof(int fd, std::chrono::milliseconds stall) {
  StreamResult r;
  Sha256 sha;
  std::string buf(kMiB, '\0');
  for (;;) {
    ssize_t got = ::recv(fd, buf.data(), buf.size(), MSG_DONTWAIT);
    if (got > 0) {
      sha.update(buf.data(), static_cast<std::size_t>(got));
      r.bytes += static_cast<std::uint64_t>(got);
      continue;
    }
    if (got == 0) {
      r.ok = true;
      break;
    }
    if (errno == EINTR) {
      continue;
    }
    if (errno != EAGAIN && errno != EWOULDBLOCK) {
      r.error = std::string("recv: ") + std::strerror(errno);
      break;
    }
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(stall.count())) == 0) {
      r.error = "no EOF: stalled after " + std::to_string(r.bytes) + " bytes";
      break;
    }
  }
  r.sha = sha.hex();
  return r;
}

bool endedByReset(const PushResult& r) {
  return r.error_code == ECONNRESET || r.error_code == EPIPE;
}

}  // namespace sluice::test
