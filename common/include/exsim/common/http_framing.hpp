#pragma once
// HTTP rules that more than one component applies: checks on a request header's raw bytes that
// the front-end and the back-ends make before Beast parses it (Beast alone would accept these
// silently), and which methods may be sent twice (the front-end's and the load generator's retry).

#include <algorithm>
#include <cstddef>
#include <string_view>

#include <boost/beast/http/verb.hpp>

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

// A request line that has ended without an HTTP version at its end (RFC 9112 3: method SP
// request-target SP HTTP-version CRLF), such as HTTP/0.9's "GET /": its client sends no header
// and waits, while a server that waits for the blank line ending a header never answers. RFC 9112
// 3 asks for 400 for an invalid request-line; 505 would claim a version that was never named.
// False while the first line has not ended; whatever this lets through, the parser checks whole.
inline bool request_line_lacks_version(std::string_view data) {
    const auto eol = data.find('\n');
    if (eol == std::string_view::npos) return false;
    auto line = data.substr(0, eol);
    if (line.ends_with('\r')) line.remove_suffix(1);
    const auto digit = [](char c) { return c >= '0' && c <= '9'; };
    constexpr std::string_view prefix = " HTTP/";
    if (line.size() < prefix.size() + 3) return true;
    const auto version = line.substr(line.size() - prefix.size() - 3);
    return !(version.starts_with(prefix) && digit(version[6]) && version[7] == '.' && digit(version[8]));
}
constexpr std::string_view no_version_reason =
    "the request line has no HTTP version (method SP target SP HTTP/1.1 is expected; HTTP/0.9 is not served)";

// RFC 9110 9.2.2: a request that may be repeated after a connection was lost.
inline bool is_idempotent(boost::beast::http::verb v) {
    using boost::beast::http::verb;
    return v == verb::get || v == verb::head || v == verb::options || v == verb::delete_ || v == verb::put ||
           v == verb::trace;
}

}  // namespace exsim::common
