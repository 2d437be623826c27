// What a proxy changes in a message head, and the connection-reuse rules: pure functions over
// parsed heads, so every rule is unit-tested without a socket.
//
// Framing is always written from what the parser accepted, never copied from the message: a
// Connection header naming Content-Length, Transfer-Encoding or Host cannot strip them and
// desynchronise the next hop. Heads are built into caller-owned strings that keep their capacity
// across requests, so the steady state allocates nothing.
#pragma once

#include <string>
#include <string_view>

#include "http/parser.hpp"

namespace sluice::http {

// A test on an address literal ("192.0.2.1", "2001:db8::1": no brackets, no port), as a function
// pointer and its context, so the hot path neither allocates nor depends on common/. The agent
// passes its --trusted-proxies set: {&net::CidrSet::matchText, &set}.
struct AddressPredicate {
  bool (*fn)(const void* context, std::string_view address) = nullptr;
  const void* context = nullptr;
  bool operator()(std::string_view address) const { return fn != nullptr && fn(context, address); }
};

// The Upgrade protocols allowed when a Service does not list its own
// (annotation sluice.dev/upgrade-protocols, a comma-separated list of protocol names).
inline constexpr std::string_view kDefaultUpgradeProtocols = "websocket";

// What the agent knows about the connection a request came on.
struct Forwarding {
  // The peer's address as text, IPv4-mapped addresses unmapped; with the PROXY protocol, the
  // source address the trusted load balancer reported.
  std::string_view client_ip{};
  std::string_view proto = "http";  // the listener's scheme, for X-Forwarded-Proto
  std::string_view port{};          // the listener's port, for X-Forwarded-Port; "" = not sent
  // client_ip is inside --trusted-proxies: its forwarding fields are kept and extended.
  bool trusted_peer = false;
  // --trusted-proxies, to find X-Real-IP behind a chain of trusted proxies.
  AddressPredicate trusted{};
  // Comma-separated protocol names the route allows in Upgrade (case-insensitive, a
  // "/version" suffix ignored); "" allows none.
  std::string_view upgrade_protocols = kDefaultUpgradeProtocols;
};

// The request head sent upstream, into `out` (cleared first): the request line with `path` (the
// normalized routing path; the query as received), Host (the absolute-form authority wins), the
// client's end-to-end fields, then framing (Content-Length or chunked), Connection/Upgrade for an
// allowed upgrade (only the allowed protocols of the request's list), and the forwarding fields.
// Always dropped: hop-by-hop fields, Expect, every name containing '_', X-Real-IP,
// X-Original-URL and X-Rewrite-URL. From an untrusted peer also X-Forwarded-For, -Proto, -Host,
// -Port, -Prefix and Forwarded; the agent then sends X-Forwarded-For and X-Real-IP (the peer),
// X-Forwarded-Proto (fwd.proto), X-Forwarded-Host (the authority or Host) and X-Forwarded-Port
// (fwd.port). From a trusted peer, X-Forwarded-For is the client's list (several fields joined)
// plus the peer, the client's X-Forwarded-Proto/-Host/-Port (the first of each) win over the
// agent's, X-Forwarded-Prefix and Forwarded pass unchanged, and X-Real-IP is the rightmost
// address of that list that is not a trusted proxy (realClientAddress). `scratch` keeps its
// capacity across calls (several X-Forwarded-For fields).
void buildUpstreamHead(const RequestHead& req, std::string_view path, const Forwarding& fwd,
                       std::string& out, std::string& scratch);

// The client's address behind trusted proxies, for X-Real-IP: walking `xff` (the X-Forwarded-For
// list the trusted peer sent) from the right, the first address `trusted` does not cover; the
// leftmost one if all are trusted; `peer` if the list is empty. An element that is not an IP
// literal (with an optional port, IPv6 in brackets) stops the walk at the address to its right,
// so the result is always an address a trusted hop vouched for.
std::string_view realClientAddress(std::string_view xff, std::string_view peer,
                                   const AddressPredicate& trusted);

// Whether the request's Upgrade is forwarded as an upgrade: Connection: upgrade and Upgrade were
// sent, and `allowed` (see Forwarding::upgrade_protocols) names at least one protocol of its
// list. When false the request is forwarded as a plain request (no Connection: upgrade, no
// Upgrade) and a 101 for it is a bad response (502). The forwarder uses this for req.upgrade.
bool upgradeAllowed(const RequestHead& req, std::string_view allowed);

// Whether a 101 answers the upgrade that was forwarded: it carries Upgrade, and every protocol it
// lists is one the request asked for and `allowed` permits (names case-insensitive; a version,
// when both sides give one, equal). Otherwise the session answers 502 and closes.
bool upgradeAccepted(const RequestHead& req, std::string_view allowed, const ResponseHead& resp);

// The same two rules over field values (a list of comma-separated Upgrade values each).
bool upgradeListAllowed(std::string_view request_upgrade, std::string_view allowed);
bool upgradeListAccepted(std::string_view request_upgrade, std::string_view allowed,
                         std::string_view response_upgrade);

// Whether `list` is a valid value for sluice.dev/upgrade-protocols: one or more comma-separated
// tokens (protocol names, no version), OWS around them allowed.
bool validUpgradeProtocols(std::string_view list);

// How the response is relayed to the client.
struct ClientResponse {
  bool close = false;    // the client connection closes after it: Connection: close
  bool http10 = false;   // the client speaks HTTP/1.0: Connection: keep-alive when kept
  bool dechunk = false;  // the chunked body is relayed de-chunked (see dechunkForClient)
  // Strict-Transport-Security for a final response (replacing the upstream's); "" = none.
  std::string_view hsts{};
};

// The response head sent to the client, into `out`: the status line as HTTP/1.1, the upstream's
// end-to-end fields, framing as the upstream announced it, Connection: close when closing (or
// keep-alive for an HTTP/1.0 client that keeps the connection). Framing rules:
// - 1xx, 204 and 304 carry no Transfer-Encoding; 1xx and 204 no Content-Length either (a 304's
//   describes the entity and stays, as does a HEAD response's);
// - several Transfer-Encoding fields are sent as one, values joined with ", ";
// - `dechunk`: no Transfer-Encoding and Connection: close: the body that follows is the payload
//   only (ChunkedDecoder::Mode::kDechunk), delimited by the close.
// For a relayed 1xx it adds no Connection field (that belongs to the final response).
void buildResponseHead(const ResponseHead& resp, const ClientResponse& client, std::string& out);
// The same with dechunk = false.
void buildResponseHead(const ResponseHead& resp, bool close, bool client_http10, std::string& out);

// Whether a response must reach this client de-chunked: its body is chunked and the client
// speaks HTTP/1.0, which cannot read chunked framing. The client connection then closes after it.
bool dechunkForClient(const ResponseHead& resp, bool client_http10);

// RFC 9110 §9.2.2: the methods a proxy may re-send after an ambiguous failure.
bool isIdempotent(std::string_view method);

// Whether the client connection must close after this response: the client asked to, the body
// is delimited by closing, or an HTTP/1.0 client gets a chunked body de-chunked (delimited by
// the close).
bool mustCloseClient(bool client_keep_alive, bool client_http10, const ResponseHead& resp);

// Whether the upstream connection may carry another request once this response's body was read
// completely: the upstream keeps it alive, the body is not close-delimited, and a 204/304 did not
// announce a body it may still send.
bool upstreamReusable(const ResponseHead& resp);

}  // namespace sluice::http
