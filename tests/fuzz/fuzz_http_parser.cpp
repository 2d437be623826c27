// libFuzzer harness for sluice_http. Besides "no crash, no sanitizer report" it checks the
// properties the proxy relies on: a message split anywhere parses exactly as if it arrived whole,
// results stay inside the input, and the normalizers are idempotent and never grow their input.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "http/parser.hpp"

namespace {

using sluice::http::BodyKind;
using sluice::http::ChunkedDecoder;
using sluice::http::Limits;
using sluice::http::ParseError;
using sluice::http::ParseResult;
using sluice::http::ParseStatus;
using sluice::http::RequestHead;
using sluice::http::ResponseHead;

// abort() rather than assert(): the check must survive NDEBUG builds and leave a crash artifact.
#define FUZZ_CHECK(cond)                                                                  \
  do {                                                                                    \
    if (!(cond)) {                                                                        \
      std::fprintf(stderr, "FUZZ_CHECK failed: %s (%s:%d)\n", #cond, __FILE__, __LINE__); \
      std::abort();                                                                       \
    }                                                                                     \
  } while (0)

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
      FUZZ_CHECK(sluice::http::errorName(r.error) != "unknown");
      break;
    }
  }
}

// A prefix may only be "not yet" or the same verdict as the whole buffer.
void checkPrefix(const ParseResult& whole, const ParseResult& prefix) {
  FUZZ_CHECK(prefix.status == ParseStatus::kIncomplete || sameResult(prefix, whole));
}

// normalizePath written the slow, obvious way: decode, then the RFC 3986 §5.2.4 loop verbatim
// over std::string buffers, failing where ".." would pop an empty output (above the root).
std::optional<std::string> referencePath(std::string_view path) {
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
      } else {
        in += '%';
        in += "0123456789ABCDEF"[hex(path[i + 1])];
        in += "0123456789ABCDEF"[hex(path[i + 2])];
      }
      i += 2;
    } else if (c < 0x21 || c > 0x7e || c == '#' || c == '?') {
      return std::nullopt;
    } else {
      in += static_cast<char>(c);
    }
  }
  std::string out;
  const auto pop = [&out]() {
    if (out.empty()) {
      return false;
    }
    out.erase(out.rfind('/'));
    return true;
  };
  while (!in.empty()) {
    if (in.starts_with("/./")) {
      in.replace(0, 3, "/");
    } else if (in == "/.") {
      in = "/";
    } else if (in.starts_with("/../")) {
      in.replace(0, 4, "/");
      if (!pop()) {
        return std::nullopt;
      }
    } else if (in == "/..") {
      in = "/";
      if (!pop()) {
        return std::nullopt;
      }
    } else {
      const std::size_t next = in.find('/', 1);
      out += in.substr(0, next);
      in.erase(0, next == std::string::npos ? in.size() : next);
    }
  }
  return out;
}

void checkPath(std::string_view path) {
  std::unique_ptr<char[]> out(new char[path.size() + 1]);  // +1: path may be empty
  std::size_t len = 0;
  const bool ok = sluice::http::normalizePath(path, out.get(), len);
  const std::optional<std::string> expected = referencePath(path);
  FUZZ_CHECK(ok == expected.has_value());
  if (!ok) {
    return;
  }
  FUZZ_CHECK(len <= path.size());
  const std::string_view once(out.get(), len);
  FUZZ_CHECK(once == *expected);
  FUZZ_CHECK(once == "*" || (!once.empty() && once[0] == '/'));
  std::unique_ptr<char[]> again(new char[len + 1]);
  std::size_t len2 = 0;
  FUZZ_CHECK(sluice::http::normalizePath(once, again.get(), len2));
  FUZZ_CHECK(std::string_view(again.get(), len2) == once);
}

void checkHost(std::string_view host) {
  std::unique_ptr<char[]> out(new char[host.size() + 1]);
  std::size_t len = 0;
  if (!sluice::http::normalizeHost(host, out.get(), len)) {
    return;
  }
  FUZZ_CHECK(len > 0 && len <= host.size());
  const std::string_view once(out.get(), len);
  for (const char c : once) {
    FUZZ_CHECK(!(c >= 'A' && c <= 'Z'));
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
  if (!head.host.empty()) {
    checkHost(head.host);
  }
  if (!head.authority.empty()) {
    checkHost(head.authority);
  }
  if (head.body == BodyKind::kChunked) {
    const std::string_view body = in.substr(r.consumed);
    checkChunked(body, split < body.size() ? split : body.size());
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
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  const std::size_t split =
      size == 0 ? 0 : (static_cast<std::size_t>(data[0]) * 251 + data[size - 1]) % (size + 1);

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
  checkPath(in);
  checkHost(in);
  sluice::http::isHopByHop(in.substr(0, split), in.substr(split));
  return 0;
}
