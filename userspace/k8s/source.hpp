// Where Kubernetes objects come from: a manifests directory or the API server. Both fill a Store
// with the same decoder, and the agent reconciles from either without knowing which it has.
//
// Threading: start(), stop() and every accessor run on the control thread (the executor the
// source was given); `on_change` is called there too.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include <boost/json/object.hpp>

#include "admin/metrics.hpp"
#include "k8s/problem.hpp"
#include "k8s/store.hpp"

namespace sluice::k8s {

class Source {
public:
  virtual ~Source() = default;

  // Starts reading. `on_change` is called whenever store(), problems() or ready() may have
  // changed (bursts coalesced), and once the first read is complete.
  virtual void start(std::function<void()> on_change) = 0;
  // No further changes or calls; the store keeps what it holds (the agent drains on it).
  virtual void stop() = 0;

  virtual const Store& store() const = 0;
  // Current problems (not events): objects or files that did not decode, reads that fail.
  virtual std::vector<Problem> problems() const = 0;
  // True once the store reflects the whole source (the API source: every kind listed).
  virtual bool ready() const = 0;
  // For logs and /debug/state: "manifests", "kubernetes-api".
  virtual std::string kind() const = 0;

  // What the source adds to /metrics and /debug/state ("source" and its own keys).
  virtual void renderMetrics(admin::MetricsWriter& out) const = 0;
  virtual void renderState(boost::json::object& out) const = 0;
};

}  // namespace sluice::k8s
