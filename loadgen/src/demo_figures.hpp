#pragma once
// What the demo's reports read off its runs: report.cpp's table, page and footnotes, and
// demo_summary.cpp's sentences, so that both say the same figures in the same words.

#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>

#include "exsim/loadgen/report.hpp"

namespace exsim::loadgen {

inline double per(std::uint64_t n, std::uint64_t d) {
    return d ? static_cast<double>(n) / static_cast<double>(d) : 0.0;
}
inline std::string plural(std::uint64_t n, std::string_view what) {
    return fmt::format("{} {}{}", n, what, n == 1 ? "" : "s");
}

inline std::string auth_label(std::string_view a) {
    if (a == "ntlm") return "NTLM";
    if (a == "negotiate") return "Negotiate";
    if (a == "kerberos-persist") return "persisted Kerberos";
    return std::string(a);
}

// The run of `policy` with back-end auth `auth`, or null when it did not run.
inline const demo_run* find_run(const std::vector<demo_run>& runs, std::string_view policy, std::string_view auth) {
    for (const auto& r : runs)
        if (r.policy == policy && r.backend_auth == auth) return &r;
    return nullptr;
}

inline std::uint64_t leaks_and_tampers(const load_result& r) {
    const op_stats t = r.total();
    return t.leaks + t.tampers;
}
inline double conns_per_request(const load_result& r) { return per(r.backend.connections, r.total().requests); }
inline double handshakes_per_request(const load_result& r) { return per(r.backend.handshakes(), r.total().requests); }

// Distinct values in order of first appearance: the charts' groups and colors follow the runs.
inline std::vector<std::string> distinct(const std::vector<demo_run>& runs, std::string demo_run::*field) {
    std::vector<std::string> out;
    for (const auto& r : runs)
        if (std::find(out.begin(), out.end(), r.*field) == out.end()) out.push_back(r.*field);
    return out;
}

}  // namespace exsim::loadgen
