// A minimal HTTP/1.1 GET against the agent's admin listener. ingressctl only uses the admin port
// to enrich its output (the splice strategy lives in the agent, not in any map), so this fails
// fast and quietly: callers turn any error into "unknown".
#pragma once

#include <sys/socket.h>

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include "common/result.hpp"

namespace sluice::cli {

struct AdminEndpoint {
  sockaddr_storage address{};
  socklen_t length = 0;
  std::string text;  // as given: "127.0.0.1:10254"
};

// "ADDR:PORT" with a numeric IPv4 address or a bracketed IPv6 one ("[::1]:10254"), the form the
// agent's --admin takes.
Result<AdminEndpoint> parseAdminEndpoint(const std::string& text);

struct HttpReply {
  int status = 0;
  std::string body;
};

// GET `path` with Connection: close; the whole exchange is bounded by `timeout`. Errors:
// ECONNREFUSED/ETIMEDOUT when nothing answers, EPROTO for a reply that is not HTTP/1.x.
Result<HttpReply> adminGet(const AdminEndpoint& endpoint, std::string_view path,
                           std::chrono::milliseconds timeout);

}  // namespace sluice::cli
