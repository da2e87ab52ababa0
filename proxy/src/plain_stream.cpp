#include "exsim/proxy/plain_stream.hpp"

#include <boost/asio/error.hpp>

namespace exsim::proxy {

// After a non-blocking call: the wait it needs when it would have blocked.
std::optional<deadline_stream::wait_type> plain_stream::step(op o, std::size_t& moved, error_code& ec) {
    const bool reading = o == op::read;
    moved = reading ? socket().read_some(buffers_.read, ec) : socket().write_some(buffers_.write(), ec);
    if (ec != boost::asio::error::would_block && ec != boost::asio::error::try_again) return std::nullopt;
    ec = {};
    return reading ? wait_type::wait_read : wait_type::wait_write;
}

}  // namespace exsim::proxy
