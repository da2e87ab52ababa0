#pragma once
// The directory the mailbox API is tested against, by its unit tests and its fuzz target: be1
// holds alice, bob and eve (alice's assistant, one of her delegates); be2 holds carol.

#include "exsim/common/topology.hpp"

namespace exsim::testing {

inline common::topology api_topology() {
    common::topology t;
    t.seed_messages = 3;
    t.backends = {{"be1", "be1.exsim.test", {"Negotiate", "NTLM"}, false},
                  {"be2", "be2.exsim.test", {"NTLM"}, false}};
    t.users = {{"alice", "alice-pw", "be1", {"eve"}},
               {"bob", "bob-pw", "be1", {}},
               {"eve", "eve-pw", "be1", {}},
               {"carol", "carol-pw", "be2", {}}};
    return t;
}

}  // namespace exsim::testing
