#include "bpf/l4_maps.hpp"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace sluice::bpf {
namespace {

constexpr std::uint32_t kZero = 0;

template <typename K>
Result<std::vector<K>> keysOf(int fd, const char* what) {
  std::vector<K> keys;
  K key{};
  K next{};
  const void* prev = nullptr;
  while (::bpf_map_get_next_key(fd, prev, &next) == 0) {
    keys.push_back(next);
    key = next;
    prev = &key;
  }
  if (errno != ENOENT) {
    return errnoError(std::string("list ") + what);
  }
  return keys;
}

// Owns an fd for the length of a scope.
struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) {
      ::close(fd);
    }
  }
};

}  // namespace

std::string ipv4Text(std::uint32_t be_addr) {
  char buf[INET_ADDRSTRLEN] = {};
  ::inet_ntop(AF_INET, &be_addr, buf, sizeof(buf));
  return buf;
}

Result<std::uint32_t> parseIpv4(const std::string& text) {
  std::uint32_t addr = 0;
  if (::inet_pton(AF_INET, text.c_str(), &addr) != 1) {
    return Error(EINVAL, "\"" + text + "\" is not an IPv4 address");
  }
  return addr;
}

Result<void> writeL4Config(int fd, const sluice_l4_config& config) {
  if (::bpf_map_update_elem(fd, &kZero, &config, BPF_ANY) != 0) {
    return errnoError("write " SLUICE_MAP_L4_CONFIG);
  }
  return success();
}

Result<sluice_l4_config> readL4Config(int fd) {
  sluice_l4_config c{};
  if (::bpf_map_lookup_elem(fd, &kZero, &c) != 0) {
    return errnoError("read " SLUICE_MAP_L4_CONFIG);
  }
  return c;
}

Result<std::size_t> reconcileL4Services(int fd, const std::vector<L4ServiceEntry>& want) {
  SLUICE_TRY(const auto have, listL4Services(fd));
  std::size_t changed = 0;
  for (const auto& h : have) {
    bool keep = false;
    for (const auto& w : want) {
      keep = keep || std::memcmp(&w.key, &h.key, sizeof(h.key)) == 0;
    }
    if (!keep) {
      if (::bpf_map_delete_elem(fd, &h.key) != 0 && errno != ENOENT) {
        return errnoError("delete from " SLUICE_MAP_L4_SERVICES);
      }
      ++changed;
    }
  }
  for (const auto& w : want) {
    sluice_l4_service cur{};
    if (::bpf_map_lookup_elem(fd, &w.key, &cur) == 0 &&
        std::memcmp(&cur, &w.value, sizeof(cur)) == 0) {
      continue;
    }
    if (::bpf_map_update_elem(fd, &w.key, &w.value, BPF_ANY) != 0) {
      return errnoError("write " SLUICE_MAP_L4_SERVICES);
    }
    ++changed;
  }
  return changed;
}

Result<std::vector<L4ServiceEntry>> listL4Services(int fd) {
  SLUICE_TRY(const auto keys, keysOf<sluice_l4_svc_key>(fd, SLUICE_MAP_L4_SERVICES));
  std::vector<L4ServiceEntry> out;
  for (const auto& k : keys) {
    L4ServiceEntry e{k, {}};
    if (::bpf_map_lookup_elem(fd, &k, &e.value) == 0) {
      out.push_back(e);
    }
  }
  return out;
}

Result<void> writeL4Backend(int fd, std::uint32_t id, const sluice_l4_backend& backend) {
  if (::bpf_map_update_elem(fd, &id, &backend, BPF_ANY) != 0) {
    return errnoError("write " SLUICE_MAP_L4_BACKENDS " slot " + std::to_string(id));
  }
  return success();
}

Result<std::map<std::uint32_t, sluice_l4_backend>> listL4Backends(int fd) {
  std::map<std::uint32_t, sluice_l4_backend> out;
  for (std::uint32_t id = 0; id < SLUICE_L4_MAX_BACKENDS; ++id) {
    sluice_l4_backend b{};
    if (::bpf_map_lookup_elem(fd, &id, &b) != 0) {
      return errnoError("read " SLUICE_MAP_L4_BACKENDS);
    }
    if (b.state != SLUICE_L4_BACKEND_UNUSED) {
      out[id] = b;
    }
  }
  return out;
}

