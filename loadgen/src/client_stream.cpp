#include "client_stream.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/error.hpp>
#include <fmt/format.h>
#include <openssl/ssl.h>

namespace exsim::loadgen {
using common::on_stream_executor;

boost::asio::awaitable<std::string> client_stream::secure(const std::string& host, std::string& detail) {
    if (!tls_) co_return std::string();
    if (!SSL_set_tlsext_host_name(tls_->native_handle(), host.c_str())) co_return "tls";
    tls_->set_verify_callback(boost::asio::ssl::host_name_verification(host));
    auto [ec] = co_await tls_->async_handshake(boost::asio::ssl::stream_base::client,
                                               boost::asio::as_tuple(boost::asio::use_awaitable));
    if (!ec) co_return std::string();
    detail = fmt::format("TLS handshake with {}: {} (see --ca-file, --insecure)", host, ec.message());
    co_return ec == boost::beast::error::timeout ? "timeout" : "tls";
}

void client_stream::read_some(common::io_handler handler) {
    on_stream_executor h{std::move(handler), get_executor()};
    if (tls_) tls_->async_read_some(buffers_.read, std::move(h));
    else tcp_->async_read_some(buffers_.read, std::move(h));
}

void client_stream::write_some(common::io_handler handler) {
    on_stream_executor h{std::move(handler), get_executor()};
    if (tls_) tls_->async_write_some(buffers_.write(), std::move(h));
    else tcp_->async_write_some(buffers_.write(), std::move(h));
}

}  // namespace exsim::loadgen
