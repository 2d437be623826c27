// Limits sized from the machine the agent runs on, when the flags leave them to it.
#pragma once

#include <cstddef>
#include <string>

namespace sluice::app {

struct ConnectionSizing {
  std::size_t max_connections;
  std::string why;  // for the startup log: the numbers the default came from
};

// --max-connections when not given (0): the smaller of what the memory limit and the file
// limit allow, clamped to [256, 1,000,000]:
//   memory: (limit - 64 MiB) / 64 KiB, the limit being the cgroup's memory.max (v2) or
//           memory.limit_in_bytes (v1), else the machine's MemTotal; 64 KiB covers a busy
//           connection's two 16 KiB buffers and both sockets' kernel buffers, an idle one
//           needs a fraction of it;
//   files:  (RLIMIT_NOFILE - 256) / 4: the client socket, the upstream socket, and a splice(2)
//           pipe pair.
// Call after the file limit was raised.
ConnectionSizing sizeConnections(std::size_t requested);

// Raises the soft RLIMIT_NOFILE to the hard one: descriptors for thousands of client plus
// upstream connections.
void raiseFileLimit();

}  // namespace sluice::app
