// Helpers shared by the sluice_http tests: incremental drivers that feed a message the way a
// socket would, so every test can assert "byte by byte == all at once".
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "http/parser.hpp"

namespace sluice::http::testing {

// Re-parses every growing prefix, as the proxy does after each read, and returns the first
// result that is not kIncomplete (or kIncomplete if the whole buffer never completes).
template <typename Head, typename ParseFn>
ParseResult parseBytewise(std::string_view buf, Head& out, ParseFn&& parse) {
  ParseResult r;
  for (std::size_t n = 0; n <= buf.size(); ++n) {
    r = parse(buf.substr(0, n), out);
    if (r.status != ParseStatus::kIncomplete) {
      return r;
    }
  }
  return r;
}

inline ParseResult parseRequestBytewise(std::string_view buf, RequestHead& out,
                                        const Limits& limits = {}) {
  return parseBytewise(
      buf, out, [&](std::string_view b, RequestHead& h) { return parseRequestHead(b, h, limits); });
}

inline ParseResult parseResponseBytewise(std::string_view buf, ResponseHead& out,
                                         std::string_view method, const Limits& limits = {}) {
  return parseBytewise(buf, out, [&](std::string_view b, ResponseHead& h) {
    return parseResponseHead(b, h, method, limits);
  });
}

// Total outcome of running a ChunkedDecoder over a body delivered in pieces of `step` bytes
// (0 = all at once). `consumed` is relative to the start of the body.
struct ChunkedOutcome {
  ParseStatus status = ParseStatus::kIncomplete;
  ParseError error = ParseError::kNone;
  std::size_t consumed = 0;
  std::uint64_t payload = 0;

  bool operator==(const ChunkedOutcome&) const = default;
};

inline ChunkedOutcome runChunked(std::string_view body, std::size_t step = 0,
                                 std::size_t max_trailer = 8192) {
  ChunkedDecoder d(max_trailer);
  ChunkedOutcome o;
  if (step == 0) {
    step = body.size() == 0 ? 1 : body.size();
  }
  std::size_t pos = 0;
  do {
    const std::string_view piece = body.substr(pos, step);
    const ChunkedDecoder::Result r = d.feed(piece);
    o.status = r.status;
    o.error = r.error;
    o.consumed = pos + r.consumed;
    if (r.status != ParseStatus::kIncomplete) {
      break;
    }
    pos += piece.size();
  } while (pos < body.size());
  o.payload = d.payloadBytes();
  return o;
}

// RequestHead and ResponseHead are ~3 KiB; tests keep them on the heap.
inline std::unique_ptr<RequestHead> newRequest() {
  return std::make_unique<RequestHead>();
}
inline std::unique_ptr<ResponseHead> newResponse() {
  return std::make_unique<ResponseHead>();
}

}  // namespace sluice::http::testing
