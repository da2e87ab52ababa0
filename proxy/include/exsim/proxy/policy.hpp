#pragma once
// Pool policies: one table (policy.cpp) says, for each policy, everything it decides about a
// back-end connection: where connection_for() looks for one, when it must carry a new handshake, what
// becomes of it after the response, and which caps apply. The pool owns the connections and
// moves them between states (pool.cpp); what it still decides itself, the same under every policy
// (caps, idle timeouts, where to look first, what to evict), is listed in docs/design.md section 5.

#include <memory>
#include <string_view>

#include "exsim/auth/mechanism.hpp"
#include "exsim/common/policies.hpp"
#include "exsim/proxy/metrics.hpp"

namespace exsim::proxy {

// What the pool knows about a back-end connection when a policy decides.
struct connection_view {
    auth::mechanism mechanism = auth::mechanism::none;  // how its last handshake ended (none: never)
    std::string_view user;                             // who that handshake authenticated
};

// Where connection_for() looks for a connection before it opens one. "Shared" and "partition" lists
// span every worker: a worker with none of its own takes one over from another worker.
enum class lookup {
    shared,           // the back-end's shared idle list
    pin_then_shared,  // the connection pinned to this client connection (if it is this user's), then shared
    user_partition,   // the idle list of (back-end, this user)
    none,             // nowhere: every request opens a connection
};

// When a re-used connection must carry a new handshake as the request's user.
enum class reauth {
    if_never_authenticated,  // only a connection no handshake ever ran on: THE MS04-002 BUG
    always,                  // every re-use, as the current user
    unless_same_user_ntlm,   // not an NTLM connection of this same user (it is this user's); else always
};

// What happens to a connection after a response that left it usable.
enum class disposal {
    pool,  // into the idle list of its lookup (shared, or the user's partition)
    pin,   // bound to the client connection that used it, closed with it
    close,
};

struct outcome {
    disposal kept = disposal::close;
    close_reason closed = close_reason::error;  // when kept is close: why
};

// One row of the table.
struct policy_row {
    common::policy_kind kind;
    lookup look;
    bool authenticate_new;     // a new connection carries a handshake as the user
    reauth on_reuse;
    bool authenticate_on_401;  // a 401 to a request sent without a token: authenticate as the user, same connection
    outcome after_ntlm;        // an NTLM-authenticated connection, after its response
    outcome after_other;       // a Kerberos or never-authenticated one
    // Caps beyond max_connections and max_idle (which bound every policy): a pin over
    // pinned_per_client or pinned_per_user (or with no client connection) ends as this instead.
    outcome over_pin_cap;
};

class pool_policy {
public:
    explicit pool_policy(const policy_row& row) : row_(row) {}

    std::string_view name() const { return common::policy_name(row_.kind); }
    const policy_row& row() const { return row_; }
    lookup look() const { return row_.look; }

    // Must the connection carry a fresh handshake as `user` before it serves this request?
    // (An anonymous request, user empty, never authenticates.)
    bool must_authenticate(const connection_view& c, std::string_view user, bool reused) const;
    // The back-end answered 401 to a request of `user` sent without a token of ours.
    bool authenticate_after_401(std::string_view user) const { return !user.empty() && row_.authenticate_on_401; }
    outcome after_response(const connection_view& c) const {
        return c.mechanism == auth::mechanism::ntlm ? row_.after_ntlm : row_.after_other;
    }

private:
    const policy_row& row_;
};

// The table's row for `name`; throws common::config_error naming the known policies for
// anything else.
std::unique_ptr<pool_policy> make_policy(std::string_view name);

}  // namespace exsim::proxy
