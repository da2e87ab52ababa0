#include "backend_stream.hpp"

#include <boost/asio/any_io_executor.hpp>

namespace exsim::proxy {
namespace {

// tcp_stream's operations post their completion through the handler's executor with
// blocking.never, which Boost 1.81's any_completion_executor (an erased handler's) does not
// offer: the erased handler is called on the stream's own executor instead, the worker's, which
// is the one every caller awaits on. Its allocator and cancellation slot are its own.
struct on_stream_executor {
    backend_stream::handler_type handler;
    boost::asio::any_io_executor executor;

    using executor_type = boost::asio::any_io_executor;
    using allocator_type = backend_stream::handler_type::allocator_type;
    using cancellation_slot_type = backend_stream::handler_type::cancellation_slot_type;
    executor_type get_executor() const noexcept { return executor; }
    allocator_type get_allocator() const noexcept { return handler.get_allocator(); }
    cancellation_slot_type get_cancellation_slot() const noexcept { return handler.get_cancellation_slot(); }

    void operator()(boost::system::error_code ec, std::size_t n) { std::move(handler)(ec, n); }
};

}  // namespace

void backend_stream::read_some(handler_type handler) {
    boost::beast::tcp_stream::async_read_some(buffers_.read, on_stream_executor{std::move(handler), get_executor()});
}

void backend_stream::write_some(handler_type handler) {
    boost::beast::tcp_stream::async_write_some(buffers_.write(), on_stream_executor{std::move(handler), get_executor()});
}

}  // namespace exsim::proxy
