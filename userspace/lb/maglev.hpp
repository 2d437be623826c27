// Maglev consistent hashing (Eisenbud et al., NSDI 2016) for the XDP L4 fast path: a lookup table
// of prime size M whose slots name backends, so that a flow hashed to a slot picks the same
// backend on every node that was given the same endpoints, whatever order they arrived in.
//
// Each backend's place in the table comes only from its stable key ("10.0.0.1:80", "[::1]:80")
// hashed twice with fixed seeds: offset = h1 % M, skip = h2 % (M - 1) + 1, preference j =
// (offset + j * skip) % M. Backends take turns claiming their next free preferred slot, in the
// order of their keys, until the table is full. Nothing depends on the process (no std::hash, no
// pointer order), so every node's agent computes byte-identical tables. Adding or removing one of
// N backends moves about 1/N of the slots, plus a small extra share; the unit tests bound it.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.hpp"

namespace sluice::lb {

// Cilium's default (--bpf-lb-maglev-table-size); M must be prime and much larger than N (100×).
inline constexpr std::uint32_t kDefaultMaglevSize = 16381;
// Slot value of a table with no backends.
inline constexpr std::uint32_t kNoBackend = 0xFFFFFFFFu;

struct MaglevBackend {
  std::string key;       // stable identity: "address:port"
  std::uint32_t id = 0;  // what the slots hold (the backends map index)
};

bool isPrime(std::uint64_t n);
// A usable table size: prime, at least 7, at most 2^24 (the BPF array it becomes).
Result<std::uint32_t> validateMaglevSize(std::uint64_t size);

// 64-bit hash of `bytes` with `seed`; fixed forever, since tables must match across versions.
std::uint64_t maglevHash(std::string_view bytes, std::uint64_t seed);

// The table for `backends` (any order; duplicate keys are an error). Empty backends give a table
// of kNoBackend.
Result<std::vector<std::uint32_t>> buildMaglevTable(std::vector<MaglevBackend> backends,
                                                    std::uint32_t size);

// Fraction of slots whose value differs between two tables of the same size.
double slotsMoved(const std::vector<std::uint32_t>& before,
                  const std::vector<std::uint32_t>& after);

}  // namespace sluice::lb
