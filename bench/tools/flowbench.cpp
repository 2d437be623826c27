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
#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

namespace sluice::bench {
namespace {

using Clock = std::chrono::steady_clock;

constexpr std::size_t kPatternPeriod = 65521; // prime: a shifted or repeated chunk never matches
constexpr std::size_t kMaxChunk = 1 << 20;
constexpr std::size_t kSampleStride = 4096;
constexpr std::uint64_t kPfKthread = 0x00200000; // PF_KTHREAD in /proc/PID/stat flags

// Setup and protocol failures; caught in main and reported as the JSON error line.
class Failure : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

[[noreturn]] void failErrno(const std::string& context) {
  throw Failure(context + ": " + std::strerror(errno));
}

double secondsBetween(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

class Fd {
public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  Fd& operator=(Fd&& other) noexcept {
    if (this != &other) {
      reset();
      fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { reset(); }

  int get() const { return fd_; }
  explicit operator bool() const { return fd_ >= 0; }
  void reset() {
    if (fd_ >= 0) {
      ::close(fd_);
      fd_ = -1;
    }
  }

private:
  int fd_ = -1;
};

// ---------------------------------------------------------------------------------------------
// Addresses and sockets

struct Endpoint {
  sockaddr_in addr{};
  std::string text;
};

Endpoint parseEndpoint(std::string_view s) {
  auto colon = s.rfind(':');
  if (colon == std::string_view::npos) {
    throw Failure("bad address '" + std::string(s) + "' (want IPv4:PORT)");
  }
  std::string host(s.substr(0, colon));
  unsigned port = 0;
  auto ps = s.substr(colon + 1);
  auto [p, ec] = std::from_chars(ps.data(), ps.data() + ps.size(), port);
  if (ec != std::errc() || p != ps.data() + ps.size() || port > 65535) {
    throw Failure("bad port in '" + std::string(s) + "'");
  }
  Endpoint e;
  e.addr.sin_family = AF_INET;
  e.addr.sin_port = htons(static_cast<std::uint16_t>(port));
  if (::inet_pton(AF_INET, host.c_str(), &e.addr.sin_addr) != 1) {
    throw Failure("bad IPv4 address '" + host + "'");
  }
  e.text = std::string(s);
  return e;
}

std::string endpointText(const sockaddr_in& a) {
  std::array<char, INET_ADDRSTRLEN> buf{};
  ::inet_ntop(AF_INET, &a.sin_addr, buf.data(), buf.size());
  return std::string(buf.data()) + ":" + std::to_string(ntohs(a.sin_port));
}

void setOpt(int fd, int level, int name, int value, const char* what) {
  if (::setsockopt(fd, level, name, &value, sizeof value) != 0) {
    failErrno(std::string("setsockopt ") + what);
  }
}

void setNonBlocking(int fd) {
  int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0) {
    failErrno("fcntl O_NONBLOCK");
  }
}

void setTimeout(int fd, int option, double seconds) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(seconds);
  tv.tv_usec = static_cast<suseconds_t>((seconds - static_cast<double>(tv.tv_sec)) * 1e6);
  if (::setsockopt(fd, SOL_SOCKET, option, &tv, sizeof tv) != 0) {
    failErrno("setsockopt SO_RCVTIMEO/SO_SNDTIMEO");
  }
}

// Blocking I/O that gives up (EAGAIN) after `seconds` without progress in either direction.
void setStallTimeouts(int fd, double seconds) {
  setTimeout(fd, SO_RCVTIMEO, seconds);
  setTimeout(fd, SO_SNDTIMEO, seconds);
}

// Binds before any thread starts, so the port is ready (and known, with port 0) when the client
// or the agent connects.
Fd listenOn(Endpoint& at) {
  Fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) {
    failErrno("socket");
  }
  setOpt(fd.get(), SOL_SOCKET, SO_REUSEADDR, 1, "SO_REUSEADDR");
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&at.addr), sizeof at.addr) != 0) {
    failErrno("bind " + at.text);
  }
  if (::listen(fd.get(), 4096) != 0) {
    failErrno("listen " + at.text);
  }
  socklen_t len = sizeof at.addr;
  ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&at.addr), &len);
  at.text = endpointText(at.addr);
  return fd;
}

// Blocking connect, retried on refusal until `deadline`: the agent opens its TCP listeners a
// moment after it reports ready.
Fd connectRetrying(const Endpoint& to, Clock::time_point deadline) {
  for (;;) {
    Fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd) {
      failErrno("socket");
    }
    if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&to.addr), sizeof to.addr) == 0) {
      return fd;
    }
    int err = errno;
    if ((err != ECONNREFUSED && err != EAGAIN && err != ETIMEDOUT) || Clock::now() >= deadline) {
      errno = err;
      failErrno("connect " + to.text);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

Fd acceptOne(int listener, double timeout_s) {
  pollfd p{listener, POLLIN, 0};
  int n = ::poll(&p, 1, static_cast<int>(timeout_s * 1000));
  if (n < 0) {
    failErrno("poll listener");
  }
  if (n == 0) {
    throw Failure("no connection reached the server within " + std::to_string(timeout_s) + " s");
  }
  Fd fd(::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC));
  if (!fd) {
    failErrno("accept");
  }
  return fd;
}

