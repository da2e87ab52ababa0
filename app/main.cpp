// exsim: the one command line. Subcommands: demo, load, trace, check-proxy, up, realm, backend, proxy, scenarios. Configuration errors exit with 2 and one clear message; a load run whose
// thresholds failed, or a check-proxy run with a check that is not safe, exits with 99 (as k6 does).

#include <algorithm>
#include <atomic>
#include <thread>
#include <cmath>
#include <csignal>
#include <unistd.h>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <sstream>
#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/ip/address.hpp>
#include <boost/program_options.hpp>
#include <fmt/format.h>

#include "exsim/auth/realm.hpp"
#include "exsim/backend_sim/audit_log.hpp"
#include "exsim/backend_sim/server.hpp"
#include "exsim/common/log.hpp"
#include "exsim/common/scenarios.hpp"
#include "exsim/common/topology.hpp"
#include "exsim/capture/recorder.hpp"
#include "exsim/lab/capture_notes.hpp"
#include "exsim/lab/check_proxy.hpp"
#include "exsim/lab/demo.hpp"
#include "exsim/lab/endpoints.hpp"
#include "exsim/lab/temporary_folder.hpp"
#include "exsim/loadgen/load.hpp"
#include "exsim/loadgen/report.hpp"
#include "exsim/lab/trace.hpp"
#include "exsim/proxy/server.hpp"

namespace po = boost::program_options;
namespace fs = std::filesystem;
using namespace exsim;
using lab::env_name;
using lab::write_file;

namespace {

constexpr const char* usage = R"(usage: exsim <command> [options]

commands:
  demo      the whole story in one command: every policy x back-end auth, side by side
  load      load generator with the leak oracle, through the front-end or pass-through
  trace     alice, then bob, through one policy: every connection, handshake and mailbox, narrated
  check-proxy  judge any reverse proxy in front of exsim's back-ends: a verdict per check (docs/check-proxy.md)
  up        realm + KDC + back-ends + front-end of a topology; writes <state-dir>/endpoints.env
  realm     create the Kerberos realm and NTLM files, then run the KDC
  backend   run one back-end mailbox server of the topology
  proxy     run the front-end in front of running back-ends (--backend be1=127.0.0.1:PORT ...)
  scenarios list the guided scenarios ('exsim up --scenario NAME'; docs/scenarios/NAME.md)

Run 'exsim <command> --help' for a command's options.
)";

struct usage_error : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// Options every subcommand shares.
struct common_options {
    std::string config;
    std::string scenario;
    std::string state_dir = "state";
    std::string backend_auth;
    std::size_t extra_users = 0;
    std::string log_level = "info";
    bool reset = false;
};

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

