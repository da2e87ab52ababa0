// The server: its state built from the topology, the worker threads started and stopped, and
// the listener, which deals each accepted connection to a worker's client session (client_session.cpp).

#include "exsim/proxy/server.hpp"

#include <algorithm>
#include <functional>
#include <thread>
#include <vector>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/post.hpp>
#include <boost/beast/core/error.hpp>
#include <fmt/format.h>

#include "exsim/common/accept_loop.hpp"
#include "client_session.hpp"

namespace exsim::proxy {
namespace net = boost::asio;
namespace beast = boost::beast;
using tcp = net::ip::tcp;

void server::impl::do_accept() {
    common::accept_loop(
        acceptor, workers, [this](worker& w, tcp::socket socket) { start_session(*this, w, std::move(socket)); }, log);
}

namespace {

tcp::endpoint parse_endpoint(const std::string& backend, const std::string& text) {
    const auto colon = text.rfind(':');
    beast::error_code ec;
    if (colon != std::string::npos) {
        auto address = net::ip::make_address(text.substr(0, colon), ec);
        unsigned long port = 0;
        try {
            port = std::stoul(text.substr(colon + 1));
        } catch (const std::exception&) {
            port = 0;
        }
        if (!ec && port > 0 && port < 65536) return {address, static_cast<std::uint16_t>(port)};
    }
    throw common::config_error(
        fmt::format("backends.{}: '{}' is not an address such as 127.0.0.1:8081", backend, text));
}

}  // namespace

server::server(const common::topology& topology, proxy_options options)
    : impl_(std::make_unique<impl>()) {
    auto& s = *impl_;
    s.topology = topology;
    s.users.emplace(s.topology);
    s.options = std::move(options);
    s.policy = make_policy(s.topology.frontend.policy);
    s.credentials.emplace(s.topology.realm, s.topology.ntlm_domain);
    s.ntlm_credentials.emplace(s.topology.realm, s.topology.ntlm_domain, 1);
    for (const auto& b : s.topology.backends) {
        auto it = s.options.backends.find(b.name);
        if (it == s.options.backends.end())
            throw common::config_error(fmt::format("backends.{}: no address given for this back-end", b.name));
        s.endpoints[b.name] = parse_endpoint(b.name, it->second);
    }
    for (const auto& [name, address] : s.options.backends)
        if (!s.topology.find_backend(name))
            throw common::config_error(fmt::format("backends.{}: not a back-end of the directory", name));
    if (s.options.workers == 0) s.options.workers = s.topology.frontend.workers;
    if (s.options.workers == 0) s.options.workers = std::max(1u, std::thread::hardware_concurrency());
    if (!s.options.allow_insecure_http) {
        auto files = s.options.tls ? *s.options.tls
                                   : ensure_self_signed(s.options.state_dir / "tls", {"localhost", "127.0.0.1", s.options.address});
        s.tls.emplace(make_server_context(files));
    }
    for (const auto& b : s.topology.backends)
        s.pools.emplace(b.name, std::make_unique<pool_group>(s.topology.frontend.pool));
    for (std::size_t i = 0; i < s.options.workers; ++i) {
        auto w = std::make_unique<worker>();
        for (const auto& b : s.topology.backends) {
            auto& group = *s.pools.find(b.name)->second;
            auto part = std::make_unique<backend_pool>(b, s.endpoints[b.name], s.topology.frontend.pool, *s.policy,
                                                       w->metrics, w->ioc.get_executor(),
                                                       s.options.limits.connect_timeout, w->pins_per_client, group);
            group.members.push_back(part.get());
            part->tap = s.options.tap;
            w->pools.emplace(b.name, std::move(part));
        }
        s.workers.push_back(std::move(w));
    }

    s.owa.emplace(s.topology, *s.users, [this] { return metrics(); });
    common::listen_on(s.acceptor, s.options.address, s.options.port, "proxy");
    s.admin = std::make_unique<admin_server>(s.options.admin_address, s.options.admin_port,
                                             [this] { return metrics_text(); });
}

void server::start() {
    auto& s = *impl_;
    if (s.running) return;
    if (s.workers.empty()) throw std::runtime_error("a stopped proxy cannot be started again");
    s.running = true;
    for (auto& w : s.workers) {
        w->sweep.emplace(w->ioc);
        auto* wp = w.get();
        w->thread = std::thread([wp] {
            auto guard = net::make_work_guard(wp->ioc);
            std::function<void(beast::error_code)> tick = [wp, &tick](beast::error_code ec) {
                if (ec) return;
                for (auto& [name, pool] : wp->pools) pool->sweep();
                wp->sweep->expires_after(std::chrono::seconds(1));
                wp->sweep->async_wait(tick);
            };
            wp->sweep->expires_after(std::chrono::seconds(1));
            wp->sweep->async_wait(tick);
            wp->ioc.run();
        });
    }
    s.admin->start();
    s.do_accept();
    s.accept_thread = std::thread([&s] { s.accept_ioc.run(); });
    if (!s.tls)
        s.log->warn("serving plain HTTP on {}:{} (--allow-insecure-http): users' passwords cross the network in clear "
                    "text",
                    s.options.address, port());
    s.log->info("front-end listening on {} with policy {} ({} workers{}{}), metrics on {}", url(), s.policy->name(),
                s.workers.size(), s.topology.frontend.require_kerberos ? ", require_kerberos" : "",
                s.topology.frontend.leak_guard ? ", leak_guard" : "", metrics_url());
}

void server::stop() {
    auto& s = *impl_;
    if (!s.running) return;
    s.running = false;
    common::stop_accepting(s.accept_ioc, s.acceptor, s.accept_thread);
    s.admin->stop();
    // Each worker closes its pools on its own thread, then stops.
    for (auto& w : s.workers) {
        net::post(w->ioc, [wp = w.get()] {
            for (auto& [name, pool] : wp->pools) pool->shut_down();
            if (wp->sweep) wp->sweep->cancel();
            wp->ioc.stop();
        });
    }
    for (auto& w : s.workers)
        if (w->thread.joinable()) w->thread.join();
    s.credentials->join();  // credential work in flight posts into stopped (still alive) loops
    s.ntlm_credentials->join();
    s.workers.clear();  // destroys the sessions: every client and back-end connection closes
}

server::~server() { stop(); }

std::uint16_t server::port() const { return impl_->acceptor.local_endpoint().port(); }
std::uint16_t server::admin_port() const { return impl_->admin->port(); }
bool server::tls() const { return impl_->tls.has_value(); }
std::string server::url() const {
    return fmt::format("{}://{}:{}", tls() ? "https" : "http", impl_->options.address, port());
}
std::string server::metrics_url() const {
    return fmt::format("http://{}:{}/metrics", impl_->options.admin_address, admin_port());
}
const std::string& server::policy() const { return impl_->topology.frontend.policy; }

std::vector<const worker_metrics*> server::metrics() const {
    std::vector<const worker_metrics*> m;
    for (const auto& w : impl_->workers) m.push_back(&w->metrics);
    return m;
}

std::string server::metrics_text() const { return render_prometheus(policy(), metrics()); }

}  // namespace exsim::proxy
