#include "router/route_table.hpp"

#include <algorithm>
#include <set>

namespace sluice::router {
namespace {

// Prefix matching is element-wise, so a rule's trailing slash carries no meaning: "/foo/" is
// stored as "/foo", which also makes it tie with an Exact "/foo" when ordering.
std::string normalizedPath(const std::string& path, bool exact) {
  if (path.empty()) {
    return "/";
  }
  if (!exact && path.size() > 1 && path.back() == '/') {
    return path.substr(0, path.size() - 1);
  }
  return path;
}

}  // namespace

std::shared_ptr<const RouteTable> RouteTable::compile(const model::DesiredState& desired) {
  auto table = std::make_shared<RouteTable>();
  table->generation_ = desired.generation;

  std::unordered_map<std::string, std::uint32_t> cluster_index;
  table->cluster_names_.reserve(desired.clusters.size());
  for (const model::Cluster& c : desired.clusters) {
    cluster_index.try_emplace(c.name, static_cast<std::uint32_t>(table->cluster_names_.size()));
    table->cluster_names_.push_back(c.name);
  }
  // translate() never references an unknown cluster; if another producer does, the route exists
  // (and is counted) but answers 404 rather than guessing.
  auto indexOf = [&](const std::string& name) {
    auto it = cluster_index.find(name);
    return it == cluster_index.end() ? kNoCluster : it->second;
  };
  auto addLabel = [&](std::string label) {
    table->route_labels_.push_back(std::move(label));
    return static_cast<std::uint32_t>(table->route_labels_.size() - 1);
  };
  table->route_labels_.push_back("none");

  std::unordered_map<std::string, std::uint32_t> default_routes;  // one label per cluster
  auto defaultMatch = [&](const std::string& cluster) {
    auto [it, inserted] = default_routes.try_emplace(cluster, 0);
    if (inserted) {
      it->second = addLabel("default:" + cluster);
    }
    return Match{indexOf(cluster), it->second, true};
  };
  if (desired.default_cluster) {
    table->global_default_ = defaultMatch(*desired.default_cluster);
  }

  std::set<const Host*> has_own_default;
  for (const model::VirtualHost& vh : desired.hosts) {
    const std::string host = model::lowerAscii(vh.host);
    Host* target = nullptr;
    if (host.empty()) {
      target = &table->any_host_;
      table->has_any_host_ = true;
    } else if (host.starts_with("*.")) {
      target = &table->wildcard_hosts_[host.substr(2)];
    } else {
      target = &table->exact_hosts_[host];
    }
    const std::string host_label = host.empty() ? std::string("*") : host;
    for (const model::PathRule& rule : vh.paths) {
      PathEntry entry;
      entry.exact = rule.type == model::PathType::kExact;
      entry.path = normalizedPath(rule.path, entry.exact);
      entry.cluster = indexOf(rule.cluster);
      entry.route = addLabel(host_label + "|" + rule.path + "|" +
                             std::string(model::pathTypeName(rule.type)));
      target->paths.push_back(std::move(entry));
    }
    if (!vh.sources.empty()) {
      target->sources = vh.sources;
    }
    if (vh.default_cluster && has_own_default.insert(target).second) {
      target->fallback = defaultMatch(*vh.default_cluster);
    }
  }

  auto finish = [&](Host& host) {
    // Longest path first, Exact before Prefix on equal length; stable, so for duplicate rules
    // the first one listed (translate lists the oldest Ingress first) wins.
    std::stable_sort(host.paths.begin(), host.paths.end(),
                     [](const PathEntry& a, const PathEntry& b) {
                       if (a.path.size() != b.path.size()) {
                         return a.path.size() > b.path.size();
                       }
                       return a.exact && !b.exact;
                     });
    if (!has_own_default.contains(&host)) {
      host.fallback = table->global_default_;
    }
  };
  for (auto& [name, host] : table->exact_hosts_) {
    finish(host);
  }
  for (auto& [name, host] : table->wildcard_hosts_) {
    finish(host);
  }
  finish(table->any_host_);
  return table;
}

const RouteTable::Host* RouteTable::findHost(std::string_view host) const {
  if (auto it = exact_hosts_.find(host); it != exact_hosts_.end()) {
    return &it->second;
  }
  // "*.foo.com" covers exactly one extra, non-empty label: "bar.foo.com", not "a.bar.foo.com"
  // (whose suffix "bar.foo.com" is looked up instead) and not "foo.com".
  if (!wildcard_hosts_.empty()) {
    const std::size_t dot = host.find('.');
    if (dot != std::string_view::npos && dot > 0 && dot + 1 < host.size()) {
      if (auto it = wildcard_hosts_.find(host.substr(dot + 1)); it != wildcard_hosts_.end()) {
        return &it->second;
      }
    }
  }
  return has_any_host_ ? &any_host_ : nullptr;
}

Match RouteTable::matchPaths(const Host& host, std::string_view path) {
  // Skip rules longer than the request: neither Exact nor Prefix can match them.
  auto it = std::partition_point(host.paths.begin(), host.paths.end(),
                                 [&](const PathEntry& e) { return e.path.size() > path.size(); });
  for (; it != host.paths.end(); ++it) {
    const std::string_view rule = it->path;
    bool hit = false;
    if (it->exact) {
      hit = rule == path;
    } else {
      // Element-wise prefix: "/foo" matches "/foo", "/foo/" and "/foo/bar", never "/foobar".
      hit = rule == "/" ||
            (path.starts_with(rule) && (path.size() == rule.size() || path[rule.size()] == '/'));
    }
    if (hit) {
      return Match{it->cluster, it->route, false};
    }
  }
  return host.fallback;
}

Match RouteTable::match(std::string_view host, std::string_view path) const {
  if (path.empty()) {
    path = "/";  // a normalized path is never empty; be safe for callers that skip normalizing
  }
  const Host* h = findHost(host);
  if (h == nullptr) {
    return global_default_;
  }
  Match m = matchPaths(*h, path);
  m.sources = h->sources.empty() ? nullptr : &h->sources;
  return m;
}

}  // namespace sluice::router
