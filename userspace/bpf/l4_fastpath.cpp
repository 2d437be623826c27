#include "bpf/l4_fastpath.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "bpf/libbpf_log.hpp"
#include "bpf/splice_object.hpp"
#include "xdp_l4.skel.h"

namespace sluice::bpf {
namespace {

constexpr std::string_view kObjectName = "xdp_l4.bpf.o";

Result<Skeleton<L4Skel>> load(const std::string& pin_root) {
  SLUICE_TRY(auto skel, Skeleton<L4Skel>::openPinnedUnder(pin_root, kObjectName));
  bpf_program* prog = skel->progs.sluice_xdp_l4;
  std::string log(1u << 20, '\0');
  ::bpf_program__set_log_buf(prog, log.data(), log.size());
  auto loaded = skel.load(kObjectName);
  ::bpf_program__set_log_buf(prog, nullptr, 0);
  if (!loaded) {
    log.resize(log.find('\0'));
    const std::string reason = verifierReason(log);
    return reason.empty() ? loaded.error() : Error("the verifier refused sluice_xdp_l4: " + reason);
  }
  return skel;
}

}  // namespace

Result<std::unique_ptr<L4FastPath>> L4FastPath::open(const Options& options) {
  installLibbpfLog();
  auto skel = load(options.pin_root);
  if (!skel) {
    return skel.error().wrap("load " + std::string(kObjectName));
  }
  return std::unique_ptr<L4FastPath>(new L4FastPath(std::move(*skel), options.unchain_on_exit));
}

L4FastPath::L4FastPath(Skeleton<L4Skel> skel, bool unchain)
    : skel_(std::move(skel)), unchain_on_exit_(unchain) {}

L4FastPath::~L4FastPath() {
  if (unchain_on_exit_) {
    unchain();
  } else if (chain_fd_ >= 0) {
    ::close(chain_fd_);
  }
}

int L4FastPath::programFd() const {
  return ::bpf_program__fd(skel_->progs.sluice_xdp_l4);
}

Result<void> L4FastPath::chain(int chain_fd) {
  const std::uint32_t slot = SLUICE_XDP_CHAIN_L4;
  const int prog = programFd();
  if (::bpf_map_update_elem(chain_fd, &slot, &prog, BPF_ANY) != 0) {
    return errnoError("chain the L4 fast path behind the front door");
  }
  if (chain_fd_ < 0) {
    chain_fd_ = ::fcntl(chain_fd, F_DUPFD_CLOEXEC, 3);
  }
  return success();
}

void L4FastPath::unchain() {
  if (chain_fd_ < 0) {
    return;
  }
  // Only our own program: a newer agent may have chained its copy meanwhile.
  const std::uint32_t slot = SLUICE_XDP_CHAIN_L4;
  std::uint32_t id = 0;
  bpf_prog_info info{};
  std::uint32_t len = sizeof(info);
  if (::bpf_map_lookup_elem(chain_fd_, &slot, &id) == 0 &&
      ::bpf_obj_get_info_by_fd(programFd(), &info, &len) == 0 && info.id == id) {
    ::bpf_map_delete_elem(chain_fd_, &slot);
  }
  ::close(chain_fd_);
  chain_fd_ = -1;
}

L4MapFds L4FastPath::maps() const {
  L4MapFds m;
  m.config = ::bpf_map__fd(skel_->maps.sluice_l4_cfg);
  m.services = ::bpf_map__fd(skel_->maps.sluice_l4_svc);
  m.backends = ::bpf_map__fd(skel_->maps.sluice_l4_be);
  m.ring = ::bpf_map__fd(skel_->maps.sluice_l4_ring);
  m.flows = ::bpf_map__fd(skel_->maps.sluice_l4_flows);
  m.rev = ::bpf_map__fd(skel_->maps.sluice_l4_rev);
  m.snat = ::bpf_map__fd(skel_->maps.sluice_l4_snat);
  m.stats = ::bpf_map__fd(skel_->maps.sluice_l4_stats);
  return m;
}

}  // namespace sluice::bpf
