// The client side of the request path: a connection the listener accepted, on its worker; each
// request on it read, parsed with limits, checked, routed (request_checks.cpp), and then either
// answered by the proxy itself, served by the browser view (owa.cpp), or forwarded to the user's
// back-end (exchange.cpp).

#include <memory>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>

#include <boost/algorithm/string/predicate.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <fmt/format.h>

#include "exsim/common/http_framing.hpp"
#include "exsim/proxy/plain_stream.hpp"
#include "exsim/proxy/request_checks.hpp"
#include "exsim/proxy/tls_stream.hpp"
#include "exchange.hpp"
#include "forwarding.hpp"
#include "client_session.hpp"
#include "nothrow.hpp"
#include "tapped_stream.hpp"

namespace exsim::proxy {
namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;
using net::awaitable;

namespace {

// What an idle client connection's read buffer starts with: most request headers fit, and
// 10,000 idle connections do not hold 16 KiB each (a larger header grows it).
constexpr std::size_t header_chunk = 1024;

// One client connection: reads requests one after the other and serves each (HTTP/1.1 has no
// pipelining worth supporting here). Stream is tapped<plain_stream> or tapped<tls_stream>.
template <class Stream>
class client_session final : public client_side {
    static constexpr bool plain = std::is_base_of_v<plain_stream, Stream>;

public:
    client_session(Stream stream, worker& w, server::impl& srv, std::uint64_t id)
        : stream_(std::move(stream)), worker_(w), srv_(srv), id_(id) {}

    ~client_session() override {
        for (auto& [name, pool] : worker_.pools) pool->client_closed(id_);
        add(worker_.metrics.active_clients, -1);
        if (stream_.tap) stream_.tap.tap->closed(stream_.tap.handle);
    }

    awaitable<void> run() {
        add(worker_.metrics.client_connections);
        add(worker_.metrics.active_clients, 1);
        if constexpr (!plain) {
            stream_.expires_after(limits().tls_handshake_timeout);
            auto [ec] = co_await stream_.async_handshake(nothrow);
            if (ec) {
                srv_.log->debug("client {}: TLS handshake failed: {}", id_, ec.message());
                co_return;
            }
        }
        while (co_await serve_one()) {
        }
        if constexpr (!plain) {
            stream_.expires_after(std::chrono::seconds(1));
            co_await stream_.async_shutdown(nothrow);
        }
        beast::error_code ec;
        stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
        stream_.close();
    }

    // ---- what the back-end exchange needs of the client (exchange.hpp) ----

    std::uint64_t id() const override { return id_; }
    bool tls() const override { return !plain; }

    // A short plain-text answer from the proxy itself. Returns whether the connection stays open.
    awaitable<bool> answer(http::status status, unsigned version, bool keep_alive, std::string why,
                           bool basic_challenge = false) override {
        http::response<http::string_body> res{status, version};
        res.set(http::field::server, "exsim-proxy");
        res.set(http::field::content_type, "text/plain; charset=utf-8");
        if (basic_challenge) res.set(http::field::www_authenticate, "Basic realm=\"exsim\", charset=\"UTF-8\"");
        res.body() = fmt::format("{} {}: {}\n", static_cast<unsigned>(status), http::obsolete_reason(status), why);
        res.prepare_payload();
        res.keep_alive(keep_alive);
        mark_tls_only(res, !plain);
        count_response(metrics(), static_cast<unsigned>(status));
        stream_.expires_after(limits().client_io_timeout);
        auto [ec, n] = co_await http::async_write(stream_, res, nothrow);
        co_return !ec && keep_alive;
    }

    awaitable<beast::error_code> read_body(client_parser& parser) override {
        stream_.expires_after(limits().client_io_timeout);
        auto [ec, n] = co_await http::async_read(stream_, buffer_, parser, nothrow);
        co_return ec;
    }

    awaitable<beast::error_code> write(const std::array<net::const_buffer, 5>& pieces) override {
        stream_.expires_after(limits().client_io_timeout);
        auto [ec, n] = co_await net::async_write(stream_, pieces, nothrow);
        co_return ec;
    }

private:
    const proxy_limits& limits() const { return srv_.options.limits; }
    worker_metrics& metrics() { return worker_.metrics; }

    // Reads and serves one request. Returns whether the client connection stays open.
    awaitable<bool> serve_one() {
        client_parser parser;
        parser.header_limit(static_cast<std::uint32_t>(limits().header_bytes));
        parser.body_limit(limits().body_bytes);
        if (!co_await read_header(parser)) co_return false;
        add(metrics().requests);
        auto& req = parser.get();
        // An answer that leaves the client's body unread cannot keep the connection.
        const bool keep = req.keep_alive() && parser.is_done();
        auto route = route_request(req, parser.chunked(), srv_.topology, *srv_.users);
        using refusal = request_route::refusal;
        switch (route.what) {
            case request_route::outcome::refuse:
                if (route.refused == refusal::framing || route.refused == refusal::bad_target) add(metrics().bad_requests);
                if (route.refused == refusal::bad_login) add(metrics().login_failures);
                co_return co_await answer(route.status, req.version(), keep && !route.closes(), std::move(route.why),
                                          route.refused == refusal::no_login || route.refused == refusal::bad_login);
            case request_route::outcome::browser_view:
                co_return co_await serve_owa(parser, route.canonical, keep);
            case request_route::outcome::forward:
                break;
        }
        const std::string user = route.user ? route.user->name : std::string();
        const std::string password = route.user ? route.user->password : std::string();
        auto& pool = *worker_.pools.find(route.backend->name)->second;
        if (!co_await continue_if_expected(parser)) co_return false;
        const forward_request r{parser, route.canonical.target, user, password, pool, {}, nullptr};
        co_return co_await forward(srv_, worker_, *this, r);
    }

