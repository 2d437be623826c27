// The routing key: request paths and hosts in the one spelling the route table compares, and
// the rule paths of the snapshot through the same function (model/translate.cpp), so that no
// spelling of a path reaches a backend by a route its normalized form would not take.
//
// The forwarded path is the normalized path: what routed is what the backend receives, and the
// result is a fixed point of the usual backend normalizers (Tomcat, Spring, nginx, Envoy): no
// "//", no dot-segments (also none hidden behind ";" parameters or escapes), no escaped or raw
// backslash and no escaped slash (unless kept opaque), unreserved escapes decoded, the other
// escapes upper-cased. docs/routing.md states the rules for operators.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace sluice::http {

// What a path may do with "%2F", "%5C" and a raw "\" (the per-agent switch
// --path-escaped-slashes=reject|keep).
enum class EscapedSlashes : std::uint8_t {
  kReject,  // 400: a backend that decodes them would see other segments than we routed on
  kKeep,    // opaque: routed and forwarded as received, escapes upper-cased ("%2f" -> "%2F")
};

struct PathOptions {
  EscapedSlashes escaped_slashes = EscapedSlashes::kReject;
};

// Why a path was refused; each is a 400 (counted by name). kNone means normalized.
enum class PathError : std::uint8_t {
  kNone,
  kNotOriginForm,  // empty, or neither "/..." nor "*"
  kBadByte,        // a byte a request-target may not hold here: CTL, SP, DEL, >= 0x80, '#', '?'
  kBadEscape,      // '%' not followed by two hex digits
  kEscapedSlash,   // "%2F" or "%5C" with EscapedSlashes::kReject
  kBackslash,      // a raw "\" with EscapedSlashes::kReject
  kAboveRoot,      // a ".." segment that climbs above "/"
};
inline constexpr std::size_t kPathErrorCount = static_cast<std::size_t>(PathError::kAboveRoot) + 1;

// A short stable name for metrics and logs, e.g. "escaped_slash".
std::string_view pathErrorName(PathError e);

// Normalize an origin-form path (no query) for routing and forwarding, into `out`, which must
// have room for path.size() bytes (the result is never longer). In order, per "/" of the input:
// - runs of "/" are merged into one ("//a///b" -> "/a/b"); "%2F" is not a "/" here;
// - percent-escapes of unreserved characters are decoded, other escapes upper-cased;
// - a segment that is "." or ".." once everything from its first ";" is removed is a dot-segment
//   and is removed with its parameters ("/public/..;x/manager" -> "/manager"), RFC 3986 §5.2.4;
//   a dot-segment at the end leaves the trailing "/" ("/a/b/.." -> "/a/");
// - "%2F", "%5C" and "\" are refused or kept as `options` says.
// "*" (OPTIONS) is returned as is. On an error `out_len` is 0. Allocation-free.
PathError normalizePath(std::string_view path, const PathOptions& options, char* out,
                        std::size_t& out_len);

// The same with the default options (escaped slashes refused); false on any PathError.
bool normalizePath(std::string_view path, char* out, std::size_t& out_len);

// Validate and normalize a Host value or an absolute-form authority for routing: lower-cased,
// the port and one trailing dot removed, IPv6 literals keep their brackets. Accepted: a DNS name
// of LDH labels (letters, digits, '-'; 1-63 bytes each, at most 253 in all, a last label that is
// all digits or "0x..." only as part of a dotted-quad IPv4), an IPv4 dotted quad, a bracketed
// IPv6 literal, each with an optional ":port" (1-5 digits, at most 65535). Everything else is
// false (400): percent-escapes, underscores, sub-delims, commas, zone ids, IPvFuture, userinfo.
// `out` needs host.size() bytes.
bool normalizeHost(std::string_view host, char* out, std::size_t& out_len);

}  // namespace sluice::http
