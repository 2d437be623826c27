// libFuzzer harness for sluice_http. Besides "no crash, no sanitizer report" it checks the
// properties the proxy relies on: a message split anywhere parses exactly as if it arrived whole,
// results stay inside the input, the normalizers match a slow reference, are idempotent and never
// grow their input, the heads the proxy writes parse back with the same framing, and the chunked
// decoder's output modes write exactly what they promise.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_check.hpp"
#include "http/parser.hpp"
#include "http/rewrite.hpp"

namespace {

using sluice::http::BodyKind;
using sluice::http::ChunkedDecoder;
using sluice::http::Limits;
using sluice::http::ParseError;
using sluice::http::ParseResult;
using sluice::http::ParseStatus;
using sluice::http::RequestHead;
using sluice::http::ResponseHead;

bool inside(std::string_view part, std::string_view whole) {
  return part.empty() ||
         (part.data() >= whole.data() && part.data() + part.size() <= whole.data() + whole.size());
}

bool sameResult(const ParseResult& a, const ParseResult& b) {
  return a.status == b.status && a.error == b.error && a.consumed == b.consumed;
}

void checkResultShape(const ParseResult& r, std::size_t size) {
  switch (r.status) {
    case ParseStatus::kComplete:
      FUZZ_CHECK(r.error == ParseError::kNone);
      FUZZ_CHECK(r.consumed > 0 && r.consumed <= size);
      break;
    case ParseStatus::kIncomplete:
      FUZZ_CHECK(r.error == ParseError::kNone);
      FUZZ_CHECK(r.consumed == 0);
      break;
    case ParseStatus::kError: {
      FUZZ_CHECK(r.error != ParseError::kNone);
      const int status = sluice::http::statusFor(r.error);
      FUZZ_CHECK(status == 400 || status == 414 || status == 431);
      FUZZ_CHECK(r.error != ParseError::kBodyTooLarge);
      FUZZ_CHECK(sluice::http::errorName(r.error) != "unknown");
      break;
    }
  }
}

// A prefix may only be "not yet" or the same verdict as the whole buffer.
void checkPrefix(const ParseResult& whole, const ParseResult& prefix) {
  FUZZ_CHECK(prefix.status == ParseStatus::kIncomplete || sameResult(prefix, whole));
}

// normalizePath written the slow, obvious way: decode, merge slashes, then remove dot-segments
// over a vector of segments, judging each by its part before ';', failing where ".." would pop an
// empty output (above the root).
std::optional<std::string> referencePath(std::string_view path, bool keep_slashes) {
  if (path == "*") {
    return std::string(path);
  }
  if (path.empty() || path[0] != '/') {
    return std::nullopt;
  }
  const auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') {
      return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
      return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
      return c - 'A' + 10;
    }
    return -1;
  };
  const auto unreserved = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
  };
  std::string in;
  for (std::size_t i = 0; i < path.size(); ++i) {
    const auto c = static_cast<unsigned char>(path[i]);
    if (c == '%') {
      if (i + 2 >= path.size() || hex(path[i + 1]) < 0 || hex(path[i + 2]) < 0) {
        return std::nullopt;
      }
      const auto d = static_cast<char>(hex(path[i + 1]) * 16 + hex(path[i + 2]));
      if (unreserved(d)) {
        in += d;
      } else if ((d == '/' || d == '\\') && !keep_slashes) {
        return std::nullopt;
      } else {
        in += '%';
        in += "0123456789ABCDEF"[hex(path[i + 1])];
        in += "0123456789ABCDEF"[hex(path[i + 2])];
      }
      i += 2;
    } else if (c < 0x21 || c > 0x7e || c == '#' || c == '?' || (c == '\\' && !keep_slashes)) {
      return std::nullopt;
    } else {
      in += static_cast<char>(c);
    }
  }
  std::string merged;
  for (const char c : in) {
    if (c != '/' || merged.empty() || merged.back() != '/') {
      merged += c;
    }
  }
  std::vector<std::string> segments;
  for (std::size_t pos = 1;;) {
    const std::size_t next = merged.find('/', pos);
    segments.push_back(
        merged.substr(pos, next == std::string::npos ? std::string::npos : next - pos));
    if (next == std::string::npos) {
      break;
    }
    pos = next + 1;
  }
  std::vector<std::string> out;
  for (std::size_t i = 0; i < segments.size(); ++i) {
    const std::string name = segments[i].substr(0, segments[i].find(';'));
    if (name != "." && name != "..") {
      out.push_back(segments[i]);
      continue;
    }
    if (name == "..") {
      if (out.empty()) {
        return std::nullopt;
      }
      out.pop_back();
    }
    if (i + 1 == segments.size()) {
      out.emplace_back();
    }
  }
  std::string joined;
  for (const std::string& seg : out) {
    joined += "/" + seg;
  }
  return joined.empty() ? std::string("/") : joined;
}

