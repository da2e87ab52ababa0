#pragma once
// The accept loop the back-end and the front-end share: accepts until the acceptor closes,
// each connection onto the io_context of the worker `next()` picks (the one it will live on),
// handed to `on_accept(worker, socket)`. An accept that fails at once again (EMFILE: out of
// descriptors) would spin: the loop waits 100 ms instead, and says so.

#include <chrono>
#include <memory>
#include <thread>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <spdlog/logger.h>

namespace exsim::common {

// Next: a callable returning a reference to a worker with an `ioc` member.
template <class Next, class OnAccept>
void accept_loop(boost::asio::ip::tcp::acceptor& acceptor, Next next, OnAccept on_accept,
                 std::shared_ptr<spdlog::logger> log) {
    auto& w = next();
    acceptor.async_accept(w.ioc, [&acceptor, &w, next, on_accept, log](boost::system::error_code ec,
                                                                       boost::asio::ip::tcp::socket socket) mutable {
        if (ec) {
            if (ec == boost::asio::error::operation_aborted || !acceptor.is_open()) return;
            log->warn("accept failed: {}; retrying in 100 ms", ec.message());
            auto timer = std::make_shared<boost::asio::steady_timer>(acceptor.get_executor(), std::chrono::milliseconds(100));
            timer->async_wait([&acceptor, next, on_accept, log, timer](boost::system::error_code) {
                if (acceptor.is_open()) accept_loop(acceptor, next, on_accept, log);
            });
            return;
        }
        on_accept(w, std::move(socket));
        accept_loop(acceptor, std::move(next), std::move(on_accept), std::move(log));
    });
}

// Ends the loop: the acceptor is closed on its own thread, which completes the pending accept
// while the workers' io_contexts (its peer socket belongs to one) are still alive, and lets
// run() return. The port is free when this returns.
inline void stop_accepting(boost::asio::io_context& accept_ioc, boost::asio::ip::tcp::acceptor& acceptor,
                           std::thread& accept_thread) {
    boost::asio::post(accept_ioc, [&acceptor] {
        boost::system::error_code ec;
        acceptor.close(ec);
    });
    if (accept_thread.joinable()) accept_thread.join();
}

}  // namespace exsim::common
