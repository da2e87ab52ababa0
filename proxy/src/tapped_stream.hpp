#pragma once
// A stream that tells a wire tap (common/wire_tap.hpp) the bytes it reads and writes: the
// back-end connections' backend_stream (a beast::tcp_stream), and the client connections'
// plain_stream or tls_stream (whose plaintext is what it reports). Everything but async_read_some and async_write_some is
// the wrapped stream's own; with no tap those two are the wrapped stream's too, plus one test.

#include <cstdint>
#include <string>
#include <utility>

#include <boost/asio/associator.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/system/error_code.hpp>

#include "exsim/common/wire_tap.hpp"

namespace exsim::proxy {

// Where a stream's bytes go: the tap, the connection's handle there, and which side we are.
struct tap_point {
    common::wire_tap* tap = nullptr;
    std::uint64_t handle = 0;
    bool we_opened = true;  // a back-end connection; false for a client connection

    explicit operator bool() const { return tap && handle; }
    void carried(bool sent, const std::string& bytes) const { tap->carried(handle, sent == we_opened, bytes); }
};

// Calls `handler` after telling the tap the first n bytes of `buffers`.
template <class Handler, class Buffers>
struct tapped_handler {
    Handler handler;
    Buffers buffers;
    tap_point point;
    bool sent;

    void operator()(boost::system::error_code ec, std::size_t n) {
        if (n > 0) {
            std::string bytes(n, '\0');
            boost::asio::buffer_copy(boost::asio::buffer(bytes), buffers, n);
            point.carried(sent, bytes);
        }
        std::move(handler)(ec, n);
    }
};

template <class Stream>
class tapped : public Stream {
public:
    using Stream::Stream;
    explicit tapped(Stream&& s) : Stream(std::move(s)) {}

    tap_point tap;

    template <class MutableBuffers, class Token>
    auto async_read_some(const MutableBuffers& buffers, Token&& token) {
        return boost::asio::async_initiate<Token, void(boost::system::error_code, std::size_t)>(
            [this](auto handler, const MutableBuffers& b) {
                if (!tap) return Stream::async_read_some(b, std::move(handler));
                Stream::async_read_some(b, tapped_handler<decltype(handler), MutableBuffers>{std::move(handler), b, tap, false});
            },
            token, buffers);
    }

    template <class ConstBuffers, class Token>
    auto async_write_some(const ConstBuffers& buffers, Token&& token) {
        return boost::asio::async_initiate<Token, void(boost::system::error_code, std::size_t)>(
            [this](auto handler, const ConstBuffers& b) {
                if (!tap) return Stream::async_write_some(b, std::move(handler));
                Stream::async_write_some(b, tapped_handler<decltype(handler), ConstBuffers>{std::move(handler), b, tap, true});
            },
            token, buffers);
    }
};

}  // namespace exsim::proxy

// The wrapped handler keeps the original's executor, allocator and cancellation slot.
template <template <class, class> class Associator, class Handler, class Buffers, class DefaultCandidate>
struct boost::asio::associator<Associator, exsim::proxy::tapped_handler<Handler, Buffers>, DefaultCandidate>
    : Associator<Handler, DefaultCandidate> {
    static typename Associator<Handler, DefaultCandidate>::type get(
        const exsim::proxy::tapped_handler<Handler, Buffers>& h) noexcept {
        return Associator<Handler, DefaultCandidate>::get(h.handler);
    }
    static auto get(const exsim::proxy::tapped_handler<Handler, Buffers>& h, const DefaultCandidate& c) noexcept
        -> decltype(Associator<Handler, DefaultCandidate>::get(h.handler, c)) {
        return Associator<Handler, DefaultCandidate>::get(h.handler, c);
    }
};