std::optional<std::string> normalized(std::string_view path, sluice::http::EscapedSlashes mode) {
  std::unique_ptr<char[]> out(new char[path.size() + 1]);  // +1: path may be empty
  std::size_t len = 0;
  const sluice::http::PathError e =
      sluice::http::normalizePath(path, {.escaped_slashes = mode}, out.get(), len);
  FUZZ_CHECK(sluice::http::pathErrorName(e) != "unknown");
  if (e != sluice::http::PathError::kNone) {
    FUZZ_CHECK(len == 0);
    return std::nullopt;
  }
  FUZZ_CHECK(len <= path.size());
  return std::string(out.get(), len);
}

void checkPath(std::string_view path) {
  using sluice::http::EscapedSlashes;
  for (const EscapedSlashes mode : {EscapedSlashes::kReject, EscapedSlashes::kKeep}) {
    const std::optional<std::string> once = normalized(path, mode);
    const std::optional<std::string> expected = referencePath(path, mode == EscapedSlashes::kKeep);
    FUZZ_CHECK(once.has_value() == expected.has_value());
    if (!once) {
      continue;
    }
    FUZZ_CHECK(*once == *expected);
    FUZZ_CHECK(*once == "*" || (!once->empty() && (*once)[0] == '/'));
    FUZZ_CHECK(once->find("//") == std::string::npos);
    // A fixed point: what the backend receives normalizes to itself.
    FUZZ_CHECK(normalized(*once, mode) == once);
  }
  // Keeping escaped slashes only ever accepts more, and the same way.
  const std::optional<std::string> rejected = normalized(path, EscapedSlashes::kReject);
  if (rejected) {
    FUZZ_CHECK(normalized(path, EscapedSlashes::kKeep) == rejected);
  }
  std::unique_ptr<char[]> out(new char[path.size() + 1]);
  std::size_t len = 0;
  FUZZ_CHECK(sluice::http::normalizePath(path, out.get(), len) == rejected.has_value());
}

void checkHost(std::string_view host) {
  std::unique_ptr<char[]> out(new char[host.size() + 1]);
  std::size_t len = 0;
  if (!sluice::http::normalizeHost(host, out.get(), len)) {
    return;
  }
  FUZZ_CHECK(len > 0 && len <= host.size());
  const std::string_view once(out.get(), len);
  const bool literal6 = once.front() == '[';
  const std::string_view alphabet =
      literal6 ? "0123456789abcdef:.[]" : "abcdefghijklmnopqrstuvwxyz0123456789.-";
  FUZZ_CHECK(once.find_first_not_of(alphabet) == std::string_view::npos);
  if (!literal6) {
    FUZZ_CHECK(once.size() <= 253 && once.front() != '.' && once.back() != '.');
    FUZZ_CHECK(once.find("..") == std::string_view::npos);
    std::size_t label = 0;
    for (const char c : once) {
      label = c == '.' ? 0 : label + 1;
      FUZZ_CHECK(label <= 63);
    }
  }
  std::unique_ptr<char[]> again(new char[len + 1]);
  std::size_t len2 = 0;
  FUZZ_CHECK(sluice::http::normalizeHost(once, again.get(), len2));
  FUZZ_CHECK(std::string_view(again.get(), len2) == once);
}