void raiseFdLimit() {
  rlimit r{};
  if (::getrlimit(RLIMIT_NOFILE, &r) == 0 && r.rlim_cur < r.rlim_max) {
    r.rlim_cur = r.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &r);
  }
}

// ---------------------------------------------------------------------------------------------
// CPU accounting

struct SystemCpu {
  std::uint64_t busy = 0;  // user+nice+system+irq+softirq+steal, all CPUs, jiffies
  std::uint64_t total = 0; // the same plus idle+iowait
};

SystemCpu readSystemCpu() {
  std::ifstream in("/proc/stat");
  std::string label;
  std::array<std::uint64_t, 8> v{}; // user nice system idle iowait irq softirq steal
  in >> label;
  for (auto& x : v) {
    in >> x;
  }
  if (!in || label != "cpu") {
    throw Failure("cannot parse /proc/stat");
  }
  SystemCpu s;
  s.busy = v[0] + v[1] + v[2] + v[5] + v[6] + v[7];
  s.total = s.busy + v[3] + v[4];
  return s;
}

struct ProcTicks {
  std::uint64_t own = 0;      // utime+stime (all threads, live and exited)
  std::uint64_t children = 0; // cutime+cstime (reaped children)
  int ppid = 0;
  bool kthread = false;
};

// pid -> ticks for every process; parsed after the last ')' since comm may hold anything.
std::map<int, ProcTicks> scanProcesses() {
  std::map<int, ProcTicks> out;
  std::unique_ptr<DIR, int (*)(DIR*)> dir(::opendir("/proc"), ::closedir);
  if (!dir) {
    failErrno("opendir /proc");
  }
  std::string path;
  std::array<char, 1024> buf{};
  while (dirent* e = ::readdir(dir.get())) {
    int pid = 0;
    std::string_view name(e->d_name);
    auto [p, ec] = std::from_chars(name.data(), name.data() + name.size(), pid);
    if (ec != std::errc() || p != name.data() + name.size()) {
      continue;
    }
    path = "/proc/" + std::string(name) + "/stat";
    Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) {
      continue; // exited meanwhile
    }
    ssize_t n = ::read(fd.get(), buf.data(), buf.size() - 1);
    if (n <= 0) {
      continue;
    }
    std::string_view line(buf.data(), static_cast<std::size_t>(n));
    auto close = line.rfind(')');
    if (close == std::string_view::npos) {
      continue;
    }
    // Fields from 3 (state) on: state ppid pgrp session tty tpgid flags minflt cminflt majflt
    // cmajflt utime stime cutime cstime.
    std::istringstream fields{std::string(line.substr(close + 1))};
    std::string state;
    int ppid = 0;
    std::int64_t skip = 0;
    std::uint64_t flags = 0, utime = 0, stime = 0, cutime = 0, cstime = 0;
    fields >> state >> ppid >> skip >> skip >> skip >> skip >> flags >> skip >> skip >> skip >>
        skip >> utime >> stime >> cutime >> cstime;
    if (!fields) {
      continue;
    }
    out[pid] = ProcTicks{utime + stime, cutime + cstime, ppid, (flags & kPfKthread) != 0};
  }
  return out;
}

struct CpuSnapshot {
  Clock::time_point at;
  SystemCpu system;
  std::map<int, ProcTicks> procs;
};

// The scan goes outside the /proc/stat reading so its own cost stays out of the interval.
CpuSnapshot snapshotBegin() {
  CpuSnapshot s;
  s.procs = scanProcesses();
  s.system = readSystemCpu();
  s.at = Clock::now();
  return s;
}

CpuSnapshot snapshotEnd() {
  CpuSnapshot s;
  s.at = Clock::now();
  s.system = readSystemCpu();
  s.procs = scanProcesses();
  return s;
}

struct CpuReport {
  double seconds = 0;         // wall time of the interval
  double system_busy_s = 0;   // all busy CPU time, the figure the per-unit costs use
  double busy_percent = 0;    // of all CPUs
  double self_s = 0;          // this process (client + server)
  double proxy_s = 0;         // --proxy-pid processes
  double kernel_threads_s = 0;
  double other_s = 0;         // all other processes, their reaped children included
};

