#pragma once
// The pool policies by name. Here, in common, so that the topology can check frontend.policy; what
// each one decides is the front-end's policy table (proxy/src/policy.cpp), indexed by this enum.

#include <optional>
#include <string_view>

namespace exsim::common {

enum class policy_kind { legacy, ms04_002, no_reuse, pinned, per_user, count };

std::string_view policy_name(policy_kind k);
// The kind named `name`, or nullopt.
std::optional<policy_kind> find_policy(std::string_view name);

}  // namespace exsim::common
