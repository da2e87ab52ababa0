#include "exsim/proxy/admin_server.hpp"

#include <chrono>
#include <optional>
#include <stdexcept>
#include <thread>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <fmt/format.h>

#include "exsim/common/accept_loop.hpp"
#include "exsim/common/log.hpp"

namespace exsim::proxy {
namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;

namespace {

constexpr auto timeout = std::chrono::seconds(10);
constexpr std::uint32_t header_limit = 8 * 1024;
constexpr std::uint64_t body_limit = 8 * 1024;  // nothing here takes a body

using request = http::request<http::string_body>;
using response = http::response<http::string_body>;

// One admin connection. The io_context runs on one thread, so no strand is needed.
class admin_session : public std::enable_shared_from_this<admin_session> {
public:
    admin_session(tcp::socket socket, const std::function<std::string()>& render)
        : stream_(std::move(socket)), render_(render) {}

    void run() { do_read(); }

private:
    void do_read() {
        parser_.emplace();
        parser_->header_limit(header_limit);
        parser_->body_limit(body_limit);
        stream_.expires_after(timeout);
        http::async_read(stream_, buffer_, *parser_, beast::bind_front_handler(&admin_session::on_read, shared_from_this()));
    }

    void on_read(beast::error_code ec, std::size_t) {
        if (ec) return on_read_error(ec);
        const request& req = parser_->get();
        response res = respond(req);
        res.keep_alive(req.keep_alive());
        send(std::move(res));
    }

    // A normal close or a timeout ends the connection quietly; a request that does not parse
    // gets 400 and a close, since the bytes after it cannot be trusted to frame the next one.
    void on_read_error(beast::error_code ec) {
        if (ec.category() == http::make_error_code(http::error::bad_method).category() &&
            ec != http::error::end_of_stream) {
            response res = plain(http::status::bad_request, fmt::format("malformed request: {}\n", ec.message()));
            res.keep_alive(false);
            return send(std::move(res));
        }
        do_close();
    }

    static response plain(http::status status, std::string body, std::string_view type = "text/plain; charset=utf-8") {
        response res{status, 11};
        res.set(http::field::content_type, type);
        res.body() = std::move(body);
        res.prepare_payload();
        return res;
    }

    response respond(const request& req) {
        const auto target = req.target();
        const auto path = target.substr(0, target.find('?'));
        if (path != "/metrics" && path != "/healthz") return plain(http::status::not_found, "not found\n");
        if (req.method() != http::verb::get && req.method() != http::verb::head) {
            response res = plain(http::status::method_not_allowed, "only GET and HEAD\n");
            res.set(http::field::allow, "GET, HEAD");
            return res;
        }
        response res;
        if (path == "/healthz") {
            res = plain(http::status::ok, "ok\n");
        } else {
            // `render` is the caller's code: an exception from it must not end the admin thread.
            try {
                res = plain(http::status::ok, render_(), "text/plain; version=0.0.4; charset=utf-8");
            } catch (const std::exception& e) {
                res = plain(http::status::internal_server_error, fmt::format("render failed: {}\n", e.what()));
            }
        }
        if (req.method() == http::verb::head) res.body().clear();  // Content-Length still tells the size
        return res;
    }

    void send(response res) {
        res_ = std::move(res);
        stream_.expires_after(timeout);
        http::async_write(stream_, res_, beast::bind_front_handler(&admin_session::on_write, shared_from_this()));
    }

    void on_write(beast::error_code ec, std::size_t) {
        if (ec || !res_.keep_alive()) return do_close();
        do_read();
    }

    void do_close() {
        beast::error_code ec;
        stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
        stream_.close();
    }

    beast::tcp_stream stream_;
    beast::flat_buffer buffer_;
    std::optional<http::request_parser<http::string_body>> parser_;
    response res_;
    const std::function<std::string()>& render_;
};

}  // namespace

struct admin_server::impl {
    std::function<std::string()> render;
    std::string address;
    std::uint16_t port = 0;
    std::shared_ptr<spdlog::logger> log = common::logger("proxy");
    // Both are reset by stop(): the acceptor first (the port is free at once), then the
    // io_context, whose destruction drops the pending handlers and with them every session.
    std::unique_ptr<net::io_context> ioc = std::make_unique<net::io_context>(1);
    std::optional<tcp::acceptor> acceptor{std::in_place, *ioc};
    std::thread thread;
    bool running = false;

    void do_accept();
};

void admin_server::impl::do_accept() {
    acceptor->async_accept([this](beast::error_code ec, tcp::socket socket) {
        if (ec == net::error::operation_aborted || !acceptor->is_open()) return;
        if (ec) {
            // Out of descriptors (EMFILE) fails again at once: wait a little instead of spinning.
            log->warn("admin: accept failed: {}; retrying in 100 ms", ec.message());
            auto timer = std::make_shared<net::steady_timer>(*ioc, std::chrono::milliseconds(100));
            timer->async_wait([this, timer](beast::error_code) { do_accept(); });
            return;
        }
        std::make_shared<admin_session>(std::move(socket), render)->run();
        do_accept();
    });
}

admin_server::admin_server(const std::string& address, std::uint16_t port, std::function<std::string()> render)
    : impl_(std::make_unique<impl>()) {
    auto& s = *impl_;
    s.render = std::move(render);
    s.address = address;
    common::listen_on(*s.acceptor, address, port, "admin");
    s.port = s.acceptor->local_endpoint().port();  // kept: port() still answers after stop()
}

void admin_server::start() {
    auto& s = *impl_;
    if (s.running) return;
    if (!s.ioc) throw std::runtime_error("a stopped admin server cannot be started again");
    s.running = true;
    s.do_accept();
    s.thread = std::thread([&ioc = *s.ioc] { ioc.run(); });
    s.log->info("admin listening on {}:{}", s.address, s.port);
}

void admin_server::stop() {
    auto& s = *impl_;
    if (!s.ioc) return;
    s.running = false;
    s.ioc->stop();
    if (s.thread.joinable()) s.thread.join();
    s.acceptor.reset();  // the accept loop has stopped: the port is released now
    s.ioc.reset();       // destroys the sessions: every connection is closed
}

admin_server::~admin_server() { stop(); }

std::uint16_t admin_server::port() const { return impl_->port; }

}  // namespace exsim::proxy
