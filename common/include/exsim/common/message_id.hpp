#pragma once
// Message ids are "<owner>.<n>": the back-end's store makes them, and the load generator's leak
// oracle reads the owner back to tell whose message a response contained.

#include <string_view>

namespace exsim::common {

// The owner embedded in a message id: the text before the last '.'; empty when there is none.
// (User names never contain '.', so "alice.3" -> "alice".)
inline std::string_view owner_of_message_id(std::string_view id) noexcept {
    const auto dot = id.rfind('.');
    if (dot == std::string_view::npos) return {};
    return id.substr(0, dot);
}

}  // namespace exsim::common