CpuReport cpuBetween(const CpuSnapshot& a, const CpuSnapshot& b, const std::vector<int>& proxies) {
  const double hz = static_cast<double>(::sysconf(_SC_CLK_TCK));
  CpuReport r;
  r.seconds = secondsBetween(a.at, b.at);
  std::uint64_t busy = b.system.busy - a.system.busy;
  std::uint64_t total = b.system.total - a.system.total;
  r.system_busy_s = static_cast<double>(busy) / hz;
  r.busy_percent = total > 0 ? 100.0 * static_cast<double>(busy) / static_cast<double>(total) : 0;
  const int self = static_cast<int>(::getpid());
  // A proxy's processes: the given pids and their descendants (a master's workers, say).
  auto isProxy = [&](int pid) {
    for (int hops = 0; pid > 1 && hops < 64; ++hops) {
      if (std::find(proxies.begin(), proxies.end(), pid) != proxies.end()) {
        return true;
      }
      auto it = b.procs.find(pid);
      if (it == b.procs.end()) {
        return false;
      }
      pid = it->second.ppid;
    }
    return false;
  };
  std::uint64_t self_t = 0, proxy_t = 0, kthread_t = 0, other_t = 0;
  for (const auto& [pid, end] : b.procs) {
    auto it = a.procs.find(pid);
    ProcTicks start = it != a.procs.end() ? it->second : ProcTicks{};
    auto delta = [](std::uint64_t x, std::uint64_t y) { return x > y ? x - y : 0; };
    std::uint64_t own = delta(end.own, start.own);
    if (pid == self) {
      self_t += own;
    } else if (!proxies.empty() && isProxy(pid)) {
      proxy_t += own;
    } else if (end.kthread) {
      kthread_t += own;
    } else {
      other_t += own + delta(end.children, start.children);
    }
  }
  r.self_s = static_cast<double>(self_t) / hz;
  r.proxy_s = static_cast<double>(proxy_t) / hz;
  r.kernel_threads_s = static_cast<double>(kthread_t) / hz;
  // Children reaped in the interval bring all their time with them, some of it older; never
  // count more than the busy time nobody else accounts for.
  r.other_s = std::min(static_cast<double>(other_t) / hz,
                       std::max(0.0, r.system_busy_s - r.self_s - r.proxy_s - r.kernel_threads_s));
  return r;
}

// ---------------------------------------------------------------------------------------------
// Output

class JsonLine {
public:
  JsonLine& add(std::string_view key, std::string_view value) {
    key_(key);
    out_ += '"';
    for (char c : value) {
      if (c == '"' || c == '\\') {
        out_ += '\\';
        out_ += c;
      } else if (static_cast<unsigned char>(c) < 0x20) {
        std::array<char, 8> esc{};
        std::snprintf(esc.data(), esc.size(), "\\u%04x", static_cast<unsigned>(c));
        out_ += esc.data();
      } else {
        out_ += c;
      }
    }
    out_ += '"';
    return *this;
  }
  JsonLine& add(std::string_view key, const char* value) {
    return add(key, std::string_view(value));
  }
  JsonLine& add(std::string_view key, bool value) {
    key_(key);
    out_ += value ? "true" : "false";
    return *this;
  }
  JsonLine& add(std::string_view key, std::uint64_t value) {
    key_(key);
    out_ += std::to_string(value);
    return *this;
  }
  JsonLine& add(std::string_view key, int value) {
    key_(key);
    out_ += std::to_string(value);
    return *this;
  }
  JsonLine& add(std::string_view key, double value, int decimals = 3) {
    key_(key);
    if (!std::isfinite(value)) {
      out_ += "null";
      return *this;
    }
    std::array<char, 64> buf{};
    std::snprintf(buf.data(), buf.size(), "%.*f", decimals, value);
    out_ += buf.data();
    return *this;
  }
  JsonLine& addRaw(std::string_view key, std::string_view json) {
    key_(key);
    out_ += json;
    return *this;
  }
  std::string str() const { return out_ + "}"; }

private:
  void key_(std::string_view key) {
    out_ += out_.size() > 1 ? ", \"" : "\"";
    out_ += key;
    out_ += "\": ";
  }
  std::string out_ = "{";
};

void addCpu(JsonLine& j, const CpuReport& c) {
  j.add("cpu_seconds", c.system_busy_s, 2)
      .add("cpu_busy_percent", c.busy_percent, 1)
      .add("cpu_self_seconds", c.self_s, 2)
      .add("cpu_proxy_seconds", c.proxy_s, 2)
      .add("cpu_kernel_threads_seconds", c.kernel_threads_s, 2)
      .add("cpu_other_processes_seconds", c.other_s, 2)
      .add("cpu_seconds_excluding_other_processes", c.system_busy_s - c.other_s, 2)
      .add("cpu_unattributed_seconds",
           std::max(0.0, c.system_busy_s - c.self_s - c.proxy_s - c.kernel_threads_s - c.other_s),
           2);
}

// ---------------------------------------------------------------------------------------------
// Options

enum class Verify { kNone, kSampled, kFull };

