#pragma once
// The guided scenarios: the topologies of configs/*.json, compiled into the binary so that
// `exsim up --scenario NAME` works from any folder and from an installed exsim. Each one shows
// one thing; docs/scenarios/NAME.md explains it.

#include <string_view>
#include <vector>

#include "exsim/common/topology.hpp"

namespace exsim::common {

struct scenario {
    std::string_view name;     // "ms04-002-vulnerable": configs/<name>.json
    std::string_view summary;  // one line: what it shows
};

// Every scenario, in the order of docs/lab-guide.md.
const std::vector<scenario>& scenarios();

// The scenario's JSON as it was when exsim was built. An unknown name is a config_error that
// lists the known ones.
std::string_view scenario_json(std::string_view name);

// Parses scenario_json(name); errors name the source "scenario NAME (configs/NAME.json)".
topology load_scenario(std::string_view name);

}  // namespace exsim::common
