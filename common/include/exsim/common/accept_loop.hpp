#pragma once
// The listener pieces the back-end, the front-end and the admin port share: bind a listening
// acceptor, accept onto workers in turn, and stop accepting.

#include <chrono>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <fmt/format.h>
#include <spdlog/logger.h>

namespace exsim::common {

// Opens, binds (SO_REUSEADDR) and listens on address:port (0: a free port). Throws
// std::runtime_error "<what>: ..." naming the address at start-up.
inline void listen_on(boost::asio::ip::tcp::acceptor& acceptor, const std::string& address, std::uint16_t port,
                      const std::string& what) {
    boost::system::error_code ec;
    boost::asio::ip::tcp::endpoint ep(boost::asio::ip::make_address(address, ec), port);
    if (ec) throw std::runtime_error(fmt::format("{}: '{}' is not an IP address", what, address));
    acceptor.open(ep.protocol(), ec);
    if (!ec) acceptor.set_option(boost::asio::socket_base::reuse_address(true), ec);
    if (!ec) acceptor.bind(ep, ec);
    if (!ec) acceptor.listen(boost::asio::socket_base::max_listen_connections, ec);
    if (ec) throw std::runtime_error(fmt::format("{}: cannot listen on {}:{}: {}", what, address, port, ec.message()));
}

// Accepts until the acceptor closes, each connection onto the io_context of the next worker
// in turn (the one it will live on), handed to `on_accept(worker, socket)`. W has an `ioc`
// member; `workers` must outlive the loop. An accept that fails at once again (EMFILE: out of
// descriptors) would spin: the loop waits 100 ms instead, and says so.
template <class W, class OnAccept>
void accept_loop(boost::asio::ip::tcp::acceptor& acceptor, std::vector<std::unique_ptr<W>>& workers,
                 OnAccept on_accept, std::shared_ptr<spdlog::logger> log, std::size_t next = 0) {
    W& w = *workers[next % workers.size()];
    acceptor.async_accept(w.ioc, [&acceptor, &workers, &w, on_accept, log, next](
                                     boost::system::error_code ec, boost::asio::ip::tcp::socket socket) mutable {
        if (ec) {
            if (ec == boost::asio::error::operation_aborted || !acceptor.is_open()) return;
            log->warn("accept failed: {}; retrying in 100 ms", ec.message());
            auto timer = std::make_shared<boost::asio::steady_timer>(acceptor.get_executor(), std::chrono::milliseconds(100));
            timer->async_wait([&acceptor, &workers, on_accept, log, next, timer](boost::system::error_code) {
                if (acceptor.is_open()) accept_loop(acceptor, workers, on_accept, log, next);
            });
            return;
        }
        on_accept(w, std::move(socket));
        accept_loop(acceptor, workers, std::move(on_accept), std::move(log), next + 1);
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