struct ChunkedRun {
  ChunkedDecoder::Result last{ParseStatus::kIncomplete, ParseError::kNone, 0};
  std::size_t end = 0;  // absolute offset where the decoder stopped
  std::uint64_t payload = 0;
};

// Feeds `body` in pieces cut at the given offsets (ascending, each <= size).
template <std::size_t N>
ChunkedRun runChunked(std::string_view body, const std::size_t (&cuts)[N]) {
  ChunkedDecoder d(256);
  ChunkedRun run;
  std::size_t pos = 0;
  for (std::size_t i = 0; i <= N; ++i) {
    const std::size_t next = i < N ? cuts[i] : body.size();
    const std::string_view piece = body.substr(pos, next - pos);
    run.last = d.feed(piece);
    run.end = pos + run.last.consumed;
    if (run.last.status == ParseStatus::kIncomplete) {
      FUZZ_CHECK(run.last.consumed == piece.size());
    } else {
      FUZZ_CHECK(run.last.consumed <= piece.size());
      break;
    }
    pos = next;
  }
  // A finished or failed decoder stays that way.
  const ChunkedDecoder::Result after = d.feed(body.substr(run.end));
  FUZZ_CHECK(after.consumed == 0 || run.last.status == ParseStatus::kIncomplete);
  if (run.last.status != ParseStatus::kIncomplete) {
    FUZZ_CHECK(after.status == run.last.status);
  }
  run.payload = d.payloadBytes();
  return run;
}

void checkChunked(std::string_view body, std::size_t split) {
  const std::size_t whole_cuts[] = {0};
  const ChunkedRun whole = runChunked(body, whole_cuts);
  const std::size_t split_cuts[] = {split / 2, split};
  const ChunkedRun parts = runChunked(body, split_cuts);
  FUZZ_CHECK(whole.last.status == parts.last.status);
  FUZZ_CHECK(whole.last.error == parts.last.error);
  FUZZ_CHECK(whole.end == parts.end);
  FUZZ_CHECK(whole.payload == parts.payload);
  if (whole.last.status == ParseStatus::kError) {
    FUZZ_CHECK(whole.end < body.size());
  }

  if (body.size() <= 512) {
    ChunkedDecoder d(256);
    std::size_t i = 0;
    ChunkedDecoder::Result r{ParseStatus::kIncomplete, ParseError::kNone, 0};
    for (; i < body.size(); ++i) {
      r = d.feed(body.substr(i, 1));
      if (r.status != ParseStatus::kIncomplete) {
        break;
      }
    }
    if (whole.last.status == ParseStatus::kIncomplete) {
      FUZZ_CHECK(r.status == ParseStatus::kIncomplete);
    } else {
      FUZZ_CHECK(r.status == whole.last.status && r.error == whole.last.error);
      FUZZ_CHECK(i + r.consumed == whole.end);
    }
  }
}

// One pass of a decoder in `mode` over `body` cut at `cut`, the way the forwarder's pump drives
// it: what it would write, where it stopped, and how.
struct ModeRun {
  ChunkedDecoder::Result last{ParseStatus::kIncomplete, ParseError::kNone, 0};
  std::size_t end = 0;
  std::string written;
};

ModeRun runMode(std::string_view body, ChunkedDecoder::Mode mode, std::size_t cut,
                std::uint64_t max_payload) {
  static char scratch[256];
  ChunkedDecoder d(256);
  d.reset({.mode = mode, .max_payload = max_payload, .trailer_scratch = scratch});
  ModeRun run;
  ChunkedDecoder::Spans spans;
  std::size_t pos = 0;
  while (true) {
    const std::size_t limit = pos < cut ? cut : body.size();
    const std::string_view piece = body.substr(pos, limit - pos);
    run.last = d.feed(piece, spans);
    FUZZ_CHECK(run.last.consumed <= piece.size());
    run.end = pos + run.last.consumed;
    if (run.last.status == ParseStatus::kError) {
      FUZZ_CHECK(spans.count == 0);
      return run;
    }
    FUZZ_CHECK(spans.count <= ChunkedDecoder::Spans::kCapacity);
    for (std::size_t i = 0; i < spans.count; ++i) {
      FUZZ_CHECK(!spans.part[i].empty());
      FUZZ_CHECK(inside(spans.part[i], piece) ||
                 inside(spans.part[i], std::string_view(scratch, sizeof scratch)));
      run.written.append(spans.part[i]);
    }
    pos = run.end;
    if (run.last.status == ParseStatus::kComplete) {
      return run;
    }
    if (run.last.consumed < piece.size()) {
      FUZZ_CHECK(mode == ChunkedDecoder::Mode::kDechunk &&
                 spans.count == ChunkedDecoder::Spans::kCapacity);
    } else if (pos == body.size()) {
      return run;
    }
  }
}

