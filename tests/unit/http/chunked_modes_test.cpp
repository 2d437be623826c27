// The chunked decoder's output modes (trailer filtering, de-chunking) and its payload limit: what
// a pump writes downstream, checked whole, byte by byte and in pieces.
#include <array>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "http/parser.hpp"

namespace sluice::http {
namespace {

using Mode = ChunkedDecoder::Mode;

struct Pumped {
  ParseStatus status = ParseStatus::kIncomplete;
  ParseError error = ParseError::kNone;
  std::string written;       // everything the spans listed, in order
  std::size_t consumed = 0;  // of the whole body
  std::size_t feeds = 0;
};

// Drives a decoder the way the forwarder's pump does: feed what the buffer holds, write the
// spans, drop what was consumed, feed the rest again when the spans were full, else read more
// (here: the next `step` bytes; 0 = all at once).
Pumped pump(std::string_view body, Mode mode, std::size_t step = 0, std::uint64_t max_payload = 0,
            std::size_t max_trailer = 8192, std::size_t scratch_size = 8192) {
  ChunkedDecoder d(max_trailer);
  std::vector<char> scratch(scratch_size);
  d.reset({.mode = mode, .max_payload = max_payload, .trailer_scratch = scratch});
  Pumped p;
  std::string buffer;
  std::size_t read = 0;
  if (step == 0) {
    step = body.size() == 0 ? 1 : body.size();
  }
  ChunkedDecoder::Spans spans;
  while (true) {
    if (buffer.empty()) {
      if (read == body.size()) {
        return p;
      }
      buffer.assign(body.substr(read, step));
      read += buffer.size();
    }
    const ChunkedDecoder::Result r = d.feed(buffer, spans);
    ++p.feeds;
    p.status = r.status;
    p.error = r.error;
    if (r.status == ParseStatus::kError) {
      p.consumed += r.consumed;
      return p;
    }
    EXPECT_LE(spans.count, ChunkedDecoder::Spans::kCapacity);
    for (std::size_t i = 0; i < spans.count; ++i) {
      EXPECT_FALSE(spans.part[i].empty());
      p.written.append(spans.part[i]);
    }
    p.consumed += r.consumed;
    buffer.erase(0, r.consumed);
    if (r.status == ParseStatus::kComplete) {
      return p;
    }
    if (!buffer.empty()) {
      EXPECT_EQ(spans.count, ChunkedDecoder::Spans::kCapacity) << "stopped early with room left";
    }
  }
}

// The same body in every piece size gives the same output.
Pumped pumpAll(std::string_view body, Mode mode, std::uint64_t max_payload = 0) {
  const Pumped whole = pump(body, mode, 0, max_payload);
  for (const std::size_t step : {1, 2, 3, 5, 64}) {
    SCOPED_TRACE(step);
    const Pumped split = pump(body, mode, step, max_payload);
    EXPECT_EQ(split.status, whole.status);
    EXPECT_EQ(split.error, whole.error);
    if (whole.status != ParseStatus::kError) {
      // After an error only the bytes of earlier feeds were written, which depends on the cuts.
      EXPECT_EQ(split.written, whole.written);
    }
    EXPECT_EQ(split.consumed, whole.consumed);
  }
  return whole;
}

TEST(ChunkedModes, ValidateWritesTheRawBytes) {
  const std::string body = "5;x=y\r\nhello\r\n0\r\nX-T: 1\r\n\r\n";
  const Pumped p = pumpAll(body + "NEXT", Mode::kValidate);
  EXPECT_EQ(p.status, ParseStatus::kComplete);
  EXPECT_EQ(p.written, body);
  EXPECT_EQ(p.consumed, body.size());
}

TEST(ChunkedModes, DechunkWritesOnlyThePayload) {
  const std::string body = "5\r\nhello\r\n1;ext=\"q\"\r\n \r\n6\r\nworld!\r\n0\r\nX-T: 1\r\n\r\n";
  const Pumped p = pumpAll(body + "NEXT", Mode::kDechunk);
  EXPECT_EQ(p.status, ParseStatus::kComplete);
  EXPECT_EQ(p.written, "hello world!");
  EXPECT_EQ(p.consumed, body.size());
}

TEST(ChunkedModes, DechunkStopsWhenTheSpansAreFullAndResumes) {
  std::string body;
  std::string payload;
  for (int i = 0; i < 100; ++i) {
    const char c = static_cast<char>('a' + i % 26);
    body += "1\r\n";
    body += c;
    body += "\r\n";
    payload += c;
  }
  body += "0\r\n\r\n";
  const Pumped p = pump(body, Mode::kDechunk);
  EXPECT_EQ(p.status, ParseStatus::kComplete);
  EXPECT_EQ(p.written, payload);
  EXPECT_EQ(p.consumed, body.size());
  EXPECT_GE(p.feeds, 100 / ChunkedDecoder::Spans::kCapacity) << "one span per chunk, 16 a feed";
  EXPECT_EQ(pumpAll(body, Mode::kDechunk).written, payload);
}

TEST(ChunkedModes, DechunkReportsErrorsLikeValidate) {
  const Pumped p = pumpAll("5\r\nhelloXX", Mode::kDechunk);
  EXPECT_EQ(p.status, ParseStatus::kError);
  EXPECT_EQ(p.error, ParseError::kBadChunkData);
  EXPECT_EQ(pumpAll("0\r\nContent-Length: 1\r\n\r\n", Mode::kDechunk).error,
            ParseError::kBadTrailer);
}

TEST(ChunkedModes, FilterKeepsBodiesWithoutTrailersByteForByte) {
  const std::string body = "5\r\nhello\r\n0;last\r\n\r\n";
  const Pumped p = pumpAll(body, Mode::kFilterTrailers);
  EXPECT_EQ(p.status, ParseStatus::kComplete);
  EXPECT_EQ(p.written, body);
}

TEST(ChunkedModes, FilterDropsTrailersWithHeaderOnlySemantics) {
  const std::string chunks = "3\r\nabc\r\n0\r\n";
  const Pumped p = pumpAll(chunks +
                               "Authorization: Bearer x\r\n"
                               "X-Checksum: 1\r\n"
                               "cookie: a=b\r\n"
                               "X-Forwarded-For: 10.0.0.1\r\n"
                               "If-Match: *\r\n"
                               "X_Forwarded_For: 10.0.0.2\r\n"
                               "Content-Digest: sha-256=:x:\r\n"
                               "Via: 1.1 x\r\n"
                               "\r\n",
                           Mode::kFilterTrailers);
  EXPECT_EQ(p.status, ParseStatus::kComplete);
  EXPECT_EQ(p.written, chunks + "X-Checksum: 1\r\nContent-Digest: sha-256=:x:\r\n\r\n");
}

TEST(ChunkedModes, FilterOutputIsAValidBodyOfTheSamePayload) {
  const std::string body = "4\r\nwiki\r\n5\r\npedia\r\n0\r\nTE: x\r\nServer-Timing: a\r\n\r\n";
  const Pumped p = pumpAll(body, Mode::kFilterTrailers);
  ASSERT_EQ(p.status, ParseStatus::kComplete);
  const Pumped again = pumpAll(p.written, Mode::kDechunk);
  EXPECT_EQ(again.status, ParseStatus::kComplete);
  EXPECT_EQ(again.written, "wikipedia");
  EXPECT_EQ(pumpAll(p.written, Mode::kFilterTrailers).written, p.written) << "idempotent";
}

TEST(ChunkedModes, FilterStillRefusesFramingTrailers) {
  for (const char* trailer : {"Content-Length: 5", "Transfer-Encoding: chunked", "Host: evil"}) {
    SCOPED_TRACE(trailer);
    const Pumped p = pumpAll(std::string("0\r\n") + trailer + "\r\n\r\n", Mode::kFilterTrailers);
    EXPECT_EQ(p.status, ParseStatus::kError);
    EXPECT_EQ(p.error, ParseError::kBadTrailer);
  }
}

TEST(ChunkedModes, FilterTrailerSectionIsBoundedByTheScratch) {
  const std::string body = "0\r\nX-A: 0123456789\r\n\r\n";  // 19 bytes of trailer section
  EXPECT_EQ(pump(body, Mode::kFilterTrailers, 0, 0, 8192, 19).status, ParseStatus::kComplete);
  EXPECT_EQ(pump(body, Mode::kFilterTrailers, 0, 0, 8192, 18).error, ParseError::kBadTrailer);
  EXPECT_EQ(pump(body, Mode::kFilterTrailers, 0, 0, 18, 8192).error, ParseError::kBadTrailer);
  // Dropped fields count against the limit too: they were received.
  EXPECT_EQ(pump("0\r\nCookie: 0123456789\r\n\r\n", Mode::kFilterTrailers, 0, 0, 8192, 21).error,
            ParseError::kBadTrailer);
}

TEST(ChunkedModes, HeaderOnlyTrailerList) {
  for (const char* name : {"Authorization",
                           "proxy-authorization",
                           "Cookie",
                           "Set-Cookie",
                           "Content-Encoding",
                           "Content-Type",
                           "Content-Range",
                           "Trailer",
                           "TE",
                           "Connection",
                           "Keep-Alive",
                           "Proxy-Connection",
                           "Upgrade",
                           "Expect",
                           "Max-Forwards",
                           "Cache-Control",
                           "Pragma",
                           "Range",
                           "If-Match",
                           "if-none-match",
                           "If-Modified-Since",
                           "If-Unmodified-Since",
                           "If-Range",
                           "X-Forwarded-For",
                           "x-forwarded-proto",
                           "X-Forwarded-Anything",
                           "Forwarded",
                           "X-Real-IP",
                           "Via",
                           "X-Original-URL",
                           "X-Rewrite-URL",
                           "Proxy-Authenticate",
                           "WWW-Authenticate",
                           "My_Field",
                           "Host",
                           "Content-Length",
                           "Transfer-Encoding"}) {
    EXPECT_TRUE(isHeaderOnlyTrailer(name)) << name;
  }
  for (const char* name : {"X-Checksum", "Content-Digest", "Digest", "Server-Timing", "Expires",
                           "If", "X-Forwarded", "Etag", "Content-MD5", "Grpc-Status"}) {
    EXPECT_FALSE(isHeaderOnlyTrailer(name)) << name;
  }
}

TEST(ChunkedLimit, PayloadOverTheLimitIsTooLargeNotBadFraming) {
  // The limit is judged on the size line, before the chunk's data: 413, not 400.
  const Pumped over = pumpAll("6\r\nhello!\r\n0\r\n\r\n", Mode::kValidate, 5);
  EXPECT_EQ(over.status, ParseStatus::kError);
  EXPECT_EQ(over.error, ParseError::kBodyTooLarge);
  EXPECT_EQ(statusFor(over.error), 413);
  EXPECT_EQ(over.consumed, 2U) << "fails at the size line's LF";
  const Pumped exact = pumpAll("3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n", Mode::kValidate, 5);
  EXPECT_EQ(exact.status, ParseStatus::kComplete);
  const Pumped sum = pumpAll("3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n", Mode::kDechunk, 5);
  EXPECT_EQ(sum.error, ParseError::kBodyTooLarge);
  EXPECT_EQ(pump("3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n", Mode::kDechunk, 8, 5).written, "abc")
      << "what came before the limit was written";
}

TEST(ChunkedLimit, TooLargeWinsOverLaterBadFramingAndOverflow) {
  // A body whose framing breaks after a too-large chunk was already too large.
  EXPECT_EQ(pumpAll("ffff\r\nxx\r\nZZZ", Mode::kValidate, 100).error, ParseError::kBodyTooLarge);
  EXPECT_EQ(pumpAll("ffffffffffffffff\r\n", Mode::kValidate, 100).error, ParseError::kBodyTooLarge);
  // Without a limit the same sizes are judged as framing.
  EXPECT_EQ(pumpAll("ffff\r\nxx\r\nZZZ", Mode::kValidate).status, ParseStatus::kIncomplete);
  ChunkedDecoder d;
  d.reset({.max_payload = 10});
  EXPECT_EQ(d.feed("a\r\n0123456789\r\n").status, ParseStatus::kIncomplete);
  EXPECT_EQ(d.payloadBytes(), 10U);
  EXPECT_EQ(d.feed("1\r\n").error, ParseError::kBodyTooLarge);
  EXPECT_EQ(d.payloadBytes(), 10U);
  d.reset();
  EXPECT_EQ(d.feed("b\r\n").status, ParseStatus::kIncomplete) << "reset() drops the limit";
}

TEST(ChunkedModes, ResetStartsAFreshBodyInAnyMode) {
  ChunkedDecoder d;
  std::array<char, 64> scratch{};
  ChunkedDecoder::Spans spans;
  d.reset({.mode = Mode::kFilterTrailers, .trailer_scratch = scratch});
  EXPECT_EQ(d.feed("0\r\nCookie: x\r\nX-A: 1\r\n\r\n", spans).status, ParseStatus::kComplete);
  ASSERT_EQ(spans.count, 2U);
  EXPECT_EQ(spans.part[1], "X-A: 1\r\n\r\n");
  // Finished: nothing more is consumed or written.
  EXPECT_EQ(d.feed("0\r\n\r\n", spans).consumed, 0U);
  EXPECT_EQ(spans.count, 0U);
  d.reset({.mode = Mode::kDechunk});
  EXPECT_EQ(d.feed("2\r\nhi\r\n0\r\nX: y\r\n\r\n", spans).status, ParseStatus::kComplete);
  ASSERT_EQ(spans.count, 1U);
  EXPECT_EQ(spans.part[0], "hi");
}

}  // namespace
}  // namespace sluice::http
