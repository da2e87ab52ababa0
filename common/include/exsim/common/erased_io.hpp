#pragma once
// What a stream needs to take its reads' and writes' handlers type-erased
// (boost::asio::any_completion_handler) and run them through code compiled once, in its own .cpp:
// the buffers kept by value while the operation is under way, and the erased handler made fit to
// hand to Beast's and Asio's own stream operations.
//
// Why: a stream's async_read_some and async_write_some are templates on the handler, and each
// Beast read or write a caller awaits (over each stream type, tapped or not) instantiates the
// whole machinery under them again: the composed operation, the socket's reactor operation, the
// posts. Erasing the handler at the stream compiles that machinery once. The proxy's streams and
// the load generator's connection do (proxy/README.md); it halved the objects of the files that
// await them. The cost: an indirect call and a recycled allocation per read or write.

#include <cstddef>
#include <span>
#include <utility>
#include <vector>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/system/error_code.hpp>

namespace exsim::common {

using io_handler = boost::asio::any_completion_handler<void(boost::system::error_code, std::size_t)>;

// The buffers of a stream's read and of its write under way (one of each at a time, as for any
// Beast stream): the first non-empty buffer to read into; the non-empty buffers to write, up to
// Asio's 64 for one sendmsg (a write_some may write less than it was given). A Beast message is
// a buffer per header field and more, so the write list keeps what it grew to (a few hundred
// bytes for a connection's life) instead of a fixed array that would split a message's writes.
struct io_buffers {
    static constexpr std::size_t max_write_pieces = 64;

    boost::asio::mutable_buffer read;
    std::vector<boost::asio::const_buffer> write_pieces;

    template <class MutableBufferSequence>
    void keep_read(const MutableBufferSequence& buffers) {
        read = {};
        for (auto it = boost::asio::buffer_sequence_begin(buffers); it != boost::asio::buffer_sequence_end(buffers); ++it)
            if (boost::asio::mutable_buffer b(*it); b.size() != 0) {
                read = b;
                return;
            }
    }
    template <class ConstBufferSequence>
    void keep_write(const ConstBufferSequence& buffers) {
        write_pieces.clear();
        for (auto it = boost::asio::buffer_sequence_begin(buffers);
             it != boost::asio::buffer_sequence_end(buffers) && write_pieces.size() < max_write_pieces; ++it)
            if (boost::asio::const_buffer b(*it); b.size() != 0) write_pieces.push_back(b);
    }
    std::span<const boost::asio::const_buffer> write() const { return write_pieces; }
};

// Gives a stream (Derived) a Beast AsyncStream's async_read_some and async_write_some that keep
// the buffers in `buffers_` and hand the erased handler to Derived's read_some(io_handler) and
// write_some(io_handler), compiled in Derived's own file. Reads go into the first non-empty
// buffer; writes write some of the first 64 non-empty ones. Handlers: void(error_code, std::size_t).
template <class Derived>
class erased_read_write {
public:
    template <class MutableBufferSequence, class Token>
    auto async_read_some(const MutableBufferSequence& buffers, Token&& token) {
        return boost::asio::async_initiate<Token, void(boost::system::error_code, std::size_t)>(
            [this](auto handler, const MutableBufferSequence& b) {
                buffers_.keep_read(b);
                static_cast<Derived*>(this)->read_some(io_handler(std::move(handler)));
            },
            token, buffers);
    }

    template <class ConstBufferSequence, class Token>
    auto async_write_some(const ConstBufferSequence& buffers, Token&& token) {
        return boost::asio::async_initiate<Token, void(boost::system::error_code, std::size_t)>(
            [this](auto handler, const ConstBufferSequence& b) {
                buffers_.keep_write(b);
                static_cast<Derived*>(this)->write_some(io_handler(std::move(handler)));
            },
            token, buffers);
    }

protected:
    io_buffers buffers_;
};

// An erased handler to give to Beast's streams. Their operations post the completion through the
// handler's executor with blocking.never, which Boost 1.81's any_completion_executor (an erased
// handler's) does not offer: this one is called on the stream's own executor instead, the one
// its callers await on. Its allocator and cancellation slot are the erased handler's.
struct on_stream_executor {
    io_handler handler;
    boost::asio::any_io_executor executor;

    using executor_type = boost::asio::any_io_executor;
    using allocator_type = io_handler::allocator_type;
    using cancellation_slot_type = io_handler::cancellation_slot_type;
    executor_type get_executor() const noexcept { return executor; }
    allocator_type get_allocator() const noexcept { return handler.get_allocator(); }
    cancellation_slot_type get_cancellation_slot() const noexcept { return handler.get_cancellation_slot(); }

    void operator()(boost::system::error_code ec, std::size_t n) { std::move(handler)(ec, n); }
};

}  // namespace exsim::common
