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
// plain_stream.hpp (plain HTTP) and tls_stream.hpp (OpenSSL) are the two client streams on it.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <utility>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/system/error_code.hpp>

#include "exsim/common/erased_io.hpp"

namespace exsim::proxy {

// A Beast AsyncStream: reads and writes through common::erased_read_write (reads into the first
// non-empty buffer), each a step() tried until it is done.
class deadline_stream : public common::erased_read_write<deadline_stream> {
public:
    using executor_type = boost::asio::any_io_executor;
    using error_code = boost::system::error_code;
    using tcp = boost::asio::ip::tcp;
    using wait_type = tcp::socket::wait_type;

    // Takes a connected socket and makes it non-blocking.
    explicit deadline_stream(tcp::socket socket);
    deadline_stream(deadline_stream&&) noexcept = default;
    deadline_stream& operator=(deadline_stream&&) = delete;
    virtual ~deadline_stream();

    executor_type get_executor() { return core_->socket.get_executor(); }
    tcp::socket& socket() { return core_->socket; }

    void expires_after(std::chrono::steady_clock::duration d) { core_->deadline = std::chrono::steady_clock::now() + d; }
    void expires_never() { core_->deadline = std::chrono::steady_clock::time_point::max(); }
    // Closes the socket and cancels what waits.
    void close();

protected:
    enum class op { read, write, handshake, shutdown };
    // One non-blocking try of `o`: the socket wait it needs before it is tried again, or nothing
    // when it is done (`ec` its outcome, `moved` the bytes it moved).
    virtual std::optional<wait_type> step(op o, std::size_t& moved, error_code& ec) = 0;

    // Runs `o` (a handshake or a shutdown: reads and writes come through erased_read_write) until
    // it is done. Handler: void(error_code).
    template <class Token>
    auto async_run(op o, Token&& token) {
        return boost::asio::async_initiate<Token, void(error_code)>(
            [this, o](auto handler) { run(o, boost::asio::any_completion_handler<void(error_code)>(std::move(handler))); },
            token);
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

    // The handlers are type-erased: the machinery of an operation (its composed operation, socket
    // wait and post) is compiled once, in deadline_stream.cpp, not once for each handler type of
    // each caller (Beast's read and write operations over each stream type, tapped or not). It
    // was a third of client_session.cpp's object code.
    friend erased_read_write;
    void read_some(common::io_handler handler) { run(op::read, std::move(handler)); }
    void write_some(common::io_handler handler) { run(op::write, std::move(handler)); }
    void run(op o, boost::asio::any_completion_handler<void(error_code)> handler);
    void run(op o, common::io_handler handler);
    template <class Signature>
    void run_erased(op o, boost::asio::any_completion_handler<Signature> handler);

    // Arms the deadline, if there is one, for wait number `wait`.
    void begin_timer(std::uint64_t wait);
    // The wait's outcome: beast::error::timeout when the deadline cancelled it.
    error_code end_wait(error_code ec);

    std::shared_ptr<core_type> core_;  // shared with a timer's handler, which may outlive *this
};

}  // namespace exsim::proxy
