#include "proxy_support.hpp"

#include <sys/socket.h>

#include <chrono>
#include <string_view>
#include <thread>
#include <fstream>
#include <future>
#include <limits>
#include <regex>
#include <sstream>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json.hpp>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include "exsim/backend_sim/mailbox_store.hpp"
#include "exsim/common/accept_loop.hpp"

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
    o.limits = setup.limits;
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
            if (a == action::answer_chunked) {
                for (const char* piece : {"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nscri\r\n",
                                          "5\r\npted\n\r\n", "0\r\n\r\n"}) {
                    boost::asio::write(s, boost::asio::buffer(std::string_view(piece)), ec);
                    std::this_thread::sleep_for(std::chrono::milliseconds(20));  // separate reads for the proxy
                }
                if (ec) break;
                continue;
            }
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

namespace exsim::testing {
namespace net = boost::asio;
using tcp = net::ip::tcp;

// ---- fresh_backends ---------------------------------------------------------------------------

fresh_backends::fresh_backends(const std::vector<std::string>& names) {
    static std::atomic<int> next{0};
    auto& env = realm_environment::get();
    dir_ = env.dir() / fmt::format("backends-{}", next++);
    std::filesystem::create_directories(dir_);
    for (const auto& name : names) {
        auto o = backend::realm_backend_options(env.topology(), env.realm(), name, dir_);
        o.reset_store = true;
        auto s = std::make_unique<backend::server>(env.topology(), o);
        s->start();
        o.port = s->port();
        o.reset_store = false;  // for start_again()
        options_[name] = o;
        servers_[name] = std::move(s);
    }
}

std::map<std::string, std::string> fresh_backends::addresses() const {
    std::map<std::string, std::string> out;
    for (const auto& [name, o] : options_) out[name] = fmt::format("127.0.0.1:{}", o.port);
    return out;
}

std::vector<std::filesystem::path> fresh_backends::audit_logs() const {
    std::vector<std::filesystem::path> out;
    for (const auto& [name, o] : options_) out.push_back(backend::audit_log_path(dir_, name));
    return out;
}

std::vector<backend::audit_record> fresh_backends::audit() const {
    std::vector<backend::audit_record> all;
    for (const auto& f : audit_logs()) {
        auto r = backend::read_audit_log(f);
        all.insert(all.end(), r.begin(), r.end());
    }
    return all;
}

std::map<std::string, std::size_t> fresh_backends::sent_subjects(const std::string& user) const {
    const auto* u = realm_environment::get().topology().find_user(user);
    if (!u || !options_.count(u->home)) {
        ADD_FAILURE() << user << " has no home among these back-ends";
        return {};
    }
    backend::mailbox_store store(backend::mailbox_database_path(dir_, u->home));
    std::vector<backend::message> messages;
    const auto ec = store.list(user, backend::sent_items_folder, std::numeric_limits<std::size_t>::max(), messages);
    EXPECT_FALSE(ec) << user << ": " << ec.message();
    std::map<std::string, std::size_t> out;
    for (const auto& m : messages) ++out[m.subject];
    return out;
}

void fresh_backends::stop(const std::string& name) {
    auto& s = servers_.at(name);
    if (s) s->stop();
    s.reset();
}

void fresh_backends::start_again(const std::string& name) {
    auto& s = servers_.at(name);
    if (s) return;
    s = std::make_unique<backend::server>(realm_environment::get().topology(), options_.at(name));
    s->start();
}

// ---- idle_closing_relay -----------------------------------------------------------------------

// One relayed connection, as close_idle() sees it.
struct idle_closing_relay::link {
    tcp::socket* front;
    bool between_exchanges = false;  // a finished exchange came before; waiting for the next request
};

idle_closing_relay::idle_closing_relay(std::uint16_t backend_port, double cut_probability, unsigned seed)
    : backend_({net::ip::make_address("127.0.0.1"), backend_port}),
      acceptor_(ioc_, {net::ip::make_address("127.0.0.1"), 0}),
      listening_(acceptor_.local_endpoint()),
      probability_(cut_probability),
      rng_(seed) {
    net::co_spawn(ioc_, accept(), net::detached);
    thread_ = std::thread([this] { ioc_.run(); });
}

idle_closing_relay::~idle_closing_relay() {
    ioc_.stop();
    thread_.join();
}

std::string idle_closing_relay::address() const { return fmt::format("127.0.0.1:{}", listening_.port()); }

std::map<std::string, std::size_t> idle_closing_relay::cut() {
    std::lock_guard lock(m_);
    return cut_;
}

// Runs `f` on the relay's thread (which owns the links, the listener and the PRNG) and returns
// what it returns.
template <class F>
auto idle_closing_relay::on_relay_thread(F f) {
    std::packaged_task<decltype(f())()> task(std::move(f));
    auto result = task.get_future();
    net::post(ioc_, [&task] { task(); });
    return result.get();
}

idle_closing_relay::idle_closes idle_closing_relay::close_idle(double probability) {
    return on_relay_thread([this, probability] {
        idle_closes n;
        for (auto* l : links_) {
            if (!l->between_exchanges || std::uniform_real_distribution<>(0, 1)(rng_) >= probability) continue;
            boost::system::error_code ec;
            n.raced += l->front->available(ec) > 0;
            l->front->shutdown(tcp::socket::shutdown_both, ec);  // its relay() sees the end and finishes
            l->between_exchanges = false;
            ++n.closed;
        }
        return n;
    });
}

void idle_closing_relay::refuse() {
    on_relay_thread([this] {
        boost::system::error_code ignored;
        acceptor_.close(ignored);
        return 0;
    });
}

void idle_closing_relay::accept_again() {
    on_relay_thread([this] {
        if (acceptor_.is_open()) return 0;
        common::listen_on(acceptor_, listening_.address().to_string(), listening_.port(), "relay");
        net::co_spawn(ioc_, accept(), net::detached);
        return 0;
    });
}

net::awaitable<void> idle_closing_relay::accept() {
    for (;;) {
        auto [ec, s] = co_await acceptor_.async_accept(net::as_tuple(net::use_awaitable));
        if (ec) co_return;
        net::co_spawn(ioc_, relay(std::move(s)), net::detached);
    }
}

net::awaitable<void> idle_closing_relay::relay(tcp::socket front) {
    using namespace net::experimental::awaitable_operators;
    constexpr auto nothrow = net::as_tuple(net::use_awaitable);
    link self{&front};
    links_.insert(&self);
    tcp::socket back(ioc_);
    auto [cec] = co_await back.async_connect(backend_, nothrow);
    boost::beast::flat_buffer from_front, from_back;
    while (!cec) {
        // Whichever speaks first: the front-end with its next request, or the back-end closing.
        if (from_front.size() == 0) {
            auto first = co_await (front.async_wait(tcp::socket::wait_read, nothrow) ||
                                   back.async_wait(tcp::socket::wait_read, nothrow));
            if (first.index() == 1) break;
        }
        const bool reused = self.between_exchanges;
        self.between_exchanges = false;
        http::request_parser<http::string_body> req;
        req.body_limit(boost::none);
        auto [ec, n] = co_await http::async_read(front, from_front, req, nothrow);
        if (ec) break;
        if (reused && std::uniform_real_distribution<>(0, 1)(rng_) < probability_) {
            std::lock_guard lock(m_);
            ++cut_[std::string(req.get().method_string())];
            break;
        }
        auto [wec, wn] = co_await http::async_write(back, req.get(), nothrow);
        if (wec) break;
        http::response_parser<http::string_body> res;
        res.body_limit(boost::none);
        res.skip(req.get().method() == http::verb::head);
        auto [rec, rn] = co_await http::async_read(back, from_back, res, nothrow);
        if (rec) break;
        auto [fec, fn] = co_await http::async_write(front, res.get(), nothrow);
        if (fec || !res.get().keep_alive()) break;
        self.between_exchanges = res.get().result() != http::status::unauthorized;
    }
    links_.erase(&self);
    boost::system::error_code ignored;
    front.shutdown(tcp::socket::shutdown_both, ignored);
    back.shutdown(tcp::socket::shutdown_both, ignored);
}

// ---- proxy_process ----------------------------------------------------------------------------

proxy_process::proxy_process(const std::map<std::string, std::string>& backends, const std::vector<std::string>& options) {
    static std::atomic<int> next{0};
    dir_ = realm_environment::get().dir() / fmt::format("proxy-process-{}", next++);
    std::filesystem::create_directories(dir_);
    // The test realm's state folder: exsim proxy only reads its client files.
    std::vector<std::string> args{"proxy", "--state-dir", realm_environment::get().dir().string(), "--log-level", "warn"};
    for (const auto& [name, address] : backends) args.insert(args.end(), {"--backend", name + "=" + address});
    args.insert(args.end(), options.begin(), options.end());
    process_ = common::child_process::start(EXSIM_BINARY, args, {}, dir_ / "proxy.log");
    pid_ = process_.pid();
    static const std::regex proxy_url("export EXSIM_PROXY_URL=(https?://127\\.0\\.0\\.1:([0-9]+))");
    static const std::regex metrics_url("export EXSIM_METRICS_URL=(http://127\\.0\\.0\\.1:([0-9]+)/metrics)");
    for (int i = 0; i < 300 && port_ == 0 && process_.running(); ++i) {
        std::smatch p, m;
        const auto text = log();
        if (std::regex_search(text, p, proxy_url) && std::regex_search(text, m, metrics_url)) {
            url_ = p[1];
            metrics_url_ = m[1];
            metrics_port_ = static_cast<std::uint16_t>(std::stoi(m[2]));
            port_ = static_cast<std::uint16_t>(std::stoi(p[2]));
        } else {
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
        }
    }
}

std::string proxy_process::log() const {
    std::ifstream in(dir_ / "proxy.log");
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

std::string proxy_process::status() {
    if (process_.running()) return "the proxy is still running";
    return fmt::format("the proxy process died (exit {}); its log:\n{}", process_.exit_code().value_or(-1), log());
}

std::optional<int> proxy_process::stop(std::chrono::milliseconds grace) {
    process_.stop(grace);
    return process_.exit_code();
}

}  // namespace exsim::testing
