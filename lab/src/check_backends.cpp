// The back-ends `exsim check-proxy` judges a proxy in front of: a realm, its KDC and four
// back-ends with different authentication, so that one proxy configuration (forwarding to fixed
// addresses) serves every check.

#include <memory>
#include <vector>

#include <fmt/format.h>

#include "exsim/auth/realm.hpp"
#include "exsim/backend_sim/server.hpp"
#include "exsim/lab/endpoints.hpp"
#include "exsim/lab/check_backends.hpp"

namespace exsim::lab {
namespace fs = std::filesystem;

common::topology check_proxy_topology() {
    // be4 is configured like be2; check_backends starts it without its keytab, so that a
    // Negotiate client's Kerberos token is refused and SPNEGO falls back to NTLM inside it.
    constexpr std::string_view json = R"({
      "realm": "EXSIM.TEST", "ntlm_domain": "EXSIM", "seed_messages": 3,
      "backends": [
        {"name": "be1", "host": "be1.exsim.test", "auth_providers": ["NTLM"], "persist_kerberos": false},
        {"name": "be2", "host": "be2.exsim.test", "auth_providers": ["Negotiate", "NTLM"], "persist_kerberos": false},
        {"name": "be3", "host": "be3.exsim.test", "auth_providers": ["Negotiate", "NTLM"], "persist_kerberos": true},
        {"name": "be4", "host": "be4.exsim.test", "auth_providers": ["Negotiate", "NTLM"], "persist_kerberos": false}
      ],
      "users": [
        {"name": "alice", "password": "alice-pw", "home": "be1"},
        {"name": "bob", "password": "bob-pw", "home": "be1"},
        {"name": "carol", "password": "carol-pw", "home": "be1"},
        {"name": "dave", "password": "dave-pw", "home": "be1"},
        {"name": "erin", "password": "erin-pw", "home": "be1"},
        {"name": "frank", "password": "frank-pw", "home": "be1"},
        {"name": "grace", "password": "grace-pw", "home": "be2"},
        {"name": "heidi", "password": "heidi-pw", "home": "be2"},
        {"name": "ivan", "password": "ivan-pw", "home": "be3"},
        {"name": "judy", "password": "judy-pw", "home": "be3"},
        {"name": "mallory", "password": "mallory-pw", "home": "be4"},
        {"name": "niaj", "password": "niaj-pw", "home": "be4"}
      ]})";
    return common::parse_topology(json, "the check-proxy topology");
}

struct check_backends::impl {
    common::topology topology = check_proxy_topology();
    fs::path state;
    std::optional<auth::realm> realm;
    std::vector<std::unique_ptr<backend::server>> servers;
};

check_backends::check_backends(const fs::path& state_dir, std::uint16_t base_port) : impl_(std::make_unique<impl>()) {
    auto& s = *impl_;
    s.state = fs::absolute(state_dir);
    fs::create_directories(s.state);
    s.realm.emplace(auth::realm::create(s.topology, s.state));
    s.realm->apply_environment();
    s.realm->start_kdc();
    for (std::size_t i = 0; i < s.topology.backends.size(); ++i) {
        const auto& b = s.topology.backends[i];
        auto o = backend::realm_backend_options(s.topology, *s.realm, b.name, s.state);
        o.reset_store = true;  // every check-proxy run starts from the same seeded mailboxes
        if (base_port) o.port = static_cast<std::uint16_t>(base_port + i);
        if (b.name == "be4") o.acceptor.keytab = s.state / "be4-has-no-kerberos-key.keytab";
        s.servers.push_back(std::make_unique<backend::server>(s.topology, o));
        s.servers.back()->start();
    }
    write_file(s.state / "directory.json", common::to_json(s.topology) + "\n");
    write_file(s.state / "endpoints.env", endpoints_env());
}

check_backends::~check_backends() {
    for (auto& b : impl_->servers) b->stop();
    if (impl_->realm) impl_->realm->stop_kdc();
}

const common::topology& check_backends::topology() const { return impl_->topology; }
const fs::path& check_backends::state_dir() const { return impl_->state; }

std::map<std::string, std::string> check_backends::addresses() const {
    std::map<std::string, std::string> out;
    for (const auto& b : impl_->servers) out[b->backend()] = fmt::format("127.0.0.1:{}", b->port());
    return out;
}

std::string check_backends::endpoints_env() const {
    const auto& s = *impl_;
    std::string env;
    for (const auto& b : s.topology.backends) {
        const auto addr = addresses().at(b.name);
        env += fmt::format("export EXSIM_BACKEND_{0}_ADDR={1}\nexport EXSIM_BACKEND_{0}_HOST={2}\n", env_name(b.name), addr,
                           b.host);
    }
    env += fmt::format("export KRB5_CONFIG={}\nexport EXSIM_REALM={}\nexport EXSIM_NTLM_DOMAIN={}\n"
                       "export EXSIM_DIRECTORY={}\nexport EXSIM_KDC_ADDR=127.0.0.1:{}\nexport EXSIM_CHECK_PROXY=1\n",
                       s.realm->paths().krb5_conf().string(), s.topology.realm, s.topology.ntlm_domain,
                       (s.state / "directory.json").string(), s.realm->kdc_port());
    return env;
}

check_environment read_check_environment(const fs::path& state_dir) {
    const fs::path state = fs::absolute(state_dir);
    const auto env = read_exports(state / "endpoints.env");
    if (env.empty())
        throw common::config_error(fmt::format(
            "--state-dir: {} has no endpoints.env (start the back-ends first: exsim check-proxy --serve --state-dir {})",
            state.string(), state_dir.string()));
    if (!env.count("EXSIM_CHECK_PROXY"))
        throw common::config_error(fmt::format(
            "--state-dir: {} was not written by 'exsim check-proxy --serve' (an 'exsim up' state has other back-ends)",
            state.string()));
    check_environment out;
    out.state_dir = state;
    out.topology = common::load_topology(state / "directory.json");
    for (const auto& b : out.topology.backends) {
        const auto it = env.find("EXSIM_BACKEND_" + env_name(b.name) + "_ADDR");
        if (it == env.end())
            throw common::config_error(fmt::format("--state-dir: endpoints.env has no address for {}", b.name));
        out.backends[b.name] = it->second;
    }
    auth::realm::open(out.topology, state).apply_environment();
    return out;
}

}  // namespace exsim::lab