struct Options {
  std::string mode;
  Endpoint listen;
  std::optional<Endpoint> connect;
  std::string label;
  std::vector<int> proxy_pids;
  double connect_timeout_s = 10;
  double stall_timeout_s = 10;
  // bulk
  std::uint64_t bytes = 2ULL << 30;
  bool upload = true; // client -> server; false: server -> client
  std::size_t chunk = 256 << 10;
  Verify verify = Verify::kSampled;
  // msgs
  int conns = 1000;
  double seconds = 10;
  double warmup = 1;
  std::size_t size = 100;
};

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
    std::string_view val(argv[++i]);
    if (opt == "--listen") {
      o.listen = parseEndpoint(val);
      have_listen = true;
    } else if (opt == "--connect") {
      o.connect = parseEndpoint(val);
    } else if (opt == "--label") {
      o.label = std::string(val);
    } else if (opt == "--proxy-pid") {
      std::string list(val);
      std::stringstream ss(list);
      for (std::string item; std::getline(ss, item, ',');) {
        if (!item.empty()) {
          o.proxy_pids.push_back(static_cast<int>(parseSize(item)));
        }
      }
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
      if (val == "none") {
        o.verify = Verify::kNone;
      } else if (val == "sampled") {
        o.verify = Verify::kSampled;
      } else if (val == "full") {
        o.verify = Verify::kFull;
      } else {
        throw Failure("--verify is sampled, full or none");
      }
    } else if (opt == "--conns") {
      o.conns = static_cast<int>(parseSize(val));
    } else if (opt == "--seconds") {
      o.seconds = parseSeconds(val);
    } else if (opt == "--warmup") {
      o.warmup = parseSeconds(val);
    } else if (opt == "--size") {
      o.size = static_cast<std::size_t>(parseSize(val));
    } else {
      throw Failure("unknown option " + std::string(opt));
    }
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

// Runs `body` on a thread; its Failure is kept for the caller, so a dead server does not take
// the process down before the client has a chance to report what it saw.
class Worker {
public:
  template <typename F>
  explicit Worker(F body)
      : thread_([this, body = std::move(body)]() mutable {
          try {
            body();
          } catch (const std::exception& e) {
            std::lock_guard lock(mu_);
            error_ = e.what();
          }
        }) {}
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;
  ~Worker() {
    if (thread_.joinable()) {
      thread_.join();
    }
  }
  // Joins; the thread's error, if any.
  std::string join() {
    if (thread_.joinable()) {
      thread_.join();
    }
    std::lock_guard lock(mu_);
    return error_;
  }

private:
  std::mutex mu_;
  std::string error_;
  std::thread thread_;
};

// ---------------------------------------------------------------------------------------------
// bulk

// The stream's byte at offset o is pattern[o % kPatternPeriod]; the buffer repeats the period
// for kMaxChunk more bytes so any chunk starting anywhere in the period is contiguous.
std::vector<char> makePattern() {
  std::vector<char> p(kPatternPeriod + kMaxChunk);
  std::uint64_t x = 0x9e3779b97f4a7c15ULL;
  for (std::size_t i = 0; i < kPatternPeriod; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    p[i] = static_cast<char>(x >> 24);
  }
  for (std::size_t i = kPatternPeriod; i < p.size(); ++i) {
    p[i] = p[i - kPatternPeriod];
  }
  return p;
}

struct BulkSide {
  CpuSnapshot mark; // sender: start of the interval; receiver: end
  std::uint64_t bytes = 0;
  std::uint64_t mismatches = 0;
  std::uint64_t first_mismatch = 0;
  bool eof = false;
  bool reset = false; // ECONNRESET after every byte arrived, instead of an EOF
};

void bulkSend(int fd, const Options& o, const std::vector<char>& pattern, BulkSide& side) {
  side.mark = snapshotBegin();
  std::uint64_t sent = 0;
  while (sent < o.bytes) {
    std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(o.chunk, o.bytes - sent));
    ssize_t w = ::send(fd, pattern.data() + sent % kPatternPeriod, n, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR) {
        continue;
      }
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        throw Failure("stalled: could not send for " + std::to_string(o.stall_timeout_s) +
                      " s after " + std::to_string(sent) + " bytes");
      }
      failErrno("send after " + std::to_string(sent) + " bytes");
    }
    sent += static_cast<std::uint64_t>(w);
  }
  side.bytes = sent;
  if (::shutdown(fd, SHUT_WR) != 0) {
    failErrno("shutdown(SHUT_WR)");
  }
  // Wait for the receiver's close so our close never turns into a reset mid-stream.
  std::array<char, 4096> sink{};
  while (::recv(fd, sink.data(), sink.size(), 0) > 0) {
  }
}

