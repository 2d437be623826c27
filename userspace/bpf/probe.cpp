// SpliceDatapath::verify() and probe(): what this kernel offers the splice datapath. The probe
// loads the agent's own splice.bpf.o (not a stand-in program), because what decides whether the
// datapath works is whether the verifier accepts exactly that program with this process's
// capabilities: the helpers it calls differ by kernel and by capability (docs/kernels.md), and
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
#include "bpf/splice_object.hpp"
#include "splice.skel.h"

namespace sluice::bpf {
namespace {

std::string no(int err) {
  return std::string("no (") + std::strerror(err < 0 ? -err : err) + ")";
}

// The probe line is "feature value, feature value, ...", so a reason must not contain ", ".
std::string lineSafe(std::string text) {
  for (std::size_t at = text.find(", "); at != std::string::npos; at = text.find(", ", at)) {
    text[at] = ';';
  }
  return text;
}

}  // namespace

Result<void> SpliceDatapath::verify() {
  installLibbpfLog();
  SLUICE_TRY(auto skel, loadSpliceObject(""));
  const int prog = ::bpf_program__fd(skel->progs.sluice_splice_verdict);
  const int map = ::bpf_map__fd(skel->maps.sluice_socks_v3);
  if (int err = ::bpf_prog_attach(prog, map, BPF_SK_SKB_STREAM_VERDICT, 0); err != 0) {
    return Error(err, "attach sk_skb/stream_verdict to an unpinned " SLUICE_MAP_SOCKS);
  }
  ::bpf_prog_detach2(prog, map, BPF_SK_SKB_STREAM_VERDICT);
  return success();  // the skeleton's maps and program go with it
}

std::string SpliceDatapath::probe(Verifier verify) {
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

  // The attach is verify()'s last step, so a failure before it means it was not tried.
  const Result<void> verified = verify();  // (the parameter)
  const bool attach_failed =
      !verified && verified.error().context().find("attach sk_skb") != std::string::npos;
  line += ", splice program ";
  line += verified || attach_failed ? "yes" : "no (" + lineSafe(verified.error().message()) + ")";
  line += ", sk_skb stream_verdict attach ";
  if (verified) {
    line += "yes";
  } else if (attach_failed) {
    line += "no (" + lineSafe(verified.error().message()) + ")";
  } else {
    line += "not tried";
  }
  return line;
}

}  // namespace sluice::bpf
