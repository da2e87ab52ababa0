#pragma once
// HTML escaping shared by every page exsim renders (the back-end's mailbox pages, the load
// generator's reports, the front-end's browser view): one function, so that one fix reaches all.

#include <string>
#include <string_view>

namespace exsim::common {

// Escapes & < > " ' for HTML text and attribute values.
std::string html_escape(std::string_view text);

}  // namespace exsim::common
