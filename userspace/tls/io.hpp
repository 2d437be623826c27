// What a non-blocking TLS call asks of its caller.
#pragma once

#include <cstdint>

namespace sluice::tls {

enum class Io : std::uint8_t {
  kDone,       // the call completed (n bytes for read/write)
  kWantRead,   // wait until the socket is readable, then call again
  kWantWrite,  // wait until the socket is writable, then call again
  kClosed,     // the peer closed (close_notify or EOF)
  kError,      // a protocol or socket error: close the connection
};

}  // namespace sluice::tls
