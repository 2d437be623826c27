// CPU accounting of sluice-flowbench: the whole machine's busy time over an interval, from
// /proc/stat, split by a scan of /proc into this process, the proxy, kernel threads, other
// processes and the rest (interrupt and softirq time charged to no task).
#pragma once

#include <cstdint>
#include <map>
#include <vector>

#include "flowbench.hpp"

namespace sluice::bench {

struct SystemCpu {
  std::uint64_t busy = 0;   // user+nice+system+irq+softirq+steal, all CPUs, jiffies
  std::uint64_t total = 0;  // the same plus idle+iowait
};

struct ProcTicks {
  std::uint64_t own = 0;       // utime+stime (all threads, live and exited)
  std::uint64_t children = 0;  // cutime+cstime (reaped children)
  int ppid = 0;
  bool kthread = false;
};

struct CpuSnapshot {
  Clock::time_point at;
  SystemCpu system;
  std::map<int, ProcTicks> procs;
};

// The scan goes outside the /proc/stat reading so its own cost stays out of the interval.
CpuSnapshot snapshotBegin();
CpuSnapshot snapshotEnd();

struct CpuReport {
  double seconds = 0;        // wall time of the interval
  double system_busy_s = 0;  // all busy CPU time, the figure the per-unit costs use
  double busy_percent = 0;   // of all CPUs
  double self_s = 0;         // this process (client + server)
  double proxy_s = 0;        // --proxy-pid processes
  double kernel_threads_s = 0;
  double other_s = 0;  // all other processes, their reaped children included
};

CpuReport cpuBetween(const CpuSnapshot& a, const CpuSnapshot& b, const std::vector<int>& proxies);

// The cpu_* fields of the JSON line.
void addCpu(JsonLine& j, const CpuReport& c);

}  // namespace sluice::bench
