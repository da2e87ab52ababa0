#pragma once
// A client connection's socket with beast::tcp_stream's deadline, without its timer per
// operation and without its close on timeout: the ground both client streams stand on.
//
// An operation is a non-blocking step (a recv, a send, an OpenSSL call) tried at once and again
// each time the socket is ready, until it succeeds or fails. Only a step that must wait arms the
// timer, at the deadline expires_after() set; a wait still under way when it passes is cancelled
// and the operation ends with beast::error::timeout, the socket still open: the session can
// answer 408 before it closes. Handlers are never invoked from within the initiating function.
// One thread (the worker's) uses a stream.
//
// plain_stream is the plain-HTTP client stream; tls_stream.hpp adds OpenSSL on the same ground.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <type_traits>
#include <utility>

#include <boost/asio/async_result.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/compose.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/system/error_code.hpp>

namespace exsim::proxy {

class deadline_stream {
public:
    using executor_type = boost::asio::any_io_executor;
    using error_code = boost::system::error_code;
    using tcp = boost::asio::ip::tcp;
    using wait_type = tcp::socket::wait_type;

    // Takes a connected socket and makes it non-blocking.
    explicit deadline_stream(tcp::socket socket);
    deadline_stream(deadline_stream&&) noexcept = default;
    deadline_stream& operator=(deadline_stream&&) = delete;
    ~deadline_stream();

    executor_type get_executor() { return core_->socket.get_executor(); }
    tcp::socket& socket() { return core_->socket; }

    void expires_after(std::chrono::steady_clock::duration d) { core_->deadline = std::chrono::steady_clock::now() + d; }
    void expires_never() { core_->deadline = std::chrono::steady_clock::time_point::max(); }
    // Closes the socket and cancels what waits.
    void close();

protected:
    // Runs `step` until it is done. step(std::size_t& moved, error_code& ec) returns the socket
    // wait it needs before it is tried again, or nothing when it is done: ec is then its outcome.
    // Signature: void(error_code) or void(error_code, std::size_t).
    template <class Signature, class Step, class Token>
    auto async_run(Step step, Token&& token) {
        enum class state { first, waiting, done };
        return boost::asio::async_compose<Token, Signature>(
            [this, step, s = state::first, result = error_code{}, moved = std::size_t{0}](auto& self, error_code ec = {}) mutable {
                const auto complete = [&](error_code e) {
                    if constexpr (std::is_same_v<Signature, void(error_code)>)
                        self.complete(e);
                    else
                        self.complete(e, moved);
                };
                if (s == state::done) return complete(result);
                if (s == state::waiting) ec = end_wait(ec);
                if (!ec) {
                    if (auto want = step(moved, ec); want) {
                        s = state::waiting;
                        return begin_wait(*want, std::move(self));
                    }
                }
                if (s == state::first) {  // never complete inside the initiating function
                    s = state::done;
                    result = ec;
                    return boost::asio::post(core_->socket.get_executor(), std::move(self));
                }
                complete(ec);
            },
            token, core_->socket);
    }

private:
    struct core_type {
        explicit core_type(tcp::socket s) : socket(std::move(s)), timer(socket.get_executor()) {}
        tcp::socket socket;
        boost::asio::steady_timer timer;
        std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max();
        std::uint64_t waits = 0;  // which wait a firing timer belongs to
        bool timed_out = false;
    };

    template <class Handler>
    void begin_wait(wait_type type, Handler&& handler) {
        begin_timer(++core_->waits);
        core_->socket.async_wait(type, std::forward<Handler>(handler));
    }
    // Arms the deadline, if there is one, for wait number `wait`.
    void begin_timer(std::uint64_t wait);
    // The wait's outcome: beast::error::timeout when the deadline cancelled it.
    error_code end_wait(error_code ec);

    std::shared_ptr<core_type> core_;  // shared with a timer's handler, which may outlive *this
};

// Plain HTTP: recv and send (MSG_NOSIGNAL) on the socket. A Beast AsyncStream whose errors are
// the socket's: net::error::eof when the peer closed.
class plain_stream : public deadline_stream {
public:
    using deadline_stream::deadline_stream;

    // Handler: void(error_code, std::size_t).
    template <class MutableBufferSequence, class Token>
    auto async_read_some(const MutableBufferSequence& buffers, Token&& token) {
        return async_run<void(error_code, std::size_t)>(
            [this, buffers](std::size_t& n, error_code& ec) { return settle(n = socket().read_some(buffers, ec), ec, wait_type::wait_read); },
            std::forward<Token>(token));
    }

    // Handler: void(error_code, std::size_t).
    template <class ConstBufferSequence, class Token>
    auto async_write_some(const ConstBufferSequence& buffers, Token&& token) {
        return async_run<void(error_code, std::size_t)>(
            [this, buffers](std::size_t& n, error_code& ec) { return settle(n = socket().write_some(buffers, ec), ec, wait_type::wait_write); },
            std::forward<Token>(token));
    }

private:
    // After a non-blocking call: the wait it needs when it would have blocked.
    static std::optional<wait_type> settle(std::size_t, error_code& ec, wait_type want) {
        if (ec != boost::asio::error::would_block && ec != boost::asio::error::try_again) return std::nullopt;
        ec = {};
        return want;
    }
};

}  // namespace exsim::proxy
