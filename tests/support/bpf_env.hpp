// Whether BPF tests can run here, and private pin directories so tests never touch a running
// agent's maps.
#pragma once

#include <string>

namespace sluice::test {

// Root (CAP_BPF, CAP_NET_ADMIN) and a bpffs at /sys/fs/bpf; `why` says what is missing.
bool bpffsUsable(std::string* why);
// A pin directory under /sys/fs/bpf unique to this process and call.
std::string uniquePinDir();
// Unpins everything under `dir` (the maps go once no fd holds them) and removes it.
void removePinDir(const std::string& dir);

}  // namespace sluice::test
