#include "proxy/access_log.hpp"

#include <atomic>
#include <chrono>
#include <memory>

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

namespace sluice::proxy {

namespace {

std::shared_ptr<spdlog::logger> g_logger;
std::atomic<AccessLogFn> g_sink{nullptr};

void write(std::string_view line) {
  g_logger->info(line);
}

}  // namespace

Result<void> openAccessLog(const std::string& where) {
  try {
    g_logger = where == "stdout" ? spdlog::stdout_logger_mt("access")
                                 : spdlog::basic_logger_mt("access", where, false);
  } catch (const spdlog::spdlog_ex& e) {
    return Error("--access-log " + where + ": " + e.what());
  }
  g_logger->set_pattern("%v");
  g_logger->set_level(spdlog::level::info);
  // Buffered writes, flushed by a background thread: no flush syscall per request.
  spdlog::flush_every(std::chrono::seconds(1));
  g_sink.store(&write);
  return success();
}

AccessLogFn accessLog() {
  return g_sink.load(std::memory_order_relaxed);
}

}  // namespace sluice::proxy
