// ingressctl, the binary, as a child process (INGRESSCTL_PATH), and helpers to read its tables
// and JSON. Shared by the ingressctl test files.
#pragma once

#include <boost/json.hpp>

#include <ostream>
#include <string>
#include <vector>

namespace sluice::cli {

struct CtlRun {
  int exit_code = -1;  // -1: killed or did not exit
  std::string out;
  std::string err;
};

std::ostream& operator<<(std::ostream& os, const CtlRun& run);

enum class As {
  kSelf,
  kNobody,         // uid/gid 65534
  kNoCapSysAdmin,  // this uid, CAP_SYS_ADMIN dropped from the bounding set (as in the DaemonSet)
};

// Runs ingressctl with `args` as `as`; exit 126 when the child could not become that. Kills it
// after 30 s.
CtlRun runCtl(const std::vector<std::string>& args, As as = As::kSelf);

// The JSON text parsed; null when it is not JSON.
boost::json::value parseJson(const std::string& text);
std::vector<std::string> lines(const std::string& text);
std::vector<std::string> words(const std::string& line);
// The table line whose first word is `first`, split into words; empty if none.
std::vector<std::string> rowStartingWith(const std::string& text, const std::string& first);

}  // namespace sluice::cli
