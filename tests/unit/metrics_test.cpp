#include <gtest/gtest.h>

#include <map>
#include <regex>
#include <sstream>
#include <thread>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "exsim/proxy/admin_server.hpp"
#include "exsim/proxy/metrics.hpp"

namespace exsim::proxy {
namespace {
namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;

std::vector<std::string> lines_of(const std::string& text) {
    std::vector<std::string> lines;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    return lines;
}

bool contains_line(const std::string& text, const std::string& line) {
    for (const auto& l : lines_of(text))
        if (l == line) return true;
    return false;
}

// A small checker of the 0.0.4 text format as we write it: comments are "# HELP name text" or
// "# TYPE name counter|gauge"; samples are `name{label="value",...} integer`. Returns the
// offending line, empty when every line is well-formed.
std::string first_malformed_line(const std::string& text) {
    static const std::regex comment(R"(# (HELP [a-zA-Z_:][a-zA-Z0-9_:]* .+|TYPE [a-zA-Z_:][a-zA-Z0-9_:]* (counter|gauge)))");
    static const std::regex sample(
        R"([a-zA-Z_:][a-zA-Z0-9_:]*(\{[a-zA-Z_][a-zA-Z0-9_]*="(\\[\\"n]|[^"\\\n])*"(,[a-zA-Z_][a-zA-Z0-9_]*="(\\[\\"n]|[^"\\\n])*")*\})? -?[0-9]+)");
    for (const auto& l : lines_of(text))
        if (!std::regex_match(l, l.starts_with("#") ? comment : sample)) return l;
    return {};
}

std::string family_of(const std::string& sample_line) { return sample_line.substr(0, sample_line.find_first_of("{ ")); }

TEST(Metrics, NamesAreTheEnumeratorNames) {
    EXPECT_EQ(name(reuse_decision::reused_same_user), "reused_same_user");
    EXPECT_EQ(name(close_reason::ntlm_not_pooled), "ntlm_not_pooled");
    EXPECT_EQ(name(close_reason::shutdown), "shutdown");
    EXPECT_EQ(name(handshake_mechanism::kerberos), "kerberos");
}

TEST(Metrics, SumsCountersOverWorkers) {
    worker_metrics a, b;
    add(a.requests, 3);
    add(b.requests, 4);
    add(a.responses[1]);
    add(b.responses[1], 2);
    add(a.acquired[static_cast<std::size_t>(reuse_decision::reused_pinned)]);
    add(b.acquired[static_cast<std::size_t>(reuse_decision::reused_pinned)]);
    add(b.queue_timeouts, 5);
    add(a.takeovers, 2);
    add(b.takeovers, 3);
    add(a.cross_user_responses, 2);
    add(a.open_connections, 4);
    add(b.open_connections, -1);
    const auto text = render_prometheus("pinned", {&a, &b});
    EXPECT_TRUE(contains_line(text, R"(exsim_proxy_requests_total{policy="pinned"} 7)")) << text;
    EXPECT_TRUE(contains_line(text, R"(exsim_proxy_responses_total{policy="pinned",class="2xx"} 3)"));
    EXPECT_TRUE(contains_line(
        text, R"(exsim_proxy_backend_connections_acquired_total{policy="pinned",decision="reused_pinned"} 2)"));
    EXPECT_TRUE(contains_line(text, R"(exsim_proxy_queue_rejections_total{policy="pinned",reason="timeout"} 5)"));
    EXPECT_TRUE(contains_line(text, R"(exsim_proxy_backend_connections_open{policy="pinned"} 3)"));
    EXPECT_TRUE(contains_line(text, R"(exsim_proxy_cross_user_responses_total{policy="pinned"} 2)"));
    EXPECT_TRUE(contains_line(text, R"(exsim_proxy_backend_connections_taken_over_total{policy="pinned"} 5)"));
    EXPECT_EQ(total({&a, &b}, [](const worker_metrics& w) -> auto& { return w.requests; }), 7);
}

TEST(Metrics, EveryLabelValueAppearsAtZero) {
    worker_metrics w;
    const auto text = render_prometheus("p", {&w});
    auto expect_zero = [&](std::string_view family, std::string_view label, std::string_view value) {
        EXPECT_TRUE(contains_line(text, std::string(family) + "{policy=\"p\"," + std::string(label) + "=\"" +
                                            std::string(value) + "\"} 0"))
            << family << " " << label << "=" << value;
    };
    for (std::size_t i = 0; i < static_cast<std::size_t>(reuse_decision::count); ++i)
        expect_zero("exsim_proxy_backend_connections_acquired_total", "decision", name(static_cast<reuse_decision>(i)));
    for (std::size_t i = 0; i < static_cast<std::size_t>(close_reason::count); ++i)
        expect_zero("exsim_proxy_backend_connections_closed_total", "reason", name(static_cast<close_reason>(i)));
    for (std::size_t i = 0; i < static_cast<std::size_t>(handshake_mechanism::count); ++i)
        expect_zero("exsim_proxy_backend_handshakes_total", "mechanism", name(static_cast<handshake_mechanism>(i)));
    for (auto c : {"1xx", "2xx", "3xx", "4xx", "5xx"}) expect_zero("exsim_proxy_responses_total", "class", c);
    for (auto r : {"full", "timeout"}) expect_zero("exsim_proxy_queue_rejections_total", "reason", r);
}

TEST(Metrics, EachFamilyHasOneHelpAndOneTypeBeforeItsSamples) {
    worker_metrics w;
    std::map<std::string, int> helps, types;
    for (const auto& l : lines_of(render_prometheus("p", {&w}))) {
        std::istringstream words(l);
        std::string hash, kind, family;
        if (l.starts_with("#")) {
            words >> hash >> kind >> family;
            ++(kind == "HELP" ? helps : types)[family];
        } else {
            family = family_of(l);
            EXPECT_EQ(helps[family], 1) << l;
            EXPECT_EQ(types[family], 1) << l;
        }
    }
    EXPECT_EQ(helps.size(), 25u);
    for (const auto& [family, n] : helps) EXPECT_EQ(n, 1) << family;
    for (const auto& [family, n] : types) EXPECT_EQ(n, 1) << family;
}

TEST(Metrics, EveryLineParses) {
    worker_metrics a, b;
    add(a.requests, 12345678901ull);
    add(b.waiting, -2);
    const auto text = render_prometheus("per-user", {&a, &b});
    ASSERT_FALSE(text.empty());
    EXPECT_EQ(text.back(), '\n');
    EXPECT_EQ(first_malformed_line(text), "");
}

TEST(Metrics, EscapesThePolicyLabel) {
    worker_metrics w;
    const auto text = render_prometheus("a\"b\\c\nd", {&w});
    EXPECT_TRUE(contains_line(text, R"(exsim_proxy_requests_total{policy="a\"b\\c\nd"} 0)")) << text;
    EXPECT_EQ(first_malformed_line(text), "");
}

// A synchronous HTTP/1.1 client on one connection.
class client {
public:
    explicit client(std::uint16_t port) { stream_.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), port)); }

    http::response<http::string_body> send(http::verb method, const std::string& target, bool keep_alive = true) {
        http::request<http::empty_body> req{method, target, 11};
        req.set(http::field::host, "127.0.0.1");
        req.keep_alive(keep_alive);
        http::write(stream_, req);
        http::response_parser<http::string_body> parser;
        parser.skip(method == http::verb::head);
        http::read(stream_, buffer_, parser);
        return parser.release();
    }

    void write_raw(const std::string& bytes) { net::write(stream_, net::buffer(bytes)); }

    http::response<http::string_body> read() {
        http::response<http::string_body> res;
        http::read(stream_, buffer_, res);
        return res;
    }

    // True when the server closes the connection within `timeout` (a peek sees EOF or a reset);
    // false when it is still open by then or sends more bytes.
    bool closed(std::chrono::milliseconds timeout = std::chrono::seconds(2)) {
        auto& socket = stream_.socket();
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        beast::error_code ec;
        socket.non_blocking(true);
        for (;;) {
            char byte;
            ec = {};
            socket.receive(net::buffer(&byte, 1), tcp::socket::message_peek, ec);
            if (ec != net::error::would_block || std::chrono::steady_clock::now() >= deadline) break;
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        socket.non_blocking(false);
        return ec == net::error::eof || ec == net::error::connection_reset;
    }

private:
    net::io_context ioc_;
    beast::tcp_stream stream_{ioc_};
    beast::flat_buffer buffer_;
};

