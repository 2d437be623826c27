// Routing of libbpf's own messages (map reuse mismatches, verifier logs) into the agent's logs.
// libbpf has one process-wide print hook; this owns it.
#pragma once

#include <string>
#include <string_view>
#include <vector>

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

// While it lives, keeps the warnings libbpf prints on the constructing thread (libbpf prints
// synchronously on the thread that called it). With `forward` they also go to the sink as usual;
// without, they go nowhere else (SpliceDatapath::probe() expects failures and puts the reason in
// its line). Scopes nest; the innermost one collects.
class LibbpfCapture {
public:
  explicit LibbpfCapture(bool forward);
  LibbpfCapture(const LibbpfCapture&) = delete;
  LibbpfCapture& operator=(const LibbpfCapture&) = delete;
  ~LibbpfCapture();

  const std::vector<std::string>& warnings() const noexcept { return warnings_; }

private:
  friend struct LibbpfCaptureAccess;
  bool forward_;
  LibbpfCapture* outer_;
  std::vector<std::string> warnings_;
};

}  // namespace sluice::bpf
