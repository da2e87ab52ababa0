#pragma once
// A back-end connection's stream: beast::tcp_stream (its timer per operation, its close on
// timeout), with reads and writes whose handlers are type-erased (common/erased_io.hpp), so that
// tcp_stream's operations underneath are compiled once, in backend_stream.cpp, and not once for
// each Beast read and write exchange.cpp awaits, tapped or not.

#include <boost/beast/core/tcp_stream.hpp>

#include "exsim/common/erased_io.hpp"

namespace exsim::proxy {

class backend_stream : public boost::beast::tcp_stream, public common::erased_read_write<backend_stream> {
public:
    using boost::beast::tcp_stream::basic_stream;
    using erased_read_write::async_read_some;
    using erased_read_write::async_write_some;

private:
    friend erased_read_write;
    void read_some(common::io_handler handler);
    void write_some(common::io_handler handler);
};

}  // namespace exsim::proxy
