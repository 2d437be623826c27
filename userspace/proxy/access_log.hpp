// The access log: one JSON line per request, written by the sessions when it is on.
#pragma once

#include <string>
#include <string_view>

#include "common/result.hpp"

namespace sluice::proxy {

// Sink for access-log lines (JSON), or null when access logging is off.
using AccessLogFn = void (*)(std::string_view line);

// Opens the access log: "stdout" or a file path (appended to).
Result<void> openAccessLog(const std::string& where);
AccessLogFn accessLog();

}  // namespace sluice::proxy
