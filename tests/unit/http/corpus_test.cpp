// Runs tests/corpus against the parser: every malformed request is rejected with the error its
// README row names, every valid one is accepted and framed to exactly the file's end.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "http/parser.hpp"
#include "test_support.hpp"

#ifndef SLUICE_CORPUS_DIR
#error "SLUICE_CORPUS_DIR must point at tests/corpus"
#endif

namespace sluice::http {
namespace {

namespace fs = std::filesystem;

constexpr std::size_t kMinMalformed = 45;

std::string readFile(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::vector<fs::path> httpFiles(const fs::path& dir) {
  std::vector<fs::path> files;
  for (const fs::directory_entry& e : fs::directory_iterator(dir)) {
    if (e.is_regular_file() && e.path().extension() == ".http") {
      files.push_back(e.path());
    }
  }
  std::sort(files.begin(), files.end());
  return files;
}

ParseError errorByName(std::string_view name) {
  for (int i = 0; i <= static_cast<int>(ParseError::kBodyTooLarge); ++i) {
    const auto e = static_cast<ParseError>(i);
    if (errorName(e) == name) {
      return e;
    }
  }
  ADD_FAILURE() << "unknown error name " << name;
  return ParseError::kNone;
}

struct Expectation {
  bool body_stage = false;
  ParseError error = ParseError::kNone;
};

// Rows look like: | `001-cl-te.http` | head | `content_length_with_transfer_encoding` | ... |
std::map<std::string, Expectation> readReadme(const fs::path& readme) {
  std::map<std::string, Expectation> rows;
  std::istringstream in(readFile(readme));
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("| `", 0) != 0) {
      continue;
    }
    std::vector<std::string> cells;
    std::size_t pos = 1;
    while (pos < line.size()) {
      const std::size_t bar = line.find('|', pos);
      if (bar == std::string::npos) {
        break;
      }
      std::string cell = line.substr(pos, bar - pos);
      cell.erase(0, cell.find_first_not_of(" `"));
      cell.erase(cell.find_last_not_of(" `") + 1);
      cells.push_back(cell);
      pos = bar + 1;
    }
    if (cells.size() < 3) {
      ADD_FAILURE() << "bad README row: " << line;
      continue;
    }
    rows[cells[0]] = Expectation{cells[1] == "body", errorByName(cells[2])};
  }
  return rows;
}

struct Verdict {
  bool body_stage = false;
  ParseResult head;
  ChunkedDecoder::Result body{ParseStatus::kIncomplete, ParseError::kNone, 0};
  BodyKind kind = BodyKind::kNone;
};

Verdict judge(const std::string& bytes, RequestHead& head) {
  Verdict v;
  v.head = parseRequestHead(bytes, head);
  v.kind = head.body;
  if (v.head.status == ParseStatus::kComplete && head.body == BodyKind::kChunked) {
    v.body_stage = true;
    ChunkedDecoder d;
    v.body = d.feed(std::string_view(bytes).substr(v.head.consumed));
  }
  return v;
}

TEST(CorpusTest, MalformedRequestsAreRejected) {
  const fs::path dir = fs::path(SLUICE_CORPUS_DIR) / "malformed";
  const std::vector<fs::path> files = httpFiles(dir);
  ASSERT_GE(files.size(), kMinMalformed) << dir;
  std::map<std::string, Expectation> expected = readReadme(dir / "README.md");

  auto head = testing::newRequest();
  for (const fs::path& file : files) {
    const std::string name = file.filename().string();
    SCOPED_TRACE(name);
    const std::string bytes = readFile(file);
    ASSERT_FALSE(bytes.empty());
    const Verdict v = judge(bytes, *head);

    ParseError got = ParseError::kNone;
    if (v.head.status == ParseStatus::kError) {
      got = v.head.error;
      const int status = statusFor(got);
      EXPECT_TRUE(status == 400 || status == 414 || status == 431) << status;
    } else {
      ASSERT_EQ(v.head.status, ParseStatus::kComplete) << "head never completes";
      ASSERT_TRUE(v.body_stage) << "accepted with body kind " << static_cast<int>(v.kind);
      ASSERT_EQ(v.body.status, ParseStatus::kError) << "chunked body accepted";
      got = v.body.error;
    }

    const auto row = expected.find(name);
    if (row == expected.end()) {
      ADD_FAILURE() << "no README.md row; got " << errorName(got);
      continue;
    }
    EXPECT_EQ(errorName(got), errorName(row->second.error));
    EXPECT_EQ(v.body_stage, row->second.body_stage);
    expected.erase(row);

    // The same verdict when the request trickles in byte by byte (bounded for the big ones).
    if (!v.body_stage && bytes.size() <= 16384) {
      auto inc = testing::newRequest();
      const ParseResult r = testing::parseRequestBytewise(bytes, *inc);
      EXPECT_EQ(r.status, ParseStatus::kError);
      EXPECT_EQ(errorName(r.error), errorName(got));
    }
    if (v.body_stage) {
      const testing::ChunkedOutcome one_by_one =
          testing::runChunked(std::string_view(bytes).substr(v.head.consumed), 1);
      EXPECT_EQ(one_by_one.status, ParseStatus::kError);
      EXPECT_EQ(errorName(one_by_one.error), errorName(got));
    }
  }
  for (const auto& [name, unused] : expected) {
    ADD_FAILURE() << "README.md lists missing " << name;
  }
}

TEST(CorpusTest, ValidRequestsAreAcceptedAndFramedExactly) {
  const fs::path dir = fs::path(SLUICE_CORPUS_DIR) / "valid";
  const std::vector<fs::path> files = httpFiles(dir);
  ASSERT_GE(files.size(), 10U) << dir;

  auto head = testing::newRequest();
  for (const fs::path& file : files) {
    SCOPED_TRACE(file.filename().string());
    const std::string bytes = readFile(file);
    const ParseResult r = parseRequestHead(bytes, *head);
    ASSERT_EQ(r.status, ParseStatus::kComplete) << errorName(r.error);
    const std::string_view body = std::string_view(bytes).substr(r.consumed);
    switch (head->body) {
      case BodyKind::kNone:
        EXPECT_TRUE(body.empty());
        break;
      case BodyKind::kContentLength:
        EXPECT_EQ(body.size(), head->content_length);
        break;
      case BodyKind::kChunked: {
        const testing::ChunkedOutcome whole = testing::runChunked(body);
        EXPECT_EQ(whole.status, ParseStatus::kComplete) << errorName(whole.error);
        EXPECT_EQ(whole.consumed, body.size());
        EXPECT_EQ(testing::runChunked(body, 1), whole);
        break;
      }
      case BodyKind::kUntilClose:
        ADD_FAILURE() << "requests never run until close";
        break;
    }
    auto inc = testing::newRequest();
    const ParseResult ri = testing::parseRequestBytewise(bytes, *inc);
    EXPECT_EQ(ri.status, ParseStatus::kComplete);
    EXPECT_EQ(ri.consumed, r.consumed);
  }
}

}  // namespace
}  // namespace sluice::http
