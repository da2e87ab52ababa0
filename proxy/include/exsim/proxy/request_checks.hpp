#pragma once
// What the front-end checks in a client request before it routes it (docs/design.md sections 1, 5):
// the request target is canonicalized (MS04-013: canonicalize before you route or authorize),
// and the Basic credentials are parsed strictly. Both never throw; every byte is hostile.

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include <boost/beast/http/message.hpp>
#include <boost/beast/http/status.hpp>

#include "exsim/common/topology.hpp"

namespace exsim::proxy {

struct canonical_target {
    std::string target;  // canonical origin-form: path, then "?query" when there was one
    std::string path;    // canonical path alone
    std::string error;   // non-empty: refuse with 400 and this reason
};

// Canonicalizes an origin-form request target with Boost.URL:
//  - only origin-form ("/..."); absolute-form, authority-form and "*" are refused;
//  - percent-encoded '/' (%2F), '\' (%5C), NUL (%00) and control characters are refused, as
//    are raw backslashes and control characters: they are how a path hides a second mailbox;
//  - percent-encoded unreserved characters are decoded (%61 -> a, %2E -> .), other
//    percent-encodings are kept with upper-case hex digits;
//  - duplicate slashes collapse ("//exchange///bob" -> "/exchange/bob");
//  - dot segments are removed ("/exchange/bob/../alice/" -> "/exchange/alice/"); a ".." that
//    would climb above the root is refused;
//  - a trailing slash is kept; the query is kept as received (it must itself be valid);
//  - a fragment is refused; targets longer than 8 KiB are refused.
canonical_target canonicalize_target(std::string_view target);

struct basic_credentials {
    std::string user;
    std::string password;
};

// Parses `Authorization: Basic <base64(user:password)>` (scheme case-insensitive, one space or
// more). nullopt for anything else: another scheme, bad base64, no colon, an empty user, or
// control characters; the header value is limited to 1 KiB.
std::optional<basic_credentials> parse_basic_authorization(std::string_view header_value);

// The directory entry of `user` when `password` is theirs (constant-time); nullptr otherwise,
// the same for an unknown user and a wrong password. The Basic login (route_request) and the
// browser view's forms login (owa.cpp) share it.
const common::user_entry* check_login(const common::user_index& users, std::string_view user, std::string_view password);

// Beast limits a header's bytes, not its fields (100: Apache's LimitRequestFields).
constexpr std::size_t max_header_fields = 100;

// What the front-end does with a parsed request header, decided before any I/O: the client
// session acts on it, and the request-handling fuzzer calls it on the same header.
struct request_route {
    enum class outcome {
        forward,       // to `backend`, as `user` (none for the anonymous /exchweb/)
        browser_view,  // /owa: the browser view, which has its own login
        refuse,        // answer `status` with `why`
    };
    enum class refusal {
        none,
        framing,          // 400, and the connection closes: where the message ends is unknown
        too_many_fields,  // 431, and the connection closes
        bad_target,       // 400
        no_login,         // 401 with a Basic challenge: no credentials
        bad_login,        // 401 with a Basic challenge: an unknown user or a wrong password
    };
    outcome what = outcome::refuse;
    refusal refused = refusal::none;
    boost::beast::http::status status = boost::beast::http::status::ok;
    std::string why;
    canonical_target canonical;
    const common::user_entry* user = nullptr;
    const common::backend_config* backend = nullptr;
    // Whether the answer to a refusal closes the connection.
    bool closes() const { return refused == refusal::framing || refused == refusal::too_many_fields; }
};

// In order: framing (a Transfer-Encoding that does not end in chunked, two Host headers), the
// field count, the target canonicalized, /owa to the browser view, then the Basic login against
// `users` (the same answer for an unknown user and a wrong password) and the user's home
// back-end in `t`. `chunked`: the parser's verdict on Transfer-Encoding.
request_route route_request(const boost::beast::http::request_header<>& req, bool chunked, const common::topology& t,
                            const common::user_index& users);

}  // namespace exsim::proxy
