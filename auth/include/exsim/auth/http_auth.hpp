#pragma once
// Negotiate and NTLM over HTTP. Reading one `<scheme> <base64>` header value, for the back-end
// (Authorization) and for the two clients of a back-end (WWW-Authenticate): the front-end
// (authenticating as the user it acts for) and the load generator's pass-through virtual users
// (authenticating like a browser). For the clients: reading a 401's challenges, writing the
// Authorization header, choosing the initiator mode from what a back-end offers, and
// credential_cache::async_get as an awaitable.

#include <algorithm>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <boost/asio/async_result.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/http/field.hpp>
#include <fmt/format.h>

#include "exsim/auth/gss.hpp"
#include "exsim/auth/mechanism.hpp"
#include "exsim/common/base64.hpp"

namespace exsim::auth {

// The value of an Authorization or a WWW-Authenticate line for Negotiate or NTLM (RFC 4559):
// `<scheme> [<base64 token>]`. The scheme ends at the first space; spaces around the token are
// ignored. Every byte is the peer's choice; nothing here throws.
struct auth_header {
    std::string_view scheme_text;                    // the first word as sent, e.g. for a refusal
    std::optional<scheme> known_scheme;              // Negotiate or NTLM (case-insensitive)
    std::optional<std::vector<std::uint8_t>> token;  // nullopt: none, empty, or not valid base64
};
inline auth_header parse_auth_header(std::string_view value) {
    auth_header h;
    const auto space = value.find(' ');
    h.scheme_text = value.substr(0, space);
    h.known_scheme = parse_scheme(h.scheme_text);
    std::string_view text = space == std::string_view::npos ? std::string_view{} : value.substr(space + 1);
    while (!text.empty() && text.front() == ' ') text.remove_prefix(1);
    while (!text.empty() && text.back() == ' ') text.remove_suffix(1);
    if (auto token = common::base64_decode(text); token && !token->empty()) h.token = std::move(token);
    return h;
}

// "Negotiate <base64>" or "NTLM <base64>".
inline std::string token_header(scheme s, const std::vector<std::uint8_t>& token) {
    return fmt::format("{} {}", scheme_name(s), common::base64_encode(token.data(), token.size()));
}

// The offered schemes of a 401 ("Negotiate", "NTLM"), and the token of `ours` when a line of
// that scheme carries a valid one.
struct challenge {
    std::vector<std::string> offers;
    std::optional<std::vector<std::uint8_t>> token;
};

template <class Fields>
challenge read_challenge(const Fields& fields, std::optional<scheme> ours) {
    challenge c;
    for (const auto& f : fields) {
        if (f.name() != boost::beast::http::field::www_authenticate) continue;
        auto h = parse_auth_header(f.value());
        if (!h.known_scheme) continue;
        const auto canonical = std::string(scheme_name(*h.known_scheme));
        if (std::find(c.offers.begin(), c.offers.end(), canonical) == c.offers.end()) c.offers.push_back(canonical);
        if (ours && *h.known_scheme == *ours && h.token) c.token = std::move(h.token);
    }
    return c;
}

inline bool offers_negotiate(const std::vector<std::string>& offers) {
    return std::find(offers.begin(), offers.end(), "Negotiate") != offers.end();
}

// The initiator mode for a back-end that offers `offers` (empty: not known yet, try Negotiate).
// nullopt: require_kerberos and the back-end offers only NTLM.
inline std::optional<initiator_mode> mode_for(const std::vector<std::string>& offers, bool require_kerberos) {
    if (offers.empty() || offers_negotiate(offers))
        return require_kerberos ? initiator_mode::kerberos : initiator_mode::negotiate;
    if (require_kerberos) return std::nullopt;
    return initiator_mode::ntlm;
}

// credential_cache::async_get as an awaitable: acquisition on the cache's blocking pool, the
// result back on the caller's executor.
inline auto async_credentials(credential_cache& cache, const std::string& user, const std::string& password,
                              initiator_mode mode, const std::string& host) {
    namespace net = boost::asio;
    return net::async_initiate<const net::use_awaitable_t<>&, void(credential_result)>(
        [&cache, user, password, mode, host](auto handler) {
            auto ex = net::get_associated_executor(handler);
            auto shared = std::make_shared<decltype(handler)>(std::move(handler));  // std::function copies
            cache.async_get(user, password, mode, ex, [shared](credential_result r) { (*shared)(std::move(r)); },
                            host);
        },
        net::use_awaitable);
}

}  // namespace exsim::auth
