#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "http/parser.hpp"
#include "test_support.hpp"

namespace sluice::http {
namespace {

using testing::ChunkedOutcome;
using testing::runChunked;

constexpr ParseStatus kOk = ParseStatus::kComplete;
constexpr ParseStatus kMore = ParseStatus::kIncomplete;
constexpr ParseStatus kErr = ParseStatus::kError;

// Runs `body` whole, byte by byte and in 3-byte pieces; all must agree.
ChunkedOutcome decode(std::string_view body, std::size_t max_trailer = 8192) {
  const ChunkedOutcome whole = runChunked(body, 0, max_trailer);
  for (const std::size_t step : {1, 2, 3, 7}) {
    const ChunkedOutcome split = runChunked(body, step, max_trailer);
    EXPECT_EQ(whole.status, split.status) << "step " << step;
    EXPECT_EQ(whole.error, split.error)
        << "step " << step << ": " << errorName(whole.error) << " vs " << errorName(split.error);
    EXPECT_EQ(whole.consumed, split.consumed) << "step " << step;
    EXPECT_EQ(whole.payload, split.payload) << "step " << step;
  }
  return whole;
}

ParseError decodeError(std::string_view body, std::size_t max_trailer = 8192) {
  const ChunkedOutcome o = decode(body, max_trailer);
  EXPECT_EQ(o.status, kErr) << "accepted: " << ::testing::PrintToString(std::string(body));
  return o.error;
}

void expectComplete(std::string_view body, std::uint64_t payload) {
  const ChunkedOutcome o = decode(body);
  EXPECT_EQ(o.status, kOk) << errorName(o.error) << ": "
                           << ::testing::PrintToString(std::string(body));
  EXPECT_EQ(o.consumed, body.size());
  EXPECT_EQ(o.payload, payload);
}

TEST(ChunkedTest, Simple) {
  expectComplete("5\r\nhello\r\n0\r\n\r\n", 5);
  expectComplete("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", 11);
  expectComplete("0\r\n\r\n", 0);
}

TEST(ChunkedTest, HexDigits) {
  expectComplete("a\r\n0123456789\r\n0\r\n\r\n", 10);
  expectComplete("A\r\n0123456789\r\n0\r\n\r\n", 10);
  expectComplete("0000000000000005\r\nhello\r\n000\r\n\r\n", 5);  // 16 digits
  const std::string big(0x1f, 'x');
  expectComplete("1F\r\n" + big + "\r\n1f\r\n" + big + "\r\n0\r\n\r\n", 0x3e);
}

TEST(ChunkedTest, StopsAtTheEndOfTheBody) {
  const std::string body = "3\r\nabc\r\n0\r\n\r\n";
  const std::string next = "GET / HTTP/1.1\r\n";
  ChunkedDecoder d;
  const ChunkedDecoder::Result r = d.feed(body + next);
  EXPECT_EQ(r.status, kOk);
  EXPECT_EQ(r.consumed, body.size());
  // Further input is not ours; a finished decoder consumes nothing.
  const ChunkedDecoder::Result again = d.feed(next);
  EXPECT_EQ(again.status, kOk);
  EXPECT_EQ(again.consumed, 0U);
  EXPECT_EQ(decode(body + next).consumed, body.size());
}

TEST(ChunkedTest, IncompleteConsumesEverything) {
  ChunkedDecoder d;
  ChunkedDecoder::Result r = d.feed("10\r\nabc");
  EXPECT_EQ(r.status, kMore);
  EXPECT_EQ(r.consumed, 7U);
  EXPECT_EQ(d.payloadBytes(), 16U);  // declared sizes, so limits can act before the data
  r = d.feed("");
  EXPECT_EQ(r.status, kMore);
  EXPECT_EQ(r.consumed, 0U);
  r = d.feed("defghijklmnop\r\n0\r\n\r\n");
  EXPECT_EQ(r.status, kOk);
  EXPECT_EQ(r.consumed, 20U);
}

TEST(ChunkedTest, HugeDeclaredChunk) {
  ChunkedDecoder d;
  const ChunkedDecoder::Result r = d.feed("ffffffffffffffff\r\nxyz");
  EXPECT_EQ(r.status, kMore);
  EXPECT_EQ(d.payloadBytes(), UINT64_MAX);
}

TEST(ChunkedTest, BadChunkSizes) {
  for (const char* body :
       {"\r\n", "x\r\n", "0x5\r\nhello\r\n0\r\n\r\n", "-5\r\n", "+5\r\n", " 5\r\n",
        "5 \r\nhello\r\n0\r\n\r\n", "5\t\r\n", "5 x\r\n", "10000000000000005\r\n",
        "00000000000000005\r\n", "5g\r\n", "\r\n\r\n", "5,6\r\n"}) {
    SCOPED_TRACE(::testing::PrintToString(std::string(body)));
    EXPECT_EQ(decodeError(body), ParseError::kBadChunkSize);
  }
}

TEST(ChunkedTest, CrLfIsStrict) {
  EXPECT_EQ(decodeError("5\nhello\r\n0\r\n\r\n"), ParseError::kBareCr);
  EXPECT_EQ(decodeError("5\rhello\r\n0\r\n\r\n"), ParseError::kBareCr);
  EXPECT_EQ(decodeError("\n"), ParseError::kBareCr);
  EXPECT_EQ(decodeError("5;a\nhello\r\n0\r\n\r\n"), ParseError::kBareCr);
  EXPECT_EQ(decodeError("5;a=b\nhello\r\n0\r\n\r\n"), ParseError::kBareCr);
  EXPECT_EQ(decodeError("5;a=\"b\nc\"\r\nhello\r\n0\r\n\r\n"), ParseError::kBareCr);
  EXPECT_EQ(decodeError("0\n\r\n"), ParseError::kBareCr);
  EXPECT_EQ(decodeError("0\r\n\n"), ParseError::kBareCr);
  EXPECT_EQ(decodeError("0\r\n\rx"), ParseError::kBareCr);
  EXPECT_EQ(decodeError("0\r\nX: y\n\r\n"), ParseError::kBareCr);
  EXPECT_EQ(decodeError("0\r\nX: y\rz\r\n"), ParseError::kBareCr);
  EXPECT_EQ(decodeError("0\r\nX\n"), ParseError::kBareCr);
}

TEST(ChunkedTest, DataMustEndWithCrLf) {
  EXPECT_EQ(decodeError("5\r\nhelloX\r\n0\r\n\r\n"), ParseError::kBadChunkData);
  EXPECT_EQ(decodeError("5\r\nhello\n0\r\n\r\n"), ParseError::kBadChunkData);
  EXPECT_EQ(decodeError("5\r\nhello\rX0\r\n\r\n"), ParseError::kBadChunkData);
  // Shorter data than declared: the size line of the next chunk lands where CRLF must be.
  EXPECT_EQ(decodeError("5\r\nhel\r\n0\r\n\r\n"), ParseError::kBadChunkData);
}

TEST(ChunkedTest, Extensions) {
  expectComplete("5;name\r\nhello\r\n0\r\n\r\n", 5);
  expectComplete("5;name=value\r\nhello\r\n0;last\r\n\r\n", 5);
  expectComplete("5;a=1;b;c=\"x y\"\r\nhello\r\n0\r\n\r\n", 5);
  expectComplete("5;q=\"esc \\\" \\\\ \\\t \xe9\"\r\nhello\r\n0\r\n\r\n", 5);
  expectComplete("5 ; a = b ;\tc\t=\t\"d\" ; e\r\nhello\r\n0\r\n\r\n", 5);
  expectComplete("5;a=\"\"\r\nhello\r\n0\r\n\r\n", 5);
  expectComplete("5;a=\"x\";b=c\r\nhello\r\n0\r\n\r\n", 5);
  expectComplete("5;a ;b\r\nhello\r\n0\r\n\r\n", 5);
}

TEST(ChunkedTest, BadExtensions) {
  for (const char* body :
       {"5;\r\n", "5 ;\r\nhello\r\n0\r\n\r\n", "5;=x\r\n", "5;a=\r\n", "5;a= \r\n", "5;a=b c\r\n",
        "5;a b\r\n", "5;a \r\n", "5;a=b \r\n", "5;a=\"b\r\n\"\r\n", "5;a=\"b\" x\r\n",
        "5;a=\"b\"x\r\n", "5;a@b\r\n", "5;a=b=c\r\n", "5;a=\"\x01\"\r\n", "5;a=\"\\\x01\"\r\n",
        "5;a,b\r\n", "5;;a\r\n", "5;a=\x80\r\n"}) {
    SCOPED_TRACE(::testing::PrintToString(std::string(body)));
    EXPECT_EQ(decodeError(body), ParseError::kBadChunkExtension);
  }
}

TEST(ChunkedTest, ExtensionLengthIsBounded) {
  const std::string ok = "5;n=" + std::string(4000, 'v') + "\r\nhello\r\n0\r\n\r\n";
  expectComplete(ok, 5);
  const std::string endless = "5;n=" + std::string(5000, 'v');
  EXPECT_EQ(decodeError(endless), ParseError::kBadChunkExtension);
}

TEST(ChunkedTest, Trailers) {
  expectComplete("0\r\nX-Checksum: abc\r\n\r\n", 0);
  expectComplete("3\r\nabc\r\n0\r\nA: 1\r\nB:\t2 \r\nC:\r\nD: \xc3\xa9\r\n\r\n", 3);
  expectComplete("0\r\ngrpc-status: 0\r\ngrpc-message: ok\r\n\r\n", 0);
}

TEST(ChunkedTest, BadTrailers) {
  for (const char* body : {"0\r\nX\r\n\r\n", "0\r\n X: y\r\n\r\n", "0\r\n\tX: y\r\n\r\n",
                           "0\r\nX: y\r\n z\r\n\r\n", "0\r\nX : y\r\n\r\n", "0\r\n: y\r\n\r\n",
                           "0\r\nX@: y\r\n\r\n", "0\r\nX: \x01\r\n\r\n", "0\r\nX: \x7f\r\n\r\n",
                           "0\r\nContent-Length: 5\r\n\r\n", "0\r\ntransfer-encoding: x\r\n\r\n",
                           "0\r\nHOST: a\r\n\r\n", "0\r\nGET / HTTP/1.1\r\n\r\n"}) {
    SCOPED_TRACE(::testing::PrintToString(std::string(body)));
    EXPECT_EQ(decodeError(body), ParseError::kBadTrailer);
  }
  std::string nul = "0\r\nX: a\r\n\r\n";
  nul[nul.find('a')] = '\0';
  EXPECT_EQ(decodeError(nul), ParseError::kBadTrailer);
  // Names that merely start like a forbidden one are fine.
  expectComplete("0\r\nContent-Length-Hint: 5\r\nHosts: a\r\n\r\n", 0);
}

TEST(ChunkedTest, TrailerSizeIsBounded) {
  const std::string trailers = "X: " + std::string(90, 'v') + "\r\n\r\n";  // 97 bytes
  const std::string body = "0\r\n" + trailers;
  ChunkedOutcome o = decode(body, 97);
  EXPECT_EQ(o.status, kOk);
  EXPECT_EQ(decodeError(body, 96), ParseError::kBadTrailer);
  // An endless trailer section fails at the limit.
  EXPECT_EQ(decodeError("0\r\nX: " + std::string(200, 'v'), 100), ParseError::kBadTrailer);
}

TEST(ChunkedTest, ErrorsAreSticky) {
  ChunkedDecoder d;
  ChunkedDecoder::Result r = d.feed("5\r\nhelloXX");
  EXPECT_EQ(r.status, kErr);
  EXPECT_EQ(r.error, ParseError::kBadChunkData);
  EXPECT_EQ(r.consumed, 8U);  // offset of the offending byte
  r = d.feed("\r\n0\r\n\r\n");
  EXPECT_EQ(r.status, kErr);
  EXPECT_EQ(r.error, ParseError::kBadChunkData);
  EXPECT_EQ(r.consumed, 0U);
}

TEST(ChunkedTest, ResetStartsOver) {
  ChunkedDecoder d;
  EXPECT_EQ(d.feed("zz").status, kErr);
  d.reset();
  EXPECT_EQ(d.payloadBytes(), 0U);
  ChunkedDecoder::Result r = d.feed("2\r\nab\r\n0\r\n\r\n");
  EXPECT_EQ(r.status, kOk);
  EXPECT_EQ(d.payloadBytes(), 2U);
  d.reset();
  r = d.feed("0;x=\"");
  EXPECT_EQ(r.status, kMore);
  d.reset();
  r = d.feed("0\r\nTrailer-Name");
  EXPECT_EQ(r.status, kMore);
  d.reset();
  r = d.feed("1\r\na\r\n0\r\n\r\n");
  EXPECT_EQ(r.status, kOk);
  EXPECT_EQ(d.payloadBytes(), 1U);
}

TEST(ChunkedTest, EverySplitPointAgrees) {
  const std::vector<std::string> bodies = {
      "5;a=\"q\\\"\"\r\nhello\r\n10\r\n0123456789abcdef\r\n0;z\r\nT: v\r\nU: w\r\n\r\nNEXT",
      "5\r\nhello\r\n5\r\nwor",
      "5\r\nhello\r\n0\r\nX : y\r\n\r\n",
      "5;a=\"b\r\n\"\r\nhello\r\n0\r\n\r\n",
  };
  for (const std::string& body : bodies) {
    const ChunkedOutcome whole = runChunked(body);
    for (std::size_t cut = 0; cut <= body.size(); ++cut) {
      ChunkedDecoder d;
      ChunkedOutcome o;
      const ChunkedDecoder::Result a = d.feed(std::string_view(body).substr(0, cut));
      o.status = a.status;
      o.error = a.error;
      o.consumed = a.consumed;
      if (a.status == kMore) {
        const ChunkedDecoder::Result b = d.feed(std::string_view(body).substr(cut));
        o.status = b.status;
        o.error = b.error;
        o.consumed = cut + b.consumed;
      }
      o.payload = d.payloadBytes();
      EXPECT_EQ(o, whole) << "cut " << cut << " of " << ::testing::PrintToString(body);
    }
  }
}

}  // namespace
}  // namespace sluice::http
