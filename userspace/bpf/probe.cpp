// SpliceDatapath::probe(): what this kernel offers the splice datapath, in one log line. Each
// feature is tried for real (create the map, load and attach a two-instruction verdict), because
// version numbers lie on distribution kernels.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>
#include <linux/magic.h>
#include <sys/statfs.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "bpf/libbpf_log.hpp"
#include "bpf/splice_datapath.hpp"

namespace sluice::bpf {
namespace {

class Fd {
public:
  explicit Fd(int fd) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd_ >= 0) {
      ::close(fd_);
    }
  }
  int get() const { return fd_; }

private:
  int fd_;
};

std::string no(int err) { return std::string("no (") + std::strerror(err < 0 ? -err : err) + ")"; }

std::string probeVerdictAttach(int* sockhash_ok) {
  Fd map(::bpf_map_create(BPF_MAP_TYPE_SOCKHASH, "sluice_probe", sizeof(__u64), sizeof(__u64), 1,
                          nullptr));
  if (map.get() < 0) {
    *sockhash_ok = map.get();
    return "not tried";
  }
  *sockhash_ok = 0;

  // r0 = SK_PASS; exit
  const bpf_insn insns[] = {
      {BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, SK_PASS},
      {BPF_JMP | BPF_EXIT, 0, 0, 0, 0},
  };
  bpf_prog_load_opts opts{};
  opts.sz = sizeof(opts);
  opts.expected_attach_type = BPF_SK_SKB_STREAM_VERDICT;
  Fd prog(::bpf_prog_load(BPF_PROG_TYPE_SK_SKB, "sluice_probe", "GPL", insns,
                          sizeof(insns) / sizeof(insns[0]), &opts));
  if (prog.get() < 0) {
    return no(prog.get());
  }
  if (int err = ::bpf_prog_attach(prog.get(), map.get(), BPF_SK_SKB_STREAM_VERDICT, 0); err != 0) {
    return no(err);
  }
  ::bpf_prog_detach2(prog.get(), map.get(), BPF_SK_SKB_STREAM_VERDICT);
  return "yes";
}

} // namespace

std::string SpliceDatapath::probe() {
  installLibbpfLog();
  std::string line = "kernel ";
  utsname uts{};
  line += ::uname(&uts) == 0 ? uts.release : "unknown";

  line += ", btf ";
  line += ::access("/sys/kernel/btf/vmlinux", R_OK) == 0 ? "yes" : no(errno);

  line += ", bpffs ";
  struct statfs fs {};
  if (::statfs("/sys/fs/bpf", &fs) != 0) {
    line += no(errno);
  } else {
    line += fs.f_type == BPF_FS_MAGIC ? "yes" : "no (/sys/fs/bpf is not bpffs)";
  }

  int sockhash = 0;
  const std::string verdict = probeVerdictAttach(&sockhash);
  line += ", sockhash ";
  line += sockhash == 0 ? "yes" : no(sockhash);
  line += ", sk_skb stream_verdict attach ";
  line += verdict;
  return line;
}

} // namespace sluice::bpf
