// libFuzzer harness for the agent's TLS 1.3 record layer (tls/record13) reading what a client
// may send once its handshake is done. The client is the attacker and holds its own traffic
// secret, so the harness seals what the fuzzer writes: a stream of chunks, each application data,
// a handshake message, an alert, padding, or raw bytes sent unsealed (which reach the header
// checks). A chunk that is a well-formed KeyUpdate moves the harness's key as a client's would.
// Besides "no crash, no sanitizer report" it checks: a read returns at most what was asked and
// never waits once everything is sent (pending() included), and a stream of application data
// only arrives whole, in order, and ends as a closed stream.
//
// Input: byte 0 picks the suite and, with byte 1, the size of the reads; then chunks of
// [control][length][length bytes].
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "fuzz_check.hpp"
#include "tls/record13.hpp"

namespace {

using sluice::tls::Io;
using sluice::tls::kMaxSecret;
using sluice::tls::kRecordHeader;
using sluice::tls::kTag;
using sluice::tls::Record13;
using sluice::tls::secretLength;
using sluice::tls::Suite;
using sluice::tls::TrafficKey;

constexpr Suite kSuites[] = {Suite::kAes128GcmSha256, Suite::kAes256GcmSha384,
                             Suite::kChaCha20Poly1305Sha256};

struct Fds {
  int fd[2] = {-1, -1};
  ~Fds() {
    ::close(fd[0]);
    ::close(fd[1]);
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) {
    return 0;
  }
  const Suite suite = kSuites[data[0] % 3];
  const std::size_t read_size = 1 + (static_cast<std::size_t>(data[0] / 3) * 256 + data[1]) % 20000;
  Record13::Secrets secrets;
  secrets.client.fill(0x11);
  secrets.server.fill(0x22);
  Fds s;
  if (::socketpair(AF_UNIX, SOCK_STREAM, 0, s.fd) != 0) {
    return 0;
  }
  auto reader = Record13::create(s.fd[0], suite, secrets, 0, 0);
  TrafficKey client;
  FUZZ_CHECK(reader != nullptr);
  FUZZ_CHECK(client.init(suite, {secrets.client.data(), secretLength(suite)}, 0, true));

  std::vector<std::uint8_t> wire;
  std::string expected;  // the application data, if the stream holds nothing else
  bool only_data = true;
  std::size_t at = 2;
  while (at + 2 <= size) {
    const std::uint8_t control = data[at];
    std::size_t len = data[at + 1];
    at += 2;
    len = std::min(len, size - at);
    const std::uint8_t* bytes = data + at;
    at += len;
    const int kind = control % 8;
    if (kind == 7) {  // raw bytes on the wire
      wire.insert(wire.end(), bytes, bytes + len);
      only_data = false;
      continue;
    }
    const std::uint8_t type = kind <= 4 ? 23 : kind == 5 ? 22 : 21;
    std::vector<std::uint8_t> inner(bytes, bytes + len);
    const std::size_t pad = control >> 4;  // zeros after the content type
    std::uint8_t seal_type = type;
    if (pad > 0) {
      inner.push_back(type);
      inner.insert(inner.end(), pad - 1, 0);
      seal_type = 0;
    }
    std::vector<std::uint8_t> rec(inner.size() + kRecordHeader + 1 + kTag);
    FUZZ_CHECK(client.seal(inner, seal_type, rec.data()) == rec.size());
    wire.insert(wire.end(), rec.begin(), rec.end());
    if (type == 23) {
      expected.append(bytes, bytes + len);
    } else {
      only_data = false;
    }
    if (type == 22 && len == 5 && bytes[0] == 24 && bytes[1] == 0 && bytes[2] == 0 &&
        bytes[3] == 1 && bytes[4] <= 1) {
      FUZZ_CHECK(client.update());
    }
  }
  if (wire.size() > 128 * 1024) {
    return 0;  // past what one socket pair holds without a reader
  }
  for (std::size_t off = 0; off < wire.size();) {
    const ssize_t n = ::send(s.fd[1], wire.data() + off, wire.size() - off, 0);
    if (n <= 0) {
      return 0;
    }
    off += static_cast<std::size_t>(n);
  }
  ::shutdown(s.fd[1], SHUT_WR);

  std::string got;
  std::vector<char> buf(read_size);
  Io io = Io::kDone;
  for (int i = 0; i < 100000; ++i) {
    std::size_t n = 0;
    io = reader->read(buf.data(), buf.size(), n);
    // Everything was sent and the stream ends: no read may ask to wait.
    FUZZ_CHECK(io != Io::kWantRead && io != Io::kWantWrite);
    if (io != Io::kDone) {
      FUZZ_CHECK(n == 0);
      break;
    }
    FUZZ_CHECK(n > 0 && n <= buf.size());
    got.append(buf.data(), n);
  }
  FUZZ_CHECK(io == Io::kClosed || io == Io::kError);
  FUZZ_CHECK(got.size() <= expected.size());
  FUZZ_CHECK(expected.compare(0, got.size(), got) == 0);  // what arrived, arrived in order
  if (only_data) {
    FUZZ_CHECK(io == Io::kClosed);
    FUZZ_CHECK(got == expected);
  }
  return 0;
}
