// What a proxy changes in a message head, and the connection-reuse rules: pure functions over
// parsed heads, so every rule is unit-tested without a socket.
//
// Framing is always written from what the parser accepted, never copied from the message: a
// Connection header naming Content-Length, Transfer-Encoding or Host cannot strip them and
// desynchronise the next hop.
#pragma once

#include <string>
#include <string_view>

#include "http/parser.hpp"

namespace sluice::http {

// What the agent adds about the client to a request it forwards.
struct Forwarding {
  std::string_view client_ip;       // the peer, appended to X-Forwarded-For
  std::string_view proto = "http";  // X-Forwarded-Proto
};

// The request head sent upstream, into `out` (cleared first): the request line with `path`
// (the normalized routing path; the query as received), Host (the absolute-form authority wins),
// the client's end-to-end fields without hop-by-hop fields, Expect, X-Forwarded-Proto and
// X-Forwarded-Host, then framing (Content-Length or chunked), Connection/Upgrade for an upgrade
// request, and X-Forwarded-For (the client's list, joined, plus the peer), X-Forwarded-Proto and
// X-Forwarded-Host. `scratch` keeps its capacity across calls (several X-Forwarded-For fields).
void buildUpstreamHead(const RequestHead& req, std::string_view path, const Forwarding& fwd,
                       std::string& out, std::string& scratch);

// The response head sent to the client, into `out`: the status line as HTTP/1.1, the upstream's
// end-to-end fields, framing as the upstream announced it (Content-Length only where it
// describes the body or the entity), and Connection: close when `close`, or Connection:
// keep-alive for an HTTP/1.0 client that keeps the connection.
void buildResponseHead(const ResponseHead& resp, bool close, bool client_http10, std::string& out);

// RFC 9110 §9.2.2: the methods a proxy may re-send after an ambiguous failure.
bool isIdempotent(std::string_view method);

// Whether the client connection must close after this response: the client asked to, the body
// is delimited by closing, or an HTTP/1.0 client cannot read a chunked body.
bool mustCloseClient(bool client_keep_alive, bool client_http10, const ResponseHead& resp);

// Whether the upstream connection may carry another request once this response's body was read
// completely: the upstream keeps it alive, the body is not close-delimited, and a 204/304 did not
// announce a body it may still send.
bool upstreamReusable(const ResponseHead& resp);

}  // namespace sluice::http
