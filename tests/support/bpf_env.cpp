#include "support/bpf_env.hpp"

#include <linux/magic.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>

namespace sluice::test {

namespace fs = std::filesystem;

bool bpffsUsable(std::string* why) {
  if (::geteuid() != 0) {
    *why = "needs root (CAP_BPF, CAP_NET_ADMIN)";
    return false;
  }
  struct statfs st {};
  if (::statfs("/sys/fs/bpf", &st) != 0 || st.f_type != BPF_FS_MAGIC) {
    *why = "/sys/fs/bpf is not a bpffs mount";
    return false;
  }
  return true;
}

std::string uniquePinDir() {
  static std::atomic<int> n{0};
  return "/sys/fs/bpf/sluice-test-" + std::to_string(::getpid()) + "-" + std::to_string(n++);
}

void removePinDir(const std::string& dir) {
  std::error_code ec;
  fs::remove_all(dir, ec);  // unlink on bpffs unpins; the maps go once no fd holds them
}

}  // namespace sluice::test
