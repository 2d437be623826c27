// SpliceDatapath: the agent's handle on splice.bpf.c, the sockmap splice of proxied socket pairs.
//
// It owns the loaded skeleton, the verdict program's attachment to the pinned sockhash and its
// pin next to the maps (so ingressctl can name it on every kernel and without CAP_SYS_ADMIN), and
// turns "splice these two sockets" into the ordered map writes the kernel program expects.
// Mutating calls are serialized internally, so worker threads may call addPair/removePair
// concurrently; stats() and verdictCounters() read maps without locking.
//
// Kernel interactions worth knowing before using it (details in bpf/splice.bpf.c):
//  - Bytes the agent read but has not forwarded must be written to the peer by the agent before
//    addPair. Bytes still in a receive queue need nothing: once the pair is armed addPair runs
//    the verdict over them in order with an SO_RCVLOWAT kick (without it they would wait for the
//    next arrival).
//  - addPair inserts both sockets into sluice_targets (no program) before either goes into
//    sluice_socks_v3 (the verdict), so a byte arriving at any point of arming is either still in
//    its socket's receive queue or redirected to a peer that is already a target; there is no
//    window in which the verdict finds no peer (tests/kernels/FINDINGS.md, finding 5). Bytes for
//    a peer that closed are not dropped: the verdict passes them to the receiving socket's
//    ingress queue (recvmsg only) and counts them in passed_bytes.
//  - A verdict program is copied into a socket's psock when the socket is inserted; detaching it
//    from the map (destructor) affects only sockets inserted afterwards.
//  - No backpressure of its own: bytes queued for a peer that does not drain are not charged to
//    any socket buffer (on 6.18 a client pushed 512 MiB into a pair whose backend never read).
//    The budget argument of addPair bounds it in the verdict; a held direction must then be
//    relayed by the agent (read the held socket with recv, write to the peer).
//  - Removing a pair while bytes are still queued for the peer can discard them; un-splicing a
//    busy flow is not safe. Close the sockets instead (they leave the sockhash by themselves),
//    then removePair or clearStale the metadata.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>

#include "bpf/abi.hpp"
#include "bpf/skeleton.hpp"
#include "common/result.hpp"

// bpftool names the skeleton struct after the object; "splice" is also glibc's splice(2), so
// always spell it as an elaborated type.
struct splice;

namespace sluice::bpf {

using SpliceSkel = struct ::splice;

class SplicedPair;

struct Options {
  // bpffs directory the maps are pinned in (libbpf pin_root_path); created if missing, its
  // parent must be on bpffs. Tests use their own so they never touch a running agent's maps.
  std::string pin_root = std::string(kPinDir);
};

// Counters of one socket, from sluice_flow_stats (see struct sluice_flow_stats).
struct FlowStats {
  std::uint64_t bytes = 0;
  std::uint64_t packets = 0;
  std::uint64_t last_seen_ns = 0;
  std::uint64_t passed_bytes = 0;
};

// One socket insert of addPair into a sockhash (see setArmingHook).
struct ArmingStep {
  std::string_view map;  // SLUICE_MAP_TARGETS or SLUICE_MAP_SOCKS
  bool client = false;   // the client-side socket (else the backend-side one) was just inserted
};

// Verdict outcomes summed over CPUs, indexed by enum sluice_reason (labels: kReasonLabels).
using VerdictCounters = std::array<std::uint64_t, SLUICE_REASON_COUNT>;

class SpliceDatapath {
public:
  // Prepares the pin root, loads splice.bpf.o (reusing maps already pinned there), attaches the
  // stream verdict to sluice_socks_v3 and pins it as sluice_splice_verdict. Fails with a clear
  // message when BPF is unusable: the verifier's reason when it refused the program (and which
  // capability or helper is missing), the differing maps when a pinned map has another layout.
  static Result<std::unique_ptr<SpliceDatapath>> open(const Options& options = {});
  using Opener = Result<std::unique_ptr<SpliceDatapath>> (*)(const Options&);

  // Takes over what another process's open() left pinned under the pin root (the maps and the
  // verdict, attached), without loading anything: no BTF parsing, so no memory peak. The
  // destructor then detaches and unpins the verdict as if this instance had opened it. The
  // agent loads in a child process (`ingress-agent --load-datapath`) and adopts with this.
  static Result<std::unique_ptr<SpliceDatapath>> adopt(const Options& options = {});

  // Leaves the verdict attached and pinned when this instance goes (the child's side of adopt).
  void handOver() noexcept { attached_ = verdict_pinned_ = false; }

  // Loads exactly what open() loads, without pinning or keeping anything, and attaches the
  // verdict to its own unpinned sockhash: "available" means the verifier accepted the program
  // that will run. An error says why not (the same text open() would give).
  static Result<void> verify();