struct AdminServer : ::testing::Test {
    worker_metrics w;
    admin_server server{"127.0.0.1", 0, [this] { return render_prometheus("legacy", {&w}); }};

    void SetUp() override { server.start(); }
};

TEST_F(AdminServer, AnswersMetricsWithTheRenderOutput) {
    add(w.requests, 9);
    client c(server.port());
    auto res = c.send(http::verb::get, "/metrics");
    EXPECT_EQ(res.result(), http::status::ok);
    EXPECT_EQ(res[http::field::content_type], "text/plain; version=0.0.4; charset=utf-8");
    EXPECT_EQ(res.body(), render_prometheus("legacy", {&w}));
    EXPECT_TRUE(contains_line(res.body(), R"(exsim_proxy_requests_total{policy="legacy"} 9)"));
}

TEST_F(AdminServer, AnswersHeadWithoutABody) {
    client c(server.port());
    auto res = c.send(http::verb::head, "/metrics");
    EXPECT_EQ(res.result(), http::status::ok);
    EXPECT_EQ(res[http::field::content_length], std::to_string(render_prometheus("legacy", {&w}).size()));
    // The connection is still usable, so no body bytes followed the header.
    EXPECT_EQ(c.send(http::verb::get, "/healthz").body(), "ok\n");
}

