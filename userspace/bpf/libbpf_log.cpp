#include "bpf/libbpf_log.hpp"

#include <bpf/libbpf.h>

#include <atomic>
#include <cstdarg>
#include <cstdio>
#include <mutex>
#include <string>
#include <string_view>

namespace sluice::bpf {

// The print hook's way into a capture: keeps a warning, says whether to forward the message.
struct LibbpfCaptureAccess {
  static bool take(LibbpfCapture& capture, LogLevel level, std::string_view message) {
    if (level == LogLevel::kWarn) {
      capture.warnings_.emplace_back(message);
    }
    return capture.forward_;
  }
};

namespace {

std::atomic<LogFn> g_sink{nullptr};
std::once_flag g_installed;
thread_local LibbpfCapture* t_capture = nullptr;

void defaultSink(LogLevel level, std::string_view message) {
  if (level == LogLevel::kWarn) {
    std::fprintf(stderr, "libbpf: %.*s\n", static_cast<int>(message.size()), message.data());
  }
}

LogLevel toLevel(libbpf_print_level level) {
  switch (level) {
    case LIBBPF_WARN:
      return LogLevel::kWarn;
    case LIBBPF_INFO:
      return LogLevel::kInfo;
    case LIBBPF_DEBUG:
      break;
  }
  return LogLevel::kDebug;
}

int printHook(libbpf_print_level level, const char* format, va_list args) {
  // Verifier logs arrive as one message of many KiB, so size the buffer from the message.
  va_list measure;
  va_copy(measure, args);
  int len = std::vsnprintf(nullptr, 0, format, measure);
  va_end(measure);
  if (len <= 0) {
    return 0;
  }
  std::string text(static_cast<std::size_t>(len) + 1, '\0');
  std::vsnprintf(text.data(), text.size(), format, args);
  text.resize(static_cast<std::size_t>(len));
  while (!text.empty() && text.back() == '\n') {
    text.pop_back();
  }
  // libbpf prefixes most messages itself; sinks name their source.
  constexpr std::string_view kPrefix = "libbpf: ";
  std::string_view message = text;
  if (message.substr(0, kPrefix.size()) == kPrefix) {
    message.remove_prefix(kPrefix.size());
  }
  if (t_capture != nullptr && !LibbpfCaptureAccess::take(*t_capture, toLevel(level), message)) {
    return len;
  }
  LogFn sink = g_sink.load(std::memory_order_acquire);
  (sink != nullptr ? sink : defaultSink)(toLevel(level), message);
  return len;
}

}  // namespace

LibbpfCapture::LibbpfCapture(bool forward) : forward_(forward), outer_(t_capture) {
  installLibbpfLog();
  t_capture = this;
}

LibbpfCapture::~LibbpfCapture() {
  t_capture = outer_;
}

void setLibbpfLog(LogFn fn) noexcept {
  g_sink.store(fn, std::memory_order_release);
  installLibbpfLog();
}

void installLibbpfLog() noexcept {
  std::call_once(g_installed, [] { libbpf_set_print(printHook); });
}

}  // namespace sluice::bpf
