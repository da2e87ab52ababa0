#pragma once
// A back-end connection's stream: beast::tcp_stream (its timer per operation, its close on
// timeout), with reads and writes whose handlers are type-erased (common/erased_io.hpp), so that
// tcp_stream's operations underneath are compiled once, in backend_stream.cpp, and not once for
// each Beast read and write exchange.cpp awaits, tapped or not.

#include <cstddef>
#include <utility>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/system/error_code.hpp>

#include "exsim/common/erased_io.hpp"

namespace exsim::proxy {

class backend_stream : public boost::beast::tcp_stream {
public:
    using error_code = boost::system::error_code;
    using handler_type = common::io_handler;
    using boost::beast::tcp_stream::basic_stream;

    // Reads into the first non-empty buffer. Handler: void(error_code, std::size_t).
    template <class MutableBufferSequence, class Token>
    auto async_read_some(const MutableBufferSequence& buffers, Token&& token) {
        return boost::asio::async_initiate<Token, void(error_code, std::size_t)>(
            [this](auto handler, const MutableBufferSequence& b) {
                buffers_.keep_read(b);
                read_some(handler_type(std::move(handler)));
            },
            token, buffers);
    }

    // Writes some of the first eight buffers. Handler: void(error_code, std::size_t).
    template <class ConstBufferSequence, class Token>
    auto async_write_some(const ConstBufferSequence& buffers, Token&& token) {
        return boost::asio::async_initiate<Token, void(error_code, std::size_t)>(
            [this](auto handler, const ConstBufferSequence& b) {
                buffers_.keep_write(b);
                write_some(handler_type(std::move(handler)));
            },
            token, buffers);
    }

private:
    void read_some(handler_type handler);
    void write_some(handler_type handler);

    common::io_buffers buffers_;
};

}  // namespace exsim::proxy
