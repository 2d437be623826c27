// Runs tests/corpus/client_hello against the reader: real hellos captured from openssl s_client
// and curl, and crafted ones, each with the verdict, SNI, ALPN, TLS 1.3 and ECH that
// expected.tsv (written by make_client_hello_corpus.py from the clients' options) records.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "test_support.hpp"
#include "tls/client_hello.hpp"

#ifndef SLUICE_CLIENT_HELLO_CORPUS
#error "SLUICE_CLIENT_HELLO_CORPUS must point at tests/corpus/client_hello"
#endif

namespace sluice::tls {
namespace {

namespace fs = std::filesystem;

using testing::Bytes;
using testing::Outcome;

constexpr std::size_t kMinCaptured = 10;

struct Expected {
  std::string file;
  std::string verdict;  // ok, need_more or an Error name
  std::string sni;      // "-": none
  std::string alpn;     // comma-separated, "-": none
  bool tls13 = false;
  bool ech = false;
};

std::vector<Expected> manifest() {
  std::ifstream in(fs::path(SLUICE_CLIENT_HELLO_CORPUS) / "expected.tsv");
  std::vector<Expected> rows;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') {
      continue;
    }
    std::istringstream fields(line);
    Expected e;
    std::string tls13;
    std::string ech;
    std::getline(fields, e.file, '\t');
    std::getline(fields, e.verdict, '\t');
    std::getline(fields, e.sni, '\t');
    std::getline(fields, e.alpn, '\t');
    std::getline(fields, tls13, '\t');
    std::getline(fields, ech, '\t');
    e.tls13 = tls13 == "yes";
    e.ech = ech == "yes";
    rows.push_back(e);
  }
  return rows;
}

Bytes readFile(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::string verdict(const Outcome& o) {
  switch (o.status) {
    case Status::kDone:
      return "ok";
    case Status::kNeedMore:
      return "need_more";
    case Status::kError:
      break;
  }
  return name(o.error);
}

std::string alpnList(const ClientHello& h) {
  std::string out;
  for (const std::string_view p : h.protocols()) {
    out += (out.empty() ? "" : ",") + std::string(p);
  }
  return out.empty() ? "-" : out;
}

void checkFields(const Expected& e, const ClientHello& h) {
  EXPECT_EQ(h.has_sni, e.sni != "-");
  EXPECT_EQ(h.has_sni ? std::string(h.sni) : "-", e.sni);
  EXPECT_EQ(alpnList(h), e.alpn);
  EXPECT_EQ(h.offers_tls13, e.tls13);
  EXPECT_EQ(h.has_ech, e.ech);
}

// The hello's handshake message out of its records, and the same message re-split into two
// records at `at`: a real client's bytes through every record boundary.
Bytes resplit(const Bytes& in, std::size_t used, std::size_t at) {
  Bytes payload;
  for (std::size_t r = 0; r < used;) {
    const std::size_t len = static_cast<std::size_t>(in[r + 3] << 8 | in[r + 4]);
    payload.insert(payload.end(), in.begin() + static_cast<std::ptrdiff_t>(r + 5),
                   in.begin() + static_cast<std::ptrdiff_t>(r + 5 + len));
    r += 5 + len;
  }
  return testing::records(payload, {at});
}

TEST(ClientHelloCorpus, EveryFileHasItsVerdict) {
  const std::vector<Expected> rows = manifest();
  std::size_t captured = 0;
  for (const Expected& e : rows) {
    SCOPED_TRACE(e.file);
    const Bytes in = readFile(fs::path(SLUICE_CLIENT_HELLO_CORPUS) / e.file);
    ASSERT_FALSE(in.empty());
    const Outcome o = testing::read(in);
    EXPECT_EQ(verdict(o), e.verdict);
    if (o.status == Status::kDone) {
      checkFields(e, o.reader.hello());
    }
    captured += e.file.starts_with("captured-") && o.status == Status::kDone ? 1 : 0;
  }
  EXPECT_GE(captured, kMinCaptured);
}

TEST(ClientHelloCorpus, EveryFileIsListed) {
  std::map<std::string, bool> listed;
  for (const Expected& e : manifest()) {
    listed[e.file] = true;
  }
  std::size_t files = 0;
  for (const fs::directory_entry& entry : fs::directory_iterator(SLUICE_CLIENT_HELLO_CORPUS)) {
    if (entry.path().extension() == ".bin") {
      ++files;
      EXPECT_TRUE(listed.contains(entry.path().filename().string())) << entry.path();
    }
  }
  EXPECT_EQ(files, listed.size());
}

TEST(ClientHelloCorpus, RealHellosSplitAtEveryOffset) {
  for (const Expected& e : manifest()) {
    if (!e.file.starts_with("captured-")) {
      continue;
    }
    SCOPED_TRACE(e.file);
    const Bytes in = readFile(fs::path(SLUICE_CLIENT_HELLO_CORPUS) / e.file);
    const Outcome whole = testing::feedChunks(in, testing::kWhole);
    ASSERT_EQ(whole.status, Status::kDone);
    const std::size_t message = whole.used - kRecordHeaderBytes;  // one record each
    for (std::size_t at = 1; at < message; ++at) {
      const Outcome o = testing::feedChunks(resplit(in, whole.used, at), testing::kWhole);
      ASSERT_EQ(o.status, Status::kDone) << "split at " << at << ": " << name(o.error);
      checkFields(e, o.reader.hello());
    }
  }
}

}  // namespace
}  // namespace sluice::tls
