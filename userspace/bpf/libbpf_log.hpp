// Routing of libbpf's own messages (map reuse mismatches, verifier logs) into the agent's logs.
// libbpf has one process-wide print hook; this owns it.
#pragma once

#include <string_view>

namespace sluice::bpf {

enum class LogLevel { kWarn, kInfo, kDebug };

// Receives one libbpf message without its "libbpf: " prefix and trailing newline. May be called
// from any thread that calls into libbpf; must not call back into libbpf.
using LogFn = void (*)(LogLevel level, std::string_view message);

// Routes libbpf's messages to `fn`; nullptr restores the default (warnings to stderr, the rest
// dropped). Installs the hook if it is not installed yet.
void setLibbpfLog(LogFn fn) noexcept;

// Installs the hook with the current sink (the default unless setLibbpfLog was called).
// Idempotent; SpliceDatapath::open and probe call it.
void installLibbpfLog() noexcept;

} // namespace sluice::bpf
