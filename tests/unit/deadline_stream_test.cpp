#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <string>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/error.hpp>

#include "exsim/proxy/plain_stream.hpp"

namespace exsim::proxy {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using boost::system::error_code;
using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;
constexpr auto nothrow = asio::as_tuple(asio::use_awaitable);

// One loopback connection: the accepted side is a plain_stream (as a client's or a back-end
// connection's in the front-end), the other a socket that `send_after` writes to later.
class PlainStream : public ::testing::Test {
protected:
    void run(std::function<asio::awaitable<void>(plain_stream&)> body) {
        tcp::acceptor acceptor(io_, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
        peer_.connect(acceptor.local_endpoint());
        asio::co_spawn(
            io_,
            [&]() -> asio::awaitable<void> {
                plain_stream stream(co_await acceptor.async_accept(asio::use_awaitable));
                co_await body(stream);
            },
            [](std::exception_ptr e) {
                if (e) std::rethrow_exception(e);
            });
        io_.run_for(20s);
    }

    // The peer sends `bytes` after `delay` (on the same io_context).
    void send_after(std::chrono::milliseconds delay, std::string bytes) {
        asio::co_spawn(
            io_,
            [this, delay, bytes]() -> asio::awaitable<void> {
                asio::steady_timer t(io_, delay);
                co_await t.async_wait(asio::use_awaitable);
                co_await asio::async_write(peer_, asio::buffer(bytes), asio::use_awaitable);
            },
            asio::detached);
    }

    // One read_some: its error and how long it took.
    static asio::awaitable<std::pair<error_code, clock_type::duration>> read(plain_stream& s, std::string& into) {
        char buf[64];
        const auto start = clock_type::now();
        auto [ec, n] = co_await s.async_read_some(asio::buffer(buf), nothrow);
        into.append(buf, n);
        co_return std::pair{ec, clock_type::now() - start};
    }

    asio::io_context io_;
    tcp::socket peer_{io_};
};

TEST_F(PlainStream, AReadPastItsDeadlineEndsWithTimeoutAndLeavesTheSocketOpen) {
    std::string got;
    run([&](plain_stream& s) -> asio::awaitable<void> {
        s.expires_after(100ms);
        auto [ec, took] = co_await read(s, got);
        EXPECT_EQ(ec, boost::beast::error::timeout) << ec.message();
        EXPECT_GE(took, 90ms);
        EXPECT_TRUE(s.socket().is_open());
        send_after(0ms, "late");  // the connection still works: a 408 could be written
        s.expires_after(2s);
        std::tie(ec, took) = co_await read(s, got);
        EXPECT_FALSE(ec) << ec.message();
    });
    EXPECT_EQ(got, "late");
}

// A read that waits past an earlier deadline (100 ms) but within the one set since (1 s) is
// not cut short.
TEST_F(PlainStream, ADeadlineMovedLaterHoldsAfterTheEarlierOnePasses) {
    std::string got;
    run([&](plain_stream& s) -> asio::awaitable<void> {
        s.expires_after(100ms);
        send_after(10ms, "a");
        auto [ec, took] = co_await read(s, got);
        EXPECT_FALSE(ec) << ec.message();
        s.expires_after(1s);
        send_after(300ms, "b");  // after the first deadline, well before the second
        std::tie(ec, took) = co_await read(s, got);
        EXPECT_FALSE(ec) << ec.message();
        EXPECT_GE(took, 250ms);
        s.expires_after(100ms);  // and a deadline still ends a read that waits past it
        std::tie(ec, took) = co_await read(s, got);
        EXPECT_EQ(ec, boost::beast::error::timeout) << ec.message();
    });
    EXPECT_EQ(got, "ab");
}

TEST_F(PlainStream, ADeadlineMovedEarlierEndsTheReadThen) {
    std::string got;
    run([&](plain_stream& s) -> asio::awaitable<void> {
        s.expires_after(10s);
        send_after(10ms, "a");
        auto [ec, took] = co_await read(s, got);
        EXPECT_FALSE(ec) << ec.message();
        s.expires_after(100ms);
        std::tie(ec, took) = co_await read(s, got);
        EXPECT_EQ(ec, boost::beast::error::timeout) << ec.message();
        EXPECT_LT(took, 5s);  // by order: long before the 10 s deadline it replaced
    });
}

// A deadline applies to waiting: one that passed while nothing waited ends the next wait at
// once, but not a read whose bytes are already there.
TEST_F(PlainStream, ADeadlinePassedWhileIdleEndsTheNextWaitAtOnce) {
    std::string got;
    run([&](plain_stream& s) -> asio::awaitable<void> {
        s.expires_after(50ms);
        send_after(0ms, "a");
        asio::steady_timer idle(co_await asio::this_coro::executor, 200ms);
        co_await idle.async_wait(asio::use_awaitable);
        auto [ec, took] = co_await read(s, got);
        EXPECT_FALSE(ec) << ec.message();
        std::tie(ec, took) = co_await read(s, got);
        EXPECT_EQ(ec, boost::beast::error::timeout) << ec.message();
        EXPECT_LT(took, 5s);  // at once: without the deadline nothing ever ends this read but run()'s 20 s
    });
    EXPECT_EQ(got, "a");
}

TEST_F(PlainStream, ExpiresNeverWaitsForTheBytes) {
    std::string got;
    run([&](plain_stream& s) -> asio::awaitable<void> {
        s.expires_after(50ms);
        s.expires_never();
        send_after(200ms, "a");
        auto [ec, took] = co_await read(s, got);
        EXPECT_FALSE(ec) << ec.message();
    });
    EXPECT_EQ(got, "a");
}

}  // namespace
}  // namespace exsim::proxy
