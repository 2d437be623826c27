#include "admin/pages.hpp"

#include <boost/json/serialize.hpp>

namespace sluice::admin {

namespace {
constexpr const char* kText = "text/plain; charset=utf-8";
}  // namespace

std::string Pages::metrics() const {
  MetricsWriter writer;
  for (const auto& render : metrics_) {
    render(writer);
  }
  return writer.text();
}

std::string Pages::state() const {
  boost::json::object root;
  for (const auto& render : state_) {
    render(root);
  }
  return boost::json::serialize(root);
}

Response Pages::handle(std::string_view method, std::string_view path) const {
  if (method != "GET" && method != "HEAD") {
    return {405, kText, "method not allowed\n"};
  }
  if (path == "/healthz") {
    return {200, kText, "ok\n"};
  }
  if (path == "/readyz") {
    const std::optional<std::string> why = ready_ ? ready_() : std::optional<std::string>();
    return why ? Response{503, kText, *why + "\n"} : Response{200, kText, "ready\n"};
  }
  if (path == "/metrics") {
    return {200, "text/plain; version=0.0.4; charset=utf-8", metrics()};
  }
  if (path == "/debug/state") {
    return {200, "application/json", state()};
  }
  if (path == "/debug/flows") {
    return {200, "application/json",
            boost::json::serialize(flows_ ? flows_() : boost::json::array())};
  }
  return {404, kText, "not found\n"};
}

}  // namespace sluice::admin