// The output modes judge a body exactly as validation does, and write what they promise: the
// raw bytes; a valid body of the same payload without header-only trailers; the payload only.
void checkChunkedModes(std::string_view body, std::size_t split, std::uint64_t max_payload) {
  using Mode = ChunkedDecoder::Mode;
  const ModeRun raw = runMode(body, Mode::kValidate, split, max_payload);
  const ModeRun filtered = runMode(body, Mode::kFilterTrailers, split, max_payload);
  const ModeRun payload = runMode(body, Mode::kDechunk, split, max_payload);
  for (const ModeRun* r : {&filtered, &payload}) {
    FUZZ_CHECK(r->last.status == raw.last.status && r->last.error == raw.last.error);
    FUZZ_CHECK(r->end == raw.end);
  }
  if (raw.last.status == ParseStatus::kError) {
    FUZZ_CHECK(raw.last.error != ParseError::kBodyTooLarge || max_payload != 0);
    return;
  }
  FUZZ_CHECK(raw.written == body.substr(0, raw.end));
  if (raw.last.status != ParseStatus::kComplete) {
    return;
  }
  FUZZ_CHECK(filtered.written.size() <= raw.written.size());
  // The filtered body is a valid body with the same payload, and filtering it changes nothing.
  const ModeRun again = runMode(filtered.written, Mode::kFilterTrailers, split / 2, 0);
  FUZZ_CHECK(again.last.status == ParseStatus::kComplete);
  FUZZ_CHECK(again.end == filtered.written.size() && again.written == filtered.written);
  FUZZ_CHECK(runMode(filtered.written, Mode::kDechunk, 0, 0).written == payload.written);
  // Within the limit, a limit changes nothing.
  if (max_payload != 0) {
    FUZZ_CHECK(payload.written.size() <= max_payload);
  }
}

