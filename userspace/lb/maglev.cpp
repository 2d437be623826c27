#include "lb/maglev.hpp"

#include <algorithm>

namespace sluice::lb {
namespace {

// Seeds of the two hashes: arbitrary, fixed. Changing them reshuffles every node's tables.
constexpr std::uint64_t kOffsetSeed = 0x5175696365ULL;      // "Sluice"
constexpr std::uint64_t kSkipSeed = 0x6d61676c65763031ULL;  // "maglev01"
constexpr std::uint32_t kMaxSize = 1u << 24;

std::uint64_t fmix64(std::uint64_t k) {
  k ^= k >> 33;
  k *= 0xff51afd7ed558ccdULL;
  k ^= k >> 33;
  k *= 0xc4ceb9fe1a85ec53ULL;
  k ^= k >> 33;
  return k;
}

}  // namespace

bool isPrime(std::uint64_t n) {
  if (n < 2) {
    return false;
  }
  if (n % 2 == 0) {
    return n == 2;
  }
  for (std::uint64_t d = 3; d * d <= n; d += 2) {
    if (n % d == 0) {
      return false;
    }
  }
  return true;
}

Result<std::uint32_t> validateMaglevSize(std::uint64_t size) {
  if (size < 7 || size > kMaxSize) {
    return Error(EINVAL, "Maglev table size " + std::to_string(size) + " is outside 7.." +
                             std::to_string(kMaxSize));
  }
  if (!isPrime(size)) {
    return Error(EINVAL, "Maglev table size " + std::to_string(size) +
                             " is not prime (e.g. 251, 1021, 4093, 16381, 65521)");
  }
  return static_cast<std::uint32_t>(size);
}

std::uint64_t maglevHash(std::string_view bytes, std::uint64_t seed) {
  // FNV-1a over the bytes, seeded, then MurmurHash3's finaliser to spread the low bits that the
  // modulo keeps.
  std::uint64_t h = 0xcbf29ce484222325ULL ^ fmix64(seed);
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  return fmix64(h ^ bytes.size());
}

Result<std::vector<std::uint32_t>> buildMaglevTable(std::vector<MaglevBackend> backends,
                                                    std::uint32_t size) {
  SLUICE_TRY(const std::uint32_t m, validateMaglevSize(size));
  std::vector<std::uint32_t> table(m, kNoBackend);
  if (backends.empty()) {
    return table;
  }
  // Key order, not arrival order: the same set must give the same table everywhere.
  std::sort(backends.begin(), backends.end(),
            [](const MaglevBackend& a, const MaglevBackend& b) { return a.key < b.key; });
  for (std::size_t i = 1; i < backends.size(); ++i) {
    if (backends[i].key == backends[i - 1].key) {
      return Error(EINVAL, "Maglev: backend " + backends[i].key + " listed twice");
    }
  }
  const std::size_t n = backends.size();
  std::vector<std::uint64_t> offset(n), skip(n), next(n, 0);
  for (std::size_t i = 0; i < n; ++i) {
    offset[i] = maglevHash(backends[i].key, kOffsetSeed) % m;
    skip[i] = maglevHash(backends[i].key, kSkipSeed) % (m - 1) + 1;
  }
  std::uint32_t filled = 0;
  while (true) {
    for (std::size_t i = 0; i < n; ++i) {
      // skip < m and m prime: the preferences of a backend visit every slot once.
      std::uint64_t slot = (offset[i] + next[i] * skip[i]) % m;
      while (table[slot] != kNoBackend) {
        ++next[i];
        slot = (offset[i] + next[i] * skip[i]) % m;
      }
      table[slot] = backends[i].id;
      ++next[i];
      if (++filled == m) {
        return table;
      }
    }
  }
}

double slotsMoved(const std::vector<std::uint32_t>& before,
                  const std::vector<std::uint32_t>& after) {
  if (before.size() != after.size() || before.empty()) {
    return 1.0;
  }
  std::size_t moved = 0;
  for (std::size_t i = 0; i < before.size(); ++i) {
    moved += before[i] != after[i] ? 1 : 0;
  }
  return static_cast<double>(moved) / static_cast<double>(before.size());
}

}  // namespace sluice::lb
