#pragma once
// The reports of a load run and of the demo: a text table for stdout, JSON, and a
// self-contained HTML page whose charts are inline SVG (no script, no network to view it).
// The demo's two sentences for a trainer are demo_summary.hpp's.

#include <string>
#include <vector>

#include "exsim/loadgen/results.hpp"

namespace exsim::loadgen {

std::string render_table(const load_result& r);  // per operation + total, then the back-end side
std::string to_json(const load_result& r);       // everything, timeline included
std::string render_html(const load_result& r);   // throughput and p99 over time, percentiles, leaks over time

// One row of the demo: one policy under one back-end configuration.
struct demo_run {
    std::string policy;        // "legacy", ...
    std::string backend_auth;  // "negotiate", "ntlm", "kerberos-persist"
    load_result result;
};

// Side by side: policy, back-end auth, requests, req/s, p50, p99, back-end connections,
// handshakes per request, leaks, tampers, audit cross-user.
std::string render_demo_table(const std::vector<demo_run>& runs);
// {"runs":[{"policy","backend_auth","requests","leaks","tampers","audit_cross_user",
//   "backend_connections","auth_handshakes","ntlm_handshakes","rps","p50_ms","p99_ms","errors"}, ...]}
std::string demo_json(const std::vector<demo_run>& runs);
std::string render_demo_html(const std::vector<demo_run>& runs);

}  // namespace exsim::loadgen
