#include "proxy_support.hpp"

#include <atomic>
#include <thread>

#include <boost/json.hpp>
#include <fmt/format.h>

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

audit_since audit_since::of_file(std::filesystem::path file) {
    audit_since a;
    a.file_ = std::move(file);
    a.start_ = backend::read_audit_log(a.file_).size();
    return a;
}

audit_since::audit_since(const std::string& backend) : audit_since(of_file(realm_environment::get().server(backend).audit_log_file())) {}

std::vector<backend::audit_record> audit_since::records() const {
    auto all = backend::read_audit_log(file_);
    if (all.size() <= start_) return {};
    return {all.begin() + static_cast<std::ptrdiff_t>(start_), all.end()};
}

std::set<std::uint64_t> connections(const std::vector<backend::audit_record>& records) {
    std::set<std::uint64_t> out;
    for (const auto& r : records) out.insert(r.conn);
    return out;
}

std::map<std::uint64_t, std::set<std::string>> identities_by_connection(const std::vector<backend::audit_record>& records) {
    std::map<std::uint64_t, std::set<std::string>> out;
    for (const auto& r : records) out[r.conn].insert(r.identity);
    return out;
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

bool eventually(const std::function<bool()>& condition, std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!condition()) {
        if (std::chrono::steady_clock::now() >= deadline) return condition();
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return true;
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

std::vector<std::string> message_ids(const response& res) {
    std::vector<std::string> ids;
    boost::system::error_code ec;
    auto v = boost::json::parse(res.body(), ec);
    if (ec || !v.is_object() || !v.as_object().contains("messages")) return ids;
    for (const auto& m : v.at("messages").as_array()) ids.emplace_back(m.at("id").as_string());
    return ids;
}

std::string mail_json(const std::string& to, const std::string& subject, const std::string& body) {
    boost::json::object o;
    o["to"] = to;
    o["subject"] = subject;
    o["body"] = body;
    return boost::json::serialize(o);
}

}  // namespace exsim::testing
