#include "exsim/common/policies.hpp"

#include <algorithm>
#include <array>

#include <fmt/format.h>

namespace exsim::common {
namespace {

// The one list of the policies' names. A policy added to policy_kind needs its row here, with
// every fact filled (the static_asserts below and tests/unit/policies_test.cpp check it), and
// its row in the decision table (proxy/src/policy.cpp).
constexpr std::array<policy_facts, static_cast<std::size_t>(policy_kind::count)> table{{
    {policy_kind::legacy, "legacy", "re-uses an authenticated connection as it is, for any user: the MS04-002 bug",
     "pools authenticated connections and re-uses them without a new handshake, which leaks only when the back-end "
     "holds the connection as someone else",
     true, false},
    {policy_kind::ms04_002, "ms04-002",
     "re-authenticates every re-used connection and never pools an NTLM-authenticated one",
     "re-authenticates every re-used connection as the current user before sending its request, and closes every "
     "NTLM-authenticated connection after its response instead of pooling it, so no connection carried one user's "
     "identity into another user's request: the MS04-002 fix",
     false, true},
    {policy_kind::no_reuse, "no-reuse", "one request per connection, then closed",
     "opens a new connection and runs a new handshake for every request (the KB 832749 workaround): nothing can "
     "cross users, at the price of a connection and a handshake per request",
     false, false},
    {policy_kind::pinned, "pinned", "binds an NTLM-authenticated connection to the client connection that authenticated it",
     "re-authenticates re-used Kerberos connections as ms04-002 does, and binds each NTLM-authenticated connection to "
     "the client connection that authenticated it (as HAProxy, Squid and nginx's ntlm do): only that client's later "
     "requests use it, so another user never does",
     false, false},
    {policy_kind::per_user, "per-user", "re-uses a connection only for the user it was authenticated as",
     "partitions the pool by user: a connection is re-used only for the user it was authenticated as, so an NTLM "
     "connection can be kept without ever serving another user",
     false, false},
}};

constexpr bool complete() {
    std::size_t vulnerable = 0, defaults = 0;
    for (std::size_t i = 0; i < table.size(); ++i) {
        const auto& p = table[i];
        if (p.kind != static_cast<policy_kind>(i) || p.name.empty() || p.connection.empty() || p.explanation.empty())
            return false;
        vulnerable += p.vulnerable;
        defaults += p.is_default;
    }
    return vulnerable == 1 && defaults == 1;
}
static_assert(complete(), "every policy_kind has its row, in order, with every fact; one is the flaw, one the default");

const policy_facts& the_one(bool policy_facts::*flag) {
    return *std::find_if(table.begin(), table.end(), [&](const policy_facts& p) { return p.*flag; });
}

}  // namespace

std::span<const policy_facts> policies() { return table; }

const policy_facts& facts(policy_kind k) { return table.at(static_cast<std::size_t>(k)); }

const policy_facts& vulnerable_policy() { return the_one(&policy_facts::vulnerable); }

const policy_facts& default_policy() { return the_one(&policy_facts::is_default); }

std::string_view policy_name(policy_kind k) {
    return k < policy_kind::count ? facts(k).name : std::string_view("unknown");
}

std::optional<policy_kind> find_policy(std::string_view name) {
    for (const auto& p : table)
        if (p.name == name) return p.kind;
    return std::nullopt;
}

const std::vector<std::string>& policy_names() {
    static const std::vector<std::string> names(
        [] {
            std::vector<std::string> out;
            for (const auto& p : table) out.emplace_back(p.name);
            return out;
        }());
    return names;
}

std::string unknown_policy(std::string_view name) {
    return fmt::format("unknown policy '{}' (expected one of {})", name, fmt::join(policy_names(), ", "));
}

std::string policy_choices() {
    std::vector<std::string> out;
    for (const auto& p : table) out.push_back(p.is_default ? fmt::format("{} (default)", p.name) : std::string(p.name));
    return fmt::format("{}", fmt::join(out, " | "));
}

}  // namespace exsim::common