// The head sent upstream is itself a valid request head that keeps the method, the routed path
// and the framing, and carries the forwarding fields the rules promise.
void checkUpstreamHead(const RequestHead& head, std::string_view in) {
  static char path_buf[8192];
  std::size_t path_len = 0;
  if (head.path.size() > sizeof path_buf ||
      !sluice::http::normalizePath(head.path, path_buf, path_len) || path_buf[0] != '/' ||
      (head.host.empty() && head.authority.empty()) || head.header_count > 90) {
    return;
  }
  const std::string_view path(path_buf, path_len);
  const bool trusted = !in.empty() && (in.back() & 1) != 0;
  const auto by_ten = [](const void*, std::string_view a) { return a.starts_with("10."); };
  const sluice::http::Forwarding fwd{.client_ip = trusted ? "10.9.9.9" : "192.0.2.1",
                                     .port = "8080",
                                     .trusted_peer = trusted,
                                     .trusted = {by_ten, nullptr},
                                     .upgrade_protocols = "websocket,h2c"};
  static std::string out;
  static std::string scratch;
  sluice::http::buildUpstreamHead(head, path, fwd, out, scratch);
  static RequestHead parsed;
  const Limits roomy{.max_request_line = 1 << 20, .max_head_bytes = 1 << 20};
  const ParseResult r = sluice::http::parseRequestHead(out, parsed, roomy);
  FUZZ_CHECK(r.status == ParseStatus::kComplete && r.consumed == out.size());
  FUZZ_CHECK(parsed.method == head.method && parsed.path == path && parsed.query == head.query);
  FUZZ_CHECK(parsed.body == head.body && parsed.content_length == head.content_length);
  FUZZ_CHECK(parsed.upgrade == sluice::http::upgradeAllowed(head, fwd.upgrade_protocols));
  std::size_t xff = 0;
  std::size_t real_ip = 0;
  for (std::size_t i = 0; i < parsed.header_count; ++i) {
    const std::string_view name = parsed.headers[i].name;
    FUZZ_CHECK(name.find('_') == std::string_view::npos);
    FUZZ_CHECK(!sluice::http::iequals(name, "x-original-url") &&
               !sluice::http::iequals(name, "x-rewrite-url") &&
               !sluice::http::iequals(name, "expect") &&
               !sluice::http::iequals(name, "keep-alive") && !sluice::http::iequals(name, "te"));
    if (sluice::http::iequals(name, "x-forwarded-for")) {
      ++xff;
      FUZZ_CHECK(parsed.headers[i].value.ends_with(fwd.client_ip));
      FUZZ_CHECK(trusted || parsed.headers[i].value == fwd.client_ip);
    } else if (sluice::http::iequals(name, "x-real-ip")) {
      ++real_ip;
      FUZZ_CHECK(trusted ? !parsed.headers[i].value.empty()
                         : parsed.headers[i].value == fwd.client_ip);
    } else if (!trusted) {
      FUZZ_CHECK(!sluice::http::iequals(name, "forwarded") &&
                 !sluice::http::iequals(name, "x-forwarded-prefix"));
    }
  }
  FUZZ_CHECK(xff == 1 && real_ip == 1);
}

// The head sent to the client is a valid response head with the promised framing.
void checkClientHead(const ResponseHead& head, std::string_view method, std::size_t split) {
  if (head.header_count > 95) {
    return;
  }
  const sluice::http::ClientResponse client{
      .close = (split & 1) != 0,
      .http10 = (split & 2) != 0,
      .dechunk = sluice::http::dechunkForClient(head, (split & 2) != 0)};
  static std::string out;
  sluice::http::buildResponseHead(head, client, out);
  static ResponseHead parsed;
  const ParseResult r = sluice::http::parseResponseHead(out, parsed, method);
  FUZZ_CHECK(r.status == ParseStatus::kComplete && r.consumed == out.size());
  FUZZ_CHECK(parsed.status == head.status);
  std::size_t te = 0;
  for (std::size_t i = 0; i < parsed.header_count; ++i) {
    te += sluice::http::iequals(parsed.headers[i].name, "transfer-encoding") ? 1 : 0;
  }
  FUZZ_CHECK(te <= 1);
  const bool bodiless = head.status < 200 || head.status == 204 || head.status == 304;
  FUZZ_CHECK(te == 0 || (!bodiless && !client.dechunk));
  if (client.dechunk) {
    FUZZ_CHECK(parsed.body == BodyKind::kUntilClose && !parsed.keep_alive);
  } else if (head.status >= 200) {
    FUZZ_CHECK(parsed.body == head.body);
  }
}

// Untrusted text in the address and upgrade helpers: no crash, answers inside their inputs.
void checkForwardingHelpers(std::string_view in, std::size_t split) {
  const std::string_view a = in.substr(0, split);
  const std::string_view b = in.substr(split);
  const auto odd = [](const void*, std::string_view s) { return (s.size() & 1) != 0; };
  const std::string_view real = sluice::http::realClientAddress(a, "192.0.2.1", {odd, nullptr});
  FUZZ_CHECK(real == "192.0.2.1" || inside(real, a));
  const bool allowed = sluice::http::upgradeListAllowed(a, b);
  const bool accepted = sluice::http::upgradeListAccepted(a, b, b);
  FUZZ_CHECK(!accepted || allowed);
  sluice::http::validUpgradeProtocols(a);
}

