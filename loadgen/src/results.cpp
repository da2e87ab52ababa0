#include "exsim/loadgen/results.hpp"

#include <algorithm>

#include <fmt/format.h>

namespace exsim::loadgen {

// A switch rather than a table, so that -Wswitch flags an operation added without a name.
std::string_view op_name(op o) {
    switch (o) {
        case op::list: return "list";
        case op::read: return "read";
        case op::send: return "send";
        case op::del: return "delete";
    }
    return "unknown";
}

void op_stats::merge(const op_stats& other) {
    requests += other.requests;
    errors += other.errors;
    leaks += other.leaks;
    tampers += other.tampers;
    for (const auto& [kind, n] : other.errors_by_kind) errors_by_kind[kind] += n;
    latency.merge(other.latency);
    backend_connections += other.backend_connections;
    handshakes += other.handshakes;
}

op_stats load_result::total() const {
    op_stats t;
    for (const auto& s : ops) t.merge(s);
    return t;
}

bool load_result::audit_agrees() const {
    if (!audit_cross_user) return true;
    const op_stats t = total();
    return *audit_cross_user == t.leaks + t.tampers;
}

std::vector<std::string> failed_thresholds(const load_result& r, const thresholds& t) {
    std::vector<std::string> failed;
    const op_stats total = r.total();
    // The two sides must agree; under a leak threshold the larger count is the one judged, and
    // a disagreement is a failure of its own (a proxy that strips X-Exsim-* hides leaks from the
    // oracle, not from the audit).
    const auto seen = total.leaks + total.tampers;
    if (t.max_leaks && std::max(seen, r.audit_cross_user.value_or(0)) > *t.max_leaks)
        failed.push_back(fmt::format("max-leaks: {} leaks+tampers (audit cross-user: {}) > {}", seen,
                                     r.audit_cross_user ? std::to_string(*r.audit_cross_user) : "not read", *t.max_leaks));
    if (t.max_leaks && !r.audit_agrees())
        failed.push_back(fmt::format("max-leaks: the audit's cross-user count {} disagrees with the oracle's {}",
                                     *r.audit_cross_user, seen));
    const double p99_ms = static_cast<double>(total.latency.percentile(99)) / 1000.0;
    if (t.max_p99_ms && p99_ms > *t.max_p99_ms)
        failed.push_back(fmt::format("max-p99-ms: p99 {:.2f} ms > {:g} ms", p99_ms, *t.max_p99_ms));
    const double error_rate =
        total.requests ? static_cast<double>(total.errors) / static_cast<double>(total.requests) : 0.0;
    if (t.max_error_rate && error_rate > *t.max_error_rate)
        failed.push_back(fmt::format("max-error-rate: {:.4g} > {:g}", error_rate, *t.max_error_rate));
    if (const auto it = total.errors_by_kind.find("unattributed"); it != total.errors_by_kind.end())
        failed.push_back(fmt::format("unattributed: {} successful responses without X-Exsim-Identity or "
                                     "X-Exsim-Mailbox (no exsim back-end produced them)", it->second));
    if (r.unaudited.value_or(0) > 0)
        failed.push_back(fmt::format("unaudited: {} successful responses that the back-ends' audit logs never saw",
                                     *r.unaudited));
    return failed;
}

}  // namespace exsim::loadgen
