// exsim load: load generator with the leak oracle, through the front-end or pass-through.

#include <iostream>

#include <boost/program_options.hpp>
#include <fmt/format.h>

#include "exsim/auth/realm.hpp"
#include "exsim/backend_sim/audit_log.hpp"
#include "exsim/common/log.hpp"
#include "exsim/lab/endpoints.hpp"
#include "exsim/loadgen/load.hpp"
#include "exsim/loadgen/report.hpp"
#include "options.hpp"
#include "signals.hpp"

namespace exsim::app {
namespace {

namespace fs = std::filesystem;

// The command line as read, before the numbers are checked and the state folder fills the gaps.
struct load_command {
    common_options o;
    report_options out;
    loadgen::load_options l;
    std::string mechanism = "auto", users, mix;
    double think_ms = 0, ramp_s = 0, duration_s = 10, rate = 0, max_p99 = 0, max_error_rate = 0;
    long long sessions = 0, threads = 1, requests = 0, warmup = 0, timeout_ms = 30'000, max_leaks = 0;
    std::vector<std::string> audit;
    bool passthrough = false, no_audit = false;
};

void add_load_options(po::options_description& d, load_command& c) {
    auto& l = c.l;
    d.add_options()("help,h", "show this help")(
        "config", po::value(&c.o.config), "directory/topology JSON (default: EXSIM_DIRECTORY of <state-dir>, else the embedded one)")(
        "state-dir", po::value(&c.o.state_dir)->default_value(c.o.state_dir), "the folder 'exsim up' wrote endpoints.env to")(
        "log-level", po::value(&c.o.log_level)->default_value(c.o.log_level), "trace|debug|info|warn|error");
    add_reports(d, c.out);
    d.add_options()("url", po::value(&l.url), "where to send requests (default: EXSIM_PROXY_URL of <state-dir>/endpoints.env)")(
        "passthrough", po::bool_switch(&c.passthrough), "each virtual user authenticates itself with Negotiate/NTLM (to a back-end or any proxy)")(
        "mechanism", po::value(&c.mechanism)->default_value(c.mechanism), "pass-through: auto | negotiate | kerberos | ntlm")(
        "connect-to", po::value(&l.connect_to), "ADDRESS:PORT to connect to instead of resolving the URL's host")(
        "users", po::value(&c.users), "comma-separated users (default: every user; pass-through to a back-end: its users)")(
        "sessions", po::value(&c.sessions)->default_value(0), "concurrent sessions (0: one per user)")(
        "threads", po::value(&c.threads)->default_value(1), "load generator threads")(
        "rate", po::value(&c.rate)->default_value(0), "open model: requests per second in total (0: closed model)")(
        "think-ms", po::value(&c.think_ms)->default_value(0), "closed model: mean think time between a session's requests")(
        "ramp-up", po::value(&c.ramp_s)->default_value(0), "seconds over which sessions start")(
        "duration", po::value(&c.duration_s)->default_value(c.duration_s), "seconds to run (ramp-up included)")(
        "requests", po::value(&c.requests)->default_value(0), "stop after N requests instead of a duration")(
        "mix", po::value(&c.mix), "operation weights, e.g. list=50,read=30,send=10,delete=10 (the default)")(
        "path", po::value(&l.path), "GET this target for every request instead of the mix, without the leak oracle "
                                    "(e.g. /exchweb/blob?size=16384; counted as list)")(
        "extra-users", po::value(&c.o.extra_users)->default_value(0),
        "add N generated users to the directory, as 'exsim up --extra-users N' did")(
        "seed", po::value(&l.seed)->default_value(1), "random seed of the sessions' choices")(
        "warmup", po::value(&c.warmup)->default_value(0), "unmeasured Inbox lists per session before the run")(
        "timeout-ms", po::value(&c.timeout_ms)->default_value(c.timeout_ms), "per request, handshake included")(
        "ca-file", po::value<std::string>(), "PEM trust anchors for https (default: <state-dir>/tls/proxy-cert.pem for the state's front-end)")(
        "insecure", po::bool_switch(&l.insecure), "https without verifying the certificate")(
        "metrics-url", po::value(&l.metrics_url), "front-end metrics to read before and after (default: the state's)")(
        "audit", po::value(&c.audit)->composing(), "a back-end audit log to read (default: <state-dir>/audit-*.jsonl)")(
        "no-audit", po::bool_switch(&c.no_audit), "do not read audit logs")(
        "max-leaks", po::value(&c.max_leaks), "threshold: leaks + tampers")(
        "max-p99-ms", po::value(&c.max_p99), "threshold: total p99 latency in ms")(
        "max-error-rate", po::value(&c.max_error_rate), "threshold: errors / requests (0..1)");
}

constexpr long long big = 1'000'000'000'000;

loadgen::thresholds thresholds_of(const po::variables_map& vm, const load_command& c) {
    loadgen::thresholds th;
    if (vm.count("max-leaks")) th.max_leaks = count_option("max-leaks", c.max_leaks, 0, big);
    if (vm.count("max-p99-ms")) th.max_p99_ms = number_option("max-p99-ms", c.max_p99, 0.001, 1e9);
    if (vm.count("max-error-rate")) th.max_error_rate = number_option("max-error-rate", c.max_error_rate, 0, 1);
    return th;
}

// The counts and durations, each checked against its range.
void apply_numbers(load_command& c) {
    auto& l = c.l;
    l.sessions = count_option("sessions", c.sessions, 0, 100'000);
    l.threads = count_option("threads", c.threads, 1, 64);
    l.requests = count_option("requests", c.requests, 0, big);
    l.warmup = count_option("warmup", c.warmup, 0, 1'000'000);
    l.rate = number_option("rate", c.rate, 0, 10'000'000);
    l.think = std::chrono::milliseconds(static_cast<std::int64_t>(number_option("think-ms", c.think_ms, 0, 3.6e6)));
    l.ramp_up = std::chrono::milliseconds(static_cast<std::int64_t>(number_option("ramp-up", c.ramp_s, 0, 86'400) * 1000));
    l.duration = std::chrono::milliseconds(static_cast<std::int64_t>(number_option("duration", c.duration_s, 0.001, 86'400 * 7) * 1000));
    l.timeout = std::chrono::milliseconds(count_option("timeout-ms", c.timeout_ms, 1, 3'600'000));
}

// What the options leave out comes from the state folder's endpoints.env ('exsim up' wrote it):
// the directory, the front-end's URL, metrics, policy and certificate, the back-ends' addresses
// and audit logs.
void apply_state(load_command& c, const po::variables_map& vm) {
    auto& l = c.l;
    const bool passthrough = c.passthrough;
    const fs::path state = fs::absolute(c.o.state_dir);
    const auto env = lab::read_exports(state / "endpoints.env");
    auto from_env = [&](const char* key) { auto it = env.find(key); return it == env.end() ? std::string() : it->second; };
    if (c.o.config.empty() && !from_env("EXSIM_DIRECTORY").empty()) c.o.config = from_env("EXSIM_DIRECTORY");
    l.directory = topology_of(c.o);
    l.mode = passthrough ? loadgen::entry::passthrough : loadgen::entry::frontend;
    const bool state_frontend = l.url.empty() || l.url == from_env("EXSIM_PROXY_URL");
    if (l.url.empty()) {
        if (passthrough) throw common::config_error("--url: pass-through needs the URL of a back-end or a proxy");
        l.url = from_env("EXSIM_PROXY_URL");
        if (l.url.empty())
            throw common::config_error(fmt::format(
                "--url: not given and {} has no EXSIM_PROXY_URL (run 'exsim up' first, or give --url)",
                (state / "endpoints.env").string()));
    }
    if (!passthrough && state_frontend) {
        if (l.metrics_url.empty()) l.metrics_url = from_env("EXSIM_METRICS_URL");
        l.policy = from_env("EXSIM_POLICY");
    }
    if (vm.count("ca-file")) l.ca_file = vm["ca-file"].as<std::string>();
    else if (state_frontend && fs::exists(state / "tls" / "proxy-cert.pem")) l.ca_file = state / "tls" / "proxy-cert.pem";
    // Pass-through at a back-end of this state by its host name: connect to where it listens.
    if (passthrough && l.connect_to.empty())
        for (const auto& b : l.directory.backends)
            if (l.url.find("//" + b.host + ":") != std::string::npos) l.connect_to = from_env(("EXSIM_BACKEND_" + lab::env_name(b.name) + "_ADDR").c_str());
    if (c.mechanism != "auto") {
        l.mechanism = auth::parse_mode(c.mechanism);
        if (!l.mechanism) throw common::config_error(fmt::format("--mechanism: '{}' is not auto, negotiate, kerberos or ntlm", c.mechanism));
    }
    l.users = split_list(c.users);
    if (!c.mix.empty()) l.mix = loadgen::parse_mix(c.mix);
    if (!c.no_audit) {
        for (const auto& a : c.audit) l.audit_logs.emplace_back(a);
        if (c.audit.empty() && !env.empty())
            for (const auto& b : l.directory.backends)
                if (fs::exists(backend::audit_log_path(state, b.name))) l.audit_logs.push_back(backend::audit_log_path(state, b.name));
    }
    if (passthrough && fs::exists(state / "realm")) auth::realm::open(l.directory, state).apply_environment();
}

}  // namespace

int cmd_load(const arguments& args) {
    load_command c;
    po::options_description d("exsim load");
    add_load_options(d, c);
    po::variables_map vm;
    if (!parse(args, d, "load", &vm)) return 0;
    const auto th = thresholds_of(vm, c);
    apply_numbers(c);
    if (c.l.insecure) common::logger("load")->warn("--insecure: the front-end's TLS certificate is not verified");
    apply_state(c, vm);
    c.l.progress = true;
    c.l.stop = &stop_flag_on_signals();

    const auto result = loadgen::run_load(c.l);
    std::cout << loadgen::render_table(result) << std::flush;
    if (!c.out.json.empty()) lab::write_file(c.out.json, loadgen::to_json(result));
    if (!c.out.html.empty()) lab::write_file(c.out.html, loadgen::render_html(result));
    const auto failed = loadgen::failed_thresholds(result, th);
    for (const auto& f : failed) std::cerr << "exsim load: threshold failed: " << f << "\n";
    return failed.empty() ? 0 : 99;
}

}  // namespace exsim::app
