// Agent settings from the command line. Parsing and validation are the only place on the agent's
// path where exceptions are fine (startup); everything wrong comes back as one Error naming the
// flag.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include <boost/asio/ip/tcp.hpp>

#include "app/frontdoor_config.hpp"
#include "app/l4_config.hpp"
#include "common/cidr.hpp"
#include "common/result.hpp"
#include "model/translate.hpp"
#include "proxy/config.hpp"
#include "tls/context.hpp"

namespace sluice::app {

struct AgentConfig {
  std::string manifests_dir;    // manifests source; "" = the Kubernetes API
  std::string kubeconfig;       // API source: kubeconfig path; "" = in-cluster
  std::string watch_namespace;  // API source: "" = all namespaces
  // API source: Ingress status, written by the leader of a Lease among all agents.
  bool update_status = true;
  std::string publish_address;     // comma-separated IPs/DNS names; "" = HOST_IP from the env
  std::string election_namespace;  // "" = POD_NAMESPACE from the env, else sluice-system
  std::string election_id = "sluice-ingress-leader";  // the Lease's name
  std::chrono::milliseconds lease_duration{15'000};
  std::chrono::milliseconds renew_deadline{10'000};
  std::chrono::milliseconds retry_period{2'000};
  boost::asio::ip::tcp::endpoint listen_http;
  boost::asio::ip::tcp::endpoint admin;
  unsigned workers = 1;
  std::size_t max_connections = 0;  // client connections, agent-wide; 0 = sized (app/sizing.hpp)
  std::string ingress_class = "sluice";
  std::string controller = "sluice.dev/ingress";
  std::string log_level = "info";
  std::string access_log;  // "" = off, "stdout", or a file path
  std::chrono::milliseconds drain_timeout{30'000};
  // On SIGTERM, /readyz fails at once but the listeners keep accepting this long before the
  // drain starts, so load balancers move traffic away before connections are refused.
  std::chrono::milliseconds shutdown_delay{0};
  // --wait-shutdown: instead of serving, SIGTERM this process (the agent, PID 1 in its
  // container) and wait for it to exit; the DaemonSet's preStop. 0 = serve.
  int wait_shutdown_pid = 0;
  std::chrono::milliseconds manifest_poll{250};
  std::string splice = "auto";  // auto | sockmap | pipe | copy (resolved at startup)
  std::string bpf_pin_dir;      // bpffs directory of the pinned maps; "" = bpf::kPinDir
  std::string tcp_services = "sluice-system/sluice-tcp-services";  // ConfigMap ns/name, "" = off
  model::HostOwnership host_ownership = model::HostOwnership::kShared;
  net::CidrSet allow_endpoint_cidrs;  // API source: exceptions to the endpoint safety check
  // HTTPS (docs/tls.md): the listener (none: off), the default certificate's Secret, protocol
  // settings, and whether kTLS is tried (--ktls auto).
  std::optional<boost::asio::ip::tcp::endpoint> listen_https;
  std::string default_ssl_certificate;
  tls::Settings tls;
  bool ktls_auto = true;
  proxy::ProxyConfig proxy;
  XdpSettings xdp;  // the XDP front door (app/frontdoor_config.hpp)
  L4Settings l4;    // the XDP L4 fast path (app/l4_config.hpp)
};

// What translate() needs of the flags.
model::TranslateOptions translateOptions(const AgentConfig& config);

// Parses argv. --help and --version print and give nullopt (exit 0); a bad argument is an Error
// naming the flag (the caller prints it and exits 2).
Result<std::optional<AgentConfig>> parseArgs(int argc, char** argv);

// "10s", "250ms", "2m", "1h", or a bare number of seconds.
Result<std::chrono::milliseconds> parseDuration(std::string_view text);
// "ADDR:PORT", "[v6]:PORT" or ":PORT" (all addresses).
Result<boost::asio::ip::tcp::endpoint> parseEndpoint(std::string_view text);

}  // namespace sluice::app