TEST_F(AdminServer, HealthzSaysOkOnAKeptAliveConnection) {
    client c(server.port());
    for (int i = 0; i < 3; ++i) {
        auto res = c.send(http::verb::get, "/healthz");
        EXPECT_EQ(res.result(), http::status::ok);
        EXPECT_EQ(res.body(), "ok\n");
        EXPECT_TRUE(res.keep_alive());
    }
}

TEST_F(AdminServer, ClosesWhenTheClientAsksTo) {
    client c(server.port());
    auto res = c.send(http::verb::get, "/healthz", false);
    EXPECT_FALSE(res.keep_alive());
    EXPECT_TRUE(c.closed());
}

TEST_F(AdminServer, UnknownPathIs404) {
    client c(server.port());
    EXPECT_EQ(c.send(http::verb::get, "/").result(), http::status::not_found);
    EXPECT_EQ(c.send(http::verb::get, "/metricsx").result(), http::status::not_found);
}

TEST_F(AdminServer, OtherMethodIs405WithAllow) {
    client c(server.port());
    auto res = c.send(http::verb::post, "/metrics");
    EXPECT_EQ(res.result(), http::status::method_not_allowed);
    EXPECT_EQ(res[http::field::allow], "GET, HEAD");
}

TEST_F(AdminServer, MalformedRequestIs400AndClose) {
    client c(server.port());
    c.write_raw("GET /metrics HTTP/1.1\r\nno colon here\r\n\r\n");
    auto res = c.read();
    EXPECT_EQ(res.result(), http::status::bad_request);
    EXPECT_FALSE(res.keep_alive());
    EXPECT_TRUE(c.closed());
}

TEST_F(AdminServer, StopReleasesThePortAndClosesConnections) {
    const auto port = server.port();
    client c(port);
    EXPECT_EQ(c.send(http::verb::get, "/healthz").result(), http::status::ok);
    server.stop();
    EXPECT_TRUE(c.closed());
    EXPECT_EQ(server.port(), port);

    net::io_context ioc;
    tcp::acceptor again(ioc);
    const tcp::endpoint ep(net::ip::make_address("127.0.0.1"), port);
    again.open(ep.protocol());
    again.set_option(net::socket_base::reuse_address(true));  // as the server does: TIME_WAIT is not a listener
    beast::error_code ec;
    again.bind(ep, ec);
    EXPECT_FALSE(ec) << ec.message();
}

TEST_F(AdminServer, StopTwiceIsFineAndStartAfterStopThrows) {
    server.stop();
    server.stop();
    EXPECT_THROW(server.start(), std::runtime_error);
}

TEST(AdminServerBind, ThrowsNamingTheAddress) {
    try {
        admin_server s("not-an-address", 0, [] { return std::string(); });
        FAIL() << "no exception";
    } catch (const std::runtime_error& e) {
        EXPECT_NE(std::string(e.what()).find("not-an-address"), std::string::npos) << e.what();
    }
}

}  // namespace
}  // namespace exsim::proxy
