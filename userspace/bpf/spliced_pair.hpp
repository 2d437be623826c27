// A pair of connected TCP sockets spliced by the sockmap verdict (bpf/splice.bpf.c): what a relay
// holds while the kernel moves the pair's bytes. SpliceDatapath::arm() inserts it; the destructor
// removes its map entries. It knows the kernel's side of the bookkeeping so proxy/ does not:
// socket cookies, the TCP_INFO layout and SIOCOUTQ that tell whether a peer took every
// redirected byte, and the per-socket counters of the verdict.
//
// Sockets stay owned by the caller: the pair keeps their descriptors and must not outlive them.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>

#include "bpf/splice_datapath.hpp"
#include "common/result.hpp"

namespace sluice::bpf {

class SplicedPair {
public:
  enum Side : std::size_t { kClient = 0, kBackend = 1 };

  SplicedPair(SplicedPair&& other) noexcept;
  SplicedPair& operator=(SplicedPair&&) = delete;
  SplicedPair(const SplicedPair&) = delete;
  ~SplicedPair();  // removes the pair's entries (gone already if both sockets closed)

  std::uint64_t cookie(Side side) const { return cookies_[side]; }
  // The verdict's counters of the bytes received on `side`.
  Result<FlowStats> stats(Side side) const;
  // The last time the verdict saw a byte on either socket (steady clock; epoch if never).
  std::chrono::steady_clock::time_point lastActivity() const;
  // Whether the other socket's TCP has taken every byte the verdict redirected from `from`: only
  // then may a FIN follow them (a redirect may still sit in the peer's psock queue).
  Result<bool> drained(Side from) const;
  // The verdict handled no more bytes than each socket received. On 6.18 it occasionally ran
  // twice over one skb under load, sending it twice; such a flow must be reset, never ended
  // with a clean FIN. The error says which socket and by how much.
  Result<void> intact() const;

private:
  friend class SpliceDatapath;
  SplicedPair(SpliceDatapath& datapath, std::array<int, 2> fds,
              std::array<std::uint64_t, 2> cookies, std::array<std::uint64_t, 2> written_base,
              std::array<std::uint64_t, 2> received_base);

  SpliceDatapath* datapath_;
  std::array<int, 2> fds_;
  std::array<std::uint64_t, 2> cookies_;
  std::array<std::uint64_t, 2> written_base_;   // bytes written into each socket before arming
  std::array<std::uint64_t, 2> received_base_;  // bytes the agent consumed before arming
};

}  // namespace sluice::bpf
