#pragma once
// Pool policies (DESIGN.md section 5). A policy only decides; the pool owns the connections
// and their states. Made by name from the configuration.

#include <memory>
#include <string_view>

#include "exsim/auth/mechanism.hpp"

namespace exsim::proxy {

// What the pool knows about a back-end connection when a policy decides.
struct connection_view {
    auth::mechanism mechanism = auth::mechanism::none;  // how its last handshake ended (none: never)
    std::string_view user;                             // who that handshake authenticated
};

// Where an idle connection for a request may be found.
enum class idle_scope {
    shared,    // one idle list per back-end
    per_user,  // one idle list per (back-end, user)
    none,      // never: every request opens a connection
};

// What happens to a connection after it served a response that left it usable.
enum class disposal {
    pool,  // into the idle list of its scope
    pin,   // bound to the client connection that used it, closed with it
    close,
};

class pool_policy {
public:
    virtual ~pool_policy() = default;
    virtual std::string_view name() const = 0;
    virtual idle_scope scope() const = 0;
    // Must the connection carry a fresh handshake as `user` before it serves this request?
    // (An anonymous request, user empty, never authenticates.)
    virtual bool must_authenticate(const connection_view& c, std::string_view user) const = 0;
    virtual disposal after_response(const connection_view& c) const = 0;
};

// "legacy", "ms04-002", "no-reuse", "pinned" or "per-user"; throws common::config_error
// naming the known policies for anything else.
std::unique_ptr<pool_policy> make_policy(std::string_view name);

}  // namespace exsim::proxy
