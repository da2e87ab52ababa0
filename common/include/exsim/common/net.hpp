#pragma once

#include <cstdint>
#include <string>

namespace exsim::common {

// A TCP port on 127.0.0.1 that was free a moment ago (bound to 0, read back, released).
std::uint16_t pick_free_port();

// True when something accepts TCP connections on 127.0.0.1:port.
bool tcp_port_open(std::uint16_t port);

}  // namespace exsim::common
