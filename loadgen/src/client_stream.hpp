#pragma once
// A virtual user's connection: beast::tcp_stream, with TLS on it (beast::ssl_stream) when the
// target is https. One type for both, whose reads and writes take their handlers type-erased
// (common/erased_io.hpp): the virtual user (load.cpp) and Beast's reads and writes over it are
// compiled once, not once per stream type, and what lies under them once, in client_stream.cpp.

#include <optional>
#include <string>
#include <utility>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <boost/system/error_code.hpp>

#include "exsim/common/erased_io.hpp"

namespace exsim::loadgen {

class client_stream : public common::erased_read_write<client_stream> {
public:
    using executor_type = boost::asio::any_io_executor;
    using error_code = boost::system::error_code;

    explicit client_stream(executor_type ex) : tcp_(std::in_place, std::move(ex)) {}
    client_stream(executor_type ex, boost::asio::ssl::context& tls) : tls_(std::in_place, std::move(ex), tls) {}
    client_stream(const client_stream&) = delete;
    client_stream& operator=(const client_stream&) = delete;

    executor_type get_executor() { return tcp().get_executor(); }
    // The TCP layer: its deadline (expires_after), connect, close.
    boost::beast::tcp_stream& tcp() { return tls_ ? tls_->next_layer() : *tcp_; }

    // Over TLS: SNI and the certificate's name checked against `host`, then the handshake. ""
    // when done (or plain), else the failure's kind ("tls", "timeout") with `detail` set.
    boost::asio::awaitable<std::string> secure(const std::string& host, std::string& detail);

private:
    friend erased_read_write;
    void read_some(common::io_handler handler);
    void write_some(common::io_handler handler);

    std::optional<boost::beast::tcp_stream> tcp_;                            // plain
    std::optional<boost::beast::ssl_stream<boost::beast::tcp_stream>> tls_;  // or TLS
};

}  // namespace exsim::loadgen
