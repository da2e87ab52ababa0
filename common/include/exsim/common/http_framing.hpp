#pragma once
// Checks on a request header's raw bytes that the front-end and the back-ends both make before
// Beast parses it (Beast alone would accept these silently).

#include <algorithm>
#include <cstddef>
#include <string_view>

namespace exsim::common {

// Where the request header in `data` ends (a bare "\n\n" too: the parser refuses it); npos if not yet.
inline std::size_t header_end(std::string_view data) {
    const auto crlf = data.find("\r\n\r\n");
    const auto lf = data.find("\n\n");
    if (crlf == std::string_view::npos && lf == std::string_view::npos) return std::string_view::npos;
    return std::min(crlf == std::string_view::npos ? lf + 2 : crlf + 4, lf == std::string_view::npos ? crlf + 4 : lf + 2);
}

// obs-fold (RFC 9112 5.2): Beast unfolds it silently, and a next hop may read the fields otherwise.
inline bool has_obs_fold(std::string_view header) {
    for (auto at = header.find('\n'); at != std::string_view::npos && at + 1 < header.size(); at = header.find('\n', at + 1))
        if (header[at + 1] == ' ' || header[at + 1] == '\t') return true;
    return false;
}

}  // namespace exsim::common
