#pragma once
// The front-end's server side of TLS on a client connection: OpenSSL reading and writing the
// socket itself, Asio only waiting for it to be readable or writable.
//
// Why not asio::ssl::stream: it keeps two 17 KiB buffers of its own per stream, allocated and
// zeroed when it is made, and a BIO pair between OpenSSL and the socket with two more 17 KiB
// buffers once data flows: about 58 KiB per idle keep-alive connection against nginx's 14
// (bench/compare.sh, scale section). Here an idle connection holds the SSL object (its record
// buffers given back with SSL_MODE_RELEASE_BUFFERS), the socket and a timer.
//
// It is a Beast AsyncStream (async_read_some, async_write_some) with a server handshake and a
// shutdown that sends close_notify without waiting for the peer's, on deadline_stream's ground:
// expires_after() sets the deadline of the operations that follow; one still waiting when it
// passes ends with beast::error::timeout, the socket still open. Errors are those of
// asio::ssl::stream: the peer's close_notify is net::error::eof, a connection closed without one
// is ssl::error::stream_truncated, a TLS failure is an error of the SSL category.

#include <cstddef>
#include <memory>
#include <optional>

#include <boost/asio/buffer.hpp>
#include <boost/asio/ssl/context.hpp>
#include <openssl/ssl.h>

#include "exsim/proxy/deadline_stream.hpp"

namespace exsim::proxy {

class tls_stream : public deadline_stream {
public:
    // Takes the accepted socket; throws std::runtime_error when OpenSSL cannot make the session.
    // close() sends no close_notify: async_shutdown does.
    tls_stream(tcp::socket socket, boost::asio::ssl::context& context);
    tls_stream(tls_stream&&) noexcept = default;
    tls_stream& operator=(tls_stream&&) = delete;

    // The server's side of the handshake. Handler: void(error_code).
    template <class Token>
    auto async_handshake(Token&& token) {
        return async_run(op::handshake, std::forward<Token>(token));
    }

    // Sends close_notify (once; the peer's is not awaited). Handler: void(error_code).
    template <class Token>
    auto async_shutdown(Token&& token) {
        return async_run(op::shutdown, std::forward<Token>(token));
    }

private:
    struct ssl_free {
        void operator()(SSL* s) const { SSL_free(s); }
    };

    // One try of the OpenSSL call of `o`; waits on the socket whenever OpenSSL wants to read or
    // write. A write sends at most one record (16 KiB): small buffers (a response's header and
    // body) are gathered into one record and one send, again on each try (into record_, which another
    // connection's write may have used meanwhile: SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER).
    std::optional<wait_type> step(op o, std::size_t& moved, error_code& ec) override;
    // After a failed OpenSSL call: the socket wait it needs (none when `ec` was set to the error).
    std::optional<wait_type> wants(int r, error_code& ec);
    // The kept write buffers as one: the first alone, or several copied into record_.
    boost::asio::const_buffer gather();

    std::unique_ptr<SSL, ssl_free> ssl_;
    // One record's plaintext gathered from several buffers; only while a write is under way
    // (SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER: a retried write gathers the same bytes again).
    static thread_local char record_[16 * 1024];
};

}  // namespace exsim::proxy
