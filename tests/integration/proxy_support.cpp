#include "proxy_support.hpp"

#include <sys/socket.h>

#include <sstream>

#include <boost/json.hpp>
#include <fmt/format.h>
#include <fmt/ranges.h>

namespace exsim::testing {

std::unique_ptr<proxy::server> start_proxy(const proxy_setup& setup) {
    static std::atomic<int> next{0};
    auto& env = realm_environment::get();
    auto topology = env.topology();
    topology.frontend.policy = setup.policy;
    topology.frontend.require_kerberos = setup.require_kerberos;
    topology.frontend.leak_guard = setup.leak_guard;
    topology.frontend.pool = setup.pool;
    proxy::proxy_options o;
    for (const auto& b : topology.backends) o.backends[b.name] = fmt::format("127.0.0.1:{}", env.port(b.name));
    for (const auto& [name, address] : setup.addresses) o.backends[name] = address;
    o.allow_insecure_http = !setup.tls;
    o.workers = setup.workers;
    o.state_dir = env.dir() / fmt::format("proxy-{}", next++);
    std::filesystem::create_directories(o.state_dir);
    auto p = std::make_unique<proxy::server>(topology, o);
    p->start();
    return p;
}

std::set<std::uint64_t> connections(const std::vector<backend::audit_record>& records) {
    std::set<std::uint64_t> out;
    for (const auto& r : records) out.insert(r.conn);
    return out;
}

::testing::AssertionResult one_user_per_connection(const std::vector<backend::audit_record>& records) {
    std::map<std::uint64_t, std::set<std::string>> served;
    for (const auto& r : records) served[r.conn].insert(r.on_behalf_of);
    std::vector<std::string> shared;
    for (const auto& [conn, users] : served)
        if (users.size() > 1) shared.push_back(fmt::format("conn {} served {}", conn, fmt::join(users, ",")));
    if (shared.empty()) return ::testing::AssertionSuccess() << served.size() << " connections, one user each";
    return ::testing::AssertionFailure() << shared.size() << " of " << served.size()
                                         << " back-end connections served more than one user: "
                                         << fmt::format("{}", fmt::join(shared, "; "));
}

std::map<std::uint64_t, std::size_t> records_by_connection(const std::vector<backend::audit_record>& records) {
    std::map<std::uint64_t, std::size_t> out;
    for (const auto& r : records) ++out[r.conn];
    return out;
}

std::int64_t acquired(const proxy::server& p, proxy::reuse_decision d) {
    return proxy::total(p.metrics(), [d](const proxy::worker_metrics& w) -> const auto& {
        return w.acquired[static_cast<std::size_t>(d)];
    });
}

std::int64_t closed(const proxy::server& p, proxy::close_reason r) {
    return proxy::total(p.metrics(), [r](const proxy::worker_metrics& w) -> const auto& {
        return w.closed[static_cast<std::size_t>(r)];
    });
}

std::int64_t handshakes(const proxy::server& p, proxy::handshake_mechanism m) {
    return proxy::total(p.metrics(), [m](const proxy::worker_metrics& w) -> const auto& {
        return w.handshakes[static_cast<std::size_t>(m)];
    });
}

response as_user(const proxy::server& p, const std::string& user, http::verb method, const std::string& target,
                 const std::string& body) {
    connection c(p.port());
    std::map<std::string, std::string> h{{"Authorization", basic(user)}};
    if (!body.empty()) h["Content-Type"] = "application/json";
    return c.request(method, target, h, body);
}

response with_authorization(const proxy::server& p, const std::string& authorization, http::verb method,
                            const std::string& target) {
    connection c(p.port());
    return c.request(method, target, {{"Authorization", authorization}});
}

std::optional<std::int64_t> sample(const std::string& text, const std::string& series) {
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line))
        if (line.size() > series.size() && line.compare(0, series.size(), series) == 0 && line[series.size()] == ' ')
            return std::stoll(line.substr(series.size() + 1));
    return std::nullopt;
}

scripted_backend::scripted_backend(script s)
    : script_(std::move(s)), acceptor_(ioc_, {boost::asio::ip::make_address("127.0.0.1"), 0}) {
    thread_ = std::thread([this] { run(); });
}

scripted_backend::~scripted_backend() {
    stopping_ = true;
    if (const int fd = current_fd_.load(); fd >= 0) ::shutdown(fd, SHUT_RDWR);  // unblocks a read
    boost::system::error_code ec;
    boost::asio::ip::tcp::socket wake(ioc_);
    wake.connect(acceptor_.local_endpoint(), ec);  // unblocks accept()
    thread_.join();
}

std::uint16_t scripted_backend::port() const { return acceptor_.local_endpoint().port(); }
std::string scripted_backend::address() const { return fmt::format("127.0.0.1:{}", port()); }

std::vector<scripted_backend::request> scripted_backend::requests() {
    std::lock_guard lock(m_);
    return requests_;
}

void scripted_backend::run() {
    while (!stopping_) {
        boost::system::error_code ec;
        boost::asio::ip::tcp::socket s(ioc_);
        acceptor_.accept(s, ec);
        if (ec || stopping_) return;
        ++connections_;
        current_fd_ = s.native_handle();
        boost::beast::flat_buffer buffer;
        for (;;) {
            request req;
            http::read(s, buffer, req, ec);
            if (ec) break;
            std::size_t index;
            {
                std::lock_guard lock(m_);
                requests_.push_back(req);
                index = requests_.size() - 1;
            }
            const auto a = script_(req, index);
            if (a == action::drop) break;
            http::response<http::string_body> res{http::status::ok, 11};
            res.set(http::field::content_type, "text/plain");
            res.body() = "scripted\n";
            res.keep_alive(a == action::answer);
            res.prepare_payload();
            if (a == action::cut_in_headers || a == action::cut_in_body) {
                std::ostringstream whole;
                whole << res;
                const auto text = whole.str();
                const auto header = text.find("\r\n\r\n") + 4;
                const auto cut = a == action::cut_in_headers ? header / 2 : header + res.body().size() / 2;
                boost::asio::write(s, boost::asio::buffer(text.data(), cut), ec);
                break;
            }
            http::write(s, res, ec);
            if (ec || a == action::answer_and_close) break;
        }
        current_fd_ = -1;
        s.shutdown(boost::asio::ip::tcp::socket::shutdown_both, ec);
        s.close(ec);
    }
}

std::string mail_json(const std::string& to, const std::string& subject, const std::string& body) {
    boost::json::object o;
    o["to"] = to;
    o["subject"] = subject;
    o["body"] = body;
    return boost::json::serialize(o);
}

}  // namespace exsim::testing
