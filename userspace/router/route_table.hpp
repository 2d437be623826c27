// Compiled, immutable routing table: Host + path → cluster index, exactly by Ingress v1 rules.
// Built once per DesiredState on the control thread; read concurrently by every worker without
// locks. match() allocates nothing.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "model/desired_state.hpp"

namespace sluice::router {

inline constexpr std::uint32_t kNoCluster = UINT32_MAX;

struct Match {
  std::uint32_t cluster = kNoCluster;  // index into RouteTable::clusters(); kNoCluster → 404
  std::uint32_t route = 0;             // index into RouteTable::routeLabels(), for metrics
  bool via_default = false;            // matched through a defaultBackend
  // Who may use the matched host (its Ingress's source-range annotations); null = everyone.
  // Points into the RouteTable: valid while the caller holds it.
  const model::SourceRanges* sources = nullptr;
};

class RouteTable {
public:
  // `desired.clusters` order defines cluster indexes.
  static std::shared_ptr<const RouteTable> compile(const model::DesiredState& desired);

  // `host` must already be normalized (lower-case, no port; see http::normalizeHost), `path`
  // normalized and without query (http::normalizePath).
  Match match(std::string_view host, std::string_view path) const;

  const std::vector<std::string>& clusterNames() const { return cluster_names_; }
  // Label per route for metrics: "host|path|Type" ("*" as host for host-less rules) or
  // "default:<cluster>"; index 0 is "none" (404).
  const std::vector<std::string>& routeLabels() const { return route_labels_; }
  std::uint64_t generation() const { return generation_; }

private:
  struct PathEntry {
    std::string path;  // normalized: Prefix rules lose their trailing slash ("/" stays "/")
    bool exact = false;
    std::uint32_t cluster = kNoCluster;
    std::uint32_t route = 0;
  };
  struct Host {
    std::vector<PathEntry> paths;  // longest first; on equal length Exact before Prefix
    Match fallback;                // default backend for this host, or the global one
    model::SourceRanges sources;   // empty: everyone
  };
  // Transparent hashing so match() can look up a string_view without building a std::string.
  struct StringHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept {
      return std::hash<std::string_view>{}(s);
    }
  };
  using HostMap = std::unordered_map<std::string, Host, StringHash, std::equal_to<>>;

  const Host* findHost(std::string_view host) const;
  static Match matchPaths(const Host& host, std::string_view path);

  std::uint64_t generation_ = 0;
  HostMap exact_hosts_;
  HostMap wildcard_hosts_;  // key: suffix after "*." e.g. "foo.com"
  Host any_host_;           // rules without host
  bool has_any_host_ = false;
  Match global_default_;
  std::vector<std::string> cluster_names_;
  std::vector<std::string> route_labels_;
};

}  // namespace sluice::router
