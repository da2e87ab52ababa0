#include "exsim/proxy/deadline_stream.hpp"

#include <boost/beast/core/error.hpp>

namespace exsim::proxy {

deadline_stream::deadline_stream(tcp::socket socket) : core_(std::make_shared<core_type>(std::move(socket))) {
    core_->socket.non_blocking(true);
}

deadline_stream::~deadline_stream() {
    if (core_) close();
}

void deadline_stream::close() {
    core_->timer.cancel();
    error_code ignored;
    core_->socket.close(ignored);
}

void deadline_stream::begin_timer(std::uint64_t wait) {
    core_->timed_out = false;
    if (core_->deadline == std::chrono::steady_clock::time_point::max()) return;
    core_->timer.expires_at(core_->deadline);
    core_->timer.async_wait([core = core_, wait](error_code ec) {
        if (ec || core->waits != wait) return;  // cancelled, or a wait that has already ended
        core->timed_out = true;
        core->socket.cancel();
    });
}

deadline_stream::error_code deadline_stream::end_wait(error_code ec) {
    ++core_->waits;
    core_->timer.cancel();
    if (core_->timed_out) return boost::beast::error::timeout;
    return ec;
}

}  // namespace exsim::proxy