Result<void> swapMaglevTable(int ring_fd, std::uint32_t service_id,
                             const std::vector<std::uint32_t>& table) {
  if (table.empty()) {
    return Error(EINVAL, "swap Maglev table of service " + std::to_string(service_id) + ": empty");
  }
  LIBBPF_OPTS(bpf_map_create_opts, opts, .map_flags = BPF_F_INNER_MAP);
  Fd inner{::bpf_map_create(BPF_MAP_TYPE_ARRAY, "sluice_l4_table", sizeof(std::uint32_t),
                            sizeof(std::uint32_t), static_cast<std::uint32_t>(table.size()),
                            &opts)};
  if (inner.fd < 0) {
    return Error(-inner.fd, "create a Maglev table of " + std::to_string(table.size()) + " slots");
  }
  std::vector<std::uint32_t> keys(table.size());
  for (std::uint32_t i = 0; i < keys.size(); ++i) {
    keys[i] = i;
  }
  std::uint32_t n = static_cast<std::uint32_t>(table.size());
  LIBBPF_OPTS(bpf_map_batch_opts, batch);
  if (::bpf_map_update_batch(inner.fd, keys.data(), table.data(), &n, &batch) != 0) {
    for (std::uint32_t i = 0; i < keys.size(); ++i) {  // kernels without batch ops on arrays
      if (::bpf_map_update_elem(inner.fd, &keys[i], &table[i], BPF_ANY) != 0) {
        return errnoError("fill a Maglev table");
      }
    }
  }
  // The one atomic step: the slot now names the complete new table.
  if (::bpf_map_update_elem(ring_fd, &service_id, &inner.fd, BPF_ANY) != 0) {
    return errnoError("swap the Maglev table of service " + std::to_string(service_id));
  }
  return success();
}

Result<void> dropMaglevTable(int ring_fd, std::uint32_t service_id) {
  if (::bpf_map_delete_elem(ring_fd, &service_id) != 0 && errno != ENOENT) {
    return errnoError("drop the Maglev table of service " + std::to_string(service_id));
  }
  return success();
}

Result<std::vector<std::uint32_t>> readMaglevTable(int ring_fd, std::uint32_t service_id) {
  std::uint32_t inner_id = 0;
  if (::bpf_map_lookup_elem(ring_fd, &service_id, &inner_id) != 0) {
    if (errno == ENOENT) {
      return std::vector<std::uint32_t>{};
    }
    return errnoError("read the Maglev slot of service " + std::to_string(service_id));
  }
  Fd inner{::bpf_map_get_fd_by_id(inner_id)};
  if (inner.fd < 0) {
    return errnoError("open Maglev table map id " + std::to_string(inner_id));
  }
  bpf_map_info info{};
  std::uint32_t len = sizeof(info);
  if (::bpf_obj_get_info_by_fd(inner.fd, &info, &len) != 0) {
    return errnoError("info of Maglev table map id " + std::to_string(inner_id));
  }
  std::vector<std::uint32_t> table(info.max_entries);
  for (std::uint32_t i = 0; i < table.size(); ++i) {
    if (::bpf_map_lookup_elem(inner.fd, &i, &table[i]) != 0) {
      return errnoError("read Maglev table map id " + std::to_string(inner_id));
    }
  }
  return table;
}

Result<void> reconcileSnat(int fd, const std::map<std::uint32_t, std::uint32_t>& want) {
  SLUICE_TRY(const auto have, keysOf<std::uint32_t>(fd, SLUICE_MAP_L4_SNAT));
  for (std::uint32_t ifindex : have) {
    if (!want.contains(ifindex)) {
      ::bpf_map_delete_elem(fd, &ifindex);
    }
  }
  for (const auto& [ifindex, addr] : want) {
    if (::bpf_map_update_elem(fd, &ifindex, &addr, BPF_ANY) != 0) {
      return errnoError("write " SLUICE_MAP_L4_SNAT);
    }
  }
  return success();
}

Result<std::vector<L4FlowEntry>> listL4Flows(int fd) {
  SLUICE_TRY(const auto keys, keysOf<sluice_l4_flow_key>(fd, SLUICE_MAP_L4_FLOWS));
  std::vector<L4FlowEntry> out;
  out.reserve(keys.size());
  for (const auto& k : keys) {
    L4FlowEntry e{k, {}};
    if (::bpf_map_lookup_elem(fd, &k, &e.value) == 0) {
      out.push_back(e);
    }
  }
  return out;
}

Result<void> deleteL4Flow(L4MapFds fds, const L4FlowEntry& flow) {
  sluice_l4_flow_key rk{};
  rk.saddr = flow.value.backend_addr;
  rk.daddr = flow.value.snat_addr;
  rk.sport = flow.value.backend_port;
  rk.dport = flow.value.snat_port;
  rk.proto = IPPROTO_TCP;
  ::bpf_map_delete_elem(fds.rev, &rk);
  if (::bpf_map_delete_elem(fds.flows, &flow.key) != 0 && errno != ENOENT) {
    return errnoError("delete from " SLUICE_MAP_L4_FLOWS);
  }
  return success();
}

Result<L4Counters> readL4Counters(int stats_fd) {
  const int cpus = ::libbpf_num_possible_cpus();
  if (cpus <= 0) {
    return Error(-cpus, "count possible CPUs");
  }
  L4Counters out{};
  std::vector<std::uint64_t> per_cpu(static_cast<std::size_t>(cpus));
  for (std::uint32_t reason = 0; reason < out.size(); ++reason) {
    if (::bpf_map_lookup_elem(stats_fd, &reason, per_cpu.data()) != 0) {
      return errnoError("read " SLUICE_MAP_L4_STATS);
    }
    for (std::uint64_t n : per_cpu) {
      out[reason] += n;
    }
  }
  return out;
}

}  // namespace sluice::bpf