void bulkReceive(int fd, const Options& o, const std::vector<char>& pattern, BulkSide& side) {
  std::vector<char> buf(o.chunk);
  std::uint64_t got = 0;
  bool marked = false;
  for (;;) {
    ssize_t r = ::recv(fd, buf.data(), buf.size(), 0);
    if (r < 0) {
      if (errno == EINTR) {
        continue;
      }
      if (errno == ECONNRESET && marked) {
        side.reset = true;
        break;
      }
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        if (got < o.bytes) {
          throw Failure("stalled: no data for " + std::to_string(o.stall_timeout_s) +
                        " s after " + std::to_string(got) + " of " + std::to_string(o.bytes) +
                        " bytes");
        }
        break; // all bytes arrived, but no EOF: reported as eof=false
      }
      failErrno("recv after " + std::to_string(got) + " bytes");
    }
    if (r == 0) {
      side.eof = true;
      break;
    }
    auto n = static_cast<std::size_t>(r);
    if (o.verify != Verify::kNone) {
      const char* want = pattern.data() + got % kPatternPeriod;
      bool bad = false;
      if (o.verify == Verify::kFull) {
        bad = std::memcmp(buf.data(), want, n) != 0;
      } else {
        // The 8 bytes at each 4 KiB boundary of the stream inside this chunk.
        std::uint64_t first = (got + kSampleStride - 1) / kSampleStride * kSampleStride;
        for (std::uint64_t off = first; off < got + n && !bad; off += kSampleStride) {
          std::size_t at = static_cast<std::size_t>(off - got);
          std::size_t len = std::min<std::size_t>(8, n - at);
          bad = std::memcmp(buf.data() + at, want + at, len) != 0;
        }
      }
      if (bad) {
        if (side.mismatches++ == 0) {
          side.first_mismatch = got;
        }
      }
    }
    got += n;
    if (!marked && got >= o.bytes) {
      side.mark = snapshotEnd();
      marked = true;
      setTimeout(fd, SO_RCVTIMEO, std::min(o.stall_timeout_s, 5.0)); // the wait for EOF
    }
  }
  side.bytes = got;
  if (!marked) {
    throw Failure("connection closed after " + std::to_string(got) + " of " +
                  std::to_string(o.bytes) + " bytes");
  }
}

std::string runBulk(const Options& o) {
  Endpoint listen = o.listen;
  Fd listener = listenOn(listen);
  Endpoint target = o.connect.value_or(listen);
  const std::vector<char> pattern = makePattern();
  BulkSide server, client;

  Worker server_thread([&] {
    Fd fd = acceptOne(listener.get(), o.connect_timeout_s + 5);
    setStallTimeouts(fd.get(), o.stall_timeout_s);
    if (o.upload) {
      bulkReceive(fd.get(), o, pattern, server);
    } else {
      bulkSend(fd.get(), o, pattern, server);
    }
  });
  std::string client_error;
  try {
    const auto deadline =
        Clock::now() + std::chrono::milliseconds(static_cast<int>(o.connect_timeout_s * 1000));
    Fd fd = connectRetrying(target, deadline);
    setStallTimeouts(fd.get(), o.stall_timeout_s);
    if (o.upload) {
      bulkSend(fd.get(), o, pattern, client);
    } else {
      bulkReceive(fd.get(), o, pattern, client);
    }
  } catch (const std::exception& e) {
    client_error = e.what();
    // Unblock a server still waiting in accept: nothing will arrive.
    ::shutdown(listener.get(), SHUT_RDWR);
  }
  std::string server_error = server_thread.join();
  if (!client_error.empty()) {
    throw Failure("client: " + client_error +
                  (server_error.empty() ? "" : "; server: " + server_error));
  }
  if (!server_error.empty()) {
    throw Failure("server: " + server_error);
  }

  const BulkSide& sender = o.upload ? client : server;
  const BulkSide& receiver = o.upload ? server : client;
  std::string content;
  if (receiver.mismatches != 0) {
    content = "content mismatch in " + std::to_string(receiver.mismatches) +
              " reads, the first one starting at stream offset " +
              std::to_string(receiver.first_mismatch);
  }
  if (receiver.bytes != o.bytes) {
    throw Failure("receiver got " + std::to_string(receiver.bytes) + " bytes, sender sent " +
                  std::to_string(o.bytes) + "; " + (content.empty() ? "content intact" : content));
  }
  if (!content.empty()) {
    throw Failure(content);
  }
  CpuReport cpu = cpuBetween(sender.mark, receiver.mark, o.proxy_pids);
  const double mib = static_cast<double>(o.bytes) / (1 << 20);
  const double gib = static_cast<double>(o.bytes) / (1 << 30);
  JsonLine j;
  j.add("ok", true)
      .add("mode", "bulk")
      .add("label", o.label)
      .add("direction", o.upload ? "up" : "down")
      .add("server", listen.text)
      .add("connect", target.text)
      .add("bytes", o.bytes)
      .add("verify", o.verify == Verify::kFull      ? "full"
                     : o.verify == Verify::kSampled ? "sampled"
                                                    : "none")
      .add("eof", receiver.eof)
      .add("close", receiver.eof ? "eof" : receiver.reset ? "reset" : "none")
      .add("seconds", cpu.seconds, 4)
      .add("mib_per_s", mib / cpu.seconds, 1);
  addCpu(j, cpu);
  j.add("cpu_seconds_per_gib", cpu.system_busy_s / gib, 3);
  return j.str();
}

