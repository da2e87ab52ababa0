#pragma once
// `exsim check-proxy`'s reports: the table on stdout, --json and --html (docs/check-proxy.md).

#include <string>

#include "exsim/lab/check_proxy.hpp"

namespace exsim::lab {

std::string render_check_table(const check_report& r);
std::string check_json(const check_report& r);
std::string render_check_html(const check_report& r);

}  // namespace exsim::lab
