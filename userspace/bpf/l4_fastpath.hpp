// L4FastPath: xdp_l4.bpf.o loaded with its maps pinned (flows survive an agent restart), and
// chained behind the front door: its program goes into slot SLUICE_XDP_CHAIN_L4 of the front
// door's sluice_xdp_next, so it sees exactly the packets the front door passes. Unchaining (or
// destroying this object) empties the slot, and every packet passes to the kernel as before:
// the agent's relay serves TCP routes again, and established fast-path flows break (their
// packets reach a kernel with no socket for them and are reset), which is the documented cost
// of turning the fast path off at run time.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "bpf/l4_maps.hpp"
#include "bpf/skeleton.hpp"
#include "common/result.hpp"

struct xdp_l4;

namespace sluice::bpf {

using L4Skel = struct ::xdp_l4;

class L4FastPath {
public:
  struct Options {
    std::string pin_root = SLUICE_PIN_DIR;  // empty: nothing pinned or reused (tests)
    bool unchain_on_exit = true;
  };

  static Result<std::unique_ptr<L4FastPath>> open(const Options& options);
  ~L4FastPath();
  L4FastPath(const L4FastPath&) = delete;
  L4FastPath& operator=(const L4FastPath&) = delete;

  // Puts the program into slot SLUICE_XDP_CHAIN_L4 of `chain_fd` (the front door's PROG_ARRAY).
  Result<void> chain(int chain_fd);
  // Empties the slot this object filled, if it still holds our program.
  void unchain();
  bool chained() const noexcept { return chain_fd_ >= 0; }

  int programFd() const;
  L4MapFds maps() const;

private:
  explicit L4FastPath(Skeleton<L4Skel> skel, bool unchain);

  Skeleton<L4Skel> skel_;
  bool unchain_on_exit_ = true;
  int chain_fd_ = -1;  // dup of the chain map while chained
};

}  // namespace sluice::bpf
