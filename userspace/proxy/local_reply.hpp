// Replies the agent writes itself (errors), prebuilt once: a short text body, Content-Length,
// and Connection: close or keep-alive.
#pragma once

#include <string_view>

#include "proxy/stats.hpp"

namespace sluice::proxy {

std::string_view localReply(LocalReply reply, bool close);

}  // namespace sluice::proxy
