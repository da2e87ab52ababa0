#pragma once
// `exsim check-proxy`: a battery of short, seeded checks through a reverse proxy that forwards to
// exsim's back-ends, each judged by both oracles (the responses the clients got and the back-ends'
// audit logs), one verdict per check. docs/check-proxy.md is the interface: the back-ends and how
// a proxy must forward to them, the checks, the verdicts, the exit codes and the JSON.
// The back-ends it judges through: check_backends.hpp; its reports: check_report.hpp.

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "exsim/lab/check_backends.hpp"

namespace exsim::lab {

enum class check_verdict { safe, leak, not_forwarded, broken, skipped };
std::string_view verdict_name(check_verdict v);  // "safe", "LEAK", "NOT-FORWARDED", "BROKEN", "skipped"

struct crossing {
    std::string user, served_as, backend, method, path, source;  // source: "audit" or "response"
    std::uint64_t conn = 0;  // the back-end's connection id (audit); 0 when only the response showed it
};

struct check_result {
    std::string name, backend, title;
    check_verdict verdict = check_verdict::safe;
    double seconds = 0;
    std::uint64_t requests = 0, errors = 0, leaks = 0, tampers = 0, unattributed = 0;
    std::map<std::string, std::uint64_t> errors_by_kind;
    std::uint64_t audit_requests = 0, audit_cross_user = 0, backend_connections = 0, handshakes = 0;
    std::string evidence;                   // one line: why the verdict
    std::optional<crossing> first_crossing;
};

struct cost_side {
    std::uint64_t requests = 0, errors = 0;
    double rps = 0, p50_ms = 0, p99_ms = 0;
};
struct cost_result {
    cost_side through_proxy, direct;
};

struct check_options {
    check_environment env;
    std::map<std::string, std::string> proxy;  // back-end -> proxy address; key "" for all of them
    std::vector<std::string> checks;           // empty: all
    std::uint64_t seed = 1;
    double cost_seconds = 3;                   // each side of the cost check
    const std::atomic<bool>* stop = nullptr;
    bool progress = false;                     // one line per check on stderr
};

struct check_report {
    std::string proxy;     // as given, for the report
    std::string started;   // ISO-8601 UTC
    double seconds = 0;
    std::vector<std::pair<std::string, std::string>> backends;  // name, address
    std::vector<check_result> checks;
    std::optional<cost_result> cost;
    std::vector<std::string> failed() const;  // names of checks that are neither safe nor skipped
};

// The names of the checks, in the order they run.
const std::vector<std::string>& check_names();

// Pre-flight (throws std::runtime_error with one clear sentence before any load: nothing
// listening, TLS where plain HTTP was expected, a proxy that reaches no exsim back-end), then
// every check. Throws common::config_error for an unknown check name.
check_report run_check_proxy(const check_options& options);

}  // namespace exsim::lab
