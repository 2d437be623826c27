// The five maps splice.bpf.c pins, opened read-only from a pin directory, with the message an
// operator needs when that is not possible. Errors from here (and from every ingressctl command)
// carry the complete user-facing text in Error::context(); main prints it as is.
#pragma once

#include <string>

#include "bpf/pinned_maps.hpp"
#include "common/result.hpp"

namespace sluice::cli {

struct SpliceMaps {
  std::string pin_dir;     // normalized: no trailing slash
  bpf::PinnedMap socks;    // sluice_socks_v3: the verdict's sockhash
  bpf::PinnedMap targets;  // sluice_targets: what the verdict redirects into
  bpf::PinnedMap peers;
  bpf::PinnedMap flow_stats;
  bpf::PinnedMap verdicts;
};

// Checks the pin dir is on bpffs, opens each map read-only and checks its layout against
// sluice_abi.h.
Result<SpliceMaps> openSpliceMaps(const std::string& pin_dir);

// An error whose context is the whole message: "context: strerror" of `error`.
inline Error userError(const Error& error) {
  return Error(error.code(), error.message());
}

}  // namespace sluice::cli
