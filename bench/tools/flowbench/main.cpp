// sluice-flowbench: moves bytes over TCP on loopback and measures throughput and the CPU it cost
// the whole machine, for bench/splice.sh (direct vs the agent's sockmap/pipe/copy splice).
//
// One process plays both ends on two threads: a server (`--listen`) and a client that connects
// to `--connect` (the agent's TCP listener) or, without it, straight to the server. One clock and
// one /proc/stat bracket therefore cover the full path, client to server, whatever is in between.
//
//   sluice-flowbench bulk --listen 127.0.0.1:19200 --connect 127.0.0.1:19100 --bytes 2147483648
//   sluice-flowbench msgs --listen 127.0.0.1:19200 --conns 1000 --seconds 10
//
// bulk: one connection; the sender writes --bytes of a fixed pseudo-random pattern as fast as it
//   can, then shuts down its write side. Timed from just before the first write to the receiver
//   holding the last byte. The receiver checks the count (more or fewer bytes is an error) and
//   the content (sampled: 8 bytes of every 4 KiB, or --verify full / none), and reports how the
//   stream ended after the last byte ("close": eof, reset, or none within 5 s).
// msgs: --conns connections, each a ping-pong loop: send --size bytes, wait for the echo of
//   exactly those bytes (checked), send the next. After --warmup seconds, counted for --seconds.
//   One round trip is two messages (the request and its echo), each crossing the path once.
//
// CPU: the busy jiffies of /proc/stat's "cpu" line (user+nice+system+irq+softirq+steal, all
// CPUs) over the measured interval, so kernel threads, workqueues and softirq count, not only
// the processes. A scan of /proc splits it into this process, the --proxy-pid processes and their
// descendants, kernel threads, other processes (noise from unrelated work on the machine) and
// the rest (interrupt and softirq time not charged to any task).
//
// Output: one JSON line on stdout (also on failure: {"ok": false, "error": ...}, exit status 1).
//
// Files: main.cpp (options), net.cpp (sockets), cpu.cpp (CPU accounting), bulk.cpp, msgs.cpp.
#include <algorithm>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string>
#include <string_view>

#include "flowbench.hpp"

namespace sluice::bench {
namespace {

constexpr std::string_view kUsage = R"(usage: sluice-flowbench bulk|msgs --listen IP:PORT [options]

  --listen IP:PORT        server address (port 0: any free port)
  --connect IP:PORT       where the client connects (the proxy); default: the server itself
  --label TEXT            copied into the JSON line
  --proxy-pid PID[,PID]   processes (and their descendants) reported as cpu_proxy_seconds
  --connect-timeout S     keep retrying refused connects for S seconds (default 10)
  --stall-timeout S       fail when no byte moves for S seconds (default 10)
bulk:
  --bytes N               bytes to move (default 2147483648; suffixes K M G = KiB MiB GiB)
  --direction up|down     up: client sends to server (default); down: server sends
  --chunk N               write and read size (default 262144, at most 1048576)
  --verify sampled|full|none  content check at the receiver (default sampled: 8 bytes per 4 KiB)
msgs:
  --conns N               connections (default 1000)
  --seconds S             measured duration (default 10)
  --warmup S              unmeasured ping-pong first (default 1)
  --size N                message size in bytes, both ways (default 100, at least 16)
)";

std::uint64_t parseSize(std::string_view s) {
  std::uint64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc()) {
    throw Failure("bad number '" + std::string(s) + "'");
  }
  std::string_view rest(p, static_cast<std::size_t>(s.data() + s.size() - p));
  if (rest == "K" || rest == "k") {
    v <<= 10;
  } else if (rest == "M") {
    v <<= 20;
  } else if (rest == "G") {
    v <<= 30;
  } else if (!rest.empty()) {
    throw Failure("bad number '" + std::string(s) + "'");
  }
  return v;
}

double parseSeconds(std::string_view s) {
  std::string str(s);
  char* end = nullptr;
  double v = std::strtod(str.c_str(), &end);
  if (end == str.c_str() || (*end != '\0' && std::string_view(end) != "s") || !(v >= 0)) {
    throw Failure("bad duration '" + str + "'");
  }
  return v;
}

