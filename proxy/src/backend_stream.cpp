#include "backend_stream.hpp"

namespace exsim::proxy {
using common::on_stream_executor;

void backend_stream::read_some(common::io_handler handler) {
    boost::beast::tcp_stream::async_read_some(buffers_.read, on_stream_executor{std::move(handler), get_executor()});
}

void backend_stream::write_some(common::io_handler handler) {
    boost::beast::tcp_stream::async_write_some(buffers_.write(), on_stream_executor{std::move(handler), get_executor()});
}

}  // namespace exsim::proxy
