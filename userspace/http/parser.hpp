// Strict HTTP/1.1 message-head parser and body framing, with no sockets and no allocation.
//
// The parser is deliberately stricter than RFC 9112 requires wherever leniency has been used for
// request smuggling: a message that two implementations could frame differently is rejected.
// Heads are parsed from a contiguous buffer; the views in RequestHead/ResponseHead point into it,
// so the caller keeps the buffer alive and unmoved while using them.
//
// Choices beyond the RFC: CONNECT must use authority-form with a port, and authority-form is
// CONNECT-only; absolute-form takes only http/https and no userinfo; ports are 1-5 digits up to
// 65535 (an empty port is refused); at most 4 empty lines may precede a request line and none a
// status line; chunk sizes have at most 16 hex digits and a chunk line at most 4 KiB of
// extensions; Content-Length, Transfer-Encoding and Host are refused as trailer fields.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

// The path and host normalizers were declared here; existing callers find them through this.
#include "http/normalize.hpp"

namespace sluice::http {

inline constexpr std::size_t kMaxHeaders = 100;

struct Limits {
  std::size_t max_request_line = 8192;  // method + target + version
  std::size_t max_head_bytes = 32768;   // whole head including the blank line
  std::size_t max_headers = kMaxHeaders;
};

enum class ParseStatus : std::uint8_t {
  kIncomplete,  // need more bytes; nothing is wrong so far
  kComplete,    // a whole head was parsed; `consumed` bytes belong to it
  kError,       // the message is invalid; reply with statusFor(error) and close
};

enum class ParseError : std::uint8_t {
  kNone,
  kBadRequestLine,            // structure of the request line (spaces, missing parts)
  kBadMethod,                 // method is not a token
  kBadTarget,                 // request-target has invalid bytes or form
  kBadVersion,                // not HTTP/1.0 or HTTP/1.1
  kBadStatusLine,             // response status line
  kBadHeaderName,             // empty, non-token, or whitespace before the colon
  kBadHeaderValue,            // control bytes or DEL in a field value
  kObsFold,                   // a line starting with SP/HTAB (obsolete line folding)
  kBareCr,                    // CR not followed by LF, or LF without CR
  kRequestLineTooLong,        // over Limits::max_request_line -> 414
  kHeadTooLarge,              // over Limits::max_head_bytes -> 431
  kTooManyHeaders,            // over Limits::max_headers -> 431
  kBadContentLength,          // not 1*DIGIT, or overflows uint64
  kConflictingContentLength,  // repeated Content-Length (even with equal values)
  kContentLengthWithTransferEncoding,
  kBadTransferEncoding,  // unknown coding, chunked not final, chunked twice, or TE in HTTP/1.0
  kMissingHost,          // HTTP/1.1 request without Host
  kMultipleHost,         // more than one Host header
  kBadHost,              // Host value is not a valid authority
  kBadChunkSize,         // chunk-size not hex, too long, or overflows
  kBadChunkExtension,    // chunk-ext with invalid bytes
  kBadChunkData,         // chunk data not followed by CRLF
  kBadTrailer,           // invalid trailer field
  kBodyTooLarge,         // chunked payload over ChunkedDecoder::Config::max_payload -> 413
};

// The HTTP status a client gets for a request that failed with `e` (400, 413, 414 or 431).
int statusFor(ParseError e);
// A short stable name for metrics and logs, e.g. "bad_chunk_size".
std::string_view errorName(ParseError e);

struct Header {
  std::string_view name;   // as received (case preserved)
  std::string_view value;  // leading/trailing OWS trimmed
};

enum class BodyKind : std::uint8_t {
  kNone,           // no body (no CL/TE on a request; HEAD/1xx/204/304 responses; CL: 0)
  kContentLength,  // exactly content_length bytes follow
  kChunked,        // chunked transfer coding follows; use ChunkedDecoder
  kUntilClose,     // response only: body runs until the upstream closes
};

// Case-insensitive ASCII comparison, for header names and tokens.
bool iequals(std::string_view a, std::string_view b);

struct RequestHead {
  std::string_view method;
  std::string_view target;     // raw request-target as received
  std::string_view path;       // origin-form path (from target; for absolute-form the path part)
  std::string_view query;      // after '?', without it; empty if none
  std::string_view authority;  // absolute-form authority, else empty
  std::string_view host;       // the Host header value (raw)
  int version_minor = 1;       // HTTP/1.<minor>, 0 or 1
  Header headers[kMaxHeaders];
  std::size_t header_count = 0;

