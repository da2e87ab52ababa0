#pragma once
// What the front-end checks in a client request before it routes it (DESIGN.md sections 1, 5):
// the request target is canonicalized (MS04-013: canonicalize before you route or authorize),
// and the Basic credentials are parsed strictly. Both never throw; every byte is hostile.

#include <optional>
#include <string>
#include <string_view>

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

}  // namespace exsim::proxy
