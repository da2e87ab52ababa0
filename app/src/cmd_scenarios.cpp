// exsim scenarios: list the guided scenarios ('exsim up --scenario NAME'; docs/scenarios/NAME.md).

#include <algorithm>
#include <iostream>

#include <boost/program_options.hpp>
#include <fmt/format.h>

#include "exsim/common/scenarios.hpp"
#include "options.hpp"

namespace exsim::app {

int cmd_scenarios(const arguments& args) {
    po::options_description d("exsim scenarios");
    d.add_options()("help,h", "show this help");
    if (!parse(args, d, "scenarios")) return 0;
    std::size_t width = 0;
    for (const auto& s : common::scenarios()) width = std::max(width, s.name.size());
    for (const auto& s : common::scenarios()) std::cout << fmt::format("{:<{}}  {}\n", s.name, width, s.summary);
    std::cout << "\nexsim up --scenario NAME starts one; docs/scenarios/NAME.md explains it.\n";
    return 0;
}

}  // namespace exsim::app
