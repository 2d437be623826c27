#include "bpf/frontdoor.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/if_link.h>
#include <net/if.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "bpf/libbpf_log.hpp"
#include "bpf/splice_object.hpp"
#include "xdp_frontdoor.skel.h"

namespace sluice::bpf {
namespace {

constexpr std::string_view kObjectName = "xdp_frontdoor.bpf.o";
// BPF_FUNC_tcp_raw_gen_syncookie_ipv4 (6.0); Debian 12's uapi headers predate it.
constexpr int kHelperRawGenSyncookie4 = 204;

std::string modeOf(std::uint32_t flags) {
  return (flags & XDP_FLAGS_SKB_MODE) != 0 ? "generic" : "native";
}

Result<std::string> progName(std::uint32_t id) {
  const int fd = ::bpf_prog_get_fd_by_id(id);
  if (fd < 0) {
    return errnoError("open program id " + std::to_string(id));
  }
  bpf_prog_info info{};
  std::uint32_t len = sizeof(info);
  const int err = ::bpf_obj_get_info_by_fd(fd, &info, &len);
  ::close(fd);
  if (err != 0) {
    return Error(err, "info of program id " + std::to_string(id));
  }
  return std::string(info.name);
}

Result<Skeleton<FrontdoorSkel>> load(const std::string& pin_root, bool syn_proxy) {
  SLUICE_TRY(auto skel, Skeleton<FrontdoorSkel>::openPinnedUnder(pin_root, kObjectName));
  // Only one program is attached; the other is not even shown to the verifier, which is what
  // keeps 5.10 (no helper 204) able to load the object.
  ::bpf_program__set_autoload(
      syn_proxy ? skel->progs.sluice_xdp_frontdoor : skel->progs.sluice_xdp_synproxy, false);
  bpf_program* prog =
      syn_proxy ? skel->progs.sluice_xdp_synproxy : skel->progs.sluice_xdp_frontdoor;
  std::string log(1u << 20, '\0');
  ::bpf_program__set_log_buf(prog, log.data(), log.size());
  auto loaded = skel.load(kObjectName);
  ::bpf_program__set_log_buf(prog, nullptr, 0);
  if (!loaded) {
    log.resize(log.find('\0'));
    const std::string reason = verifierReason(log);
    return reason.empty() ? loaded.error()
                          : Error("the verifier refused " + std::string(::bpf_program__name(prog)) +
                                  ": " + reason);
  }
  return skel;
}

}  // namespace

Result<XdpMode> parseXdpMode(std::string_view text) {
  if (text == "native") {
    return XdpMode::kNative;
  }
  if (text == "generic") {
    return XdpMode::kGeneric;
  }
  if (text == "auto") {
    return XdpMode::kAuto;
  }
  return Error("--xdp-mode: \"" + std::string(text) + "\" is not native, generic or auto");
}

std::string_view xdpModeName(XdpMode mode) {
  switch (mode) {
    case XdpMode::kNative:
      return "native";
    case XdpMode::kGeneric:
      return "generic";
    case XdpMode::kAuto:
      break;
  }
  return "auto";
}

bool XdpProgram::ours() const {
  return std::string_view(name).starts_with(
      std::string_view(SLUICE_XDP_PROG_PREFIX).substr(0, BPF_OBJ_NAME_LEN - 1));
}

Result<std::optional<XdpProgram>> attachedXdp(int ifindex) {
  bpf_xdp_query_opts q{};
  q.sz = sizeof(q);
  if (int err = ::bpf_xdp_query(ifindex, 0, &q); err != 0) {
    return Error(err, "query XDP on ifindex " + std::to_string(ifindex));
  }
  XdpProgram p;
  if (q.drv_prog_id != 0) {
    p = {q.drv_prog_id, "", "native"};
  } else if (q.skb_prog_id != 0) {
    p = {q.skb_prog_id, "", "generic"};
  } else if (q.hw_prog_id != 0) {
    p = {q.hw_prog_id, "", "offload"};
  } else {
    return std::optional<XdpProgram>();
  }
  SLUICE_TRY(p.name, progName(p.id));
  return std::optional<XdpProgram>(p);
}

bool rawSyncookieHelpers() {
  return ::libbpf_probe_bpf_helper(BPF_PROG_TYPE_XDP,
                                   static_cast<bpf_func_id>(kHelperRawGenSyncookie4), nullptr) == 1;
}

Result<std::unique_ptr<Frontdoor>> Frontdoor::open(const Options& options) {
  installLibbpfLog();
  bool syn_proxy = false;
  std::string note;
  if (options.syn_proxy) {
    if (rawSyncookieHelpers()) {
      syn_proxy = true;
    } else {
      note =
          "--xdp-syn-proxy: this kernel has no raw SYN-cookie helpers for XDP (needs 6.0); "
          "the front door runs without it";
    }
  }
  auto skel = load(options.pin_root, syn_proxy);
  if (!skel && syn_proxy) {
    note = "--xdp-syn-proxy: " + skel.error().message() + "; the front door runs without it";
    syn_proxy = false;
    skel = load(options.pin_root, false);
  }
  if (!skel) {
    return skel.error().wrap("load " + std::string(kObjectName));
  }
  return std::unique_ptr<Frontdoor>(
      new Frontdoor(std::move(*skel), syn_proxy, std::move(note), options.detach_on_exit));
}

Frontdoor::Frontdoor(Skeleton<FrontdoorSkel> skel, bool syn_proxy, std::string note, bool detach)
    : skel_(std::move(skel)),
      syn_proxy_(syn_proxy),
      syn_proxy_note_(std::move(note)),
      detach_on_exit_(detach) {}

Frontdoor::~Frontdoor() {
  if (detach_on_exit_) {
    detachAll();
  }
}

int Frontdoor::programFd() const {
  return ::bpf_program__fd(syn_proxy_ ? skel_->progs.sluice_xdp_synproxy
                                      : skel_->progs.sluice_xdp_frontdoor);
}

Result<XdpAttachment> Frontdoor::attach(const std::string& ifname, XdpMode mode) {
  const int ifindex = static_cast<int>(::if_nametoindex(ifname.c_str()));
  if (ifindex == 0) {
    return errnoError("attach XDP to " + ifname);
  }
  SLUICE_TRY(const std::optional<XdpProgram> current, attachedXdp(ifindex));
  if (current && !current->ours()) {
    return Error(EBUSY, "attach XDP to " + ifname + ": it already runs XDP program \"" +
                            current->name + "\" (id " + std::to_string(current->id) + ", " +
                            current->mode +
                            " mode), which is not Sluice's; refusing to replace it");
  }
  if (mode == XdpMode::kNative) {
    return attachMode(ifname, ifindex, XDP_FLAGS_DRV_MODE, current);
  }
  if (mode == XdpMode::kGeneric) {
    return attachMode(ifname, ifindex, XDP_FLAGS_SKB_MODE, current);
  }
  auto native = attachMode(ifname, ifindex, XDP_FLAGS_DRV_MODE, current);
  if (native || (current && current->mode == "native")) {
    return native;
  }
  return attachMode(ifname, ifindex, XDP_FLAGS_SKB_MODE, current);
}

Result<XdpAttachment> Frontdoor::attachMode(const std::string& ifname, int ifindex,
                                            std::uint32_t flags,
                                            const std::optional<XdpProgram>& current) {
  const std::string mode = modeOf(flags);
  int old_fd = -1;
  if (current && current->mode == mode) {
    // Ours, left by an earlier agent: swap atomically, no moment without enforcement.
    old_fd = ::bpf_prog_get_fd_by_id(current->id);
  } else if (current) {
    // Ours in the other mode: the kernel allows one mode at a time.
    ::bpf_xdp_detach(ifindex, current->mode == "generic" ? XDP_FLAGS_SKB_MODE : XDP_FLAGS_DRV_MODE,
                     nullptr);
  }
  bpf_xdp_attach_opts opts{};
  opts.sz = sizeof(opts);
  opts.old_prog_fd = old_fd;
  const std::uint32_t replace = old_fd >= 0 ? XDP_FLAGS_REPLACE : XDP_FLAGS_UPDATE_IF_NOEXIST;
  const int err = ::bpf_xdp_attach(ifindex, programFd(), flags | replace, &opts);
  if (old_fd >= 0) {
    ::close(old_fd);
  }
  if (err != 0) {
    return Error(err, "attach XDP to " + ifname + " in " + mode + " mode");
  }
  XdpAttachment a{ifname, ifindex, mode, 0};
  bpf_prog_info info{};
  std::uint32_t len = sizeof(info);
  if (::bpf_obj_get_info_by_fd(programFd(), &info, &len) == 0) {
    a.prog_id = info.id;
  }
  attachments_.push_back(a);
  return a;
}

void Frontdoor::detachAll() {
  for (const auto& a : attachments_) {
    bpf_xdp_attach_opts opts{};
    opts.sz = sizeof(opts);
    opts.old_prog_fd = programFd();
    const std::uint32_t mode = a.mode == "generic" ? XDP_FLAGS_SKB_MODE : XDP_FLAGS_DRV_MODE;
    ::bpf_xdp_attach(a.ifindex, -1, mode | XDP_FLAGS_REPLACE, &opts);
  }
  attachments_.clear();
}

DenyMaps Frontdoor::denyMaps() const {
  return {::bpf_map__fd(skel_->maps.sluice_deny4), ::bpf_map__fd(skel_->maps.sluice_deny6)};
}
DenyMaps Frontdoor::aclMaps() const {
  return {::bpf_map__fd(skel_->maps.sluice_acl4), ::bpf_map__fd(skel_->maps.sluice_acl6)};
}
int Frontdoor::scopeFd() const {
  return ::bpf_map__fd(skel_->maps.sluice_xdp_scope);
}
int Frontdoor::configFd() const {
  return ::bpf_map__fd(skel_->maps.sluice_xdp_cfg);
}
int Frontdoor::statsFd() const {
  return ::bpf_map__fd(skel_->maps.sluice_xdp_stats);
}
int Frontdoor::rateFd() const {
  return ::bpf_map__fd(skel_->maps.sluice_xdp_rate);
}
int Frontdoor::chainFd() const {
  return ::bpf_map__fd(skel_->maps.sluice_xdp_next);
}

}  // namespace sluice::bpf
