// Loading the splice object in a child process: the agent's own binary, run as
// `ingress-agent --verify-datapath` (the startup probe) and `ingress-agent --load-datapath
// PIN_ROOT` (the datapath itself). Loading parses the kernel's BTF (about 14 MiB, then freed); in
// the agent that became its peak RSS for life (VmHWM 24 MiB against a 10 MiB steady state). The
// child carries that peak and exits; its answer is the same Result, text included, that the
// in-process call gives, and a loaded datapath stays pinned for the agent to adopt.
#pragma once

#include <memory>

#include "bpf/splice_datapath.hpp"
#include "common/result.hpp"

namespace sluice::app {

inline constexpr const char* kVerifyDatapathFlag = "--verify-datapath";
inline constexpr const char* kLoadDatapathFlag = "--load-datapath";

// The child's side: runs SpliceDatapath::verify() and writes its answer to stdout. Exit status 0
// when the answer was written (whatever it says).
int runVerifyDatapath();

// The parent's side: runs /proc/self/exe --verify-datapath and reads the answer; if the child
// cannot be run or says nothing readable, verifies in-process instead.
Result<void> verifyDatapathInChild();

// The child's side of the load: SpliceDatapath::open() under `pin_root`, handed over (left
// attached and pinned), and its answer on stdout.
int runLoadDatapath(const char* pin_root);

// The parent's side: runs /proc/self/exe --load-datapath and adopts what it pinned. The child's
// refusal is returned as is (the verifier's reason); if the child cannot be run, says nothing
// readable, or its pins cannot be adopted, opens in-process instead.
Result<std::unique_ptr<bpf::SpliceDatapath>> openDatapathInChild(const bpf::Options& options);

}  // namespace sluice::app
