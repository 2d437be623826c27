#include "cpu.hpp"

#include <dirent.h>
#include <fcntl.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <string_view>

namespace sluice::bench {
namespace {

constexpr std::uint64_t kPfKthread = 0x00200000;  // PF_KTHREAD in /proc/PID/stat flags

SystemCpu readSystemCpu() {
  std::ifstream in("/proc/stat");
  std::string label;
  std::array<std::uint64_t, 8> v{};  // user nice system idle iowait irq softirq steal
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
      continue;  // exited meanwhile
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

}  // namespace

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

}  // namespace sluice::bench