bool parse(const std::vector<std::string>& args, po::options_description& d, const char* what,
           po::variables_map* parsed = nullptr) {
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

// What the topology came from, for messages and the trace's header.
std::string topology_source(const common_options& o) {
    if (!o.scenario.empty()) return "scenario " + o.scenario;
    return o.config.empty() ? "the default topology" : o.config;
}

common::topology load(const common_options& o) {
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

// What the front-end takes from the command line, on top of the topology's "frontend" section.
struct frontend_options {
    std::string address = "127.0.0.1";
    std::string policy;
    std::size_t workers = 0;
    std::uint16_t port = 0;
    std::uint16_t admin_port = 0;
    bool allow_insecure_http = false;
    bool require_kerberos = false;
    bool leak_guard = false;
    std::string tls_cert, tls_key;
};

void add_frontend(po::options_description& d, frontend_options& o) {
    d.add_options()("address", po::value(&o.address)->default_value(o.address),
                    "front-end and metrics listen address (IP)")("policy", po::value(&o.policy),
                    "pool policy: legacy | ms04-002 (default) | no-reuse | pinned | per-user")(
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

// Checks the front-end options and applies them to the topology's "frontend" section; called
// before anything starts, so that a typo stops exsim at once.
void apply_frontend_options(common::topology& t, const frontend_options& f) {
    if (!f.policy.empty()) {
        const auto& names = common::policy_names();
        if (std::find(names.begin(), names.end(), f.policy) == names.end())
            throw common::config_error(
                fmt::format("--policy: unknown policy '{}' (expected one of {})", f.policy, fmt::join(names, ", ")));
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

// Numbers from the command line are read signed (program_options wraps "-1" into a huge
// unsigned) and checked here, naming the option.
std::size_t count_option(const char* name, long long v, long long lo, long long hi) {
    if (v < lo || v > hi) throw common::config_error(fmt::format("--{}: {} is not within {}..{}", name, v, lo, hi));
    return static_cast<std::size_t>(v);
}

std::unique_ptr<proxy::server> make_frontend(const common::topology& t, const frontend_options& f,
                                             const fs::path& state, std::map<std::string, std::string> backends,
                                             const std::function<void(proxy::proxy_options&)>& adjust = {}) {
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

// Blocks SIGINT/SIGTERM in every thread (threads inherit the mask) and waits for one.
sigset_t block_stop_signals() {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
    return set;
}

int wait_for_stop(const sigset_t& set) {
    int sig = 0;
    sigwait(&set, &sig);
    common::logger("exsim")->info("received {}, stopping", sig == SIGINT ? "SIGINT" : "SIGTERM");
    return 0;
}

std::unique_ptr<backend::server> make_backend(const common::topology& t, const auth::realm& r,
                                              const std::string& name, const fs::path& state, std::uint16_t port,
                                              std::size_t threads, bool reset) {
    auto o = backend::realm_backend_options(t, r, name, state);
    o.port = port;
    o.threads = threads;
    o.reset_store = reset;
    return std::make_unique<backend::server>(t, o);
}

int cmd_realm(const std::vector<std::string>& args) {
    common_options o;
    std::uint16_t kdc_port = 0;
    bool create_only = false;
    po::options_description d("exsim realm");
    add_common(d, o);
    d.add_options()("kdc-port", po::value(&kdc_port)->default_value(0), "KDC port on 127.0.0.1 (0: a free one)")(
        "create-only", po::bool_switch(&create_only), "create the realm, print the timings and exit");
    if (!parse(args, d, "realm")) return 0;
    auto t = load(o);
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

int cmd_backend(const std::vector<std::string>& args) {
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
    auto t = load(o);
    if (!t.find_backend(name)) throw common::config_error(fmt::format("--name: no back-end '{}' in the topology", name));
    auto signals = block_stop_signals();
    auto r = auth::realm::create(t, o.state_dir);  // the keytab and NTLM file; no KDC needed
    r.apply_environment();
    auto be = make_backend(t, r, name, o.state_dir, port, threads, o.reset);
    be->start();
    std::cout << fmt::format("export EXSIM_BACKEND_{}_ADDR=127.0.0.1:{}\n", env_name(name), be->port()) << std::flush;
    return wait_for_stop(signals);
}

// exsim up --capture: the recorder, opened before anything starts, and a thread that flushes
// it twice a second so that a file opened mid-run is readable (all but the last 100 ms, so that
// a response's comment still finds its first frame).
struct live_capture {
    std::string file;
    long long max_mib = 64;
    bool force = false;

    std::optional<capture::recorder> recorder;
    std::optional<lab::capture_notes> notes;
    std::jthread flusher;

    void open(const std::string& source) {
        if (file.empty()) return;
        const auto mib = count_option("capture-max-mib", max_mib, 1, 1 << 20);
        recorder.emplace(capture::recorder_options{file, "--capture", force, mib << 20,
                                                   fmt::format("exsim up: {}", source)});
        notes.emplace(*recorder);
        flusher = std::jthread([this](std::stop_token stop) {
            while (!stop.stop_requested()) {
                std::this_thread::sleep_for(std::chrono::milliseconds(500));
                recorder->flush(std::chrono::milliseconds(100));  // an answer's note comes within microseconds
            }
        });
    }
    void connect(proxy::proxy_options& o) {
        if (!recorder) return;
        o.tap = &*recorder;
        o.trace = notes->sink();
    }
};

int cmd_up(const std::vector<std::string>& args) {
    common_options o;
    frontend_options f;
    live_capture capture;
    std::size_t threads = 2;
    po::options_description d("exsim up");
    add_common(d, o);
    add_frontend(d, f);
    d.add_options()("threads", po::value(&threads)->default_value(2), "worker threads per back-end")(
        "capture", po::value(&capture.file),
        "record the front-end's client and back-end connections to FILE (pcapng, narrated in packet comments)")(
        "capture-max-mib", po::value(&capture.max_mib)->default_value(capture.max_mib),
        "stop recording when the capture reaches this many MiB")(
        "force", po::bool_switch(&capture.force), "overwrite the --capture file if it exists");
    po::variables_map vm;
    if (!parse(args, d, "up", &vm)) return 0;
    if (!vm.count("capture") && (capture.force || !vm["capture-max-mib"].defaulted()))
        throw usage_error("exsim up: --force and --capture-max-mib apply to --capture, which is not given");
    if (vm.count("capture") && capture.file.empty()) throw common::config_error("--capture: an empty file name");
    auto t = load(o);
    apply_frontend_options(t, f);
    capture.open(topology_source(o));
    auto signals = block_stop_signals();
    const fs::path state = fs::absolute(o.state_dir);
    fs::create_directories(state);
    auto r = auth::realm::create(t, state);
    r.apply_environment();
    r.start_kdc();

    std::vector<std::unique_ptr<backend::server>> backends;
    std::map<std::string, std::string> addresses;
    for (const auto& b : t.backends) {
        backends.push_back(make_backend(t, r, b.name, state, 0, threads, o.reset));
        backends.back()->start();
        addresses[b.name] = fmt::format("127.0.0.1:{}", backends.back()->port());
    }
    auto frontend = make_frontend(t, f, state, addresses, [&](proxy::proxy_options& po) { capture.connect(po); });
    frontend->start();

    const auto directory = state / "directory.json";
    write_file(directory, common::to_json(t) + "\n");
    std::string env = fmt::format("export KRB5_CONFIG={}\nexport EXSIM_REALM={}\nexport EXSIM_NTLM_DOMAIN={}\n"
                                  "export EXSIM_DIRECTORY={}\nexport EXSIM_KDC_ADDR=127.0.0.1:{}\n",
                                  r.paths().krb5_conf().string(), t.realm, t.ntlm_domain, directory.string(),
                                  r.kdc_port());
    for (std::size_t i = 0; i < t.backends.size(); ++i) {
        const auto& b = t.backends[i];
        const auto port = backends[i]->port();
        env += fmt::format("export EXSIM_BACKEND_{0}_URL=http://{1}:{2}\nexport EXSIM_BACKEND_{0}_ADDR=127.0.0.1:{2}\n",
                           env_name(b.name), b.host, port);
    }
    env += fmt::format("export EXSIM_PROXY_URL={}\nexport EXSIM_METRICS_URL={}\nexport EXSIM_POLICY={}\n",
                       frontend->url(), frontend->metrics_url(), frontend->policy());
    if (capture.recorder) env += fmt::format("export EXSIM_CAPTURE={}\n", fs::absolute(capture.file).string());
    const auto env_file = state / "endpoints.env";
    write_file(env_file, env);
    common::logger("exsim")->info("everything listens; wrote {}", env_file.string());
    std::cout << env << std::flush;
    wait_for_stop(signals);
    frontend->stop();
    for (auto& be : backends) be->stop();
    r.stop_kdc();
    if (capture.recorder) {
        capture.flusher = {};
        capture.recorder->flush();
        std::cerr << lab::capture_hint(capture.file, capture.recorder->written().frames);
    }
    return 0;
}

int cmd_proxy(const std::vector<std::string>& args) {
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
    auto t = load(o);
    apply_frontend_options(t, f);
    std::map<std::string, std::string> addresses;
    for (const auto& b : backend_args) {
        const auto eq = b.find('=');
        if (eq == std::string::npos || eq == 0)
            throw common::config_error(fmt::format("--backend: '{}' is not NAME=ADDRESS:PORT", b));
        addresses[b.substr(0, eq)] = b.substr(eq + 1);
    }
    for (const auto& b : t.backends)
        if (!addresses.count(b.name))
            throw common::config_error(
                fmt::format("--backend: no address for back-end '{0}' (give --backend {0}=127.0.0.1:PORT)", b.name));
    auto signals = block_stop_signals();
    const fs::path state = fs::absolute(o.state_dir);
    // Only the realm's client files (krb5.conf naming the KDC, the GSS mech file) that
    // `exsim realm` or `exsim up` made in this state folder: the proxy never changes a realm.
    auto r = auth::realm::open(t, state);
    r.apply_environment();
    auto frontend = make_frontend(t, f, state, addresses);
    frontend->start();
    std::cout << fmt::format("export EXSIM_PROXY_URL={}\nexport EXSIM_METRICS_URL={}\n", frontend->url(),
                             frontend->metrics_url())
              << std::flush;
    wait_for_stop(signals);
    frontend->stop();
    return 0;
}

// SIGINT or SIGTERM sets the flag (a load run stops issuing requests, finishes the ones in
// flight and reports); a second one exits at once.
const std::atomic<bool>& stop_flag_on_signals() {
    static std::atomic<bool> flag{false};
    const auto set = block_stop_signals();
    std::thread([set] {
        for (int sig = 0;;) {
            sigwait(&set, &sig);
            if (flag.exchange(true)) std::_Exit(128 + sig);
            common::logger("exsim")->warn("received {}, stopping after the requests in flight (again to quit now)",
                                          sig == SIGINT ? "SIGINT" : "SIGTERM");
        }
    }).detach();
    return flag;
}

std::vector<std::string> split_list(const std::string& s) {
    std::vector<std::string> out;
    std::stringstream in(s);
    for (std::string item; std::getline(in, item, ',');)
        if (!item.empty()) out.push_back(item);
    return out;
}

// Writes the reports asked for; returns the process's exit code from the thresholds.
struct report_options {
    std::string json, html;
};

void add_reports(po::options_description& d, report_options& r) {
    d.add_options()("json", po::value(&r.json), "write the results as JSON to FILE")(
        "html", po::value(&r.html), "write a self-contained HTML report with charts to FILE");
}

double number_option(const char* name, double v, double lo, double hi) {
    if (!std::isfinite(v) || v < lo || v > hi)
        throw common::config_error(fmt::format("--{}: {} is not within {:g}..{:g}", name, v, lo, hi));
    return v;
}

int cmd_load(const std::vector<std::string>& args) {
    common_options o;
    report_options out;
    loadgen::load_options l;
    std::string mechanism = "auto", users, mix;
    double think_ms = 0, ramp_s = 0, duration_s = 10, rate = 0, max_p99 = 0, max_error_rate = 0;
    long long sessions = 0, threads = 1, requests = 0, warmup = 0, timeout_ms = 30'000, max_leaks = 0;
    std::vector<std::string> audit;
    bool passthrough = false, no_audit = false;
    loadgen::thresholds th;
    po::options_description d("exsim load");
    d.add_options()("help,h", "show this help")(
        "config", po::value(&o.config), "directory/topology JSON (default: EXSIM_DIRECTORY of <state-dir>, else the embedded one)")(
        "state-dir", po::value(&o.state_dir)->default_value(o.state_dir), "the folder 'exsim up' wrote endpoints.env to")(
        "log-level", po::value(&o.log_level)->default_value(o.log_level), "trace|debug|info|warn|error");
    add_reports(d, out);
    d.add_options()("url", po::value(&l.url), "where to send requests (default: EXSIM_PROXY_URL of <state-dir>/endpoints.env)")(
        "passthrough", po::bool_switch(&passthrough), "each virtual user authenticates itself with Negotiate/NTLM (to a back-end or any proxy)")(
        "mechanism", po::value(&mechanism)->default_value(mechanism), "pass-through: auto | negotiate | kerberos | ntlm")(
        "connect-to", po::value(&l.connect_to), "ADDRESS:PORT to connect to instead of resolving the URL's host")(
        "users", po::value(&users), "comma-separated users (default: every user; pass-through to a back-end: its users)")(
        "sessions", po::value(&sessions)->default_value(0), "concurrent sessions (0: one per user)")(
        "threads", po::value(&threads)->default_value(1), "load generator threads")(
        "rate", po::value(&rate)->default_value(0), "open model: requests per second in total (0: closed model)")(
        "think-ms", po::value(&think_ms)->default_value(0), "closed model: mean think time between a session's requests")(
        "ramp-up", po::value(&ramp_s)->default_value(0), "seconds over which sessions start")(
        "duration", po::value(&duration_s)->default_value(duration_s), "seconds to run (ramp-up included)")(
        "requests", po::value(&requests)->default_value(0), "stop after N requests instead of a duration")(
        "mix", po::value(&mix), "operation weights, e.g. list=50,read=30,send=10,delete=10 (the default)")(
        "path", po::value(&l.path), "GET this target for every request instead of the mix, without the leak oracle "
                                    "(e.g. /exchweb/blob?size=16384; counted as list)")(
        "extra-users", po::value(&o.extra_users)->default_value(0),
        "add N generated users to the directory, as 'exsim up --extra-users N' did")(
        "seed", po::value(&l.seed)->default_value(1), "random seed of the sessions' choices")(
        "warmup", po::value(&warmup)->default_value(0), "unmeasured Inbox lists per session before the run")(
        "timeout-ms", po::value(&timeout_ms)->default_value(timeout_ms), "per request, handshake included")(
        "ca-file", po::value<std::string>(), "PEM trust anchors for https (default: <state-dir>/tls/proxy-cert.pem for the state's front-end)")(
        "insecure", po::bool_switch(&l.insecure), "https without verifying the certificate")(
        "metrics-url", po::value(&l.metrics_url), "front-end metrics to read before and after (default: the state's)")(
        "audit", po::value(&audit)->composing(), "a back-end audit log to read (default: <state-dir>/audit-*.jsonl)")(
        "no-audit", po::bool_switch(&no_audit), "do not read audit logs")(
        "max-leaks", po::value(&max_leaks), "threshold: leaks + tampers")(
        "max-p99-ms", po::value(&max_p99), "threshold: total p99 latency in ms")(
        "max-error-rate", po::value(&max_error_rate), "threshold: errors / requests (0..1)");
    po::variables_map vm;
    if (!parse(args, d, "load", &vm)) return 0;
    constexpr long long big = 1'000'000'000'000;
    if (vm.count("max-leaks")) th.max_leaks = count_option("max-leaks", max_leaks, 0, big);
    if (vm.count("max-p99-ms")) th.max_p99_ms = number_option("max-p99-ms", max_p99, 0.001, 1e9);
    if (vm.count("max-error-rate")) th.max_error_rate = number_option("max-error-rate", max_error_rate, 0, 1);
    l.sessions = count_option("sessions", sessions, 0, 100'000);
    l.threads = count_option("threads", threads, 1, 64);
    l.requests = count_option("requests", requests, 0, big);
    l.warmup = count_option("warmup", warmup, 0, 1'000'000);
    l.rate = number_option("rate", rate, 0, 10'000'000);
    l.think = std::chrono::milliseconds(static_cast<std::int64_t>(number_option("think-ms", think_ms, 0, 3.6e6)));
    l.ramp_up = std::chrono::milliseconds(static_cast<std::int64_t>(number_option("ramp-up", ramp_s, 0, 86'400) * 1000));
    l.duration = std::chrono::milliseconds(static_cast<std::int64_t>(number_option("duration", duration_s, 0.001, 86'400 * 7) * 1000));
    l.timeout = std::chrono::milliseconds(count_option("timeout-ms", timeout_ms, 1, 3'600'000));
    if (l.insecure) common::logger("load")->warn("--insecure: the front-end's TLS certificate is not verified");

    const fs::path state = fs::absolute(o.state_dir);
    const auto env = lab::read_exports(state / "endpoints.env");
    auto from_env = [&](const char* key) { auto it = env.find(key); return it == env.end() ? std::string() : it->second; };
    if (o.config.empty() && !from_env("EXSIM_DIRECTORY").empty()) o.config = from_env("EXSIM_DIRECTORY");
    l.directory = load(o);
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
            if (l.url.find("//" + b.host + ":") != std::string::npos) l.connect_to = from_env(("EXSIM_BACKEND_" + env_name(b.name) + "_ADDR").c_str());
    if (mechanism != "auto") {
        l.mechanism = auth::parse_mode(mechanism);
        if (!l.mechanism) throw common::config_error(fmt::format("--mechanism: '{}' is not auto, negotiate, kerberos or ntlm", mechanism));
    }
    l.users = split_list(users);
    if (!mix.empty()) l.mix = loadgen::parse_mix(mix);
    if (!no_audit) {
        for (const auto& a : audit) l.audit_logs.emplace_back(a);
        if (audit.empty() && !env.empty())
            for (const auto& b : l.directory.backends)
                if (fs::exists(backend::audit_log_path(state, b.name))) l.audit_logs.push_back(backend::audit_log_path(state, b.name));
    }
    l.progress = true;
    l.stop = &stop_flag_on_signals();
    if (passthrough && fs::exists(state / "realm")) auth::realm::open(l.directory, state).apply_environment();

    const auto result = loadgen::run_load(l);
    std::cout << loadgen::render_table(result) << std::flush;
    if (!out.json.empty()) write_file(out.json, loadgen::to_json(result));
    if (!out.html.empty()) write_file(out.html, loadgen::render_html(result));
    const auto failed = loadgen::failed_thresholds(result, th);
    for (const auto& f : failed) std::cerr << "exsim load: threshold failed: " << f << "\n";
    return failed.empty() ? 0 : 99;
}

int cmd_trace(const std::vector<std::string>& args) {
    common_options o;
    o.log_level = "error";
    frontend_options f;
    std::string steps, color = "auto", pcap;
    bool as_json = false, force = false;
    po::options_description d("exsim trace");
    d.add_options()("help,h", "show this help")(
        "config", po::value(&o.config), "topology JSON file (default: the embedded default topology)")(
        "scenario", po::value(&o.scenario), "a built-in topology by name instead of --config ('exsim scenarios' lists them)")(
        "backend-auth", po::value(&o.backend_auth), "override every back-end's providers: negotiate | ntlm")(
        "policy", po::value(&f.policy), "pool policy: legacy | ms04-002 | no-reuse | pinned | per-user")(
        "require-kerberos", po::bool_switch(&f.require_kerberos), "refuse (502) back-ends that offer only NTLM")(
        "leak-guard", po::bool_switch(&f.leak_guard), "withhold responses from another user's mailbox")(
        "steps", po::value(&steps),
        "USER[:METHOD PATH],... (default: two users of one back-end read /exchange/ in turn, twice)")(
        "json", po::bool_switch(&as_json), "print a JSON document instead of the narration")(
        "color", po::value(&color)->default_value(color), "auto (on a terminal) | always | never")(
        "state-dir", po::value<std::string>(), "keep the realm, stores and audit logs here (default: a temporary folder)")(
        "pcap", po::value(&pcap), "also write every connection of the trace to FILE (pcapng, narrated in packet comments)")(
        "force", po::bool_switch(&force), "overwrite the --pcap file if it exists")(
        "log-level", po::value(&o.log_level)->default_value(o.log_level), "trace|debug|info|warn|error");
    po::variables_map vm;
    if (!parse(args, d, "trace", &vm)) return 0;
    if (color != "auto" && color != "always" && color != "never")
        throw usage_error(fmt::format("exsim trace: --color: '{}' is not auto, always or never", color));
    lab::trace_options t;
    t.topology = load(o);
    apply_frontend_options(t.topology, f);
    t.source = topology_source(o);
    if (vm.count("steps")) t.requests = lab::parse_trace_steps(steps, t.topology);
    if (vm.count("state-dir")) t.state_dir = vm["state-dir"].as<std::string>();
    std::optional<capture::recorder> recorder;
    if (vm.count("pcap")) {
        if (pcap.empty()) throw common::config_error("--pcap: an empty file name");
        t.pcap = &recorder.emplace(capture::recorder_options{
            pcap, "--pcap", force, 0, fmt::format("exsim trace: {}, policy {}", t.source, t.topology.frontend.policy)});
    } else if (force) {
        throw usage_error("exsim trace: --force applies to --pcap, which is not given");
    }
    const auto result = lab::run_trace(t);
    const bool tty = color == "always" || (color == "auto" && isatty(STDOUT_FILENO) && !std::getenv("NO_COLOR"));
    std::cout << (as_json ? lab::trace_json(result) : lab::trace_text(result, tty)) << std::flush;
    if (recorder) {
        recorder->flush();
        std::cerr << lab::capture_hint(pcap, recorder->written().frames);
    }
    return 0;
}

int cmd_check_proxy(const std::vector<std::string>& args) {
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
    for (const auto& p : proxies) {
        const auto eq = p.find('=');
        const std::string name = eq == std::string::npos ? "" : p.substr(0, eq), address = p.substr(eq + 1);
        if (address.rfind(':') == std::string::npos || address.rfind(':') + 1 == address.size())
            throw common::config_error(fmt::format("--proxy: '{}' is not ADDRESS:PORT or NAME=ADDRESS:PORT", p));
        c.proxy[name] = address;
    }
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
    if (!out.json.empty()) write_file(out.json, lab::check_json(report));
    if (!out.html.empty()) write_file(out.html, lab::render_check_html(report));
    for (const auto& name : report.failed()) {
        const auto it = std::find_if(report.checks.begin(), report.checks.end(), [&](const auto& x) { return x.name == name; });
        std::cerr << fmt::format("exsim check-proxy: check failed: {}: {}\n", name, lab::verdict_name(it->verdict));
    }
    return report.failed().empty() ? 0 : 99;
}

int cmd_scenarios(const std::vector<std::string>& args) {
    po::options_description d("exsim scenarios");
    d.add_options()("help,h", "show this help");
    if (!parse(args, d, "scenarios")) return 0;
    std::size_t width = 0;
    for (const auto& s : common::scenarios()) width = std::max(width, s.name.size());
    for (const auto& s : common::scenarios()) std::cout << fmt::format("{:<{}}  {}\n", s.name, width, s.summary);
    std::cout << "\nexsim up --scenario NAME starts one; docs/scenarios/NAME.md explains it.\n";
    return 0;
}

int cmd_demo(const std::vector<std::string>& args) {
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
        "policies", po::value(&policies), "comma-separated policies (default: all five)")(
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
    if (!out.json.empty()) write_file(out.json, loadgen::demo_json(runs));
    if (!out.html.empty()) write_file(out.html, loadgen::render_demo_html(runs));
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 2 || std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h") {
        std::cout << usage;
        return argc < 2 ? 2 : 0;
    }
    const std::string command = argv[1];
    const std::vector<std::string> args(argv + 2, argv + argc);
    const std::map<std::string, int (*)(const std::vector<std::string>&)> commands{
        {"demo", cmd_demo}, {"load", cmd_load}, {"trace", cmd_trace}, {"check-proxy", cmd_check_proxy}, {"up", cmd_up}, {"realm", cmd_realm}, {"backend", cmd_backend}, {"proxy", cmd_proxy},
        {"scenarios", cmd_scenarios}};
    auto it = commands.find(command);
    if (it == commands.end()) {
        std::cerr << fmt::format("exsim: unknown command '{}'\n", command) << usage;
        return 2;
    }
    try {
        return it->second(args);
    } catch (const usage_error& e) {
        std::cerr << e.what() << "\n";
        return 2;
    } catch (const common::config_error& e) {
        std::cerr << "exsim: configuration error: " << e.what() << "\n";
        return 2;
    } catch (const std::exception& e) {
        std::cerr << "exsim " << command << ": " << e.what() << "\n";
        return 1;
    }
}
