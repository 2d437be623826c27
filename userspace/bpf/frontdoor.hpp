// Frontdoor: xdp_frontdoor.bpf.o loaded with its maps pinned (reused across agent restarts, so
// deny lists and rate buckets survive one), attached to interfaces, and detached on destruction.
//
// Ownership of an interface's XDP hook: one program per interface (unless everyone uses libxdp's
// dispatcher, which Cilium's XDP acceleration does not). A program whose kernel name starts with
// SLUICE_XDP_PROG_PREFIX is Sluice's own, maybe left by an agent that was killed: attach()
// replaces it atomically (XDP_FLAGS_REPLACE), so enforcement has no gap. Anything else is
// someone else's, and attach() refuses, naming it. Detach also uses XDP_FLAGS_REPLACE with our
// program as the expected one, so it never removes a program that replaced ours meanwhile.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "bpf/skeleton.hpp"
#include "bpf/xdp_maps.hpp"
#include "common/result.hpp"

struct xdp_frontdoor;

namespace sluice::bpf {

using FrontdoorSkel = struct ::xdp_frontdoor;

enum class XdpMode { kNative, kGeneric, kAuto };

// "native", "generic", "auto".
Result<XdpMode> parseXdpMode(std::string_view text);
std::string_view xdpModeName(XdpMode mode);

// The XDP program on an interface, whoever owns it.
struct XdpProgram {
  std::uint32_t id = 0;
  std::string name;  // kernel name, at most 15 characters
  std::string mode;  // "native", "generic", "offload"
  bool ours() const;
};

// What is attached to `ifindex` (nothing: nullopt). Naming it needs CAP_SYS_ADMIN.
Result<std::optional<XdpProgram>> attachedXdp(int ifindex);

// Whether this kernel offers XDP programs the raw SYN-cookie helpers (6.0+).
bool rawSyncookieHelpers();

// One interface the front door is attached to.
struct XdpAttachment {
  std::string ifname;
  int ifindex = 0;
  std::string mode;  // "native" or "generic"
  std::uint32_t prog_id = 0;
};

class Frontdoor {
public:
  struct Options {
    std::string pin_root = SLUICE_PIN_DIR;  // empty: nothing pinned or reused (tests)
    bool syn_proxy = false;                 // load the synproxy program if the kernel can
    bool detach_on_exit = true;
  };

  // Loads the object; with syn_proxy on a kernel without the helpers, loads the plain program
  // and says so in synProxyNote().
  static Result<std::unique_ptr<Frontdoor>> open(const Options& options);
  ~Frontdoor();
  Frontdoor(const Frontdoor&) = delete;
  Frontdoor& operator=(const Frontdoor&) = delete;

  // Attaches to `ifname` (refusing a foreign program); auto tries native, then generic.
  Result<XdpAttachment> attach(const std::string& ifname, XdpMode mode);
  // Detaches from every interface attached by this object.
  void detachAll();

  bool synProxy() const noexcept { return syn_proxy_; }
  const std::string& synProxyNote() const noexcept { return syn_proxy_note_; }
  const std::vector<XdpAttachment>& attachments() const noexcept { return attachments_; }
  int programFd() const;

  DenyMaps denyMaps() const;
  DenyMaps aclMaps() const;
  int scopeFd() const;
  int configFd() const;
  int statsFd() const;
  int rateFd() const;
  // PROG_ARRAY the front door tail-calls on pass (SLUICE_MAP_XDP_CHAIN).
  int chainFd() const;

private:
  Frontdoor(Skeleton<FrontdoorSkel> skel, bool syn_proxy, std::string note, bool detach);
  Result<XdpAttachment> attachMode(const std::string& ifname, int ifindex, std::uint32_t flags,
                                   const std::optional<XdpProgram>& current);

  Skeleton<FrontdoorSkel> skel_;
  bool syn_proxy_ = false;
  std::string syn_proxy_note_;
  bool detach_on_exit_ = true;
  std::vector<XdpAttachment> attachments_;
};

}  // namespace sluice::bpf
