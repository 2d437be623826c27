#include "flows.hpp"

#include <time.h>

#include <algorithm>
#include <chrono>
#include <ostream>
#include <set>
#include <tuple>
#include <unordered_set>
#include <utility>

#include <boost/json.hpp>

#include "bpf/abi.hpp"
#include "l4.hpp"
#include "sock_diag.hpp"
#include "splice_maps.hpp"

namespace sluice::cli {
namespace {

std::uint64_t monotonicNs() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);  // the clock bpf_ktime_get_ns() and created_ns use
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000ULL +
         static_cast<std::uint64_t>(ts.tv_nsec);
}

// One row before addresses are resolved.
struct Pending {
  FlowRow row;
  std::uint64_t client_cookie = 0;
  std::uint64_t backend_cookie = 0;
  std::uint64_t created_ns = 0;
};

// Counters of one socket; a missing entry (never counted, or removed under us) reads as zero.
Result<sluice_flow_stats> statsOf(const bpf::PinnedMap& map, std::uint64_t cookie) {
  sluice_flow_key key{cookie};
  sluice_flow_stats stats{};
  if (auto read = map.lookup(&key, &stats); !read && read.error().code() != ENOENT) {
    return userError(read.error());
  }
  return stats;
}

Records flowRecords(const FlowsModel& model) {
  Records r({"flow_id", "client", "backend", "strategy", "bytes_in", "bytes_out", "pkts_in",
             "pkts_out", "age"});
  for (const auto& f : model.flows) {
    Cell age = f.age_seconds ? Cell{formatAge(*f.age_seconds), *f.age_seconds} : Cell{"-", nullptr};
    r.add({numberCell(f.flow_id), textCell(f.client), textCell(f.backend), textCell(f.strategy),
           numberCell(f.bytes_in), numberCell(f.bytes_out), numberCell(f.pkts_in),
           numberCell(f.pkts_out), std::move(age)});
  }
  return r;
}

}  // namespace

std::string strategyLabel(std::uint8_t strategy) {
  switch (strategy) {
    case SLUICE_STRATEGY_PASS:
      return "sockmap(pass)";
    case SLUICE_STRATEGY_REDIRECT:
      return "sockmap";
    default:
      return "unknown(" + std::to_string(strategy) + ")";
  }
}

namespace {

constexpr std::chrono::milliseconds kAdminFlowsTimeout{2000};

// Flows the agent relays without sockmap (pipe, copy, adaptive) exist only in the agent: ask it.
void addAgentFlows(const AdminEndpoint& admin, FlowsModel& model) {
  auto reply = adminGet(admin, "/debug/flows", kAdminFlowsTimeout);
  const std::string missing = "; only sockmap flows (from the pinned maps) are shown";
  if (!reply) {
    model.warnings.push_back("agent admin " + admin.text + " not reachable" + missing);
    return;
  }
  if (reply->status != 200) {
    model.warnings.push_back("agent admin " + admin.text + " answered HTTP " +
                             std::to_string(reply->status) + " for /debug/flows" + missing);
    return;
  }
  boost::system::error_code ec;
  const boost::json::value flows = boost::json::parse(reply->body, ec);
  if (ec || !flows.is_array()) {
    model.warnings.push_back("agent admin " + admin.text + " sent invalid JSON" + missing);
    return;
  }
  for (const boost::json::value& v : flows.as_array()) {
    const auto* o = v.if_object();
    if (o == nullptr) {
      continue;
    }
    auto text = [o](const char* key) {
      const auto* f = o->if_contains(key);
      return f != nullptr && f->is_string() ? std::string(f->as_string()) : std::string();
    };
    auto number = [o](const char* key) -> std::optional<std::uint64_t> {
      const auto* f = o->if_contains(key);
      if (f == nullptr || !(f->is_uint64() || f->is_int64())) {
        return std::nullopt;
      }
      return f->is_uint64() ? f->as_uint64() : static_cast<std::uint64_t>(f->as_int64());
    };
    FlowRow row;
    row.strategy = text("strategy");
    if (row.strategy.starts_with("sockmap")) {
      continue;  // listed from the maps already, with the kernel's own counters
    }
    row.flow_id = number("flow_id").value_or(0);
    row.client = text("client");
    row.backend = text("backend");
    row.bytes_in = number("bytes_in").value_or(0);
    row.bytes_out = number("bytes_out").value_or(0);
    row.age_seconds = number("age_seconds");
    model.flows.push_back(std::move(row));
  }
}

}  // namespace

