#pragma once
// Every fact about a pool policy besides its decisions: its name, what it does to a back-end
// connection, the explanation trainers read, and which one is the flaw and which the fix. The
// topology's validation, the command line's help, the trace and the reports read them here (in
// common, so that the load generator may too). What each policy decides is the front-end's
// decision table (proxy/src/policy.cpp), indexed by the same enum.

#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace exsim::common {

enum class policy_kind { legacy, ms04_002, no_reuse, pinned, per_user, count };

struct policy_facts {
    policy_kind kind;
    std::string_view name;         // as frontend.policy and --policy spell it
    std::string_view connection;   // what it does to an authenticated back-end connection, one line
    std::string_view explanation;  // what it does and why users stay apart (or not), for trainers
    bool vulnerable = false;       // the flaw of bulletin MS04-002: hands one user's connection to another
    bool is_default = false;       // Microsoft's fix, and the front-end's default
};

// Every policy, in policy_kind's order.
std::span<const policy_facts> policies();
const policy_facts& facts(policy_kind k);
const policy_facts& vulnerable_policy();
const policy_facts& default_policy();

std::string_view policy_name(policy_kind k);
// The kind named `name`, or nullopt.
std::optional<policy_kind> find_policy(std::string_view name);
// The names, in policy_kind's order.
const std::vector<std::string>& policy_names();

// "unknown policy 'NAME' (expected one of legacy, ...)": what a bad name is told, wherever given.
std::string unknown_policy(std::string_view name);
// "legacy | ms04-002 (default) | ...": the choices, for an option's help.
std::string policy_choices();

}  // namespace exsim::common
