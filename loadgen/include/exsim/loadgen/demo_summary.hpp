#pragma once
// The demo's conclusion in words, under its table (exsim demo) and atop its page (report.hpp's
// render_demo_html).

#include <string>
#include <vector>

#include "exsim/loadgen/report.hpp"

namespace exsim::loadgen {

// Two sentences a trainer can read aloud: which rows leaked and why, and what the fix costs.
std::string demo_summary(const std::vector<demo_run>& runs);

}  // namespace exsim::loadgen