Result<FlowsModel> collectFlows(const std::string& pin_dir, const AdminEndpoint& admin) {
  auto maps = openSpliceMaps(pin_dir);
  if (!maps) {
    // No splice maps (the agent relays with copy or pipe): the L4 fast path may still have flows.
    FlowsModel model;
    addXdpFlows(pin_dir, model);
    if (model.flows.empty()) {
      return maps.error();
    }
    model.warnings.push_back(maps.error().message());
    addAgentFlows(admin, model);
    return model;
  }
  auto keys = maps->peers.keys<sluice_flow_key>();
  if (!keys) {
    return userError(keys.error());
  }
  std::vector<std::pair<std::uint64_t, sluice_flow>> entries;
  for (const sluice_flow_key& key : *keys) {
    sluice_flow flow{};
    if (auto read = maps->peers.lookup(&key, &flow); !read) {
      if (read.error().code() == ENOENT) {
        continue;  // the pair was removed while we walked
      }
      return userError(read.error());
    }
    entries.emplace_back(key.cookie, flow);
  }
  // Client-side entries first, so a pair is oriented by its client half whenever that exists;
  // a half without direction flags is taken as the client side.
  std::stable_sort(entries.begin(), entries.end(), [](const auto& a, const auto& b) {
    const bool a_backend = (a.second.flags & SLUICE_FLOW_F_CLIENT) == 0 &&
                           (a.second.flags & SLUICE_FLOW_F_BACKEND) != 0;
    const bool b_backend = (b.second.flags & SLUICE_FLOW_F_CLIENT) == 0 &&
                           (b.second.flags & SLUICE_FLOW_F_BACKEND) != 0;
    return a_backend != b_backend ? !a_backend : a.first < b.first;
  });

  const std::uint64_t now = monotonicNs();
  std::set<std::pair<std::uint64_t, std::uint64_t>> seen;
  std::vector<Pending> pending;
  std::unordered_set<std::uint64_t> cookies;
  for (const auto& [cookie, flow] : entries) {
    const std::uint64_t peer = flow.peer_cookie;
    if (!seen.insert({std::min(cookie, peer), std::max(cookie, peer)}).second) {
      continue;  // the other half of a pair already listed
    }
    const bool backend_half =
        (flow.flags & SLUICE_FLOW_F_CLIENT) == 0 && (flow.flags & SLUICE_FLOW_F_BACKEND) != 0;
    Pending p;
    p.client_cookie = backend_half ? flow.peer_cookie : cookie;
    p.backend_cookie = backend_half ? cookie : flow.peer_cookie;
    p.created_ns = flow.created_ns;
    p.row.flow_id = flow.flow_id;
    p.row.strategy = strategyLabel(flow.strategy);
    auto in = statsOf(maps->flow_stats, p.client_cookie);
    auto out = statsOf(maps->flow_stats, p.backend_cookie);
    if (!in) {
      return in.error();
    }
    if (!out) {
      return out.error();
    }
    p.row.bytes_in = in->bytes;
    p.row.pkts_in = in->packets;
    p.row.bytes_out = out->bytes;
    p.row.pkts_out = out->packets;
    if (flow.created_ns != 0 && flow.created_ns <= now) {
      p.row.age_seconds = (now - flow.created_ns) / 1'000'000'000ULL;
    }
    cookies.insert(p.client_cookie);
    cookies.insert(p.backend_cookie);
    pending.push_back(std::move(p));
  }

  FlowsModel model;
  auto addresses = resolveTcpCookies(cookies);
  if (!addresses) {
    model.warnings.push_back("cannot resolve addresses (shown as cookies): " +
                             addresses.error().message());
  }
  std::size_t unresolved = 0;
  // The client-side socket's peer is the client; the backend-side socket's peer is the backend.
  auto remoteOf = [&](std::uint64_t cookie) -> std::string {
    if (addresses) {
      if (auto it = addresses->find(cookie); it != addresses->end()) {
        return it->second.remote;
      }
      ++unresolved;
    }
    return "cookie:" + std::to_string(cookie);
  };
  std::sort(pending.begin(), pending.end(), [](const Pending& a, const Pending& b) {
    return std::tie(a.created_ns, a.row.flow_id, a.client_cookie) <
           std::tie(b.created_ns, b.row.flow_id, b.client_cookie);
  });
  for (Pending& p : pending) {
    p.row.client = remoteOf(p.client_cookie);
    p.row.backend = remoteOf(p.backend_cookie);
    model.flows.push_back(std::move(p.row));
  }
  if (unresolved != 0) {
    model.warnings.push_back(std::to_string(unresolved) +
                             " spliced socket(s) not found in this network namespace (closed, "
                             "or ingress-agent runs in another one); shown as cookie:N");
  }
  addAgentFlows(admin, model);
  addXdpFlows(pin_dir, model);  // the L4 fast path's flows (cli/l4.hpp)
  return model;
}

void renderFlows(const FlowsModel& model, Output output, std::ostream& out, std::ostream& err) {
  const Records records = flowRecords(model);
  if (output == Output::kJson) {
    printJson(out, records.array());
  } else {
    records.printTable(out);
  }
  for (const auto& warning : model.warnings) {
    err << "ingressctl: warning: " << warning << '\n';
  }
}

}  // namespace sluice::cli
