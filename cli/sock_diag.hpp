// Socket cookie → TCP addresses, from the kernel's socket table (sock_diag).
//
// The splice maps are keyed by socket cookie and hold no addresses. inet_diag dumps report each
// socket's cookie (idiag_cookie, the same value as SO_COOKIE and bpf_get_socket_cookie), so one
// dump per address family resolves every spliced socket without asking the agent. A dump sees
// only the sockets of the caller's network namespace: run ingressctl in the agent's namespace
// (the host's, for a hostNetwork agent).
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <unordered_set>

#include "common/result.hpp"

namespace sluice::cli {

struct SocketAddresses {
  std::string local;  // "127.0.0.1:8080", "[2001:db8::1]:443"; IPv4-mapped IPv6 shown as IPv4
  std::string remote;
};

// Addresses of the TCP sockets (IPv4 and IPv6, any state) whose cookie is in `cookies`. Cookies
// without a socket in this namespace are absent from the result.
Result<std::unordered_map<std::uint64_t, SocketAddresses>> resolveTcpCookies(
    const std::unordered_set<std::uint64_t>& cookies);

}  // namespace sluice::cli
