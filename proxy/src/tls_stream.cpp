#include "exsim/proxy/tls_stream.hpp"

#include <cerrno>
#include <stdexcept>
#include <string>

#include <sys/socket.h>

#include <boost/asio/error.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/beast/core/error.hpp>
#include <openssl/err.h>

namespace exsim::proxy {
namespace net = boost::asio;

thread_local char tls_stream::record_[16 * 1024];

namespace {

// OpenSSL's socket BIO writes with write(2): a peer gone away would raise SIGPIPE and kill the
// process. This one sends with MSG_NOSIGNAL (EPIPE instead) and is the socket BIO otherwise.
int send_nosignal(BIO* bio, const char* data, int size) {
    BIO_clear_retry_flags(bio);
    const auto n = ::send(static_cast<int>(BIO_get_fd(bio, nullptr)), data, static_cast<std::size_t>(size), MSG_NOSIGNAL);
    if (n < 0 && BIO_sock_should_retry(-1)) BIO_set_retry_write(bio);
    return static_cast<int>(n);
}

BIO_METHOD* socket_method() {
    static BIO_METHOD* const method = [] {
        const BIO_METHOD* socket = BIO_s_socket();
        BIO_METHOD* m = BIO_meth_new(BIO_TYPE_SOCKET, "exsim socket (MSG_NOSIGNAL)");
        if (!m || BIO_meth_set_write(m, send_nosignal) != 1 || BIO_meth_set_read(m, BIO_meth_get_read(socket)) != 1 ||
            BIO_meth_set_puts(m, BIO_meth_get_puts(socket)) != 1 || BIO_meth_set_ctrl(m, BIO_meth_get_ctrl(socket)) != 1 ||
            BIO_meth_set_create(m, BIO_meth_get_create(socket)) != 1 ||
            BIO_meth_set_destroy(m, BIO_meth_get_destroy(socket)) != 1)
            throw std::runtime_error("cannot make OpenSSL's socket BIO method");
        return m;
    }();
    return method;
}

}  // namespace

tls_stream::tls_stream(tcp::socket socket, net::ssl::context& context)
    : deadline_stream(std::move(socket)), ssl_(SSL_new(context.native_handle())) {
    BIO* bio = BIO_new(socket_method());
    if (!ssl_ || !bio) {
        BIO_free(bio);
        throw std::runtime_error("cannot make a TLS session: out of memory");
    }
    BIO_set_fd(bio, this->socket().native_handle(), BIO_NOCLOSE);
    SSL_set_bio(ssl_.get(), bio, bio);
    SSL_set_accept_state(ssl_.get());
    SSL_set_mode(ssl_.get(), SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
}

std::optional<tls_stream::wait_type> tls_stream::step(op o, std::size_t& moved, error_code& ec) {
    ERR_clear_error();
    errno = 0;
    int r = 1;
    switch (o) {
    case op::handshake:
        r = SSL_do_handshake(ssl_.get());
        break;
    case op::read:
        if (buffers_.read.size() != 0) r = SSL_read_ex(ssl_.get(), buffers_.read.data(), buffers_.read.size(), &moved);
        break;
    case op::write:
        if (const auto b = gather(); b.size() != 0) r = SSL_write_ex(ssl_.get(), b.data(), b.size(), &moved);
        break;
    case op::shutdown:
        r = SSL_shutdown(ssl_.get());
        if (r == 0) r = 1;  // close_notify sent, the peer's not read
        break;
    }
    if (r == 1) return std::nullopt;
    return wants(r, ec);
}

net::const_buffer tls_stream::gather() {
    const auto buffers = buffers_.write();
    if (buffers.size() <= 1 || buffers.front().size() >= sizeof(record_)) return buffers.empty() ? net::const_buffer() : buffers.front();
    return {record_, net::buffer_copy(net::buffer(record_), buffers)};
}

std::optional<tls_stream::wait_type> tls_stream::wants(int r, error_code& ec) {
    const int saved_errno = errno;
    switch (SSL_get_error(ssl_.get(), r)) {
    case SSL_ERROR_WANT_READ:
        return tcp::socket::wait_read;
    case SSL_ERROR_WANT_WRITE:
        return tcp::socket::wait_write;
    case SSL_ERROR_ZERO_RETURN:  // the peer's close_notify
        ec = net::error::eof;
        break;
    case SSL_ERROR_SYSCALL:  // no errno: the peer closed without close_notify
        ec = saved_errno != 0 ? error_code(saved_errno, boost::system::system_category())
                              : error_code(net::ssl::error::stream_truncated);
        break;
    default: {
        const unsigned long e = ERR_peek_last_error();
#ifdef SSL_R_UNEXPECTED_EOF_WHILE_READING
        if (ERR_GET_REASON(e) == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
            ec = net::ssl::error::stream_truncated;
            break;
        }
#endif
        ec = error_code(static_cast<int>(e), net::error::get_ssl_category());
    }
    }
    ERR_clear_error();
    return std::nullopt;
}

}  // namespace exsim::proxy