  BodyKind body = BodyKind::kNone;
  std::uint64_t content_length = 0;
  bool keep_alive = true;        // after this request, per version and Connection
  bool expect_continue = false;  // Expect: 100-continue
  bool upgrade = false;          // Connection: upgrade together with an Upgrade header
};

struct ResponseHead {
  int status = 0;
  std::string_view reason;
  int version_minor = 1;
  Header headers[kMaxHeaders];
  std::size_t header_count = 0;

  BodyKind body = BodyKind::kNone;
  std::uint64_t content_length = 0;
  bool keep_alive = true;  // the upstream connection can be reused after this response
};

struct ParseResult {
  ParseStatus status = ParseStatus::kIncomplete;
  ParseError error = ParseError::kNone;
  std::size_t consumed = 0;  // bytes of the head, including the final CRLF (kComplete only)
};

// Parse one request head from the start of `buf`. Leading empty lines (CRLF) before the request
// line are skipped as RFC 9112 allows, and counted in `consumed`. Stateless: call again with the
// grown buffer after kIncomplete.
ParseResult parseRequestHead(std::string_view buf, RequestHead& out, const Limits& limits = {});

// Parse one response head. `request_method` decides body framing: HEAD → no body, and a 2xx to
// CONNECT → no body (the tunnel starts).
ParseResult parseResponseHead(std::string_view buf, ResponseHead& out,
                              std::string_view request_method, const Limits& limits = {});

// Incremental decoder for a chunked body, fed raw bytes as they arrive; a body split anywhere
// across reads is judged exactly as if it had arrived whole. It never copies payload. The mode
// decides what the caller writes downstream for the bytes it consumed (feed(data, Spans&)):
// - kValidate: those raw bytes unchanged, so the next hop sees exactly the framing we validated;
// - kFilterTrailers: the raw bytes, minus the trailer fields with header-only semantics
//   (isHeaderOnlyTrailer): the kept trailer section is collected in a caller-provided scratch
//   buffer and emitted once the body ends (a request body forwarded upstream);
// - kDechunk: the payload only, without chunk lines and trailers (a chunked response relayed to
//   an HTTP/1.0 client as a close-delimited body).
// Trailers are validated like header fields in every mode, and Content-Length,
// Transfer-Encoding and Host are refused there. After kComplete, feed() returns kComplete with
// `consumed` 0 until reset(); after kError it keeps returning the same error.
class ChunkedDecoder {
public:
  enum class Mode : std::uint8_t { kValidate, kFilterTrailers, kDechunk };
  struct Config {
    Mode mode = Mode::kValidate;
    // Most payload bytes (the sum of chunk sizes) allowed, 0 for no limit. A chunk-size line
    // that would pass it fails with kBodyTooLarge (413) before any data of that chunk, so a body
    // over --max-request-body is told apart from bad framing (400).
    std::uint64_t max_payload = 0;
    // kFilterTrailers: where the kept trailer section is built, reused for every body. The
    // trailer limit becomes min(max_trailer_bytes, its size): give it max_trailer_bytes.
    std::span<char> trailer_scratch{};
  };
  struct Result {
    ParseStatus status;  // kIncomplete: the body continues (see feed for consumed); kComplete:
                         // the body ended after `consumed` bytes; kError: invalid framing
    ParseError error;
    std::size_t consumed;
  };
  // What to write downstream for one feed(), in order: views into the data fed or into the
  // trailer scratch, valid until the next feed() or reset(). Empty views are never listed.
  struct Spans {
    static constexpr std::size_t kCapacity = 16;
    std::array<std::string_view, kCapacity> part{};
    std::size_t count = 0;
  };

