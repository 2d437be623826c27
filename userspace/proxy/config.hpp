// Data-plane settings, fixed at startup (flags) and shared read-only by all workers.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "common/cidr.hpp"
#include "http/normalize.hpp"
#include "http/parser.hpp"
#include "proxy/relay/relay.hpp"

namespace sluice::proxy {

struct ProxyConfig {
  std::chrono::milliseconds header_timeout{10'000};  // first byte of a head → its end
  std::chrono::milliseconds idle_timeout{60'000};    // keep-alive wait for the next request
  std::chrono::milliseconds body_timeout{60'000};    // inactivity while reading a request body
  // First byte of the head → last byte of the body, whatever the activity; 0 = none.
  std::chrono::milliseconds request_timeout{60'000};
  // Request bodies: at least this many bytes/s in every 10 s window; 0 = no minimum.
  std::uint64_t min_body_rate = 1024;
  std::chrono::milliseconds upstream_connect_timeout{5'000};
  std::chrono::milliseconds upstream_response_timeout{60'000};  // head, and inactivity in body
  std::chrono::milliseconds upstream_idle_timeout{30'000};      // pooled idle connections
  std::chrono::milliseconds tunnel_idle_timeout{3'600'000};     // Upgrade tunnels
  std::uint64_t max_request_body = 1ULL << 30;                  // 413 above; 0 = unlimited
  // Per-connection stream buffer, each side. A head larger than this grows the buffer up to
  // limits.max_head_bytes; bodies stream through it.
  std::size_t io_buffer_bytes = 16 * 1024;
  // Idle upstream connections kept per endpoint and worker. Too low a cap makes a busy worker
  // close and reopen upstream connections on every burst (measured: 0.18 connects per request at
  // 1,000 client connections with a cap of 128); idle ones expire after upstream_idle_timeout.
  std::size_t max_idle_per_endpoint = 4096;
  http::Limits limits;
  http::PathOptions paths{};  // --path-escaped-slashes
  // Peers whose forwarding headers (and PROXY protocol header) are believed.
  net::CidrSet trusted_proxies;
  bool proxy_protocol = false;  // the HTTP listener accepts a PROXY header from trusted peers
  // Circuit breakers per cluster and agent (a Service's annotations override them).
  std::uint32_t cluster_max_connections = 4096;  // upstream connections busy with a request
  std::uint32_t cluster_max_pending = 1024;      // requests waiting for a connection
  // HTTPS listener (docs/tls.md).
  std::chrono::milliseconds tls_handshake_timeout{10'000};  // accept → handshake done
  std::size_t max_tls_handshakes = 1024;                    // concurrent handshakes, agent-wide
  std::size_t max_client_hello = 16 * 1024;
  bool ktls = false;  // --ktls auto, and the kernel has it: kTLS for TLS 1.2 connections
  // --tls13-record-layer sluice: TLS 1.3 records are the agent's after the handshake, and the
  // connection's OpenSSL object is freed (tls/record13.hpp).
  bool own_tls13_records = true;
  std::uint16_t https_port = 443;  // the port in a redirect's Location (left out when 443)
  bool access_log = false;
  SpliceConfig splice;
};

}  // namespace sluice::proxy
