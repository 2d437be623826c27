#include "app/flags.hpp"

#include <charconv>
#include <cstdlib>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>

#include "bpf/abi.hpp"
#include "common/log.hpp"
#include "common/net.hpp"
#include "control/status_writer.hpp"
#include "k8s/objects.hpp"

namespace sluice::app {

namespace {

// Flags parsed as text first and validated after CLI11 is done, so that every error names its
// flag in one style.
struct RawFlags {
  std::string listen = "0.0.0.0:8080";
  std::string admin = "127.0.0.1:10254";
  unsigned workers = std::max(1u, std::thread::hardware_concurrency());
  std::string header_timeout = "10s", idle_timeout = "60s", body_timeout = "60s";
  std::string connect_timeout = "5s", response_timeout = "60s", upstream_idle = "30s";
  std::string tunnel_idle = "1h", drain_timeout = "30s", shutdown_delay = "0s";
  std::string request_timeout = "60s";
  std::uint64_t min_body_rate = 0;
  std::string trusted_proxies;
  std::string allow_endpoint_cidrs;
  std::string escaped_slashes = "reject";
  std::string host_ownership = "shared";
  std::string lease_duration = "15s", renew_deadline = "10s", retry_period = "2s";
  std::uint64_t max_body = 0;
  std::size_t max_head = 0;
  std::size_t max_idle = 0;
  bool wait_shutdown = false;
  int wait_pid = 1;
  std::string listen_https = "0.0.0.0:8443";
  std::string tls_min_version = "1.2", tls_handshake_timeout = "10s", ktls = "auto",
              tls13_record_layer = "sluice";
};

void addSourceFlags(CLI::App& cli, AgentConfig& out) {
  cli.add_option("--manifests", out.manifests_dir,
                 "Directory of Kubernetes YAML manifests (Ingress, IngressClass, Service, "
                 "EndpointSlice); changes apply live")
      ->check(CLI::ExistingDirectory);
  cli.add_option("--kubeconfig", out.kubeconfig,
                 "Watch the Kubernetes API with this kubeconfig (current context) instead of "
                 "--manifests; without either, in-cluster configuration is used");
  cli.add_option("--namespace", out.watch_namespace,
                 "API source: watch only this namespace (default: all)");
  cli.add_option("--ingress-class", out.ingress_class, "IngressClass name served")
      ->capture_default_str();
  cli.add_option("--controller", out.controller, "IngressClass spec.controller value")
      ->capture_default_str();
  cli.add_option("--tcp-services", out.tcp_services,
                 "ConfigMap NAMESPACE/NAME mapping listener ports to 'namespace/service:port' "
                 "(plain TCP routes); '' disables")
      ->capture_default_str();
}

void addStatusFlags(CLI::App& cli, AgentConfig& out, RawFlags& raw) {
  cli.add_option("--update-status", out.update_status,
                 "API source: elect a leader through a Lease and let it write "
                 "status.loadBalancer of our Ingresses (true/false)")
      ->capture_default_str();
  cli.add_option("--publish-address", out.publish_address,
                 "Comma-separated IPs or DNS names written into Ingress status (default: the "
                 "node's address from HOST_IP, set by the downward API)");
  cli.add_option("--election-namespace", out.election_namespace,
                 "Namespace of the leader-election Lease (default: POD_NAMESPACE, else "
                 "sluice-system)");
  cli.add_option("--election-id", out.election_id, "Name of the leader-election Lease")
      ->capture_default_str();
  cli.add_option("--lease-duration", raw.lease_duration,
                 "How long followers wait after the leader's last renewal before taking over")
      ->capture_default_str();
  cli.add_option("--lease-renew-deadline", raw.renew_deadline,
                 "The leader stops writing status when it could not renew for this long")
      ->capture_default_str();
  cli.add_option("--lease-retry-period", raw.retry_period,
                 "Time between attempts to acquire or renew the Lease")
      ->capture_default_str();
}

void addServingFlags(CLI::App& cli, AgentConfig& out, RawFlags& raw) {
  cli.add_option("--listen-http", raw.listen, "HTTP listener ADDR:PORT")->capture_default_str();
  cli.add_option("--admin", raw.admin, "Admin listener ADDR:PORT (health, metrics, state)")
      ->capture_default_str();
  cli.add_option("--workers", raw.workers, "Worker threads (default: CPU cores)")
      ->check(CLI::Range(1u, 256u));
  cli.add_option("--max-connections", out.max_connections,
                 "Open client connections (HTTP and TCP routes) the agent accepts at most; at "
                 "the cap it stops accepting until one closes (default: sized from the memory "
                 "and file limits, see docs/operations.md)")
      ->check(CLI::Range(std::size_t{1}, std::size_t{10'000'000}));
  cli.add_option("--log-level", out.log_level, "trace, debug, info, warn, error, critical or off")
      ->capture_default_str();
  cli.add_option("--access-log", out.access_log,
                 "JSON-lines access log: 'stdout' or a file path (default: off)");
  cli.add_option("--shutdown-delay", raw.shutdown_delay,
                 "On SIGTERM, keep accepting this long with /readyz failing before draining")
      ->capture_default_str();
  cli.add_flag("--wait-shutdown", raw.wait_shutdown,
               "Do not serve: SIGTERM the agent (PID 1, or --wait-shutdown-pid) and wait until it "
               "has drained and exited (a preStop hook)");
  cli.add_option("--wait-shutdown-pid", raw.wait_pid, "The agent's PID for --wait-shutdown")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cli.add_option("--drain-timeout", raw.drain_timeout, "On SIGTERM, time to finish in-flight work")
      ->capture_default_str();
}

void addProxyFlags(CLI::App& cli, RawFlags& raw) {
  cli.add_option("--header-timeout", raw.header_timeout, "Time to receive a request head")
      ->capture_default_str();
  cli.add_option("--idle-timeout", raw.idle_timeout, "Keep-alive idle time between requests")
      ->capture_default_str();
  cli.add_option("--body-timeout", raw.body_timeout, "Inactivity while reading a request body")
      ->capture_default_str();
  cli.add_option("--request-timeout", raw.request_timeout,
                 "Total time from a request head's first byte to its body's last (0s: none)")
      ->capture_default_str();
  cli.add_option("--min-body-rate", raw.min_body_rate,
                 "Request bodies must arrive at least this fast, in bytes/s averaged over 10 s "
                 "(0: no minimum)")
      ->check(CLI::Range(std::uint64_t{0}, std::uint64_t{1} << 30))
      ->capture_default_str();
  cli.add_option("--upstream-connect-timeout", raw.connect_timeout, "Upstream TCP connect")
      ->capture_default_str();
  cli.add_option("--upstream-response-timeout", raw.response_timeout,
                 "Upstream response head, and inactivity within its body")
      ->capture_default_str();
  cli.add_option("--upstream-idle-timeout", raw.upstream_idle, "Pooled idle upstream connections")
      ->capture_default_str();
  cli.add_option("--tunnel-idle-timeout", raw.tunnel_idle, "Inactivity on Upgrade tunnels")
      ->capture_default_str();
  cli.add_option("--upstream-max-idle", raw.max_idle,
                 "Idle upstream connections kept per endpoint and worker")
      ->check(CLI::Range(0ul, 1ul << 20))
      ->capture_default_str();
  cli.add_option("--max-request-body", raw.max_body, "Request body limit in bytes (0: none)")
      ->capture_default_str();
  cli.add_option("--max-header-bytes", raw.max_head, "Request head limit in bytes")
      ->check(CLI::Range(1024ul, 1024ul * 1024ul))
      ->capture_default_str();
}

void addEdgeFlags(CLI::App& cli, AgentConfig& out, RawFlags& raw) {
  cli.add_option("--trusted-proxies", raw.trusted_proxies,
                 "Comma-separated CIDRs of proxies in front of the agent (a cloud load balancer): "
                 "their X-Forwarded-*, X-Real-IP and Forwarded headers are kept and appended to, "
                 "and their PROXY protocol headers accepted; everyone else's are replaced");
  cli.add_flag("--proxy-protocol", out.proxy.proxy_protocol,
               "Accept a PROXY protocol v1/v2 header on the HTTP listener from --trusted-proxies "
               "(the client address it carries becomes the request's client)");
  cli.add_option("--path-escaped-slashes", raw.escaped_slashes,
                 "A request path with %2F, %5C or a backslash: 'reject' (400) or 'keep' them "
                 "opaque (never decoded, never a segment boundary)")
      ->check(CLI::IsMember({"reject", "keep"}))
      ->capture_default_str();
  cli.add_option("--host-ownership", raw.host_ownership,
                 "'shared': every Ingress may add rules to any host; 'first': a host belongs to "
                 "the namespace of its oldest Ingress, other namespaces' rules for it are refused")
      ->check(CLI::IsMember({"shared", "first"}))
      ->capture_default_str();
  cli.add_option("--allow-endpoint-cidrs", raw.allow_endpoint_cidrs,
                 "API source: endpoint addresses allowed although loopback, link-local or the "
                 "node's own (refused by default; see docs/operations.md)");
  cli.add_option("--cluster-max-connections", out.proxy.cluster_max_connections,
                 "Upstream connections busy with a request, per Service port and agent, unless "
                 "the Service's sluice.dev/max-connections says otherwise; over it: 503")
      ->check(CLI::Range(1u, 1'000'000u))
      ->capture_default_str();
  cli.add_option("--cluster-max-pending-requests", out.proxy.cluster_max_pending,
                 "Requests waiting for an upstream connection, per Service port and agent, "
                 "unless sluice.dev/max-pending-requests says otherwise; over it: 503")
      ->check(CLI::Range(1u, 1'000'000u))
      ->capture_default_str();
}

void addTlsFlags(CLI::App& cli, AgentConfig& out, RawFlags& raw) {
  cli.add_option("--listen-https", raw.listen_https,
                 "HTTPS listener ADDR:PORT (TLS terminated by SNI, or passed through); '' "
                 "disables it")
      ->capture_default_str();
  cli.add_option("--default-ssl-certificate", out.default_ssl_certificate,
                 "TLS Secret NAMESPACE/NAME served for unknown SNI and hosts without a usable "
                 "certificate; without it a self-signed certificate made at start (never written "
                 "to disk)");
  cli.add_option("--tls-min-version", raw.tls_min_version, "Oldest TLS version accepted")
      ->check(CLI::IsMember({"1.2", "1.3"}))
      ->capture_default_str();
  cli.add_option("--tls-ciphers", out.tls.ciphers,
                 "OpenSSL cipher list for TLS 1.2 (default: Mozilla intermediate)");
  cli.add_option("--tls-handshake-timeout", raw.tls_handshake_timeout,
                 "Accept to finished handshake (the ClientHello included); past it the "
                 "connection closes")
      ->capture_default_str();
  cli.add_option("--max-tls-handshakes", out.proxy.max_tls_handshakes,
                 "Concurrent TLS handshakes, agent-wide; more connections are closed at once")
      ->check(CLI::Range(1ul, 1'000'000ul))
      ->capture_default_str();
  cli.add_option("--max-client-hello", out.proxy.max_client_hello,
                 "Largest ClientHello accepted, in bytes (16384 to 65536)")
      ->check(CLI::Range(16384ul, 65536ul))
      ->capture_default_str();
  cli.add_option("--tls-session-tickets", out.tls.session_tickets,
                 "Resume sessions with tickets (keys shared by the workers, rotated hourly); "
                 "false makes every handshake a full one")
      ->capture_default_str();
  cli.add_option("--ktls", raw.ktls,
                 "'auto': kernel TLS for connections where it is safe (TLS 1.2 on OpenSSL 3.0; "
                 "docs/tls.md), when the kernel has it; 'off'")
      ->check(CLI::IsMember({"auto", "off"}))
      ->capture_default_str();
  cli.add_option("--tls13-record-layer", raw.tls13_record_layer,
                 "'sluice': after a TLS 1.3 handshake the agent seals and opens the records "
                 "itself and frees OpenSSL's connection (13.9 KiB less per idle connection; "
                 "docs/tls.md); 'openssl': OpenSSL keeps them")
      ->check(CLI::IsMember({"sluice", "openssl"}))
      ->capture_default_str();
}

Result<void> applyTlsFlags(const RawFlags& raw, AgentConfig& out) {
  if (!raw.listen_https.empty()) {
    auto https = parseEndpoint(raw.listen_https);
    if (!https) {
      return https.error().wrap("--listen-https");
    }
    out.listen_https = *https;
    out.proxy.https_port = https->port();
  }
  if (!out.default_ssl_certificate.empty() &&
      !k8s::parseNamespacedName(out.default_ssl_certificate)) {
    return Error("--default-ssl-certificate '" + out.default_ssl_certificate +
                 "' must be NAMESPACE/NAME of a kubernetes.io/tls Secret");
  }
  auto timeout = parseDuration(raw.tls_handshake_timeout);
  if (!timeout) {
    return timeout.error().wrap("--tls-handshake-timeout");
  }
  out.proxy.tls_handshake_timeout = *timeout;
  out.tls.tls13_only = raw.tls_min_version == "1.3";
  out.ktls_auto = raw.ktls == "auto";
  out.proxy.own_tls13_records = raw.tls13_record_layer == "sluice";
  return success();
}

Result<void> applyEdgeFlags(const RawFlags& raw, AgentConfig& out) {
  auto trusted = net::parseCidrs(raw.trusted_proxies);
  if (!trusted) {
    return trusted.error().wrap("--trusted-proxies");
  }
  out.proxy.trusted_proxies = std::move(*trusted);
  if (out.proxy.proxy_protocol && out.proxy.trusted_proxies.empty()) {
    return Error("--proxy-protocol accepts the header only from --trusted-proxies; give them");
  }
  auto allowed = net::parseCidrs(raw.allow_endpoint_cidrs);
  if (!allowed) {
    return allowed.error().wrap("--allow-endpoint-cidrs");
  }
  out.allow_endpoint_cidrs = std::move(*allowed);
  out.proxy.paths.escaped_slashes =
      raw.escaped_slashes == "keep" ? http::EscapedSlashes::kKeep : http::EscapedSlashes::kReject;
  out.host_ownership =
      raw.host_ownership == "first" ? model::HostOwnership::kFirst : model::HostOwnership::kShared;
  return success();
}

void addSpliceFlags(CLI::App& cli, AgentConfig& out) {
  cli.add_option("--splice", out.splice,
                 "How routed connections move bytes: auto, sockmap (in-kernel redirect), pipe "
                 "(splice(2)) or copy (userspace); see docs/splice.md")
      ->check(CLI::IsMember({"auto", "sockmap", "pipe", "copy"}))
      ->capture_default_str();
  cli.add_option("--splice-body-threshold", out.proxy.splice.body_threshold,
                 "Content-Length above which HTTP bodies move with splice(2)")
      ->check(CLI::Range(std::uint64_t{0}, std::uint64_t{1} << 62))
      ->capture_default_str();
  cli.add_option("--splice-flow-budget", out.proxy.splice.flow_budget,
                 "sockmap: bytes the kernel may queue for a peer that is not reading, per flow "
                 "direction, before that direction is relayed in userspace")
      ->check(CLI::Range(std::uint32_t{64 * 1024}, std::uint32_t{1} << 30))
      ->capture_default_str();
  cli.add_option("--bpf-pin-dir", out.bpf_pin_dir, "bpffs directory of the pinned maps")
      ->capture_default_str();
}

// Every duration flag: a positive duration, except --shutdown-delay (0 allowed).
Result<void> applyDurations(const RawFlags& raw, AgentConfig& out) {
  struct {
    const char* flag;
    const std::string& text;
    std::chrono::milliseconds& into;
  } durations[] = {
      {"--header-timeout", raw.header_timeout, out.proxy.header_timeout},
      {"--idle-timeout", raw.idle_timeout, out.proxy.idle_timeout},
      {"--body-timeout", raw.body_timeout, out.proxy.body_timeout},
      {"--upstream-connect-timeout", raw.connect_timeout, out.proxy.upstream_connect_timeout},
      {"--upstream-response-timeout", raw.response_timeout, out.proxy.upstream_response_timeout},
      {"--upstream-idle-timeout", raw.upstream_idle, out.proxy.upstream_idle_timeout},
      {"--tunnel-idle-timeout", raw.tunnel_idle, out.proxy.tunnel_idle_timeout},
      {"--drain-timeout", raw.drain_timeout, out.drain_timeout},
      {"--lease-duration", raw.lease_duration, out.lease_duration},
      {"--lease-renew-deadline", raw.renew_deadline, out.renew_deadline},
      {"--lease-retry-period", raw.retry_period, out.retry_period},
  };
  for (auto& d : durations) {
    auto parsed = parseDuration(d.text);
    if (!parsed || parsed->count() == 0) {
      return Error(std::string(d.flag) + " '" + d.text +
                   "' is not a positive duration (e.g. 500ms, 10s, 2m)");
    }
    d.into = *parsed;
  }
  auto delay = parseDuration(raw.shutdown_delay);
  if (!delay) {
    return Error("--shutdown-delay '" + raw.shutdown_delay + "' is not a duration (e.g. 0s, 5s)");
  }
  out.shutdown_delay = *delay;
  auto request = parseDuration(raw.request_timeout);
  if (!request) {
    return Error("--request-timeout '" + raw.request_timeout +
                 "' is not a duration (e.g. 60s, 5m; 0s for none)");
  }
  out.proxy.request_timeout = *request;
  if (!(out.lease_duration > out.renew_deadline && out.renew_deadline > out.retry_period) ||
      out.lease_duration < std::chrono::seconds(1)) {
    return Error(
        "leader election needs --lease-duration > --lease-renew-deadline > "
        "--lease-retry-period, and a lease of at least 1s");
  }
  return success();
}

// Cross-flag rules and the flags whose values need more than CLI11's checks.
Result<void> validate(const RawFlags& raw, AgentConfig& out) {
  if (!out.manifests_dir.empty() && !out.kubeconfig.empty()) {
    return Error("--manifests and --kubeconfig are two sources; give one");
  }
  if (raw.wait_shutdown) {
    out.wait_shutdown_pid = raw.wait_pid;
  }
  if (!raw.wait_shutdown && out.manifests_dir.empty() && out.kubeconfig.empty() &&
      std::getenv("KUBERNETES_SERVICE_HOST") == nullptr) {
    return Error(
        "no source: give --manifests DIR, or --kubeconfig PATH, or run in a pod "
        "(KUBERNETES_SERVICE_HOST)");
  }
  if (!out.tcp_services.empty() && !k8s::parseNamespacedName(out.tcp_services)) {
    return Error("--tcp-services '" + out.tcp_services +
                 "' must be NAMESPACE/NAME of a ConfigMap, or '' to disable TCP routes");
  }
  auto listen = parseEndpoint(raw.listen);
  if (!listen) {
    return listen.error().wrap("--listen-http");
  }
  out.listen_http = *listen;
  auto admin = parseEndpoint(raw.admin);
  if (!admin) {
    return admin.error().wrap("--admin");
  }
  out.admin = *admin;
  if (!log::setLevel(out.log_level)) {
    return Error("--log-level '" + out.log_level + "' is not a level");
  }
  SLUICE_CHECK(applyDurations(raw, out));
  SLUICE_CHECK(applyEdgeFlags(raw, out));
  SLUICE_CHECK(applyTlsFlags(raw, out));
  if (!out.publish_address.empty()) {
    if (auto addresses = control::parsePublishAddresses(out.publish_address); !addresses) {
      return addresses.error().wrap("--publish-address");
    }
  }
  return success();
}

}  // namespace

model::TranslateOptions translateOptions(const AgentConfig& c) {
  return {.classes = {c.ingress_class, c.controller},
          .tcp_services = c.tcp_services,
          .reserved_ports = {c.listen_http.port(), c.admin.port(),
                             c.listen_https ? c.listen_https->port() : c.listen_http.port()},
          .paths = c.proxy.paths,
          .host_ownership = c.host_ownership,
          // The operator wrote every manifest; API objects come from whoever may write them.
          .restrict_endpoints = c.manifests_dir.empty(),
          .allowed_endpoints = c.allow_endpoint_cidrs,
          .node_addresses = net::localAddresses(),
          .default_ssl_certificate = c.default_ssl_certificate};
}

Result<std::chrono::milliseconds> parseDuration(std::string_view text) {
  const auto bad = [&] { return Error("'" + std::string(text) + "' is not a duration"); };
  std::uint64_t value = 0;
  const char* begin = text.data();
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(begin, end, value);
  if (text.empty() || ec != std::errc() || ptr == begin || value > 100'000'000) {
    return bad();
  }
  const std::string_view unit(ptr, static_cast<std::size_t>(end - ptr));
  if (unit == "ms") {
    return std::chrono::milliseconds(value);
  }
  if (unit.empty() || unit == "s") {
    return std::chrono::milliseconds(value * 1000);
  }
  if (unit == "m") {
    return std::chrono::milliseconds(value * 60'000);
  }
  if (unit == "h") {
    return std::chrono::milliseconds(value * 3'600'000);
  }
  return bad();
}

Result<boost::asio::ip::tcp::endpoint> parseEndpoint(std::string_view text) {
  const std::string quoted = "'" + std::string(text) + "'";
  const auto colon = text.rfind(':');
  if (colon == std::string_view::npos) {
    return Error(quoted + " is not ADDR:PORT");
  }
  std::string host(text.substr(0, colon));
  const std::string_view port_text = text.substr(colon + 1);
  unsigned port = 0;
  auto [ptr, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (ec != std::errc() || ptr != port_text.data() + port_text.size() || port > 65535 ||
      port_text.empty()) {
    return Error(quoted + ": port must be a number from 0 to 65535");
  }
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  if (host.empty()) {
    host = "0.0.0.0";
  }
  boost::system::error_code aec;
  auto addr = boost::asio::ip::make_address(host, aec);
  if (aec) {
    return Error(quoted + ": '" + host + "' is not an IP address");
  }
  return boost::asio::ip::tcp::endpoint(addr, static_cast<std::uint16_t>(port));
}

Result<std::optional<AgentConfig>> parseArgs(int argc, char** argv) {
  AgentConfig out;
  out.bpf_pin_dir = std::string(bpf::kPinDir);
  RawFlags raw;
  raw.max_body = out.proxy.max_request_body;
  raw.max_head = out.proxy.limits.max_head_bytes;
  raw.max_idle = out.proxy.max_idle_per_endpoint;
  raw.min_body_rate = out.proxy.min_body_rate;
  CLI::App cli{"ingress-agent: Sluice's node agent, an eBPF-assisted Kubernetes ingress"};
  cli.set_version_flag("--version", std::string("ingress-agent 0.1.0"));
  addSourceFlags(cli, out);
  addStatusFlags(cli, out, raw);
  addServingFlags(cli, out, raw);
  addProxyFlags(cli, raw);
  addEdgeFlags(cli, out, raw);
  addSpliceFlags(cli, out);
  addTlsFlags(cli, out, raw);
  addXdpFlags(cli, out.xdp);  // app/frontdoor_flags.cpp
  addL4Flags(cli, out.l4);    // app/l4_flags.cpp
  try {
    cli.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) {
      cli.exit(e);  // --help, --version
      return std::optional<AgentConfig>();
    }
    return Error(std::string(e.what()) + " (see --help)");
  }
  SLUICE_CHECK(validate(raw, out));
  SLUICE_CHECK(validateXdp(out.xdp));
  SLUICE_CHECK(validateL4(out.l4));
  out.workers = raw.workers;
  out.proxy.max_request_body = raw.max_body;
  out.proxy.max_idle_per_endpoint = raw.max_idle;
  out.proxy.min_body_rate = raw.min_body_rate;
  out.proxy.limits.max_head_bytes = raw.max_head;
  out.proxy.limits.max_request_line = std::min(out.proxy.limits.max_request_line, raw.max_head);
  out.proxy.access_log = !out.access_log.empty();
  return std::optional<AgentConfig>(std::move(out));
}

}  // namespace sluice::app