// ---------------------------------------------------------------------------------------------
// msgs

// Round-trip times in 10 µs buckets up to 1 s, the last bucket catching everything slower.
class Histogram {
public:
  void add(Clock::duration d) {
    auto us = std::chrono::duration_cast<std::chrono::microseconds>(d).count();
    auto i = std::min<std::size_t>(static_cast<std::size_t>(std::max<std::int64_t>(us, 0) / 10),
                                   buckets_.size() - 1);
    ++buckets_[i];
    ++count_;
  }
  // Upper edge of the bucket holding quantile q, in µs.
  double quantileUs(double q) const {
    if (count_ == 0) {
      return 0;
    }
    auto rank = static_cast<std::uint64_t>(std::ceil(q * static_cast<double>(count_)));
    std::uint64_t seen = 0;
    for (std::size_t i = 0; i < buckets_.size(); ++i) {
      seen += buckets_[i];
      if (seen >= rank) {
        return static_cast<double>((i + 1) * 10);
      }
    }
    return static_cast<double>(buckets_.size() * 10);
  }

private:
  std::vector<std::uint64_t> buckets_ = std::vector<std::uint64_t>(100001);
  std::uint64_t count_ = 0;
};

struct EchoStats {
  std::atomic<int> accepted{0};
  std::atomic<std::uint64_t> bytes{0};
};

// Echo server: level-triggered epoll, one thread. Writes what it read; if the socket buffer is
// full, it holds the rest and stops reading that connection until it drains (never for 100 B
// ping-pong, but a proxy may coalesce).
void echoServer(int listener, int stop_fd, EchoStats& stats) {
  Fd ep(::epoll_create1(EPOLL_CLOEXEC));
  if (!ep) {
    failErrno("epoll_create1");
  }
  setNonBlocking(listener);
  struct Conn {
    Fd fd;
    std::string pending;
  };
  std::map<int, Conn> conns;
  auto watch = [&](int fd, std::uint32_t events, int op) {
    epoll_event ev{};
    ev.events = events;
    ev.data.fd = fd;
    if (::epoll_ctl(ep.get(), op, fd, &ev) != 0) {
      failErrno("epoll_ctl");
    }
  };
  watch(listener, EPOLLIN, EPOLL_CTL_ADD);
  watch(stop_fd, EPOLLIN, EPOLL_CTL_ADD);
  std::vector<char> buf(64 << 10);
  std::array<epoll_event, 256> events{};
  for (;;) {
    int n = ::epoll_wait(ep.get(), events.data(), static_cast<int>(events.size()), -1);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      failErrno("epoll_wait (server)");
    }
    for (int i = 0; i < n; ++i) {
      int fd = events[static_cast<std::size_t>(i)].data.fd;
      if (fd == stop_fd) {
        return;
      }
      if (fd == listener) {
        for (;;) {
          int c = ::accept4(listener, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
          if (c < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
              break;
            }
            if (errno == ECONNABORTED) {
              continue;
            }
            failErrno("accept (server)");
          }
          setOpt(c, IPPROTO_TCP, TCP_NODELAY, 1, "TCP_NODELAY");
          conns[c].fd = Fd(c);
          watch(c, EPOLLIN, EPOLL_CTL_ADD);
          stats.accepted.fetch_add(1, std::memory_order_relaxed);
        }
        continue;
      }
      auto it = conns.find(fd);
      if (it == conns.end()) {
        continue;
      }
      Conn& c = it->second;
      bool closed = false;
      if (!c.pending.empty()) {
        ssize_t w = ::send(fd, c.pending.data(), c.pending.size(), MSG_NOSIGNAL);
        if (w > 0) {
          c.pending.erase(0, static_cast<std::size_t>(w));
        } else if (w < 0 && errno != EAGAIN && errno != EINTR) {
          closed = true;
        }
        if (!closed && c.pending.empty()) {
          watch(fd, EPOLLIN, EPOLL_CTL_MOD);
        }
      } else {
        ssize_t r = ::recv(fd, buf.data(), buf.size(), 0);
        if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
          closed = true; // EOF or reset at the end of a run
        } else if (r > 0) {
          stats.bytes.fetch_add(static_cast<std::uint64_t>(r), std::memory_order_relaxed);
          ssize_t w = ::send(fd, buf.data(), static_cast<std::size_t>(r), MSG_NOSIGNAL);
          if (w < 0 && errno != EAGAIN && errno != EINTR) {
            closed = true;
          } else {
            auto done = static_cast<std::size_t>(std::max<ssize_t>(w, 0));
            if (done < static_cast<std::size_t>(r)) {
              c.pending.assign(buf.data() + done, static_cast<std::size_t>(r) - done);
              watch(fd, EPOLLOUT, EPOLL_CTL_MOD);
            }
          }
        }
      }
      if (closed) {
        conns.erase(it); // the Fd closes it, which also removes it from the epoll set
      }
    }
  }
}

