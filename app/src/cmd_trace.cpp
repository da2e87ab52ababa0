// exsim trace: alice, then bob, through one policy: every connection, handshake and mailbox, narrated.

#include <cstdlib>
#include <iostream>
#include <optional>

#include <unistd.h>

#include <boost/program_options.hpp>
#include <fmt/format.h>

#include "exsim/capture/recorder.hpp"
#include "exsim/lab/capture_notes.hpp"
#include "exsim/lab/trace.hpp"
#include "options.hpp"
#include "servers.hpp"

namespace exsim::app {

int cmd_trace(const arguments& args) {
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
        "policy", po::value(&f.policy), ("pool policy: " + common::policy_choices()).c_str())(
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
    t.topology = topology_of(o);
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

}  // namespace exsim::app
