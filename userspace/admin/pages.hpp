// What the admin port serves: /healthz, /readyz, /metrics, /debug/state and /debug/flows. The
// pages own no data: components register how they render themselves (Envoy's one handler per
// endpoint), so a new component adds its counters and state without touching the agent.
//
// Everything runs on the control thread (the admin server calls handle() there).
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>

#include "admin/metrics.hpp"
#include "admin/server.hpp"

namespace sluice::admin {

class Pages {
public:
  using MetricsFn = std::function<void(MetricsWriter&)>;
  using StateFn = std::function<void(boost::json::object&)>;
  using FlowsFn = std::function<boost::json::array()>;
  // Ready: nullopt. Not ready: why ("draining", "syncing with the API server").
  using ReadinessFn = std::function<std::optional<std::string>()>;

  void addMetrics(MetricsFn render) { metrics_.push_back(std::move(render)); }
  // Each adds its own keys to the /debug/state object.
  void addState(StateFn render) { state_.push_back(std::move(render)); }
  void setFlows(FlowsFn render) { flows_ = std::move(render); }
  void setReadiness(ReadinessFn ready) { ready_ = std::move(ready); }

  Response handle(std::string_view method, std::string_view path) const;

  std::string metrics() const;
  std::string state() const;

private:
  std::vector<MetricsFn> metrics_;
  std::vector<StateFn> state_;
  FlowsFn flows_;
  ReadinessFn ready_;
};

}  // namespace sluice::admin
