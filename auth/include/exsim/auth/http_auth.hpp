#pragma once
// Negotiate and NTLM over HTTP, for the two clients of a back-end: the front-end (authenticating
// as the user it acts for) and the load generator's pass-through virtual users (authenticating
// like a browser). Reading a 401's challenges, writing the Authorization header, choosing the
// initiator mode from what a back-end offers, and credential_cache::async_get as an awaitable.

#include <algorithm>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
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

// "Negotiate <base64>" or "NTLM <base64>".
inline std::string token_header(scheme s, const std::vector<std::uint8_t>& token) {
    return fmt::format("{} {}", scheme_name(s), common::base64_encode(token.data(), token.size()));
}

// The offered schemes of a 401 ("Negotiate", "NTLM"), and the token of `ours` when there is one.
struct challenge {
    std::vector<std::string> offers;
    std::optional<std::vector<std::uint8_t>> token;
};

template <class Fields>
challenge read_challenge(const Fields& fields, std::optional<scheme> ours) {
    challenge c;
    for (const auto& f : fields) {
        if (f.name() != boost::beast::http::field::www_authenticate) continue;
        const std::string_view v = f.value();
        const auto space = v.find(' ');
        if (auto s = parse_scheme(v.substr(0, space))) {
            const auto canonical = std::string(scheme_name(*s));
            if (std::find(c.offers.begin(), c.offers.end(), canonical) == c.offers.end()) c.offers.push_back(canonical);
            if (ours && *s == *ours && space != std::string_view::npos) c.token = common::base64_decode(v.substr(space + 1));
        }
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
