#include "l4.hpp"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <iostream>
#include <map>

namespace sluice::cli {
namespace {

struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) {
      ::close(fd);
    }
  }
};

Result<int> openPinned(const std::string& dir, std::string_view map) {
  const std::string path = bpf::pinPath(dir, map);
  const int fd = ::bpf_obj_get(path.c_str());
  if (fd < 0) {
    return Error(
        errno,
        "open " + path + (errno == ENOENT ? " (is the agent running with the L4 fast path?)" : ""));
  }
  return fd;
}

std::string stateName(std::uint8_t state) {
  switch (state) {
    case SLUICE_L4_BACKEND_ACTIVE:
      return "active";
    case SLUICE_L4_BACKEND_DRAINING:
      return "draining";
    case SLUICE_L4_BACKEND_LOCAL:
      return "local";
    default:
      return "unknown(" + std::to_string(state) + ")";
  }
}

std::string endpoint(std::uint32_t addr, std::uint16_t be_port) {
  return bpf::ipv4Text(addr) + ":" + std::to_string(ntohs(be_port));
}

std::uint64_t monotonicNs() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000ULL +
         static_cast<std::uint64_t>(ts.tv_nsec);
}

}  // namespace

Result<BackendsModel> collectBackends(const std::string& pin_dir) {
  Fd svc, be, ring, flows, stats;
  SLUICE_TRY(svc.fd, openPinned(pin_dir, SLUICE_MAP_L4_SERVICES));
  SLUICE_TRY(be.fd, openPinned(pin_dir, SLUICE_MAP_L4_BACKENDS));
  SLUICE_TRY(ring.fd, openPinned(pin_dir, SLUICE_MAP_L4_MAGLEV));
  SLUICE_TRY(flows.fd, openPinned(pin_dir, SLUICE_MAP_L4_FLOWS));
  SLUICE_TRY(stats.fd, openPinned(pin_dir, SLUICE_MAP_L4_STATS));
  SLUICE_TRY(auto services, bpf::listL4Services(svc.fd));
  SLUICE_TRY(const auto backends, bpf::listL4Backends(be.fd));
  SLUICE_TRY(const auto flow_list, bpf::listL4Flows(flows.fd));
  BackendsModel model;
  SLUICE_TRY(model.counters, bpf::readL4Counters(stats.fd));
  std::map<std::uint32_t, std::uint64_t> flow_count;
  for (const auto& f : flow_list) {
    ++flow_count[f.value.backend_id];
  }
  std::sort(services.begin(), services.end(),
            [](const auto& a, const auto& b) { return ntohs(a.key.port) < ntohs(b.key.port); });
  for (const auto& s : services) {
    SLUICE_TRY(const auto table, bpf::readMaglevTable(ring.fd, s.value.id));
    std::map<std::uint32_t, std::uint64_t> slots;
    for (std::uint32_t id : table) {
      ++slots[id];
    }
    bool any = false;
    for (const auto& [id, b] : backends) {
      if (b.service_id != s.value.id) {
        continue;
      }
      any = true;
      model.rows.push_back({ntohs(s.key.port), s.value.id, endpoint(b.addr, b.port), id,
                            stateName(b.state), slots[id], table.size(), flow_count[id]});
    }
    if (!any) {
      model.rows.push_back({ntohs(s.key.port), s.value.id, "-", 0, "-", 0, table.size(), 0});
    }
  }
  return model;
}

Records backendRecords(const BackendsModel& model) {
  Records r({"port", "service_id", "backend", "backend_id", "state", "slots", "fill", "flows"});
  for (const auto& b : model.rows) {
    char fill[16] = "-";
    if (b.table != 0) {
      std::snprintf(fill, sizeof(fill), "%.1f%%", 100.0 * b.slots / b.table);
    }
    r.add({numberCell(b.port), numberCell(b.service_id), textCell(b.backend),
           numberCell(b.backend_id), textCell(b.state), numberCell(b.slots),
           Cell{fill, b.table != 0 ? boost::json::value(static_cast<double>(b.slots) / b.table)
                                   : boost::json::value(nullptr)},
           numberCell(b.flows)});
  }
  return r;
}

void renderBackends(const BackendsModel& model, Output output, std::ostream& out) {
  const Records records = backendRecords(model);
  if (output == Output::kJson) {
    boost::json::object counters;
    for (std::size_t i = 0; i < model.counters.size(); ++i) {
      counters[bpf::kL4ReasonLabels[i]] = model.counters[i];
    }
    printJson(out, boost::json::object{{"backends", records.array()}, {"packets", counters}});
    return;
  }
  if (records.empty()) {
    out << "no TCP routes on the L4 fast path\n";
  } else {
    records.printTable(out);
  }
  out << "\npackets:";
  for (std::size_t i = 0; i < model.counters.size(); ++i) {
    if (model.counters[i] != 0) {
      out << "  " << bpf::kL4ReasonLabels[i] << "=" << model.counters[i];
    }
  }
  out << "\n";
}

FlowRow xdpFlowRow(const bpf::L4FlowEntry& f, std::uint64_t now_ns) {
  FlowRow row;
  row.client = endpoint(f.key.saddr, f.key.sport);
  row.backend = endpoint(f.value.backend_addr, f.value.backend_port);
  row.strategy = "xdp";
  row.bytes_in = f.value.bytes_in;
  row.bytes_out = f.value.bytes_out;
  row.pkts_in = f.value.packets_in;
  row.pkts_out = f.value.packets_out;
  if (now_ns >= f.value.created_ns && f.value.created_ns != 0) {
    row.age_seconds = (now_ns - f.value.created_ns) / 1'000'000'000ULL;
  }
  return row;
}

void addXdpFlows(const std::string& pin_dir, FlowsModel& model) {
  auto fd = openPinned(pin_dir, SLUICE_MAP_L4_FLOWS);
  if (!fd) {
    if (fd.error().code() != ENOENT) {
      model.warnings.push_back(fd.error().message());
    }
    return;
  }
  Fd owned{*fd};
  auto flows = bpf::listL4Flows(owned.fd);
  if (!flows) {
    model.warnings.push_back(flows.error().message());
    return;
  }
  const std::uint64_t now = monotonicNs();
  for (const auto& f : *flows) {
    model.flows.push_back(xdpFlowRow(f, now));
  }
}

}  // namespace sluice::cli
