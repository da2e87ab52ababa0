// exsim realm: create the Kerberos realm and NTLM files, then run the KDC.

#include <iostream>

#include <boost/program_options.hpp>
#include <fmt/format.h>

#include "exsim/auth/realm.hpp"
#include "options.hpp"
#include "signals.hpp"

namespace exsim::app {

int cmd_realm(const arguments& args) {
    common_options o;
    std::uint16_t kdc_port = 0;
    bool create_only = false;
    po::options_description d("exsim realm");
    add_common(d, o);
    d.add_options()("kdc-port", po::value(&kdc_port)->default_value(0), "KDC port on 127.0.0.1 (0: a free one)")(
        "create-only", po::bool_switch(&create_only), "create the realm, print the timings and exit");
    if (!parse(args, d, "realm")) return 0;
    auto t = topology_of(o);
    auto signals = block_stop_signals();
    auto r = auth::realm::create(t, o.state_dir);
    const auto& tm = r.timings();
    std::cout << fmt::format("realm {}: {} users, {} back-ends{}: database {} ms, principals+keytabs {} ms, "
                             "NTLM files {} ms\n",
                             t.realm, t.users.size(), t.backends.size(), tm.reused ? " (reused)" : "",
                             tm.database.count(), tm.principals.count(), tm.ntlm_files.count());
    if (create_only) return 0;
    r.start_kdc(kdc_port);
    std::cout << fmt::format("export KRB5_CONFIG={}\nexport EXSIM_KDC_ADDR=127.0.0.1:{}\n",
                             r.paths().krb5_conf().string(), r.kdc_port())
              << std::flush;
    return wait_for_stop(signals);
}

}  // namespace exsim::app
