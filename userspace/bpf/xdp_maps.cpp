#include "bpf/xdp_maps.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <arpa/inet.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>

namespace sluice::bpf {
namespace {

// Every key of a map (hash or LPM), walked with get_next_key. A key deleted under the walk
// restarts it from the beginning on older kernels; the walk is bounded by max_entries.
template <typename K>
Result<std::vector<K>> allKeys(int fd, const char* what) {
  std::vector<K> out;
  K key{};
  K next{};
  const K* prev = nullptr;
  for (std::size_t guard = 0; guard < (1u << 22); ++guard) {
    if (::bpf_map_get_next_key(fd, prev, &next) != 0) {
      if (errno == ENOENT) {
        return out;
      }
      return errnoError(std::string("walk ") + what);
    }
    out.push_back(next);
    key = next;
    prev = &key;
  }
  return out;
}

net::Cidr cidrOf(bool v6, const std::uint8_t* addr, unsigned prefix) {
  net::Cidr c;
  c.v6 = v6;
  std::memcpy(c.bytes.data(), addr, v6 ? 16 : 4);
  c.prefix = prefix;
  return c;
}

sluice_xdp_deny4_key deny4(const net::Cidr& c) {
  sluice_xdp_deny4_key k{};
  k.prefixlen = c.prefix;
  std::memcpy(k.addr, c.bytes.data(), 4);
  return k;
}

sluice_xdp_deny6_key deny6(const net::Cidr& c) {
  sluice_xdp_deny6_key k{};
  k.prefixlen = c.prefix;
  std::memcpy(k.addr, c.bytes.data(), 16);
  return k;
}

sluice_xdp_acl4_key acl4(const AclEntry& e) {
  sluice_xdp_acl4_key k{};
  k.prefixlen = 16 + e.range.prefix;
  k.port = htons(e.port);
  std::memcpy(k.addr, e.range.bytes.data(), 4);
  return k;
}

sluice_xdp_acl6_key acl6(const AclEntry& e) {
  sluice_xdp_acl6_key k{};
  k.prefixlen = 16 + e.range.prefix;
  k.port = htons(e.port);
  std::memcpy(k.addr, e.range.bytes.data(), 16);
  return k;
}

Result<void> update(int fd, const void* key, const void* value, const std::string& what) {
  if (::bpf_map_update_elem(fd, key, value, BPF_ANY) != 0) {
    return errnoError(what);
  }
  return success();
}

Result<void> erase(int fd, const void* key, const std::string& what) {
  if (::bpf_map_delete_elem(fd, key) != 0) {
    return errnoError(what);
  }
  return success();
}

// Reconciles one map given its current keys, the wanted key→value pairs and byte comparison.
template <typename K, typename V>
Result<ReconcileCount> reconcileMap(int fd, const std::vector<std::pair<K, V>>& want,
                                    const char* what) {
  ReconcileCount n;
  SLUICE_TRY(const std::vector<K> have, allKeys<K>(fd, what));
  for (const K& k : have) {
    const bool wanted = std::any_of(want.begin(), want.end(), [&](const auto& w) {
      return std::memcmp(&w.first, &k, sizeof(K)) == 0;
    });
    if (!wanted) {
      SLUICE_CHECK(erase(fd, &k, std::string("remove from ") + what));
      ++n.removed;
    }
  }
  for (const auto& [k, v] : want) {
    V current{};
    if (::bpf_map_lookup_elem(fd, &k, &current) == 0 && std::memcmp(&current, &v, sizeof(V)) == 0) {
      ++n.kept;
      continue;
    }
    SLUICE_CHECK(update(fd, &k, &v, std::string("add to ") + what));
    ++n.added;
  }
  return n;
}

}  // namespace

Result<std::vector<DenyEntry>> listDeny(DenyMaps maps) {
  std::vector<DenyEntry> out;
  SLUICE_TRY(const auto v4, allKeys<sluice_xdp_deny4_key>(maps.v4, SLUICE_MAP_XDP_DENY4));
  for (const auto& k : v4) {
    sluice_xdp_deny value{};
    if (::bpf_map_lookup_elem(maps.v4, &k, &value) == 0) {
      out.push_back({cidrOf(false, k.addr, k.prefixlen), value.origin});
    }
  }
  SLUICE_TRY(const auto v6, allKeys<sluice_xdp_deny6_key>(maps.v6, SLUICE_MAP_XDP_DENY6));
  for (const auto& k : v6) {
    sluice_xdp_deny value{};
    if (::bpf_map_lookup_elem(maps.v6, &k, &value) == 0) {
      out.push_back({cidrOf(true, k.addr, k.prefixlen), value.origin});
    }
  }
  return out;
}

Result<void> addDeny(DenyMaps maps, const net::Cidr& range, std::uint32_t origin) {
  sluice_xdp_deny value{};
  value.origin = origin;
  if (range.v6) {
    const auto k = deny6(range);
    return update(maps.v6, &k, &value, "add " + range.text() + " to " SLUICE_MAP_XDP_DENY6);
  }
  const auto k = deny4(range);
  return update(maps.v4, &k, &value, "add " + range.text() + " to " SLUICE_MAP_XDP_DENY4);
}

Result<void> deleteDeny(DenyMaps maps, const net::Cidr& range) {
  if (range.v6) {
    const auto k = deny6(range);
    return erase(maps.v6, &k, "remove " + range.text() + " from " SLUICE_MAP_XDP_DENY6);
  }
  const auto k = deny4(range);
  return erase(maps.v4, &k, "remove " + range.text() + " from " SLUICE_MAP_XDP_DENY4);
}

Result<ReconcileCount> reconcileDeny(DenyMaps maps, const std::vector<net::Cidr>& want,
                                     std::uint32_t origin) {
  sluice_xdp_deny value{};
  value.origin = origin;
  std::vector<std::pair<sluice_xdp_deny4_key, sluice_xdp_deny>> want4;
  std::vector<std::pair<sluice_xdp_deny6_key, sluice_xdp_deny>> want6;
  for (const auto& c : want) {
    if (c.v6) {
      want6.emplace_back(deny6(c), value);
    } else {
      want4.emplace_back(deny4(c), value);
    }
  }
  SLUICE_TRY(const ReconcileCount a, reconcileMap(maps.v4, want4, SLUICE_MAP_XDP_DENY4));
  SLUICE_TRY(const ReconcileCount b, reconcileMap(maps.v6, want6, SLUICE_MAP_XDP_DENY6));
  return ReconcileCount{a.added + b.added, a.removed + b.removed, a.kept + b.kept};
}

sluice_xdp_scope_key scopeKey(bool v6, const std::array<std::uint8_t, 16>* address,
                              std::uint16_t port) {
  sluice_xdp_scope_key k{};
  if (address != nullptr) {
    std::memcpy(k.addr, address->data(), v6 ? 16 : 4);
  }
  k.port = htons(port);
  k.family = v6 ? SLUICE_XDP_FAMILY_V6 : SLUICE_XDP_FAMILY_V4;
  return k;
}

Result<ReconcileCount> reconcileScope(int fd, const std::vector<ScopeEntry>& want) {
  std::vector<std::pair<sluice_xdp_scope_key, sluice_xdp_scope>> pairs;
  for (const auto& e : want) {
    pairs.emplace_back(e.key, e.value);
  }
  return reconcileMap(fd, pairs, SLUICE_MAP_XDP_SCOPE);
}

Result<std::vector<ScopeEntry>> listScope(int fd) {
  SLUICE_TRY(const auto keys, allKeys<sluice_xdp_scope_key>(fd, SLUICE_MAP_XDP_SCOPE));
  std::vector<ScopeEntry> out;
  for (const auto& k : keys) {
    ScopeEntry e{k, {}};
    if (::bpf_map_lookup_elem(fd, &k, &e.value) == 0) {
      out.push_back(e);
    }
  }
  return out;
}

Result<ReconcileCount> reconcileAcl(DenyMaps maps, const std::vector<AclEntry>& want) {
  std::vector<std::pair<sluice_xdp_acl4_key, sluice_xdp_acl>> want4;
  std::vector<std::pair<sluice_xdp_acl6_key, sluice_xdp_acl>> want6;
  for (const auto& e : want) {
    sluice_xdp_acl value{};
    value.action = e.action;
    if (e.range.v6) {
      want6.emplace_back(acl6(e), value);
    } else {
      want4.emplace_back(acl4(e), value);
    }
  }
  SLUICE_TRY(const ReconcileCount a, reconcileMap(maps.v4, want4, SLUICE_MAP_XDP_ACL4));
  SLUICE_TRY(const ReconcileCount b, reconcileMap(maps.v6, want6, SLUICE_MAP_XDP_ACL6));
  return ReconcileCount{a.added + b.added, a.removed + b.removed, a.kept + b.kept};
}

Result<XdpCounters> readXdpCounters(int stats_fd) {
  const int cpus = ::libbpf_num_possible_cpus();
  if (cpus <= 0) {
    return Error(cpus, "count possible CPUs");
  }
  XdpCounters out{};
  std::vector<std::uint64_t> per_cpu(static_cast<std::size_t>(cpus));
  for (std::uint32_t reason = 0; reason < out.size(); ++reason) {
    if (::bpf_map_lookup_elem(stats_fd, &reason, per_cpu.data()) != 0) {
      return errnoError("read " SLUICE_MAP_XDP_STATS);
    }
    for (std::uint64_t n : per_cpu) {
      out[reason] += n;
    }
  }
  return out;
}

Result<std::vector<SourceStats>> topSources(int rate_fd, std::size_t limit) {
  SLUICE_TRY(const auto keys, allKeys<sluice_xdp_src>(rate_fd, SLUICE_MAP_XDP_RATE));
  std::vector<SourceStats> out;
  for (const auto& k : keys) {
    SourceStats s;
    if (::bpf_map_lookup_elem(rate_fd, &k, &s.bucket) != 0) {
      continue;  // evicted under the walk
    }
    const bool v6 = k.family == SLUICE_XDP_FAMILY_V6;
    s.source = cidrOf(v6, k.addr, v6 ? 64 : 32);
    out.push_back(s);
  }
  auto score = [](const SourceStats& s) {
    return std::pair(s.bucket.syn_drops + s.bucket.pkt_drops, s.bucket.syns);
  };
  std::sort(out.begin(), out.end(),
            [&](const SourceStats& a, const SourceStats& b) { return score(a) > score(b); });
  if (out.size() > limit) {
    out.resize(limit);
  }
  return out;
}

Result<void> writeXdpConfig(int cfg_fd, const sluice_xdp_config& config) {
  const std::uint32_t zero = 0;
  return update(cfg_fd, &zero, &config, "write " SLUICE_MAP_XDP_CONFIG);
}

Result<sluice_xdp_config> readXdpConfig(int cfg_fd) {
  const std::uint32_t zero = 0;
  sluice_xdp_config config{};
  if (::bpf_map_lookup_elem(cfg_fd, &zero, &config) != 0) {
    return errnoError("read " SLUICE_MAP_XDP_CONFIG);
  }
  return config;
}

}  // namespace sluice::bpf
