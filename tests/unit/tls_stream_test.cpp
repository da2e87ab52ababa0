#include <gtest/gtest.h>

#include <array>
#include <chrono>
#include <functional>
#include <string>
#include <thread>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/error.hpp>

#include "exsim/proxy/tls.hpp"
#include "exsim/proxy/tls_stream.hpp"
#include "temp_folder.hpp"

namespace exsim::proxy {
namespace {

namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;
using tcp = asio::ip::tcp;
using boost::system::error_code;
constexpr auto nothrow = asio::as_tuple(asio::use_awaitable);

// A TLS server of one connection on loopback (a tls_stream, as the front-end's) and a client
// (Asio's ssl::stream, synchronous, in its own thread) that runs `client` once it is connected.
class TlsStream : public ::testing::Test {
protected:
    TlsStream() : files_(ensure_self_signed(dir_.path(), {"localhost"})), server_context_(make_server_context(files_)) {
        client_context_.load_verify_file(files_.certificate.string());
        client_context_.set_verify_mode(ssl::verify_peer);
    }

    // Runs `server` on the accepted connection's tls_stream and `client` on a connected client.
    void run(std::function<asio::awaitable<void>(tls_stream&)> server, std::function<void(ssl::stream<tcp::socket>&)> client) {
        asio::io_context io;
        tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
        std::thread client_side([&, port = acceptor.local_endpoint().port()] {
            asio::io_context client_io;
            ssl::stream<tcp::socket> s(client_io, client_context_);
            s.next_layer().connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
            client(s);
        });
        asio::co_spawn(
            io,
            [&]() -> asio::awaitable<void> {
                tls_stream stream(co_await acceptor.async_accept(asio::use_awaitable), server_context_);
                co_await server(stream);
            },
            [](std::exception_ptr e) {
                if (e) std::rethrow_exception(e);
            });
        io.run_for(std::chrono::seconds(20));
        client_side.join();
    }

