// Loading splice.bpf.o, shared by SpliceDatapath::open() (maps pinned under the pin root) and
// SpliceDatapath::probe() (nothing pinned, nothing kept), and the error an operator can act on
// when the kernel refuses it. Internal to userspace/bpf.
//
// A failed load is EINVAL for two unrelated reasons, and both used to be reported as "maps
// pinned ... may have another layout" (tests/kernels/FINDINGS.md, finding 3):
//  - the verifier refused the program: the verdict's log (requested only after a failure, into
//    a buffer of ours) names the reason, e.g. "unknown func bpf_skc_to_tcp_sock#137" on 5.10
//    and 6.1 or "program of this type cannot use helper bpf_skc_to_tcp_sock#137" on 6.12+ when
//    the loader lacks CAP_PERFMON;
//  - libbpf refused to reuse a pinned map whose type or sizes differ from the object's: that is
//    checked directly, map by map, against what is pinned.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "bpf/skeleton.hpp"
#include "bpf/splice_datapath.hpp"
#include "common/result.hpp"

namespace sluice::bpf {

// Opens and loads splice.bpf.o. With a pin root, maps are pinned there (reusing what is pinned)
// and libbpf's warnings also reach the log sink; with an empty one, no map is pinned or reused
// and libbpf stays quiet (the error carries the reason).
Result<Skeleton<SpliceSkel>> loadSpliceObject(const std::string& pin_root);

// Why the verifier refused a program, from its level-1 log: the last line before the
// "processed N insns" summary that is neither an instruction, a register state nor a source
// comment. Empty if the log has none.
std::string verifierReason(std::string_view log);

// Effective capabilities the splice datapath needs that the calling thread lacks, by name
// ("CAP_BPF", "CAP_PERFMON", "CAP_NET_ADMIN"); CAP_SYS_ADMIN stands in for each.
std::vector<std::string> missingCapabilities();

}  // namespace sluice::bpf
