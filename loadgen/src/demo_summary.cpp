#include "exsim/loadgen/demo_summary.hpp"

#include <algorithm>

#include <fmt/format.h>

#include "exsim/common/policies.hpp"
#include "demo_figures.hpp"

namespace exsim::loadgen {

std::string demo_summary(const std::vector<demo_run>& runs) {
    std::vector<const demo_run*> leaked;
    for (const auto& run : runs)
        if (leaks_and_tampers(run.result) > 0) leaked.push_back(&run);

    // Which policy is the flaw and which the fix is the policy table's to say (common/policies.hpp).
    const std::string_view flaw = common::vulnerable_policy().name, fix = common::default_policy().name;
    std::string first;
    if (leaked.empty()) {
        first = find_run(runs, flaw, "ntlm")
                    ? fmt::format("No row leaked, not even {} with NTLM back-ends, so this run did not reproduce the "
                                  "flaw and its zeros prove nothing.", flaw)
                    : fmt::format("No row leaked, but no {} row with NTLM back-ends ran, so the flaw was not put to "
                                  "the test.", flaw);
    } else {
        std::vector<std::string> by_policy;
        for (const auto& policy : distinct(runs, &demo_run::policy)) {
            std::vector<std::string> where;
            for (const demo_run* run : leaked) {
                if (run->policy != policy) continue;
                const op_stats t = run->result.total();
                where.push_back(fmt::format("{} back-ends ({}, {})", auth_label(run->backend_auth),
                                            plural(t.leaks, "leak"), plural(t.tampers, "tamper")));
            }
            if (!where.empty()) by_policy.push_back(fmt::format("{} with {}", policy, fmt::join(where, " and with ")));
        }
        first = fmt::format("Leaks happened{} under {}: a pooled connection authenticated as one user carried another "
                            "user's request, and the back-end served the first user's mailbox.",
                            leaked.size() < runs.size() ? " only" : "", fmt::join(by_policy, " and under "));
    }

    std::vector<const demo_run*> fixed;
    for (const auto& run : runs)
        if (run.policy == fix) fixed.push_back(&run);
    std::string second;
    if (fixed.empty()) {
        second = fmt::format("No {} row ran, so the cost of the fix was not measured.", fix);
    } else if (std::any_of(fixed.begin(), fixed.end(), [](auto* run) { return leaks_and_tampers(run->result) > 0; })) {
        second = fmt::format("The fix ({}) did not stop every leak, which points at a bug in the pool or in the oracle.", fix);
    } else {
        second = fmt::format("The fix ({}) {}", fix, leaked.empty() ? "ran without leaks too" : "stopped every leak");
        if (const demo_run* ntlm = find_run(runs, fix, "ntlm")) {
            second += fmt::format(" at the cost of {:.3f} back-end connections per request with NTLM",
                                  conns_per_request(ntlm->result));
            if (const demo_run* flawed = find_run(runs, flaw, "ntlm")) {
                second += fmt::format(" (vs {:.3f} under {})", conns_per_request(flawed->result), flaw);
                // Throughput of short runs on a shared machine is noisy: quoted only when clearly lower.
                if (flawed->result.rps() > 0 && ntlm->result.rps() < 0.8 * flawed->result.rps())
                    second += fmt::format(" and {:.0f}% of {}'s throughput in this run",
                                          100 * ntlm->result.rps() / flawed->result.rps(), flaw);
            }
        }
        std::vector<std::string> others;
        for (const demo_run* run : fixed)
            if (run->backend_auth != "ntlm")
                others.push_back(fmt::format("{} ({:.3f} connections, {:.3f} handshakes per request)",
                                             auth_label(run->backend_auth), conns_per_request(run->result),
                                             handshakes_per_request(run->result)));
        if (!others.empty())
            second += fmt::format("; with {} back-ends it re-authenticates each request on pooled connections",
                                  fmt::join(others, " and "));
        second += ".";
    }
    return first + " " + second;
}

}  // namespace exsim::loadgen
