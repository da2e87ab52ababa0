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

#include <cerrno>
#include <cstddef>
#include <memory>
#include <optional>

#include <boost/asio/buffer.hpp>
#include <boost/asio/ssl/context.hpp>
#include <openssl/err.h>
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
        return async_step<void(error_code)>([this](std::size_t&) { return SSL_do_handshake(ssl_.get()); },
                                            std::forward<Token>(token));
    }

    // Reads into the first non-empty buffer. Handler: void(error_code, std::size_t).
    template <class MutableBufferSequence, class Token>
    auto async_read_some(const MutableBufferSequence& buffers, Token&& token) {
        const auto b = first_non_empty(boost::asio::buffer_sequence_begin(buffers), boost::asio::buffer_sequence_end(buffers));
        return async_step<void(error_code, std::size_t)>(
            [this, b](std::size_t& n) { return b.size() == 0 ? 1 : SSL_read_ex(ssl_.get(), b.data(), b.size(), &n); },
            std::forward<Token>(token));
    }

    // Writes at most one record's worth (16 KiB) of the buffers: a sequence of small buffers (a
    // response's header and body) is gathered into one record and one send. Handler:
    // void(error_code, std::size_t).
    template <class ConstBufferSequence, class Token>
    auto async_write_some(const ConstBufferSequence& buffers, Token&& token) {
        return async_step<void(error_code, std::size_t)>(
            [this, buffers](std::size_t& n) {
                const auto b = gather(buffers);
                return b.size() == 0 ? 1 : SSL_write_ex(ssl_.get(), b.data(), b.size(), &n);
            },
            std::forward<Token>(token));
    }

    // Sends close_notify (once; the peer's is not awaited). Handler: void(error_code).
    template <class Token>
    auto async_shutdown(Token&& token) {
        return async_step<void(error_code)>(
            [this](std::size_t&) {
                const int r = SSL_shutdown(ssl_.get());
                return r == 0 ? 1 : r;  // 0: close_notify sent, the peer's not read
            },
            std::forward<Token>(token));
    }

private:
    struct ssl_free {
        void operator()(SSL* s) const { SSL_free(s); }
    };

    // Runs `io` (an OpenSSL call returning 1 on success and setting the bytes it moved) until it
    // succeeds or fails, waiting on the socket whenever OpenSSL wants to read or write.
    template <class Signature, class Io, class Token>
    auto async_step(Io io, Token&& token) {
        return async_run<Signature>(
            [this, io](std::size_t& moved, error_code& ec) mutable -> std::optional<wait_type> {
                ERR_clear_error();
                errno = 0;
                const int r = io(moved);
                if (r == 1) return std::nullopt;
                return wants(r, ec);
            },
            std::forward<Token>(token));
    }

    // After a failed OpenSSL call: the socket wait it needs (none when `ec` was set to the error).
    std::optional<wait_type> wants(int r, error_code& ec);

    template <class It>
    static boost::asio::mutable_buffer first_non_empty(It begin, It end) {
        for (; begin != end; ++begin)
            if (boost::asio::mutable_buffer b(*begin); b.size() != 0) return b;
        return {};
    }
    template <class ConstBufferSequence>
    boost::asio::const_buffer gather(const ConstBufferSequence& buffers) {
        std::size_t count = 0;
        boost::asio::const_buffer first;
        for (auto it = boost::asio::buffer_sequence_begin(buffers); it != boost::asio::buffer_sequence_end(buffers); ++it)
            if (boost::asio::const_buffer b(*it); b.size() != 0 && count++ == 0) first = b;
        if (count <= 1 || first.size() >= sizeof(record_)) return first;
        return {record_, boost::asio::buffer_copy(boost::asio::buffer(record_), buffers)};
    }

    std::unique_ptr<SSL, ssl_free> ssl_;
    // One record's plaintext gathered from several buffers; only while a write is under way
    // (SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER: a retried write gathers the same bytes again).
    static thread_local char record_[16 * 1024];
};

}  // namespace exsim::proxy
