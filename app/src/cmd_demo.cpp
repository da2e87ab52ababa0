// exsim demo: the whole story in one command: every policy x back-end auth, side by side.

#include <chrono>
#include <iostream>

#include <unistd.h>

#include <boost/program_options.hpp>
#include <fmt/format.h>

#include "exsim/common/log.hpp"
#include "exsim/common/policies.hpp"
#include "exsim/lab/demo.hpp"
#include "exsim/lab/endpoints.hpp"
#include "exsim/loadgen/demo_summary.hpp"
#include "exsim/loadgen/report.hpp"
#include "options.hpp"
#include "signals.hpp"

namespace exsim::app {

int cmd_demo(const arguments& args) {
    common_options o;
    report_options out;
    lab::demo_options demo;
    std::string policies, auths;
    long long requests = 0, sessions = 0, extra_users = static_cast<long long>(demo.extra_users), workers = 0;
    po::options_description d("exsim demo");
    add_reports(d, out);
    d.add_options()("help,h", "show this help")("quick", po::bool_switch(&demo.quick), "a shorter run (under a minute on 2 cores)")(
        "requests", po::value(&requests)->default_value(0), "requests per run (0: 3000 with --quick, 20000 without)")(
        "sessions", po::value(&sessions)->default_value(0), "concurrent sessions (0: one per user)")(
        "extra-users", po::value(&extra_users)->default_value(extra_users), "generated users added to alice, bob, carol and dave")(
        "workers", po::value(&workers)->default_value(0), "front-end worker threads (0: one per core)")(
        "policies", po::value(&policies),
        fmt::format("comma-separated policies: {} (default: all)", fmt::join(common::policy_names(), ", ")).c_str())(
        "backend-auths", po::value(&auths), "comma-separated: negotiate, ntlm, kerberos-persist (default: all three)")(
        "state-dir", po::value<std::string>(), "keep the realm, stores and audit logs here (default: a temporary folder, removed)")(
        "log-level", po::value(&o.log_level)->default_value("error"),
        "trace|debug|info|warn|error (the NTLM warnings of every run are in the table's handshakes)");
    po::variables_map vm_state;
    if (!parse(args, d, "demo", &vm_state)) return 0;
    demo.requests = count_option("requests", requests, 0, 100'000'000);
    demo.sessions = count_option("sessions", sessions, 0, 10'000);
    demo.extra_users = count_option("extra-users", extra_users, 0, 10'000);
    demo.workers = count_option("workers", workers, 0, 64);
    common::set_log_level(o.log_level);
    demo.policies = split_list(policies);
    demo.backend_auths = split_list(auths);
    demo.progress = true;
    const bool tty = isatty(STDOUT_FILENO);
    demo.on_run = [tty](const loadgen::demo_run& r) {
        if (!tty) return;
        const auto t = r.result.total();
        std::cout << fmt::format("  {:<9} {:<17} {:>7} requests  {:>7.0f} req/s  {:>5} leaks  {:>5} tampers\n", r.policy,
                                 r.backend_auth, t.requests, r.result.rps(), t.leaks, t.tampers)
                  << std::flush;
    };
    demo.stop = &stop_flag_on_signals();
    if (vm_state.count("state-dir")) demo.state_dir = vm_state["state-dir"].as<std::string>();
    const auto started = std::chrono::steady_clock::now();
    const auto runs = lab::run_demo(demo);
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    std::cout << "\n" << loadgen::render_demo_table(runs) << "\n" << loadgen::demo_summary(runs) << "\n"
              << fmt::format("\n{} runs in {:.1f} s.\n", runs.size(), secs) << std::flush;
    if (!out.json.empty()) lab::write_file(out.json, loadgen::demo_json(runs));
    if (!out.html.empty()) lab::write_file(out.html, loadgen::render_demo_html(runs));
    return 0;
}

}  // namespace exsim::app