    // Reads and parses a request header: true when there is one. Otherwise the client went away
    // or was answered (400, 408, 413, 431), and its connection closes.
    awaitable<bool> read_header(client_parser& parser) {
        if (auto ec = co_await read_header_bytes(); ec) {
            // Idle past client_idle_timeout: closed without a word, as every server does.
            if (ec == beast::error::timeout && buffer_.size() > 0)
                co_await answer(http::status::request_timeout, 11, false,
                                fmt::format("the request header did not arrive whole within {} s",
                                            std::chrono::duration_cast<std::chrono::seconds>(limits().client_io_timeout).count()));
            co_return false;
        }
        {
            const std::string_view data(static_cast<const char*>(buffer_.data().data()), buffer_.size());
            if (common::request_line_lacks_version(data)) {
                add(metrics().bad_requests);
                co_await answer(http::status::bad_request, 11, false, std::string(common::no_version_reason));
                co_return false;
            }
            if (const auto end = common::header_end(data); end != std::string_view::npos && common::has_obs_fold(data.substr(0, end))) {
                add(metrics().bad_requests);
                co_await answer(http::status::bad_request, 11, false,
                                "obsolete line folding (obs-fold) in the header is refused");
                co_return false;
            }
        }
        // The header is buffered whole (or is over the limit): parsed from the buffer, with no
        // second asynchronous read; Beast reads on only where it finds no end where we did.
        beast::error_code ec;
        buffer_.consume(parser.put(buffer_.data(), ec));
        if (ec == http::error::need_more)
            std::tie(ec, std::ignore) = co_await http::async_read_header(stream_, buffer_, parser, nothrow);
        if (!ec) co_return true;
        if (ec == http::error::header_limit)
            co_await answer(http::status::request_header_fields_too_large, 11, false,
                            fmt::format("the request line and headers exceed {} bytes", limits().header_bytes));
        else if (ec == http::error::body_limit)
            co_await answer(http::status::payload_too_large, 11, false,
                            fmt::format("the request body exceeds {} bytes", limits().body_bytes));
        else if (ec.category() == http::make_error_code(http::error::bad_method).category() &&
                 ec != http::error::end_of_stream && ec != http::error::partial_message) {
            add(metrics().bad_requests);
            co_await answer(http::status::bad_request, 11, false, fmt::format("malformed request: {}", ec.message()));
        }
        co_return false;
    }

    // Buffers a whole header (or more than the limit: 431; or a first line without a version: 400 at
    // once) so that its raw bytes are checked before Beast unfolds them; once begun it has
    // client_io_timeout in all, not the idle timeout per byte (then beast::error::timeout, and
    // the stream still open for the 408).
    awaitable<beast::error_code> read_header_bytes() {
        stream_.expires_after(buffer_.size() == 0 ? limits().client_idle_timeout : limits().client_io_timeout);
        for (;;) {
            const std::string_view data(static_cast<const char*>(buffer_.data().data()), buffer_.size());
            if (common::header_end(data) != std::string_view::npos || data.size() > limits().header_bytes ||
                common::request_line_lacks_version(data))
                co_return beast::error_code{};
            auto [ec, n] = co_await stream_.async_read_some(buffer_.prepare(header_chunk), nothrow);
            if (ec) co_return ec;
            if (buffer_.size() == 0 && n > 0) stream_.expires_after(limits().client_io_timeout);
            buffer_.commit(n);
        }
    }

    // Answers `Expect: 100-continue` before a body is read. Returns false when the client is gone.
    awaitable<bool> continue_if_expected(client_parser& parser) {
        if (!boost::iequals(parser.get()[http::field::expect], "100-continue") || parser.is_done()) co_return true;
        http::response<http::empty_body> cont{http::status::continue_, parser.get().version()};
        stream_.expires_after(limits().client_io_timeout);
        auto [ec, n] = co_await http::async_write(stream_, cont, nothrow);
        co_return !ec;
    }

