// Named spdlog loggers, one per component ("agent", "proxy", "control", "admin", "bpf").
// Data-plane lines are tagged "[C<id>]" by the caller; nothing logs per request at info.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include <spdlog/spdlog.h>

namespace sluice::log {

// Creates (once) or returns the logger for `component`. Thread-safe.
std::shared_ptr<spdlog::logger> get(const std::string& component);

// Sets the level of every component logger, present and future. Returns false for an unknown
// level name (valid: trace, debug, info, warn, error, critical, off).
bool setLevel(std::string_view level);

}  // namespace sluice::log