  // One line for the startup log and ingressctl: kernel release, BTF, bpffs, and verify()'s
  // answer as "splice program yes|no (why)" and "sk_skb stream_verdict attach ...". `verify`
  // may run it elsewhere (the agent runs it in a child process, for its memory peak).
  using Verifier = Result<void> (*)();
  static std::string probe(Verifier verify = &SpliceDatapath::verify);

  // The kernel's socket cookie (SO_COOKIE): the key of every per-socket map.
  static Result<std::uint64_t> socketCookie(int fd);

  // Unpins the splice maps and the verdict under `pin_root` and removes the directory if that
  // leaves it empty. Missing pins are not an error. Live spliced sockets keep working until
  // closed.
  static Result<void> unpinMaps(const std::string& pin_root);

  SpliceDatapath(const SpliceDatapath&) = delete;
  SpliceDatapath& operator=(const SpliceDatapath&) = delete;
  SpliceDatapath(SpliceDatapath&&) = delete;
  SpliceDatapath& operator=(SpliceDatapath&&) = delete;

  // Detaches the verdict from sluice_socks_v3 and removes its pin if it is still this one's;
  // pinned maps and their entries stay.
  ~SpliceDatapath();

  // Splices two connected TCP sockets: bytes received on either are sent on the other by the
  // kernel. flow_id 0 means "use the client socket's cookie". Fails with EEXIST if either socket
  // is already spliced; on any failure, undoes exactly the entries this call inserted.
  // `budget` (bytes, 0 = unlimited) bounds what either socket may have redirected that the
  // other's TCP has not taken; past it that direction is held for userspace (SLUICE_FLOW_F_HELD).
  // Bytes already in either receive queue are redirected in order once the pair is armed.
  Result<void> addPair(int client_fd, int backend_fd, std::uint64_t flow_id = 0,
                       std::uint32_t budget = 0);

  // addPair() for a relay: the returned handle knows the pair's cookies and the socket state at
  // arming, and removes the entries when it goes. Bytes the agent read but has not forwarded
  // must be written to the peer before this call.
  Result<SplicedPair> arm(int client_fd, int backend_fd, std::uint64_t flow_id,
                          std::uint32_t budget);

  // The sluice_peers entry of the socket with this cookie (flags show a held direction).
  Result<sluice_flow> flow(std::uint64_t cookie) const;

  // Unsplices the pair `fd` belongs to (either side) and deletes its metadata and counters.
  Result<void> removePair(int fd);
  // The same by socket cookie, usable after the sockets are closed. ENOENT if not spliced.
  Result<void> removePairByCookie(std::uint64_t cookie);

  // Counters of the socket with this cookie. ENOENT if it has none.
  Result<FlowStats> stats(std::uint64_t cookie) const;

  // Verdict outcomes since the verdicts map was created (it survives agent restarts).
  Result<VerdictCounters> verdictCounters() const;

  // Deletes sluice_peers and sluice_flow_stats entries whose socket is no longer in the sockhash
  // (closed, or left over from a previous agent). Returns how many entries it deleted.
  Result<std::size_t> clearStale();

  const std::string& pinRoot() const noexcept { return pin_root_; }

  // Test seam: addPair calls `hook` after each socket insert into a sockhash, with the pair half
  // armed and the pair lock held, so a test can send bytes into exactly that state. The agent
  // never sets it. Not thread-safe against a concurrent addPair.
  void setArmingHook(std::function<void(const ArmingStep&)> hook) {
    arming_hook_ = std::move(hook);
  }

  // Raw fds for typed map access and tests; owned by this object.
  int socksMapFd() const noexcept;
  int targetsMapFd() const noexcept;
  int peersMapFd() const noexcept;
  int flowStatsMapFd() const noexcept;
  int verdictsMapFd() const noexcept;
  int verdictProgFd() const noexcept;

private:
  SpliceDatapath(Skeleton<SpliceSkel> skel, std::string pin_root);
  // Adopted: descriptors of the pinned objects, owned (order of the fd accessors below).
  enum Fd { kSocks, kTargets, kPeers, kFlowStats, kVerdicts, kVerdict, kFdCount };
  SpliceDatapath(std::array<int, kFdCount> fds, std::string pin_root);

  Result<void> removeLocked(std::uint64_t cookie);

  Skeleton<SpliceSkel> skel_;  // empty when adopted
  std::array<int, kFdCount> fds_;
  std::string pin_root_;
  bool attached_ = false;
  bool verdict_pinned_ = false;
  std::function<void(const ArmingStep&)> arming_hook_;
  std::mutex mutex_;  // serializes addPair/removePair/clearStale
};

}  // namespace sluice::bpf