void parseProxyPids(std::string_view val, Options& o) {
  std::string list(val);
  std::stringstream ss(list);
  for (std::string item; std::getline(ss, item, ',');) {
    if (!item.empty()) {
      o.proxy_pids.push_back(static_cast<int>(parseSize(item)));
    }
  }
}

Verify parseVerify(std::string_view val) {
  if (val == "none") {
    return Verify::kNone;
  }
  if (val == "sampled") {
    return Verify::kSampled;
  }
  if (val == "full") {
    return Verify::kFull;
  }
  throw Failure("--verify is sampled, full or none");
}

// One option and its value; false for an option this tool does not have.
bool applyOption(std::string_view opt, std::string_view val, Options& o) {
  if (opt == "--listen") {
    o.listen = parseEndpoint(val);
  } else if (opt == "--connect") {
    o.connect = parseEndpoint(val);
  } else if (opt == "--label") {
    o.label = std::string(val);
  } else if (opt == "--proxy-pid") {
    parseProxyPids(val, o);
  } else if (opt == "--connect-timeout") {
    o.connect_timeout_s = parseSeconds(val);
  } else if (opt == "--stall-timeout") {
    o.stall_timeout_s = std::max(0.1, parseSeconds(val));
  } else if (opt == "--bytes") {
    o.bytes = parseSize(val);
  } else if (opt == "--direction") {
    if (val != "up" && val != "down") {
      throw Failure("--direction is up or down");
    }
    o.upload = val == "up";
  } else if (opt == "--chunk") {
    o.chunk = static_cast<std::size_t>(parseSize(val));
  } else if (opt == "--verify") {
    o.verify = parseVerify(val);
  } else if (opt == "--conns") {
    o.conns = static_cast<int>(parseSize(val));
  } else if (opt == "--seconds") {
    o.seconds = parseSeconds(val);
  } else if (opt == "--warmup") {
    o.warmup = parseSeconds(val);
  } else if (opt == "--size") {
    o.size = static_cast<std::size_t>(parseSize(val));
  } else {
    return false;
  }
  return true;
}

Options parseOptions(int argc, char** argv) {
  Options o;
  if (argc < 2) {
    throw Failure("missing mode (bulk or msgs)");
  }
  o.mode = argv[1];
  if (o.mode != "bulk" && o.mode != "msgs") {
    throw Failure("unknown mode '" + o.mode + "' (bulk or msgs)");
  }
  bool have_listen = false;
  for (int i = 2; i < argc; ++i) {
    std::string_view opt(argv[i]);
    if (i + 1 >= argc) {
      throw Failure("option " + std::string(opt) + " needs a value");
    }
    if (!applyOption(opt, argv[++i], o)) {
      throw Failure("unknown option " + std::string(opt));
    }
    have_listen = have_listen || opt == "--listen";
  }
  if (!have_listen) {
    throw Failure("--listen is required");
  }
  if (o.bytes == 0 || o.chunk == 0 || o.chunk > kMaxChunk) {
    throw Failure("--bytes must be > 0 and --chunk in 1..1048576");
  }
  if (o.conns < 1 || o.conns > 60000 || o.size < 16 || o.size > 65536 || o.seconds <= 0) {
    throw Failure("--conns in 1..60000, --size in 16..65536, --seconds > 0");
  }
  return o;
}

}  // namespace
}  // namespace sluice::bench

int main(int argc, char** argv) {
  using namespace sluice::bench;
  if (argc >= 2 && (std::string_view(argv[1]) == "-h" || std::string_view(argv[1]) == "--help")) {
    std::fputs(kUsage.data(), stdout);
    return 0;
  }
  if (argc < 2) {
    std::fputs(kUsage.data(), stderr);
    return 2;
  }
  std::string mode = argv[1];
  try {
    Options o = parseOptions(argc, argv);
    std::string line = o.mode == "bulk" ? runBulk(o) : runMsgs(o);
    std::puts(line.c_str());
    return line.find("\"ok\": false") == std::string::npos ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "sluice-flowbench: %s\n", e.what());
    JsonLine j;
    j.add("ok", false).add("mode", mode).add("error", e.what());
    std::puts(j.str().c_str());
    return 1;
  }
}