    // The browser view (owa.hpp). Its form body is read whole (max_form_bytes: 413); the pages
    // that show mailbox data come back through fetch_for_owa.
    awaitable<bool> serve_owa(client_parser& parser, const canonical_target& canonical, bool keep) {
        auto& req = parser.get();
        const unsigned version = req.version();
        std::string body;
        if (!parser.is_done()) {
            if (parser.content_length() && *parser.content_length() > owa::max_form_bytes)
                co_return co_await answer(http::status::payload_too_large, version, false,
                                          fmt::format("a form may not exceed {} bytes", owa::max_form_bytes));
            parser.body_limit(owa::max_form_bytes);
            if (!co_await continue_if_expected(parser)) co_return false;
            char buf[4096];
            while (!parser.is_done()) {
                req.body().data = buf;
                req.body().size = sizeof buf;
                auto ec = co_await read_body(parser);
                if (ec == http::error::need_buffer) ec = {};
                if (ec == http::error::body_limit)
                    co_return co_await answer(http::status::payload_too_large, version, false,
                                              fmt::format("a form may not exceed {} bytes", owa::max_form_bytes));
                if (ec) co_return false;
                body.append(buf, sizeof buf - req.body().size);
            }
            keep = req.keep_alive();  // the body is read: the connection may carry the next request
        }
        const auto qmark = canonical.target.find('?');
        owa::request r{req.method(),
                       canonical.path,
                       qmark == std::string::npos ? std::string_view{} : std::string_view(canonical.target).substr(qmark + 1),
                       req[http::field::cookie],
                       req["Origin"],
                       req[http::field::host],
                       body};
        auto page = co_await srv_.owa->handle(r, [this](owa::backend_call c) { return fetch_for_owa(std::move(c)); });
        page.version(version);
        page.keep_alive(keep);
        if (req.method() == http::verb::head) page.body().clear();
        page.prepare_payload();
        mark_tls_only(page, !plain);
        count_response(metrics(), page.result_int());
        stream_.expires_after(limits().client_io_timeout);
        auto [ec, n] = co_await http::async_write(stream_, page, nothrow);
        co_return !ec && keep;
    }

    // One back-end request for a browser-view page, as its user, through forward(): the same
    // pool, policy, handshakes, retries and leak guard as any request; only the response is
    // captured instead of relayed.
    awaitable<owa::backend_reply> fetch_for_owa(owa::backend_call call) {
        const auto* entry = srv_.users->find(call.user);
        auto& pool = *worker_.pools.find(entry->home)->second;
        std::string raw = fmt::format("{} {} HTTP/1.1\r\nHost: exsim\r\nAccept: application/json\r\n",
                                      http::to_string(call.method), call.target);
        if (!call.body.empty())
            raw += fmt::format("Content-Type: application/json\r\nContent-Length: {}\r\n", call.body.size());
        raw += "\r\n";
        raw += call.body;
        client_parser parser;
        parser.eager(true);
        std::string scratch(call.body.size(), '\0');  // the parser's copy of the body, unused: it goes as a replay
        parser.get().body().data = scratch.data();
        parser.get().body().size = scratch.size();
        beast::error_code ec;
        parser.put(net::buffer(raw), ec);
        owa::backend_reply reply;
        reply.backend = pool.backend().name;
        if (ec || !parser.is_done()) {
            reply.proxy_error = fmt::format("could not build the back-end request: {}", ec.message());
            co_return reply;
        }
        const forward_request r{parser, call.target, call.user, call.password, pool, call.body, &reply};
        co_await forward(srv_, worker_, *this, r);
        co_return reply;
    }

    Stream stream_;
    beast::flat_buffer buffer_;
    worker& worker_;
    server::impl& srv_;
    std::uint64_t id_;
};

// The client connection's place in the wire tap, if there is one: its decrypted HTTP, on the
// addresses and ports it has.
tap_point client_tap(common::wire_tap* tap, const tcp::socket& socket, std::uint64_t id) {
    if (!tap) return {};
    beast::error_code ec;
    const auto client = socket.remote_endpoint(ec);
    const auto local = ec ? tcp::endpoint() : socket.local_endpoint(ec);
    if (ec) return {};
    return {tap, tap->opened("client#" + std::to_string(id), client, local), false};
}

template <class Stream>
awaitable<void> serve(std::unique_ptr<client_session<tapped<Stream>>> session) {
    co_await session->run();
}

}  // namespace

void start_session(server::impl& srv, worker& w, tcp::socket socket) {
    socket.set_option(tcp::no_delay(true));
    const auto id = srv.next_client++;
    auto report = [log = srv.log, id](std::exception_ptr e) {
        if (!e) return;
        try {
            std::rethrow_exception(e);
        } catch (const std::exception& x) {
            log->error("client {}: {}", id, x.what());
        }
    };
    const auto tap = client_tap(srv.options.tap, socket, id);
    if (srv.tls) {
        try {
            tapped<tls_stream> stream(tls_stream(std::move(socket), *srv.tls));
            stream.tap = tap;
            auto s = std::make_unique<client_session<tapped<tls_stream>>>(std::move(stream), w, srv, id);
            net::co_spawn(w.ioc, serve(std::move(s)), report);
        } catch (const std::exception& e) {
            srv.log->error("client {}: {}", id, e.what());
            if (tap) tap.tap->closed(tap.handle);
        }
    } else {
        tapped<plain_stream> stream(plain_stream(std::move(socket)));
        stream.tap = tap;
        auto s = std::make_unique<client_session<tapped<plain_stream>>>(std::move(stream), w, srv, id);
        net::co_spawn(w.ioc, serve(std::move(s)), report);
    }
}

}  // namespace exsim::proxy