struct PingConn {
  Fd fd;
  std::uint64_t seq = 0;
  std::size_t sent = 0; // bytes of the current message written
  std::size_t got = 0;  // bytes of its echo received
  Clock::time_point sent_at;
  std::vector<char> out;
  std::vector<char> in;
  bool dead = false;
};

std::string runMsgs(const Options& o) {
  raiseFdLimit();
  Endpoint listen = o.listen;
  Fd listener = listenOn(listen);
  Endpoint target = o.connect.value_or(listen);
  Fd stop(::eventfd(0, EFD_CLOEXEC));
  if (!stop) {
    failErrno("eventfd");
  }
  EchoStats echo;
  Worker server_thread([&] { echoServer(listener.get(), stop.get(), echo); });
  auto stopServer = [&] {
    std::uint64_t one = 1;
    [[maybe_unused]] ssize_t w = ::write(stop.get(), &one, sizeof one);
    return server_thread.join();
  };

  std::string result;
  std::string client_error;
  try {
    // Connect everything first (retrying while the proxy's listener comes up), then start all
    // ping-pongs at once.
    const auto connect_start = Clock::now();
    const auto deadline =
        connect_start + std::chrono::milliseconds(static_cast<int>(o.connect_timeout_s * 1000));
    std::vector<PingConn> conns(static_cast<std::size_t>(o.conns));
    Fd ep(::epoll_create1(EPOLL_CLOEXEC));
    if (!ep) {
      failErrno("epoll_create1");
    }
    for (std::size_t i = 0; i < conns.size(); ++i) {
      PingConn& c = conns[i];
      c.fd = connectRetrying(target, std::max(deadline, Clock::now() + std::chrono::seconds(2)));
      setNonBlocking(c.fd.get());
      setOpt(c.fd.get(), IPPROTO_TCP, TCP_NODELAY, 1, "TCP_NODELAY");
      c.out.assign(o.size, 'm');
      c.in.resize(o.size);
      std::memcpy(c.out.data(), &i, sizeof i);
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.u64 = i;
      if (::epoll_ctl(ep.get(), EPOLL_CTL_ADD, c.fd.get(), &ev) != 0) {
        failErrno("epoll_ctl");
      }
    }
    const double connect_s = secondsBetween(connect_start, Clock::now());

    std::uint64_t errors = 0;
    std::string first_error;
    auto kill = [&](PingConn& c, std::string why) {
      if (!c.dead) {
        c.dead = true;
        if (errors++ == 0) {
          first_error = std::move(why);
        }
        ::epoll_ctl(ep.get(), EPOLL_CTL_DEL, c.fd.get(), nullptr);
      }
    };
    // Writes the rest of the current message; false when the socket is full (EPOLLOUT armed).
    auto flush = [&](PingConn& c, std::size_t index) {
      while (c.sent < c.out.size()) {
        ssize_t w = ::send(c.fd.get(), c.out.data() + c.sent, c.out.size() - c.sent, MSG_NOSIGNAL);
        if (w < 0) {
          if (errno == EINTR) {
            continue;
          }
          if (errno == EAGAIN) {
            epoll_event ev{};
            ev.events = EPOLLIN | EPOLLOUT;
            ev.data.u64 = index;
            ::epoll_ctl(ep.get(), EPOLL_CTL_MOD, c.fd.get(), &ev);
            return;
          }
          kill(c, std::string("send: ") + std::strerror(errno));
          return;
        }
        c.sent += static_cast<std::size_t>(w);
      }
    };
    auto startMessage = [&](PingConn& c, std::size_t index, Clock::time_point now) {
      ++c.seq;
      std::memcpy(c.out.data() + sizeof(std::uint64_t), &c.seq, sizeof c.seq);
      c.sent = 0;
      c.got = 0;
      c.sent_at = now;
      flush(c, index);
    };

    const auto start = Clock::now();
    for (std::size_t i = 0; i < conns.size(); ++i) {
      startMessage(conns[i], i, start);
    }
    const auto warm_end = start + std::chrono::duration_cast<Clock::duration>(
                                      std::chrono::duration<double>(o.warmup));
    const auto planned_len =
        std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(o.seconds));
    enum class Phase { kWarmup, kMeasure } phase = Phase::kWarmup;
    CpuSnapshot begin, end;
    Clock::time_point measure_end = Clock::time_point::max();
    std::uint64_t round_trips = 0, warm_round_trips = 0;
    Histogram rtt;
    auto last_progress = Clock::now();
    std::array<epoll_event, 512> events{};

    for (;;) {
      auto now = Clock::now();
      if (phase == Phase::kWarmup && now >= warm_end) {
        begin = snapshotBegin();
        measure_end = begin.at + planned_len;
        phase = Phase::kMeasure;
        now = begin.at;
      }
      if (phase == Phase::kMeasure && now >= measure_end) {
        end = snapshotEnd();
        break;
      }
      if (errors == conns.size()) {
        break;
      }
      if (secondsBetween(last_progress, now) > o.stall_timeout_s) {
        throw Failure("stalled: no echo for " + std::to_string(o.stall_timeout_s) + " s");
      }
      auto until = phase == Phase::kWarmup ? warm_end : measure_end;
      int timeout_ms = static_cast<int>(
          std::chrono::ceil<std::chrono::milliseconds>(until - now).count());
      timeout_ms = std::clamp(timeout_ms, 0, 100);
      int n = ::epoll_wait(ep.get(), events.data(), static_cast<int>(events.size()), timeout_ms);
      if (n < 0) {
        if (errno == EINTR) {
          continue;
        }
        failErrno("epoll_wait (client)");
      }
      for (int k = 0; k < n; ++k) {
        const epoll_event& ev = events[static_cast<std::size_t>(k)];
        auto index = static_cast<std::size_t>(ev.data.u64);
        PingConn& c = conns[index];
        if (c.dead) {
          continue;
        }
        if ((ev.events & EPOLLOUT) != 0) {
          epoll_event mod{};
          mod.events = EPOLLIN;
          mod.data.u64 = index;
          ::epoll_ctl(ep.get(), EPOLL_CTL_MOD, c.fd.get(), &mod);
          flush(c, index);
        }
        if ((ev.events & (EPOLLIN | EPOLLERR | EPOLLHUP)) == 0) {
          continue;
        }
        ssize_t r = ::recv(c.fd.get(), c.in.data() + c.got, c.in.size() - c.got, 0);
        if (r == 0) {
          kill(c, "connection closed by peer");
          continue;
        }
        if (r < 0) {
          if (errno != EAGAIN && errno != EINTR) {
            kill(c, std::string("recv: ") + std::strerror(errno));
          }
          continue;
        }
        c.got += static_cast<std::size_t>(r);
        if (c.got < c.in.size()) {
          continue;
        }
        if (c.sent < c.out.size()) {
          kill(c, "echo arrived before the message was fully sent");
          continue;
        }
        if (std::memcmp(c.in.data(), c.out.data(), c.in.size()) != 0) {
          kill(c, "echo differs from the message sent");
          continue;
        }
        auto done = Clock::now();
        last_progress = done;
        if (phase == Phase::kMeasure && done < measure_end) {
          ++round_trips;
          rtt.add(done - c.sent_at);
        } else if (phase == Phase::kWarmup) {
          ++warm_round_trips;
        }
        startMessage(c, index, done);
      }
    }
    if (phase != Phase::kMeasure) {
      throw Failure("all " + std::to_string(conns.size()) + " connections failed during warm-up: " +
                    first_error);
    }
    // Close the client side before stopping the server so no reset is in flight meanwhile.
    conns.clear();

    CpuReport cpu = cpuBetween(begin, end, o.proxy_pids);
    const double messages = 2.0 * static_cast<double>(round_trips);
    JsonLine j;
    j.add("ok", errors == 0)
        .add("mode", "msgs")
        .add("label", o.label)
        .add("server", listen.text)
        .add("connect", target.text)
        .add("connections", o.conns)
        .add("message_bytes", static_cast<std::uint64_t>(o.size))
        .add("connect_seconds", connect_s, 3)
        .add("warmup_seconds", o.warmup, 1)
        .add("warmup_round_trips", warm_round_trips)
        .add("seconds", cpu.seconds, 4)
        .add("round_trips", round_trips)
        .add("messages", static_cast<std::uint64_t>(messages))
        .add("messages_per_s", messages / cpu.seconds, 0)
        .add("round_trips_per_s", static_cast<double>(round_trips) / cpu.seconds, 0)
        .add("rtt_p50_us", rtt.quantileUs(0.5), 0)
        .add("rtt_p99_us", rtt.quantileUs(0.99), 0)
        .add("server_connections", echo.accepted.load());
    addCpu(j, cpu);
    j.add("cpu_seconds_per_million_messages",
          messages > 0 ? cpu.system_busy_s / messages * 1e6 : NAN, 3)
        .add("messages_per_cpu_second", cpu.system_busy_s > 0 ? messages / cpu.system_busy_s : NAN,
             0)
        .add("connection_errors", errors)
        .add("first_error", first_error);
    result = j.str();
  } catch (const std::exception& e) {
    client_error = e.what();
  }
  std::string server_error = stopServer();
  if (!client_error.empty()) {
    throw Failure("client: " + client_error +
                  (server_error.empty() ? "" : "; server: " + server_error));
  }
  if (!server_error.empty()) {
    throw Failure("server: " + server_error);
  }
  return result;
}

} // namespace
} // namespace sluice::bench

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