    testing::temp_folder dir_;
    tls_files files_;
    ssl::context server_context_;
    ssl::context client_context_{ssl::context::tls_client};
};

TEST_F(TlsStream, CarriesDataBothWaysAndReadsTheClientsCloseNotifyAsEof) {
    const std::string big(40000, 'x');
    std::string echoed;
    error_code last;
    run(
        [&](tls_stream& s) -> asio::awaitable<void> {
            auto [hs] = co_await s.async_handshake(nothrow);
            EXPECT_FALSE(hs) << hs.message();
            std::string got(5 + big.size(), '\0');
            auto [ec, n] = co_await asio::async_read(s, asio::buffer(got), nothrow);
            EXPECT_FALSE(ec) << ec.message();
            // Three buffers, gathered into records: the client reads the same bytes back.
            const std::array<asio::const_buffer, 3> parts{asio::buffer(got.data(), 2), asio::buffer(got.data() + 2, 3),
                                                          asio::buffer(got.data() + 5, big.size())};
            auto [wec, w] = co_await asio::async_write(s, parts, nothrow);
            EXPECT_FALSE(wec) << wec.message();
            EXPECT_EQ(w, got.size());
            std::array<char, 16> more{};
            auto [rec, r] = co_await s.async_read_some(asio::buffer(more), nothrow);
            last = rec;
        },
        [&](ssl::stream<tcp::socket>& c) {
            c.handshake(ssl::stream_base::client);
            asio::write(c, asio::buffer("hello" + big));
            echoed.resize(5 + big.size());
            asio::read(c, asio::buffer(echoed));
            error_code ignored;
            c.shutdown(ignored);
        });
    EXPECT_EQ(echoed, "hello" + big);
    EXPECT_EQ(last, asio::error::eof) << last.message();
}

TEST_F(TlsStream, AConnectionClosedWithoutCloseNotifyIsTruncated) {
    error_code last;
    run(
        [&](tls_stream& s) -> asio::awaitable<void> {
            co_await s.async_handshake(nothrow);
            std::array<char, 16> data{};
            auto [ec, n] = co_await s.async_read_some(asio::buffer(data), nothrow);
            last = ec;
        },
        [&](ssl::stream<tcp::socket>& c) {
            c.handshake(ssl::stream_base::client);
            // A FIN, not a close: closing with the server's session tickets unread would send a
            // reset (connection_reset), not an end of stream.
            c.next_layer().shutdown(tcp::socket::shutdown_send);
            std::array<char, 64> rest{};
            error_code ec;
            while (!ec) c.next_layer().read_some(asio::buffer(rest), ec);  // until the server closes
        });
    EXPECT_EQ(last, ssl::error::stream_truncated) << last.message();
}

TEST_F(TlsStream, AReadPastItsDeadlineEndsWithTimeout) {
    error_code last;
    std::chrono::steady_clock::duration waited{};
    run(
        [&](tls_stream& s) -> asio::awaitable<void> {
            co_await s.async_handshake(nothrow);
            s.expires_after(std::chrono::milliseconds(200));
            const auto start = std::chrono::steady_clock::now();
            std::array<char, 16> data{};
            auto [ec, n] = co_await s.async_read_some(asio::buffer(data), nothrow);
            waited = std::chrono::steady_clock::now() - start;
            last = ec;
            s.close();
        },
        [&](ssl::stream<tcp::socket>& c) {
            c.handshake(ssl::stream_base::client);
            std::array<char, 1> one{};
            error_code ignored;
            c.read_some(asio::buffer(one), ignored);  // until the server closes
        });
    EXPECT_EQ(last, boost::beast::error::timeout) << last.message();
    EXPECT_GE(waited, std::chrono::milliseconds(200));
}

TEST_F(TlsStream, AHandshakeThatNeverComesTimesOut) {
    error_code last;
    run(
        [&](tls_stream& s) -> asio::awaitable<void> {
            s.expires_after(std::chrono::milliseconds(100));
            auto [ec] = co_await s.async_handshake(nothrow);
            last = ec;
            s.close();
        },
        [&](ssl::stream<tcp::socket>& c) {
            std::array<char, 1> one{};
            error_code ignored;
            c.next_layer().read_some(asio::buffer(one), ignored);  // says nothing until closed
        });
    EXPECT_EQ(last, boost::beast::error::timeout) << last.message();
}

TEST_F(TlsStream, WritingToAClientThatLeftFailsInsteadOfRaisingSigpipe) {
    error_code last;
    run(
        [&](tls_stream& s) -> asio::awaitable<void> {
            co_await s.async_handshake(nothrow);
            std::array<char, 1> one{};
            co_await s.async_read_some(asio::buffer(one), nothrow);  // the client's byte, then it closes
            const std::string block(64 * 1024, 'y');
            for (int i = 0; i < 200 && !last; ++i) {
                auto [ec, n] = co_await asio::async_write(s, asio::buffer(block), nothrow);
                last = ec;
            }
        },
        [&](ssl::stream<tcp::socket>& c) {
            c.handshake(ssl::stream_base::client);
            asio::write(c, asio::buffer("!", 1));
            c.next_layer().close();
        });
    EXPECT_TRUE(last == asio::error::broken_pipe || last == asio::error::connection_reset) << last.message();
}

TEST_F(TlsStream, NeverCallsItsHandlerFromInsideTheInitiatingFunction) {
    bool inside = true, called = false, called_inside = false;
    run(
        [&](tls_stream& s) -> asio::awaitable<void> {
            co_await s.async_handshake(nothrow);
            s.async_read_some(asio::mutable_buffer(), [&](error_code, std::size_t) {
                called = true;
                called_inside = inside;
            });
            inside = false;
            // Posted after the read's completion: once it is back, the read's handler has run.
            co_await s.async_write_some(asio::const_buffer(), nothrow);
            s.close();
        },
        [&](ssl::stream<tcp::socket>& c) {
            c.handshake(ssl::stream_base::client);
            std::array<char, 1> one{};
            error_code ignored;
            c.read_some(asio::buffer(one), ignored);
        });
    EXPECT_TRUE(called);
    EXPECT_FALSE(called_inside);
}

}  // namespace
}  // namespace exsim::proxy
