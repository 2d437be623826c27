#include "proxy/stats.hpp"

namespace sluice::proxy {

void Histogram::observe(std::chrono::nanoseconds d) {
  const double s = static_cast<double>(d.count()) / 1e9;
  for (std::size_t i = 0; i < kBoundsSeconds.size(); ++i) {
    if (s <= kBoundsSeconds[i]) {
      bump(buckets_[i]);
      break;
    }
  }
  bump(count_);
  bump(sum_ns_, static_cast<std::uint64_t>(d.count()));
}

int statusOf(LocalReply r) {
  static constexpr int kStatus[] = {400, 404, 408, 413, 414, 431, 502, 503, 504};
  return kStatus[static_cast<std::size_t>(r)];
}

GlobalStats& globalStats() {
  static GlobalStats stats;
  return stats;
}

}  // namespace sluice::proxy
