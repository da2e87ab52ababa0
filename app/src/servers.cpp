#include "servers.hpp"

#include <boost/asio/ip/address.hpp>
#include <boost/program_options.hpp>
#include <fmt/format.h>

namespace exsim::app {

void add_frontend(po::options_description& d, frontend_options& o) {
    d.add_options()("address", po::value(&o.address)->default_value(o.address),
                    "front-end and metrics listen address (IP)")("policy", po::value(&o.policy),
                    ("pool policy: " + common::policy_choices()).c_str())(
        "workers", po::value(&o.workers)->default_value(0),
        "front-end worker threads (0: the topology's frontend.workers, else one per core)")(
        "proxy-port", po::value(&o.port)->default_value(0), "front-end port on 127.0.0.1 (0: a free one)")(
        "admin-port", po::value(&o.admin_port)->default_value(0), "metrics port on 127.0.0.1 (0: a free one)")(
        "allow-insecure-http", po::bool_switch(&o.allow_insecure_http), "serve plain HTTP instead of TLS (warned)")(
        "require-kerberos", po::bool_switch(&o.require_kerberos), "refuse (502) back-ends that offer only NTLM")(
        "leak-guard", po::bool_switch(&o.leak_guard), "withhold responses from another user's mailbox")(
        "tls-cert", po::value(&o.tls_cert), "PEM certificate chain (default: self-signed in <state-dir>/tls)")(
        "tls-key", po::value(&o.tls_key), "PEM private key for --tls-cert");
}

void apply_frontend_options(common::topology& t, const frontend_options& f) {
    if (!f.policy.empty()) {
        if (!common::find_policy(f.policy)) throw common::config_error("--policy: " + common::unknown_policy(f.policy));
        t.frontend.policy = f.policy;
    }
    t.frontend.require_kerberos = t.frontend.require_kerberos || f.require_kerberos;
    t.frontend.leak_guard = t.frontend.leak_guard || f.leak_guard;
    if (f.tls_cert.empty() != f.tls_key.empty())
        throw common::config_error("--tls-cert and --tls-key: give both or neither");
    boost::system::error_code ec;
    boost::asio::ip::make_address(f.address, ec);
    if (ec) throw common::config_error(fmt::format("--address: '{}' is not an IP address", f.address));
}

std::unique_ptr<proxy::server> make_frontend(const common::topology& t, const frontend_options& f,
                                             const std::filesystem::path& state,
                                             std::map<std::string, std::string> backends,
                                             const std::function<void(proxy::proxy_options&)>& adjust) {
    proxy::proxy_options o;
    o.address = f.address;
    o.admin_address = f.address;
    o.port = f.port;
    o.admin_port = f.admin_port;
    o.workers = f.workers;
    o.allow_insecure_http = f.allow_insecure_http;
    o.state_dir = state;
    o.backends = std::move(backends);
    if (!f.tls_cert.empty()) o.tls = proxy::tls_files{f.tls_cert, f.tls_key};
    if (adjust) adjust(o);
    return std::make_unique<proxy::server>(t, o);
}

std::unique_ptr<backend::server> make_backend(const common::topology& t, const auth::realm& r, const std::string& name,
                                              const std::filesystem::path& state, std::uint16_t port,
                                              std::size_t threads, bool reset) {
    auto o = backend::realm_backend_options(t, r, name, state);
    o.port = port;
    o.threads = threads;
    o.reset_store = reset;
    return std::make_unique<backend::server>(t, o);
}

}  // namespace exsim::app