  explicit ChunkedDecoder(std::size_t max_trailer_bytes = 8192) : max_trailer_(max_trailer_bytes) {}
  // Validates `data`; kIncomplete means all of it was consumed. In kValidate the caller forwards
  // data[0, consumed); in the other modes use the Spans overload to know what to write.
  Result feed(std::string_view data);
  // The same, and fills `out` (cleared first) with what to write for the consumed bytes.
  // kDechunk lists one span per chunk's data and stops early when `out` is full: then the status
  // is kIncomplete with consumed < data.size(); write the spans, drop the consumed bytes and call
  // again with the rest before reading more. On kError `out` is meaningless.
  Result feed(std::string_view data, Spans& out);
  // Ready for the next body, with `config`; reset() is kValidate without a payload limit.
  void reset(const Config& config);
  void reset();
  // Payload bytes declared by the chunk-size lines seen so far (counted before their data).
  std::uint64_t payloadBytes() const { return payload_; }

private:
  enum class State : std::uint8_t {
    kSize,
    kExt,
    kSizeLf,
    kData,
    kDataCr,
    kDataLf,
    kTrailerStart,
    kTrailer,
    kTrailerLf,
    kFinalLf,
    kDone,
    kError
  };
  // Position inside a chunk-ext (RFC 9112 §7.1.1); BWS is SP/HTAB only.
  enum class ExtState : std::uint8_t {
    kBeforeSemi,
    kBeforeName,
    kName,
    kAfterName,
    kBeforeValue,
    kToken,
    kQuoted,
    kQuotedEscape,
    kAfterQuoted,
    kAfterValue
  };
  static constexpr std::size_t kTrailerNameCapture = 18;  // longest name checked, plus one

  Result decode(std::string_view data, Spans* out, std::size_t& raw_end);
  Result failAt(ParseError e, std::size_t at);
  ParseError stepSize(char c);
  ParseError stepExt(char c);
  ParseError stepSizeLf(char c);
  ParseError stepTrailer(char c);
  bool trailerNameForbidden() const;
  std::size_t trailerLimit() const;

  State state_ = State::kSize;
  ExtState ext_state_ = ExtState::kBeforeSemi;
  ParseError error_ = ParseError::kNone;
  Mode mode_ = Mode::kValidate;
  bool drop_field_ = false;  // kFilterTrailers: the current trailer field is not forwarded
  std::uint64_t remaining_ = 0;
  std::uint64_t payload_ = 0;
  std::uint64_t max_payload_ = 0;
  std::size_t size_digits_ = 0;
  std::size_t ext_bytes_ = 0;
  std::size_t trailer_bytes_ = 0;
  std::size_t max_trailer_;
  std::size_t trailer_name_len_ = 0;
  char trailer_name_[kTrailerNameCapture] = {};
  std::span<char> scratch_;
  std::size_t scratch_len_ = 0;
  std::size_t field_start_ = 0;  // offset in scratch_ of the current trailer field
};

// RFC 9110 §6.5.1: trailer fields a recipient must not treat like the header field of the same
// name, and which kFilterTrailers drops from a request body: framing and connection control
// (Trailer, TE, Connection, Keep-Alive, Proxy-Connection, Upgrade), routing and request
// modifiers (Expect, Max-Forwards, Cache-Control, Pragma, Range, If-*), authentication
// (Authorization, Proxy-Authorization, Proxy-Authenticate, WWW-Authenticate, Cookie, Set-Cookie),
// content handling (Content-Encoding, Content-Type, Content-Range), forwarding (Forwarded,
// X-Forwarded-*, X-Real-IP, Via, X-Original-URL, X-Rewrite-URL), and any name with '_' (the
// header rule). Content-Length, Transfer-Encoding and Host are refused outright, not dropped.
bool isHeaderOnlyTrailer(std::string_view name);

// Header lookup helpers (case-insensitive names).
std::string_view findHeader(const Header* headers, std::size_t count, std::string_view name);

// True for hop-by-hop fields a proxy must not forward: Connection, Keep-Alive, Proxy-Connection,
// TE, Trailer, Transfer-Encoding, Upgrade, and every field named in a Connection header value.
bool isHopByHop(std::string_view name, std::string_view connection_value);

}  // namespace sluice::http
