// A problem with the input: an object or file that was skipped or partly ignored, a list or watch
// that fails. Problems are current state, not events: a source reports the ones that hold now,
// and they are shown in /debug/state and counted in sluice_rejected_objects.
#pragma once

#include <string>

namespace sluice::k8s {

struct Problem {
  std::string object;  // "Kind namespace/name" or a file name
  std::string message;
  bool operator==(const Problem&) const = default;
};

}  // namespace sluice::k8s
