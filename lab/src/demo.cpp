#include "exsim/lab/demo.hpp"

#include <algorithm>
#include <memory>

#include <fmt/format.h>

#include "exsim/auth/realm.hpp"
#include "exsim/backend_sim/server.hpp"
#include "exsim/common/log.hpp"
#include "exsim/loadgen/load.hpp"
#include "exsim/proxy/server.hpp"
#include "exsim/lab/temporary_folder.hpp"

namespace exsim::lab {
namespace fs = std::filesystem;

const std::vector<std::string>& demo_backend_auths() {
    static const std::vector<std::string> names{"negotiate", "ntlm", "kerberos-persist"};
    return names;
}

namespace {

common::topology demo_topology(std::size_t extra_users) {
    auto t = common::generated_topology(extra_users);
    return common::parse_topology(common::to_json(t), "the demo topology");
}

common::topology configured(common::topology t, const std::string& backend_auth, const std::string& policy) {
    common::override_backend_auth(t, backend_auth == "ntlm" ? "ntlm" : "negotiate");
    for (auto& b : t.backends) b.persist_kerberos = backend_auth == "kerberos-persist";
    t.frontend.policy = policy;
    return t;
}

void check_names(const std::vector<std::string>& asked, const std::vector<std::string>& known, const char* what) {
    for (const auto& n : asked)
        if (std::find(known.begin(), known.end(), n) == known.end())
            throw common::config_error(fmt::format("{}: unknown '{}' (expected one of {})", what, n, fmt::join(known, ", ")));
}

loadgen::demo_run run_one(const common::topology& base, const auth::realm& realm, const fs::path& state,
                 const demo_options& o, const std::string& backend_auth, const std::string& policy) {
    const auto t = configured(base, backend_auth, policy);
    std::vector<std::unique_ptr<backend::server>> backends;
    proxy::proxy_options po;
    po.workers = o.workers;
    po.state_dir = state;
    loadgen::load_options lo;
    for (const auto& b : t.backends) {
        auto bo = backend::realm_backend_options(t, realm, b.name, state);
        bo.reset_store = true;  // every run starts from the same seeded mailboxes
        backends.push_back(std::make_unique<backend::server>(t, bo));
        backends.back()->start();
        po.backends[b.name] = fmt::format("127.0.0.1:{}", backends.back()->port());
        lo.audit_logs.push_back(backends.back()->audit_log_file());
    }
    proxy::server frontend(t, po);
    frontend.start();

    lo.mode = loadgen::entry::frontend;
    lo.url = frontend.url();
    lo.ca_file = state / "tls" / "proxy-cert.pem";
    lo.directory = t;
    lo.sessions = o.sessions;
    lo.requests = o.requests ? o.requests : (o.quick ? 3000 : 20000);
    lo.seed = 2004;  // the same choices in every run
    lo.metrics_url = frontend.metrics_url();
    lo.policy = policy;
    lo.backend_auth = backend_auth;
    lo.progress = o.progress;
    lo.stop = o.stop;
    loadgen::demo_run run{policy, backend_auth, loadgen::run_load(lo)};
    frontend.stop();
    for (auto& b : backends) b->stop();
    return run;
}

}  // namespace

std::vector<loadgen::demo_run> run_demo(const demo_options& o) {
    check_names(o.policies, common::policy_names(), "--policies");
    check_names(o.backend_auths, demo_backend_auths(), "--backend-auths");
    const auto& policies = o.policies.empty() ? common::policy_names() : o.policies;
    const auto& auths = o.backend_auths.empty() ? demo_backend_auths() : o.backend_auths;

    // The demo creates a realm and resets stores: never in a folder that holds something else.
    std::error_code ec;
    if (!o.state_dir.empty() && fs::exists(o.state_dir) && !fs::is_empty(o.state_dir, ec))
        throw common::config_error(fmt::format("--state-dir: '{}' is not empty (the demo needs a folder of its own)",
                                               o.state_dir.string()));
    std::optional<temporary_folder> temporary;
    const fs::path state = o.state_dir.empty() ? temporary.emplace("demo").path : fs::absolute(o.state_dir);
    fs::create_directories(state);
    const auto base = demo_topology(o.extra_users);
    auto realm = auth::realm::create(base, state);
    realm.apply_environment();
    realm.start_kdc();

    std::vector<loadgen::demo_run> runs;
    for (const auto& backend_auth : auths) {
        for (const auto& policy : policies) {
            if (o.stop && o.stop->load()) break;
            common::logger("demo")->info("run: policy {} with back-ends {}", policy, backend_auth);
            runs.push_back(run_one(base, realm, state, o, backend_auth, policy));
            if (o.on_run) o.on_run(runs.back());
        }
    }
    realm.stop_kdc();
    return runs;
}

}  // namespace exsim::lab
