// exsim backend: run one back-end mailbox server of the topology.

#include <iostream>

#include <boost/program_options.hpp>
#include <fmt/format.h>

#include "exsim/lab/endpoints.hpp"
#include "options.hpp"
#include "servers.hpp"
#include "signals.hpp"

namespace exsim::app {

int cmd_backend(const arguments& args) {
    common_options o;
    std::string name;
    std::uint16_t port = 0;
    std::size_t threads = 2;
    po::options_description d("exsim backend");
    add_common(d, o);
    d.add_options()("name", po::value(&name)->required(), "back-end name in the topology (be1, ...)")(
        "port", po::value(&port)->default_value(0), "port on 127.0.0.1 (0: a free one)")(
        "threads", po::value(&threads)->default_value(2), "worker threads");
    if (!parse(args, d, "backend")) return 0;
    auto t = topology_of(o);
    if (!t.find_backend(name)) throw common::config_error(fmt::format("--name: no back-end '{}' in the topology", name));
    auto signals = block_stop_signals();
    auto r = auth::realm::create(t, o.state_dir);  // the keytab and NTLM file; no KDC needed
    r.apply_environment();
    auto be = make_backend(t, r, name, o.state_dir, port, threads, o.reset);
    be->start();
    std::cout << fmt::format("export EXSIM_BACKEND_{}_ADDR=127.0.0.1:{}\n", lab::env_name(name), be->port()) << std::flush;
    return wait_for_stop(signals);
}

}  // namespace exsim::app
