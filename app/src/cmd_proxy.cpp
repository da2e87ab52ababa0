// exsim proxy: run the front-end in front of running back-ends (--backend be1=127.0.0.1:PORT ...).

#include <iostream>

#include <boost/program_options.hpp>
#include <fmt/format.h>

#include "options.hpp"
#include "servers.hpp"
#include "signals.hpp"

namespace exsim::app {
namespace {

// --backend NAME=ADDRESS:PORT, once for each back-end of the topology.
std::map<std::string, std::string> backend_addresses(const common::topology& t, const std::vector<std::string>& args) {
    std::map<std::string, std::string> addresses;
    for (const auto& b : args) {
        const auto eq = b.find('=');
        if (eq == std::string::npos || eq == 0)
            throw common::config_error(fmt::format("--backend: '{}' is not NAME=ADDRESS:PORT", b));
        addresses[b.substr(0, eq)] = b.substr(eq + 1);
    }
    for (const auto& b : t.backends)
        if (!addresses.count(b.name))
            throw common::config_error(
                fmt::format("--backend: no address for back-end '{0}' (give --backend {0}=127.0.0.1:PORT)", b.name));
    return addresses;
}

}  // namespace

int cmd_proxy(const arguments& args) {
    common_options o;
    frontend_options f;
    std::vector<std::string> backend_args;
    po::options_description d("exsim proxy");
    add_common(d, o);
    add_frontend(d, f);
    d.add_options()("backend", po::value(&backend_args)->composing(),
                    "NAME=ADDRESS:PORT of a running back-end; one per back-end of the topology");
    if (!parse(args, d, "proxy")) return 0;
    if (o.reset) throw usage_error("exsim proxy: --reset applies to back-ends, not to the front-end");
    auto t = topology_of(o);
    apply_frontend_options(t, f);
    auto addresses = backend_addresses(t, backend_args);
    auto signals = block_stop_signals();
    const std::filesystem::path state = std::filesystem::absolute(o.state_dir);
    // Only the realm's client files (krb5.conf naming the KDC, the GSS mech file) that
    // `exsim realm` or `exsim up` made in this state folder: the proxy never changes a realm.
    auto r = auth::realm::open(t, state);
    r.apply_environment();
    auto frontend = make_frontend(t, f, state, std::move(addresses));
    frontend->start();
    std::cout << fmt::format("export EXSIM_PROXY_URL={}\nexport EXSIM_METRICS_URL={}\n", frontend->url(),
                             frontend->metrics_url())
              << std::flush;
    wait_for_stop(signals);
    frontend->stop();
    return 0;
}

}  // namespace exsim::app
