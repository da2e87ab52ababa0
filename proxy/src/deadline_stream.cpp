#include "exsim/proxy/deadline_stream.hpp"

#include <type_traits>

#include <boost/asio/compose.hpp>
#include <boost/asio/post.hpp>
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

void deadline_stream::run(op o, boost::asio::any_completion_handler<void(error_code)> handler) {
    run_erased(o, std::move(handler));
}

void deadline_stream::run(op o, common::io_handler handler) {
    run_erased(o, std::move(handler));
}

template <class Signature>
void deadline_stream::run_erased(op o, boost::asio::any_completion_handler<Signature> handler) {
    enum class state { first, waiting, done };
    boost::asio::async_compose<boost::asio::any_completion_handler<Signature>, Signature>(
        [this, o, s = state::first, result = error_code{}, moved = std::size_t{0}](auto& self, error_code ec = {}) mutable {
            const auto complete = [&](error_code e) {
                if constexpr (std::is_same_v<Signature, void(error_code)>)
                    self.complete(e);
                else
                    self.complete(e, moved);
            };
            if (s == state::done) return complete(result);
            if (s == state::waiting) ec = end_wait(ec);
            if (!ec) {
                if (auto want = step(o, moved, ec); want) {
                    s = state::waiting;
                    begin_timer(++core_->waits);
                    return core_->socket.async_wait(*want, std::move(self));
                }
            }
            if (s == state::first) {  // never complete inside the initiating function
                s = state::done;
                result = ec;
                return boost::asio::post(core_->socket.get_executor(), std::move(self));
            }
            complete(ec);
        },
        handler, core_->socket);
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
