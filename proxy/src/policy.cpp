#include "exsim/proxy/policy.hpp"

#include <array>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "exsim/common/topology.hpp"

namespace exsim::proxy {

namespace {

using enum lookup;
using enum reauth;
using common::policy_kind;
constexpr outcome pooled{disposal::pool, close_reason::error};
constexpr outcome pinned{disposal::pin, close_reason::error};
constexpr outcome not_pooled{disposal::close, close_reason::ntlm_not_pooled};
constexpr outcome one_request{disposal::close, close_reason::no_reuse};

// Everything a policy decides about a back-end connection, one row per policy, read left to
// right: where connection_for() looks, whether a new connection / a re-used one / one that got a 401
// authenticates as the user, what becomes of an NTLM connection and of any other after the
// response, and what a pin over its caps becomes.
//
//  policy   | looks up             | new | re-use: authenticate?                  | 401 | NTLM after      | other after | pin over cap
//  ---------+----------------------+-----+----------------------------------------+-----+-----------------+-------------+-------------
//  legacy   | shared               | yes | only if never authenticated: THE BUG   | yes | shared pool     | shared pool | -
//  ms04-002 | shared               | yes | always, as the current user            | yes | closed          | shared pool | -
//  no-reuse | nowhere (KB 832749)  | yes | (never re-used)                        | yes | closed          | closed      | -
//  pinned   | client's pin, shared | yes | not the same user's NTLM pin; else yes | yes | pinned to client| shared pool | closed
//  per-user | (back-end, user)     | yes | not the same user's NTLM; else yes     | yes | user's partition| partition   | -
//
// "Shared" and "partition" span every worker (a worker takes over another's idle connection);
// a pin stays on its client connection's worker, and a pin of another user than the client's
// current one is closed (pin_rebound). A back-end that keeps Kerberos per request (the IIS
// default) answers a token-less request on an authenticated connection with 401, and the 401
// column then authenticates the current user: so legacy leaks with NTLM, and with Kerberos only
// when the back-end keeps Kerberos authenticated (persist_kerberos).
constexpr std::array<policy_row, static_cast<std::size_t>(policy_kind::count)> table{{
    {policy_kind::legacy, shared, true, if_never_authenticated, true, pooled, pooled, not_pooled},
    {policy_kind::ms04_002, shared, true, always, true, not_pooled, pooled, not_pooled},
    {policy_kind::no_reuse, none, true, always, true, one_request, one_request, not_pooled},
    {policy_kind::pinned, pin_then_shared, true, unless_same_user_ntlm, true, pinned, pooled, not_pooled},
    {policy_kind::per_user, user_partition, true, unless_same_user_ntlm, true, pooled, pooled, not_pooled},
}};

constexpr bool rows_in_enum_order() {
    for (std::size_t i = 0; i < table.size(); ++i)
        if (static_cast<std::size_t>(table[i].kind) != i) return false;
    return true;
}
static_assert(rows_in_enum_order(), "the table is indexed by common::policy_kind");

}  // namespace

bool pool_policy::must_authenticate(const connection_view& c, std::string_view user, bool reused) const {
    if (user.empty()) return false;
    if (!reused) return row_.authenticate_new;
    switch (row_.on_reuse) {
        case if_never_authenticated: return c.mechanism == auth::mechanism::none;
        case always: return true;
        case unless_same_user_ntlm: return !(c.mechanism == auth::mechanism::ntlm && c.user == user);
    }
    return true;
}

std::unique_ptr<pool_policy> make_policy(std::string_view name) {
    if (auto kind = common::find_policy(name)) return std::make_unique<pool_policy>(table[static_cast<std::size_t>(*kind)]);
    throw common::config_error(fmt::format("policy: unknown policy '{}' (expected one of {})", name,
                                           fmt::join(common::policy_names(), ", ")));
}

}  // namespace exsim::proxy
