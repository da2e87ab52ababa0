#pragma once
// The directory and topology: users (password, home back-end, delegates) and back-ends
// (host name, authentication providers). Loaded from JSON with strict checking: an unknown key,
// a missing field or a wrong type is a config_error naming the file, the field and the problem.

#include <cstddef>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "exsim/common/policies.hpp"

namespace exsim::common {

class config_error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

struct backend_config {
    std::string name;                         // "be1": a short identifier, [a-z0-9_-]
    std::string host;                         // "be1.exsim.test": the HTTP/<host> principal
    std::vector<std::string> auth_providers;  // "Negotiate", "NTLM", in the order offered
    bool persist_kerberos = false;            // keep a Kerberos-authenticated connection authenticated

    bool offers(std::string_view provider) const;
};

struct user_entry {
    std::string name;                    // "alice": lower-case [a-z0-9_-]
    std::string password;                // clearly fake demo passwords only
    std::string home;                    // back-end name that holds the mailbox
    std::vector<std::string> delegates;  // users who may open this mailbox
};

// The front-end's pool: one per back-end across the worker threads, so the limits are per
// back-end for the whole front-end, except the two pinned ones (a pin stays on its worker).
struct pool_settings {
    std::size_t max_connections = 64;        // open connections to one back-end (busy + idle + pinned)
    std::size_t max_idle = 16;               // idle connections kept for re-use
    std::size_t idle_timeout_ms = 30'000;    // an idle connection older than this is closed
    std::size_t max_requests = 1000;         // requests one connection carries, then closed
    std::size_t max_lifetime_ms = 300'000;   // a connection is not re-used past this age
    std::size_t queue_limit = 256;           // requests waiting for a connection; past it, 503
    std::size_t queue_timeout_ms = 5'000;    // longest wait for a connection; then 503
    std::size_t pinned_per_client = 4;       // pinned NTLM connections one client connection may hold
    std::size_t pinned_per_user = 16;        // pinned NTLM connections one user may hold (per worker)
};

// The front-end: which pool policy, and what it refuses or checks.
struct frontend_settings {
    std::string policy{default_policy().name};  // one of policy_names(), policies.hpp
    bool require_kerberos = false;    // refuse (502) a back-end that offers only NTLM
    bool leak_guard = false;          // replace a response from another user's mailbox (off: shows the bug)
    std::size_t workers = 0;          // worker threads (0: one per core); --workers overrides it. The pool
                                      // spans them all: 1 only makes a run repeat exactly (exsim trace)
    pool_settings pool;
};

struct topology {
    std::string realm = "EXSIM.TEST";
    std::string ntlm_domain = "EXSIM";
    std::size_t seed_messages = 3;  // messages each mailbox starts with
    std::vector<backend_config> backends;
    std::vector<user_entry> users;
    frontend_settings frontend;

    const user_entry* find_user(std::string_view name) const;  // a linear scan
    const backend_config* find_backend(std::string_view name) const;
    std::vector<const user_entry*> users_of(std::string_view backend) const;
};

// find_user in constant time, for a directory that no longer changes: the front-end looks up the
// user of every request, and a linear scan of 10,000 users costs it more than its own work.
// Points into `t`, which must outlive the index and keep its users as they are.
class user_index {
public:
    explicit user_index(const topology& t);
    const user_entry* find(std::string_view name) const;

private:
    std::unordered_map<std::string_view, const user_entry*> by_name_;
};

// Parses and validates; `source` names the file in error messages.
topology parse_topology(std::string_view json_text, std::string_view source);
topology load_topology(const std::filesystem::path& file);
std::string to_json(const topology& t);

// The embedded default topology of docs/design.md section 2: realm EXSIM.TEST, domain EXSIM,
// be1 (Negotiate,NTLM: alice, bob), be2 (NTLM only: carol, dave), passwords "<user>-pw".
topology default_topology();

// The default topology plus `extra_users` generated demo users (user00001, ...; password
// "<user>-pw"), spread round-robin over the back-ends. For scale tests and benchmarks.
topology generated_topology(std::size_t extra_users);

// Overrides every back-end's providers: "negotiate" -> Negotiate,NTLM; "ntlm" -> NTLM.
void override_backend_auth(topology& t, std::string_view mode);

bool is_valid_name(std::string_view name);

}  // namespace exsim::common
