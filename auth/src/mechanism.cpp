#include "exsim/auth/mechanism.hpp"

#include <boost/algorithm/string/predicate.hpp>

namespace exsim::auth {

std::string_view scheme_name(scheme s) { return s == scheme::negotiate ? "Negotiate" : "NTLM"; }

std::optional<scheme> parse_scheme(std::string_view name) {
    if (boost::iequals(name, "Negotiate")) return scheme::negotiate;
    if (boost::iequals(name, "NTLM")) return scheme::ntlm;
    return std::nullopt;
}

std::string_view mechanism_name(mechanism m) {
    switch (m) {
        case mechanism::kerberos: return "kerberos";
        case mechanism::ntlm: return "ntlm";
        case mechanism::none: break;
    }
    return "none";
}

std::string_view mode_name(initiator_mode m) {
    switch (m) {
        case initiator_mode::kerberos: return "kerberos";
        case initiator_mode::negotiate: return "negotiate";
        case initiator_mode::ntlm: return "ntlm";
    }
    return "?";
}

std::optional<initiator_mode> parse_mode(std::string_view name) {
    for (auto m : {initiator_mode::kerberos, initiator_mode::negotiate, initiator_mode::ntlm})
        if (name == mode_name(m)) return m;
    return std::nullopt;
}

}  // namespace exsim::auth
