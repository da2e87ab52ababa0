// exsim check-proxy: judge any reverse proxy in front of exsim's back-ends: a verdict per check
// (docs/check-proxy.md).

#include <algorithm>
#include <iostream>
#include <optional>

#include <boost/program_options.hpp>
#include <fmt/format.h>

#include "exsim/common/log.hpp"
#include "exsim/lab/check_proxy.hpp"
#include "exsim/lab/check_report.hpp"
#include "exsim/lab/endpoints.hpp"
#include "exsim/lab/temporary_folder.hpp"
#include "options.hpp"
#include "signals.hpp"

namespace exsim::app {
namespace {

// --proxy ADDRESS:PORT (every back-end behind one address), or NAME=ADDRESS:PORT once per back-end.
std::map<std::string, std::string> proxy_addresses(const std::vector<std::string>& proxies) {
    std::map<std::string, std::string> out;
    for (const auto& p : proxies) {
        const auto eq = p.find('=');
        const std::string name = eq == std::string::npos ? "" : p.substr(0, eq), address = p.substr(eq + 1);
        if (address.rfind(':') == std::string::npos || address.rfind(':') + 1 == address.size())
            throw common::config_error(fmt::format("--proxy: '{}' is not ADDRESS:PORT or NAME=ADDRESS:PORT", p));
        out[name] = address;
    }
    return out;
}

void print_failed(const lab::check_report& report) {
    for (const auto& name : report.failed()) {
        const auto it = std::find_if(report.checks.begin(), report.checks.end(), [&](const auto& x) { return x.name == name; });
        std::cerr << fmt::format("exsim check-proxy: check failed: {}: {}\n", name, lab::verdict_name(it->verdict));
    }
}

}  // namespace

int cmd_check_proxy(const arguments& args) {
    common_options o;
    o.log_level = "warn";
    report_options out;
    std::vector<std::string> proxies;
    std::string checks;
    bool serve = false;
    long long base_port = 0;
    double cost_seconds = 3;
    lab::check_options c;
    po::options_description d("exsim check-proxy");
    d.add_options()("help,h", "show this help")(
        "proxy", po::value(&proxies)->composing(),
        "ADDRESS:PORT of the proxy under test (it routes by Host: beN.exsim.test), or NAME=ADDRESS:PORT once per back-end")(
        "serve", po::bool_switch(&serve), "start the realm, KDC and back-ends, write <state-dir>/endpoints.env, and wait")(
        "state-dir", po::value<std::string>(), "the folder 'exsim check-proxy --serve' wrote (default: start own back-ends "
                                               "in a temporary folder)")(
        "base-port", po::value(&base_port)->default_value(0), "back-ends on fixed ports: be1 = N, be2 = N+1, ... (0: free ports)")(
        "checks", po::value(&checks), "comma-separated checks to run (default: all)")(
        "seed", po::value(&c.seed)->default_value(1), "random seed of the workloads")(
        "cost-seconds", po::value(&cost_seconds)->default_value(cost_seconds), "seconds of each side of the cost check")(
        "log-level", po::value(&o.log_level)->default_value(o.log_level), "trace|debug|info|warn|error");
    add_reports(d, out);
    po::variables_map vm;
    if (!parse(args, d, "check-proxy", &vm)) {
        std::cout << "\nchecks: " << fmt::format("{}", fmt::join(lab::check_names(), ", "))
                  << "\nverdicts: safe, LEAK, NOT-FORWARDED, BROKEN (skipped does not fail); exit 0 when every check is "
                     "safe, 99 naming the failed ones, 1 when the pre-flight fails, 2 for bad options. docs/check-proxy.md "
                     "explains how to configure the proxy.\n";
        return 0;
    }
    common::set_log_level(o.log_level);
    const auto port = static_cast<std::uint16_t>(count_option("base-port", base_port, 0, 65'530));
    c.cost_seconds = number_option("cost-seconds", cost_seconds, 0.1, 3600);
    c.checks = split_list(checks);
    c.proxy = proxy_addresses(proxies);
    const bool has_state = vm.count("state-dir") > 0;
    if (serve) {
        if (!proxies.empty()) throw usage_error("exsim check-proxy: --serve starts the back-ends only; run the checks with --proxy in another command");
        auto signals = block_stop_signals();
        lab::check_backends backends(has_state ? vm["state-dir"].as<std::string>() : "state", port);
        std::cout << backends.endpoints_env() << std::flush;
        return wait_for_stop(signals);
    }
    if (proxies.empty()) throw common::config_error("--proxy: give the address the proxy under test listens on");
    c.stop = &stop_flag_on_signals();
    c.progress = true;
    std::optional<lab::temporary_folder> temporary;
    std::unique_ptr<lab::check_backends> own;
    if (has_state) {
        if (port) throw usage_error("exsim check-proxy: --base-port applies to --serve or to its own back-ends, not to --state-dir");
        c.env = lab::read_check_environment(vm["state-dir"].as<std::string>());
    } else {
        own = std::make_unique<lab::check_backends>(temporary.emplace("check-proxy").path, port);
        c.env = {own->topology(), own->state_dir(), own->addresses()};
        std::cerr << "back-ends (the proxy must forward Host beN.exsim.test to these):\n" << own->endpoints_env() << std::flush;
    }
    const auto report = lab::run_check_proxy(c);
    std::cout << lab::render_check_table(report) << std::flush;
    if (!out.json.empty()) lab::write_file(out.json, lab::check_json(report));
    if (!out.html.empty()) lab::write_file(out.html, lab::render_check_html(report));
    print_failed(report);
    return report.failed().empty() ? 0 : 99;
}

}  // namespace exsim::app
