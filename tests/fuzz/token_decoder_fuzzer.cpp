// The token decoder (auth/token_decoder.hpp) on any bytes: what a client puts after
// `Authorization: NTLM|Negotiate` once base64-decoded, and what the back-end decodes before it
// lets gss-ntlmssp see it. Beyond "no crash, no read outside the span":
//  - every error names an offset inside the token (or the limit, for an oversized one) and a
//    reason without control characters: both go into a log line and a 401 body;
//  - a trace line (describe) is one line of valid UTF-8, whatever the names say;
//  - decode_ntlm and decode_token agree on a raw NTLM message;
//  - find_ntlm_authenticate only hands the back-end an AUTHENTICATE with acceptable names.

#include <cstddef>
#include <cstdint>
#include <span>

#include "exsim/auth/token_decoder.hpp"
#include "fuzz_check.hpp"

namespace {

using namespace exsim;

void check_error(const auth::decode_error& e, std::size_t size) {
    EXSIM_FUZZ_CHECK(!e.what.empty());
    EXSIM_FUZZ_CHECK(!fuzz::has_control(e.what));
    EXSIM_FUZZ_CHECK(fuzz::is_utf8(e.what));
    EXSIM_FUZZ_CHECK(e.offset <= size || (size > auth::max_token_size && e.offset == auth::max_token_size));
}

void check_trace_line(const std::string& line) {
    EXSIM_FUZZ_CHECK(!fuzz::has_control(line));
    EXSIM_FUZZ_CHECK(fuzz::is_utf8(line));
}

void check_names(const auth::ntlm_message& m) {
    EXSIM_FUZZ_CHECK(m.type >= 1 && m.type <= 3);
    EXSIM_FUZZ_CHECK(fuzz::is_utf8(m.user) && fuzz::is_utf8(m.domain) && fuzz::is_utf8(m.workstation));
    EXSIM_FUZZ_CHECK(auth::describe_ntlm_flags(m.flags).find('\n') == std::string::npos);
    check_trace_line(auth::describe(m));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::span<const std::uint8_t> bytes(data, size);

    const auto token = auth::decode_token(bytes);
    if (token) {
        check_trace_line(auth::describe(*token));
        if (token->ntlm) check_names(*token->ntlm);
        EXSIM_FUZZ_CHECK(token->mechanism == "ntlmssp" || token->mechanism == "kerberos" ||
                         token->mechanism == "spnego");
        for (const auto& mech : token->offered_mechs) check_trace_line(mech);
    } else {
        check_error(token.error(), size);
    }

    const auto ntlm = auth::decode_ntlm(bytes);
    if (ntlm) {
        check_names(*ntlm);
        // A raw NTLM message reads the same through either entry point.
        EXSIM_FUZZ_CHECK(token && token->mechanism == "ntlmssp" && token->ntlm);
        EXSIM_FUZZ_CHECK(token->ntlm->type == ntlm->type && token->ntlm->flags == ntlm->flags &&
                         token->ntlm->user == ntlm->user && token->ntlm->domain == ntlm->domain &&
                         token->ntlm->workstation == ntlm->workstation);
    } else {
        check_error(ntlm.error(), size);
    }

    if (const auto authenticate = auth::find_ntlm_authenticate(bytes)) {
        EXSIM_FUZZ_CHECK(authenticate->type == 3);
        EXSIM_FUZZ_CHECK(auth::acceptable_ntlm_names(*authenticate));
        EXSIM_FUZZ_CHECK(!authenticate->user.empty() && !fuzz::has_control(authenticate->user) &&
                         !fuzz::has_control(authenticate->domain));
        EXSIM_FUZZ_CHECK(token && token->ntlm && token->ntlm->user == authenticate->user);
    } else if (token && token->ntlm && token->ntlm->type == 3) {
        EXSIM_FUZZ_CHECK(!auth::acceptable_ntlm_names(*token->ntlm));
    }
    return 0;
}
