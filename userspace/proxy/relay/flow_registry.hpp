// The handed-off flows open now, for /debug/flows and `ingressctl flows`. A flow registers once
// when its relay starts and leaves when it ends (one mutex acquisition each); byte counters are
// relaxed atomics the relay bumps per chunk it moves.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

namespace sluice::proxy {

struct FlowInfo {
  std::uint64_t id = 0;
  std::string client;   // remote address of the client-side socket
  std::string backend;  // remote address of the backend-side socket
  std::chrono::steady_clock::time_point started;
  std::atomic<std::uint8_t> strategy{0};    // SpliceStrategy now in use (adaptive: per direction)
  std::atomic<std::uint8_t> piped{0};       // adaptive: bit 0 upstream, bit 1 downstream on pipe
  std::atomic<std::uint64_t> bytes_in{0};   // client → backend, moved by the agent
  std::atomic<std::uint64_t> bytes_out{0};  // backend → client
  std::uint64_t client_cookie = 0;          // sockmap: the kernel counts the bytes
  std::uint64_t backend_cookie = 0;
  FlowInfo* prev = nullptr;
  FlowInfo* next = nullptr;
};

// A copyable view of one flow at the time of the snapshot.
struct FlowView {
  std::uint64_t id;
  std::string client, backend;
  std::uint8_t strategy, piped;
  std::uint64_t bytes_in, bytes_out, client_cookie, backend_cookie;
  std::chrono::steady_clock::duration age;
};

class FlowRegistry {
public:
  void add(FlowInfo* f);
  void remove(FlowInfo* f);
  std::vector<FlowView> snapshot() const;

private:
  mutable std::mutex mutex_;
  FlowInfo* head_ = nullptr;
};

FlowRegistry& flowRegistry();

}  // namespace sluice::proxy
