#include "exsim/proxy/policy.hpp"

#include <fmt/format.h>

#include "exsim/common/topology.hpp"

namespace exsim::proxy {

// The decision table of DESIGN.md section 5, coded below, one class per row:
//
//  policy    | idle connections looked up | re-authenticate on re-use?          | NTLM conn after response | other conn after
//  ----------+----------------------------+-------------------------------------+--------------------------+-----------------
//  legacy    | shared per back-end        | only if never authenticated: THE BUG | shared pool              | shared pool
//  ms04-002  | shared per back-end        | always, as the current user          | closed, never pooled     | shared pool
//  no-reuse  | none (KB 832749)           | always (it is a new connection)      | closed                   | closed
//  pinned    | client's pin, then shared  | pinned NTLM of the same user: no;    | pinned to its client     | shared pool
//            |                            | anything else: always                |                          |
//  per-user  | (back-end, user) partition | NTLM of the same user: no; else yes  | user's partition         | user's partition
//
// A back-end that keeps Kerberos per request (IIS default) answers a token-less request on an
// authenticated connection with 401, and the proxy then authenticates as the current user: so
// legacy leaks with NTLM, and with Kerberos only when the back-end persists it (persist_kerberos).

namespace {

bool is_ntlm(const connection_view& c) { return c.mechanism == auth::mechanism::ntlm; }

class legacy final : public pool_policy {
public:
    std::string_view name() const override { return "legacy"; }
    idle_scope scope() const override { return idle_scope::shared; }
    bool must_authenticate(const connection_view& c, std::string_view user) const override {
        return !user.empty() && c.mechanism == auth::mechanism::none;
    }
    disposal after_response(const connection_view&) const override { return disposal::pool; }
};

class ms04_002 final : public pool_policy {
public:
    std::string_view name() const override { return "ms04-002"; }
    idle_scope scope() const override { return idle_scope::shared; }
    bool must_authenticate(const connection_view&, std::string_view user) const override { return !user.empty(); }
    disposal after_response(const connection_view& c) const override {
        return is_ntlm(c) ? disposal::close : disposal::pool;
    }
};

class no_reuse final : public pool_policy {
public:
    std::string_view name() const override { return "no-reuse"; }
    idle_scope scope() const override { return idle_scope::none; }
    bool must_authenticate(const connection_view&, std::string_view user) const override { return !user.empty(); }
    disposal after_response(const connection_view&) const override { return disposal::close; }
};

class pinned final : public pool_policy {
public:
    std::string_view name() const override { return "pinned"; }
    idle_scope scope() const override { return idle_scope::shared; }
    bool must_authenticate(const connection_view& c, std::string_view user) const override {
        return !user.empty() && !(is_ntlm(c) && c.user == user);
    }
    disposal after_response(const connection_view& c) const override {
        return is_ntlm(c) ? disposal::pin : disposal::pool;
    }
};

class per_user final : public pool_policy {
public:
    std::string_view name() const override { return "per-user"; }
    idle_scope scope() const override { return idle_scope::per_user; }
    bool must_authenticate(const connection_view& c, std::string_view user) const override {
        return !user.empty() && !(is_ntlm(c) && c.user == user);
    }
    disposal after_response(const connection_view&) const override { return disposal::pool; }
};

}  // namespace

std::unique_ptr<pool_policy> make_policy(std::string_view name) {
    if (name == "legacy") return std::make_unique<legacy>();
    if (name == "ms04-002") return std::make_unique<ms04_002>();
    if (name == "no-reuse") return std::make_unique<no_reuse>();
    if (name == "pinned") return std::make_unique<pinned>();
    if (name == "per-user") return std::make_unique<per_user>();
    throw common::config_error(fmt::format("policy: unknown policy '{}' (expected one of {})", name,
                                           fmt::join(common::policy_names(), ", ")));
}

}  // namespace exsim::proxy
