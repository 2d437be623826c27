// What the fuzz targets share: a check that survives NDEBUG, and the input-derived point where a
// target cuts its input in two to compare a piecewise verdict with the whole one.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

// abort() rather than assert(): the check must survive NDEBUG builds and leave a crash artifact.
#define FUZZ_CHECK(cond)                                                                  \
  do {                                                                                    \
    if (!(cond)) {                                                                        \
      std::fprintf(stderr, "FUZZ_CHECK failed: %s (%s:%d)\n", #cond, __FILE__, __LINE__); \
      std::abort();                                                                       \
    }                                                                                     \
  } while (0)

namespace sluice::fuzz {

// A cut in [0, size], taken from the first and last bytes so the fuzzer steers it and a
// reproducer replays it.
inline std::size_t splitPoint(const std::uint8_t* data, std::size_t size) {
  return size == 0 ? 0 : (static_cast<std::size_t>(data[0]) * 251 + data[size - 1]) % (size + 1);
}

}  // namespace sluice::fuzz
