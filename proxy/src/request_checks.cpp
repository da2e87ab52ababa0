#include "exsim/proxy/request_checks.hpp"

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include <boost/algorithm/string/predicate.hpp>
#include <boost/url.hpp>
#include <fmt/format.h>
#include <openssl/crypto.h>

#include "exsim/common/base64.hpp"

namespace exsim::proxy {
namespace http = boost::beast::http;
namespace {

constexpr std::size_t max_target_size = 8 * 1024;
constexpr std::size_t max_authorization_size = 1024;

bool is_control(unsigned char c) { return c < 0x20 || c == 0x7f; }

canonical_target refuse(std::string reason) { return {{}, {}, std::move(reason)}; }

// The byte that "%XY" at `encoded[i]` stands for; the parser has checked the two hex digits.
unsigned char decoded_byte(std::string_view encoded, std::size_t i) {
    return static_cast<unsigned char>(boost::urls::grammar::hexdig_value(encoded[i + 1]) * 16 +
                                      boost::urls::grammar::hexdig_value(encoded[i + 2]));
}

// Normalizes the percent-encodings of one valid encoded path segment: unreserved
// characters are decoded so that "%2e%2e" is seen as "..", everything else stays encoded with
// upper-case hex so that equal targets compare equal. Returns a reason when the segment hides
// a separator or a control character; nothing is decoded twice, so "%252F" stays "%252F".
std::string normalize_segment(std::string_view encoded, std::string& out) {
    static constexpr char hex[] = "0123456789ABCDEF";
    for (std::size_t i = 0; i < encoded.size(); ++i) {
        if (encoded[i] != '%') {
            out += encoded[i];
            continue;
        }
        const auto c = decoded_byte(encoded, i);
        i += 2;
        if (c == '/') return "percent-encoded slash";
        if (c == '\\') return "percent-encoded backslash";
        if (c == 0) return "percent-encoded NUL";
        if (is_control(c)) return "percent-encoded control character";
        if (boost::urls::unreserved_chars(static_cast<char>(c))) {
            out += static_cast<char>(c);
        } else {
            out += '%';
            out += hex[c >> 4];
            out += hex[c & 0xf];
        }
    }
    return {};
}

}  // namespace

canonical_target canonicalize_target(std::string_view target) {
    if (target.size() > max_target_size) return refuse("request target longer than 8 KiB");
    // Raw bytes first: Boost.URL would only say "leftover", and these deserve a clear reason.
    for (const char ch : target) {
        if (ch == '\\') return refuse("backslash in the request target");
        if (is_control(static_cast<unsigned char>(ch))) return refuse("control character in the request target");
        if (ch == '#') return refuse("fragment in the request target");
    }
    if (target.empty() || target.front() != '/') return refuse("request target not in origin-form");
    const auto url = boost::urls::parse_origin_form(target);
    if (!url) return refuse("malformed request target");

    // Split the encoded path ourselves rather than through encoded_segments(), which hides a
    // leading "/." and so would not show every segment exactly as the client sent it.
    const std::string_view path = url->encoded_path();
    std::vector<std::string> segments;
    bool trailing_slash = false;
    for (std::size_t begin = 1; begin <= path.size();) {
        const auto end = std::min(path.find('/', begin), path.size());
        std::string segment;
        if (auto problem = normalize_segment(path.substr(begin, end - begin), segment); !problem.empty())
            return refuse(problem + " in the path");
        // Dot segments are recognized after decoding: "%2E%2E" climbs exactly like "..".
        // Empty, "." and ".." segments leave the path ending in a directory.
        trailing_slash = segment.empty() || segment == "." || segment == "..";
        if (segment == "..") {
            if (segments.empty()) return refuse("dot segment above the root");
            segments.pop_back();
        } else if (!trailing_slash) {
            segments.push_back(std::move(segment));
        }
        begin = end + 1;
    }

    canonical_target result;
    for (const auto& segment : segments) result.path += '/' + segment;
    if (result.path.empty() || trailing_slash) result.path += '/';
    result.target = result.path;
    if (url->has_query()) {
        // The query is passed on as received ("%2F" is ordinary there), but it must not
        // smuggle a NUL or a control character to the back-end either.
        const auto query = url->encoded_query();
        for (std::size_t i = 0; i < query.size(); ++i)
            if (query[i] == '%' && is_control(decoded_byte(query, i)))
                return refuse("percent-encoded control character in the query");
        result.target += '?';
        result.target += query;
    }
    return result;
}

std::optional<basic_credentials> parse_basic_authorization(std::string_view header_value) {
    if (header_value.size() > max_authorization_size) return std::nullopt;
    constexpr std::string_view scheme = "Basic";
    if (!boost::urls::grammar::ci_is_equal(header_value.substr(0, scheme.size()), scheme)) return std::nullopt;
    const auto rest = header_value.substr(scheme.size());
    const auto token_begin = rest.find_first_not_of(' ');
    if (rest.empty() || rest.front() != ' ' || token_begin == std::string_view::npos) return std::nullopt;
    const auto token = rest.substr(token_begin);

    const auto decoded = common::base64_decode(token);
    if (!decoded) return std::nullopt;
    const std::string text(decoded->begin(), decoded->end());
    for (const char ch : text)
        if (is_control(static_cast<unsigned char>(ch))) return std::nullopt;
    // RFC 7617: the user-id cannot contain a colon, the password can.
    const auto colon = text.find(':');
    if (colon == std::string::npos || colon == 0) return std::nullopt;
    return basic_credentials{text.substr(0, colon), text.substr(colon + 1)};
}

const common::user_entry* check_login(const common::user_index& users, std::string_view user,
                                      std::string_view password) {
    const auto* entry = users.find(user);
    // Same work and the same answer for an unknown user and a wrong password.
    if (!entry || entry->password.size() != password.size() ||
        CRYPTO_memcmp(entry->password.data(), password.data(), password.size()) != 0)
        return nullptr;
    return entry;
}

namespace {

request_route refuse(request_route r, request_route::refusal why_kind, http::status status, std::string why) {
    r.what = request_route::outcome::refuse;
    r.refused = why_kind;
    r.status = status;
    r.why = std::move(why);
    return r;
}

}  // namespace

request_route route_request(const http::request_header<>& req, bool chunked, const common::topology& t,
                            const common::user_index& users) {
    using refusal = request_route::refusal;
    request_route r;
    // RFC 9112 6.3, 3.2: framing a next hop may read otherwise; closed, as where it ends is unknown.
    if (req.count(http::field::transfer_encoding) != 0 && !chunked)
        return refuse(std::move(r), refusal::framing, http::status::bad_request,
                      "a Transfer-Encoding that does not end in chunked leaves the body's length unknown");
    if (req.count(http::field::host) > 1)
        return refuse(std::move(r), refusal::framing, http::status::bad_request, "more than one Host header");
    if (static_cast<std::size_t>(std::distance(req.begin(), req.end())) > max_header_fields)
        return refuse(std::move(r), refusal::too_many_fields, http::status::request_header_fields_too_large,
                      fmt::format("more than {} header fields", max_header_fields));

    r.canonical = canonicalize_target(req.target());
    if (!r.canonical.error.empty()) {
        auto why = fmt::format("request target refused: {}", r.canonical.error);
        return refuse(std::move(r), refusal::bad_target, http::status::bad_request, std::move(why));
    }
    const std::string_view path = r.canonical.path;
    if (path == "/owa" || boost::starts_with(path, "/owa/")) {
        r.what = request_route::outcome::browser_view;
        return r;
    }
    r.what = request_route::outcome::forward;
    if (boost::starts_with(path, "/exchweb/")) {  // static content: anonymous, from the first back-end
        r.backend = &t.backends.front();
        return r;
    }
    const auto credentials = parse_basic_authorization(req[http::field::authorization]);
    // Same answer for an unknown user and a wrong password: say nothing about which.
    r.user = credentials ? check_login(users, credentials->user, credentials->password) : nullptr;
    if (!r.user) {
        if (credentials)
            return refuse(std::move(r), refusal::bad_login, http::status::unauthorized, "unknown user or wrong password");
        return refuse(std::move(r), refusal::no_login, http::status::unauthorized, "log in with Basic authentication");
    }
    r.backend = t.find_backend(r.user->home);
    return r;
}

}  // namespace exsim::proxy
