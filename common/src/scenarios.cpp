#include "exsim/common/scenarios.hpp"

#include <algorithm>

#include <fmt/format.h>

#include "scenario_files.hpp"

namespace exsim::common {

const std::vector<scenario>& scenarios() {
    static const std::vector<scenario> list{
        {"ms04-002-vulnerable", "the bug: NTLM-only back-ends, legacy pool: bob after alice gets alice's mailbox"},
        {"ms04-002-fixed", "the fix (KB 832759): NTLM connections never pooled, every re-use re-authenticated"},
        {"kb832749-workaround", "the workaround (KB 832749): no connection re-use; safe, one back-end connection per request"},
        {"kerberos-default", "Exchange's default, Kerberos to the back-ends: safe even under legacy, each request carries its ticket"},
        {"kerberos-persist", "Kerberos that stays on the connection (persist_kerberos) under legacy: leaks like NTLM"},
        {"wss-misconfig", "SharePoint left be2 NTLM-only beside Kerberos be1; under the fix NTLM is warned and never pooled"},
        {"wss-misconfig-require-kerberos", "the same with require_kerberos: be2's users get 502 instead of an NTLM fallback"},
        {"modern-pinned", "NTLM-only back-ends, pinned pool: an NTLM connection serves only the client connection that made it"},
        {"default", "the embedded default topology: be1 Negotiate,NTLM, be2 NTLM-only, policy ms04-002"},
        {"strict", "hardened: Kerberos everywhere, require_kerberos and leak_guard on"},
    };
    return list;
}

std::string_view scenario_json(std::string_view name) {
    const auto& files = detail::scenario_files();
    auto it = std::find_if(files.begin(), files.end(), [&](const auto& f) { return f.name == name; });
    if (it != files.end()) return it->text;
    std::vector<std::string_view> known;
    for (const auto& s : scenarios()) known.push_back(s.name);
    throw config_error(fmt::format("unknown scenario '{}' (known: {}; 'exsim scenarios' lists them)", name,
                                   fmt::join(known, ", ")));
}

topology load_scenario(std::string_view name) {
    return parse_topology(scenario_json(name), fmt::format("scenario {0} (configs/{0}.json)", name));
}

}  // namespace exsim::common
