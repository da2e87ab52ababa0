// exsim: the one command line. Each command is in cmd_<name>.cpp; this file dispatches to it.
// Configuration errors exit with 2 and one clear message; a load run whose thresholds failed, or
// a check-proxy run with a check that is not safe, exits with 99 (as k6 does).

#include <iostream>
#include <string>

#include <fmt/format.h>

#include "exsim/common/topology.hpp"
#include "options.hpp"

namespace exsim::app {

int cmd_demo(const arguments&);
int cmd_load(const arguments&);
int cmd_trace(const arguments&);
int cmd_check_proxy(const arguments&);
int cmd_up(const arguments&);
int cmd_realm(const arguments&);
int cmd_backend(const arguments&);
int cmd_proxy(const arguments&);
int cmd_scenarios(const arguments&);

namespace {

struct command {
    const char* name;
    int (*run)(const arguments&);
    const char* summary;  // its line in the usage
};

// The dispatch table: a new command is its cmd_<name>.cpp, its declaration above and one line here.
constexpr command commands[] = {
    {"demo", cmd_demo, "the whole story in one command: every policy x back-end auth, side by side"},
    {"load", cmd_load, "load generator with the leak oracle, through the front-end or pass-through"},
    {"trace", cmd_trace, "alice, then bob, through one policy: every connection, handshake and mailbox, narrated"},
    {"check-proxy", cmd_check_proxy,
     "judge any reverse proxy in front of exsim's back-ends: a verdict per check (docs/check-proxy.md)"},
    {"up", cmd_up, "realm + KDC + back-ends + front-end of a topology; writes <state-dir>/endpoints.env"},
    {"realm", cmd_realm, "create the Kerberos realm and NTLM files, then run the KDC"},
    {"backend", cmd_backend, "run one back-end mailbox server of the topology"},
    {"proxy", cmd_proxy, "run the front-end in front of running back-ends (--backend be1=127.0.0.1:PORT ...)"},
    {"scenarios", cmd_scenarios, "list the guided scenarios ('exsim up --scenario NAME'; docs/scenarios/NAME.md)"},
};

std::string usage() {
    std::string out = "usage: exsim <command> [options]\n\ncommands:\n";
    for (const auto& c : commands) out += fmt::format("  {:<8}  {}\n", c.name, c.summary);
    return out + "\nRun 'exsim <command> --help' for a command's options.\n";
}

// Runs the command; the exceptions it lets out become one message and the exit code.
int run(const command& c, const arguments& args) {
    try {
        return c.run(args);
    } catch (const usage_error& e) {
        std::cerr << e.what() << "\n";
        return 2;
    } catch (const common::config_error& e) {
        std::cerr << "exsim: configuration error: " << e.what() << "\n";
        return 2;
    } catch (const std::exception& e) {
        std::cerr << "exsim " << c.name << ": " << e.what() << "\n";
        return 1;
    }
}

}  // namespace
}  // namespace exsim::app

int main(int argc, char** argv) {
    using namespace exsim::app;
    if (argc < 2 || std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h") {
        std::cout << usage();
        return argc < 2 ? 2 : 0;
    }
    const std::string name = argv[1];
    for (const auto& c : commands)
        if (name == c.name) return run(c, arguments(argv + 2, argv + argc));
    std::cerr << fmt::format("exsim: unknown command '{}'\n", name) << usage();
    return 2;
}
