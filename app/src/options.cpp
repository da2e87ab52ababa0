#include "options.hpp"

#include <cmath>
#include <iostream>
#include <sstream>

#include <boost/program_options.hpp>
#include <fmt/format.h>

#include "exsim/common/log.hpp"
#include "exsim/common/scenarios.hpp"

namespace exsim::app {

void add_common(po::options_description& d, common_options& o) {
    d.add_options()("help,h", "show this help")(
        "config", po::value(&o.config), "topology JSON file (default: the embedded default topology)")(
        "scenario", po::value(&o.scenario), "a built-in topology by name instead of --config ('exsim scenarios' lists them)")(
        "state-dir", po::value(&o.state_dir)->default_value(o.state_dir), "folder for the realm, stores and logs")(
        "backend-auth", po::value(&o.backend_auth), "override every back-end's providers: negotiate | ntlm")(
        "extra-users", po::value(&o.extra_users)->default_value(0), "add N generated demo users (user00001, ...)")(
        "reset", po::bool_switch(&o.reset), "start the mailbox stores from the seed again")(
        "log-level", po::value(&o.log_level)->default_value(o.log_level), "trace|debug|info|warn|error");
}

bool parse(const arguments& args, po::options_description& d, const char* what, po::variables_map* parsed) {
    po::variables_map local;
    po::variables_map& vm = parsed ? *parsed : local;
    try {
        po::store(po::command_line_parser(args).options(d).run(), vm);
        po::notify(vm);
    } catch (const po::error& e) {
        throw usage_error(fmt::format("exsim {}: {}", what, e.what()));
    }
    if (vm.count("help")) {
        std::cout << "usage: exsim " << what << " [options]\n" << d;
        return false;
    }
    return true;
}

std::string topology_source(const common_options& o) {
    if (!o.scenario.empty()) return "scenario " + o.scenario;
    return o.config.empty() ? "the default topology" : o.config;
}

common::topology topology_of(const common_options& o) {
    if (!o.scenario.empty() && !o.config.empty()) throw usage_error("exsim: --scenario and --config: give one or the other");
    auto t = !o.scenario.empty() ? common::load_scenario(o.scenario)
             : o.config.empty()  ? common::default_topology()
                                 : common::load_topology(o.config);
    if (o.extra_users) {
        auto generated = common::generated_topology(o.extra_users);
        const auto defaults = common::default_topology().users.size();  // generated = default + extra
        t.users.insert(t.users.end(), generated.users.begin() + static_cast<std::ptrdiff_t>(defaults),
                       generated.users.end());
    }
    if (!o.backend_auth.empty()) common::override_backend_auth(t, o.backend_auth);
    // Re-validate what the options added (a generated name may clash with a configured one).
    t = common::parse_topology(common::to_json(t), topology_source(o));
    common::set_log_level(o.log_level);
    return t;
}

std::size_t count_option(const char* name, long long v, long long lo, long long hi) {
    if (v < lo || v > hi) throw common::config_error(fmt::format("--{}: {} is not within {}..{}", name, v, lo, hi));
    return static_cast<std::size_t>(v);
}

double number_option(const char* name, double v, double lo, double hi) {
    if (!std::isfinite(v) || v < lo || v > hi)
        throw common::config_error(fmt::format("--{}: {} is not within {:g}..{:g}", name, v, lo, hi));
    return v;
}

std::vector<std::string> split_list(const std::string& s) {
    std::vector<std::string> out;
    std::stringstream in(s);
    for (std::string item; std::getline(in, item, ',');)
        if (!item.empty()) out.push_back(item);
    return out;
}

void add_reports(po::options_description& d, report_options& r) {
    d.add_options()("json", po::value(&r.json), "write the results as JSON to FILE")(
        "html", po::value(&r.html), "write a self-contained HTML report with charts to FILE");
}

}  // namespace exsim::app
