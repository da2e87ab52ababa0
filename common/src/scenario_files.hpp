#pragma once
// The text of every configs/*.json, compiled in (common/CMakeLists.txt generates the definition).

#include <string_view>
#include <vector>

namespace exsim::common::detail {

struct scenario_file {
    std::string_view name;  // the file name without .json
    std::string_view text;
};

// Sorted by name (the build globs configs/ in that order).
const std::vector<scenario_file>& scenario_files();

}  // namespace exsim::common::detail
