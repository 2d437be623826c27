// The startup probe's verify step in a child process: the agent's own binary, run as
// `ingress-agent --verify-datapath`. Loading the splice object parses the kernel's BTF (about
// 10 MiB, then freed); in the agent that became its peak RSS for life (VmHWM 24 MiB against a
// 10 MiB steady state). The child carries that peak and exits; the answer is the same Result,
// text included, that SpliceDatapath::verify() gives in-process.
#pragma once

#include "common/result.hpp"

namespace sluice::app {

inline constexpr const char* kVerifyDatapathFlag = "--verify-datapath";

// The child's side: runs SpliceDatapath::verify() and writes its answer to stdout. Exit status 0
// when the answer was written (whatever it says).
int runVerifyDatapath();

// The parent's side: runs /proc/self/exe --verify-datapath and reads the answer; if the child
// cannot be run or says nothing readable, verifies in-process instead.
Result<void> verifyDatapathInChild();

}  // namespace sluice::app
