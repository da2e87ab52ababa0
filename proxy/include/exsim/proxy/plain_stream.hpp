#pragma once
// The plain-HTTP client stream on deadline_stream's ground (deadline_stream.hpp).

#include <cstddef>
#include <optional>

#include "exsim/proxy/deadline_stream.hpp"

namespace exsim::proxy {

// Plain HTTP: recv and send (MSG_NOSIGNAL) on the socket. A Beast AsyncStream whose errors are
// the socket's: net::error::eof when the peer closed.
class plain_stream : public deadline_stream {
public:
    using deadline_stream::deadline_stream;

private:
    std::optional<wait_type> step(op o, std::size_t& moved, error_code& ec) override;
};

}  // namespace exsim::proxy