void checkRequest(std::string_view in, std::size_t split, const Limits& limits) {
  static RequestHead head;
  static RequestHead other;
  const ParseResult r = sluice::http::parseRequestHead(in, head, limits);
  checkResultShape(r, in.size());
  checkPrefix(r, sluice::http::parseRequestHead(in.substr(0, split), other, limits));
  if (r.status != ParseStatus::kComplete) {
    return;
  }

  FUZZ_CHECK(r.consumed <= limits.max_head_bytes);
  FUZZ_CHECK(
      sameResult(sluice::http::parseRequestHead(in.substr(0, r.consumed), other, limits), r));
  FUZZ_CHECK(head.version_minor == 0 || head.version_minor == 1);
  FUZZ_CHECK(head.header_count <= limits.max_headers &&
             head.header_count <= sluice::http::kMaxHeaders);
  FUZZ_CHECK(!head.method.empty() && !head.target.empty());
  for (const std::string_view v :
       {head.method, head.target, head.query, head.authority, head.host}) {
    FUZZ_CHECK(inside(v, in));
  }
  FUZZ_CHECK(inside(head.path, in) || head.path == "/");
  for (std::size_t i = 0; i < head.header_count; ++i) {
    FUZZ_CHECK(!head.headers[i].name.empty());
    FUZZ_CHECK(inside(head.headers[i].name, in) && inside(head.headers[i].value, in));
  }
  FUZZ_CHECK(head.version_minor == 0 || !head.host.empty());
  FUZZ_CHECK(head.body != BodyKind::kUntilClose);
  FUZZ_CHECK((head.body == BodyKind::kContentLength) == (head.content_length != 0));

  checkPath(head.path);
  checkUpstreamHead(head, in);
  if (!head.host.empty()) {
    checkHost(head.host);
  }
  if (!head.authority.empty()) {
    checkHost(head.authority);
  }
  if (head.body == BodyKind::kChunked) {
    const std::string_view body = in.substr(r.consumed);
    checkChunked(body, split < body.size() ? split : body.size());
    checkChunkedModes(body, split < body.size() ? split : body.size(), 0);
  }
}

void checkResponse(std::string_view in, std::size_t split, std::string_view method,
                   const Limits& limits) {
  static ResponseHead head;
  static ResponseHead other;
  const ParseResult r = sluice::http::parseResponseHead(in, head, method, limits);
  checkResultShape(r, in.size());
  FUZZ_CHECK(r.error != ParseError::kRequestLineTooLong);
  checkPrefix(r, sluice::http::parseResponseHead(in.substr(0, split), other, method, limits));
  if (r.status != ParseStatus::kComplete) {
    return;
  }
  FUZZ_CHECK(head.status >= 100 && head.status <= 599);
  FUZZ_CHECK(inside(head.reason, in));
  if (method == "HEAD" || head.status < 200 || head.status == 204 || head.status == 304) {
    FUZZ_CHECK(head.body == BodyKind::kNone);
  }
  if (head.body == BodyKind::kUntilClose) {
    FUZZ_CHECK(!head.keep_alive);
  }
  FUZZ_CHECK((head.body == BodyKind::kContentLength) == (head.content_length != 0));
  checkClientHead(head, method, split);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  const std::size_t split = sluice::fuzz::splitPoint(data, size);

  // Default limits, and tiny data-derived ones so the limit paths are reachable in short inputs.
  const Limits defaults;
  const auto byte = [&](std::size_t i) -> std::size_t { return i < size ? data[i] : 0; };
  const Limits tiny{.max_request_line = 8 + byte(1) % 64,
                    .max_head_bytes = 16 + byte(2),
                    .max_headers = byte(3) % 6};
  checkRequest(in, split, defaults);
  checkRequest(in, split, tiny);
  for (const std::string_view method : {"GET", "HEAD", "CONNECT"}) {
    checkResponse(in, split, method, defaults);
  }
  checkResponse(in, split, "GET", tiny);

  checkChunked(in, split);
  checkChunkedModes(in, split, size > 2 ? data[1] * 4 : 0);
  checkForwardingHelpers(in, split);
  checkPath(in);
  checkHost(in);
  sluice::http::isHopByHop(in.substr(0, split), in.substr(split));
  return 0;
}
