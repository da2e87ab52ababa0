#pragma once
// Decoder for the authentication tokens that cross the front-end and the back-end (the bytes
// after base64 decoding): raw NTLMSSP messages, SPNEGO NegTokenInit/NegTokenResp and Kerberos
// GSS-API tokens. It exists for two readers: the handshake trace (describe) and the back-end,
// which must know which user an NTLM AUTHENTICATE claims before it accepts it
// (find_ntlm_authenticate).
//
// The input is attacker-controlled. Nothing here throws or reads outside the span: every
// malformed token yields a decode_error saying what was wrong and at which byte. The decoder
// reports what a token *says*; it verifies nothing (no signature, MIC or ticket is checked).

#include <cassert>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace exsim::auth {

// Limits for hostile input. Real tokens are far below them: a Kerberos AP-REQ with a PAC is a few
// KiB, SPNEGO nests five DER levels deep.
inline constexpr std::size_t max_token_size = 64 * 1024;
inline constexpr int max_der_depth = 8;

// NTLMSSP NegotiateFlags bits (MS-NLMP 2.2.2.5), for callers that set or test them by name.
namespace ntlm_flag {
inline constexpr std::uint32_t negotiate_unicode = 0x00000001;
inline constexpr std::uint32_t negotiate_oem = 0x00000002;
inline constexpr std::uint32_t request_target = 0x00000004;
inline constexpr std::uint32_t negotiate_sign = 0x00000010;
inline constexpr std::uint32_t negotiate_seal = 0x00000020;
inline constexpr std::uint32_t negotiate_datagram = 0x00000040;
inline constexpr std::uint32_t negotiate_lm_key = 0x00000080;
inline constexpr std::uint32_t negotiate_ntlm = 0x00000200;
inline constexpr std::uint32_t negotiate_anonymous = 0x00000800;
inline constexpr std::uint32_t negotiate_oem_domain_supplied = 0x00001000;
inline constexpr std::uint32_t negotiate_oem_workstation_supplied = 0x00002000;
inline constexpr std::uint32_t negotiate_always_sign = 0x00008000;
inline constexpr std::uint32_t target_type_domain = 0x00010000;
inline constexpr std::uint32_t target_type_server = 0x00020000;
inline constexpr std::uint32_t negotiate_extended_sessionsecurity = 0x00080000;
inline constexpr std::uint32_t negotiate_identify = 0x00100000;
inline constexpr std::uint32_t request_non_nt_session_key = 0x00400000;
inline constexpr std::uint32_t negotiate_target_info = 0x00800000;
inline constexpr std::uint32_t negotiate_version = 0x02000000;
inline constexpr std::uint32_t negotiate_128 = 0x20000000;
inline constexpr std::uint32_t negotiate_key_exch = 0x40000000;
inline constexpr std::uint32_t negotiate_56 = 0x80000000;
}  // namespace ntlm_flag

struct ntlm_message {
    int type = 0;  // 1 NEGOTIATE, 2 CHALLENGE, 3 AUTHENTICATE
    std::uint32_t flags = 0;
    // MS-NLMP constant names of the set bits, lowest bit first ("NTLMSSP_NEGOTIATE_UNICODE",
    // "NTLM_NEGOTIATE_OEM", "NTLMSSP_REQUEST_TARGET", ...); a reserved bit as "0x00000008".
    std::vector<std::string> flag_names;
    // UTF-8, empty when absent. AUTHENTICATE: DomainName, UserName, Workstation. NEGOTIATE: the
    // OEM domain/workstation, only when the OEM_*_SUPPLIED flag says they are there. CHALLENGE:
    // TargetName goes in `domain` (the server's domain, or its name under TARGET_TYPE_SERVER).
    std::string domain, user, workstation;
    // True when a UTF-16 string held an unpaired surrogate, which was replaced by U+FFFD so that
    // the trace still shows the rest. Such a name is not the one the client sent: the back-end
    // must not act on it (find_ntlm_authenticate refuses it).
    bool invalid_utf16_replaced = false;
};

struct decoded_token {
    std::string mechanism;    // "ntlmssp", "kerberos" or "spnego"
    std::string spnego_kind;  // "", "negTokenInit" or "negTokenResp"
    // NegTokenInit mechTypes in the client's order of preference: "krb5" (1.2.840.113554.1.2.2),
    // "ms-krb5" (1.2.840.48018.1.2.2), "krb5-u2u", "ntlmssp" (1.3.6.1.4.1.311.2.2.10), "negoex",
    // or the dotted OID of anything else.
    std::vector<std::string> offered_mechs;
    std::string chosen_mech;  // NegTokenResp supportedMech (the mechanism SPNEGO chose), same naming
    std::string neg_state;    // NegTokenResp negState: accept-completed, accept-incomplete, reject,
                              // request-mic, or "unknown(N)"; "" when absent
    // SPNEGO only: what the mechToken/responseToken is: "ntlmssp", "kerberos", "unknown" (bytes
    // of a mechanism this decoder does not know, e.g. NegoEx), "" when there is no token.
    std::string inner_mechanism;
    std::size_t inner_token_size = 0;  // bytes of that token
    bool has_mech_list_mic = false;    // SPNEGO mechListMIC present (not verified)
    std::string kerberos_kind;         // "AP-REQ", "AP-REP", "KRB-ERROR" when known, raw or in SPNEGO
    std::optional<ntlm_message> ntlm;  // the NTLM message, raw or inside SPNEGO
};

struct decode_error {
    std::string what;     // what went wrong, for logs and traces
    std::size_t offset;   // byte of the input where it was detected
};

// Either a value or a decode_error, like std::expected (C++23) which this project cannot use
// yet. A std::variant underneath; accessing the wrong alternative is a programming error and
// asserts rather than throws.
template <class T>
class decode_result {
public:
    decode_result(T value) : v_(std::in_place_index<0>, std::move(value)) {}
    decode_result(decode_error error) : v_(std::in_place_index<1>, std::move(error)) {}

    bool has_value() const noexcept { return v_.index() == 0; }
    explicit operator bool() const noexcept { return has_value(); }

    const T& value() const& { assert(has_value()); return *std::get_if<0>(&v_); }
    T& value() & { assert(has_value()); return *std::get_if<0>(&v_); }
    T&& value() && { assert(has_value()); return std::move(*std::get_if<0>(&v_)); }
    const T& operator*() const& { return value(); }
    const T* operator->() const { return &value(); }

    const decode_error& error() const { assert(!has_value()); return *std::get_if<1>(&v_); }

private:
    std::variant<T, decode_error> v_;
};

// Any supported token: raw NTLMSSP, SPNEGO (GSS-wrapped NegTokenInit, bare NegTokenResp or
// NegTokenInit), Kerberos (GSS-wrapped with a krb5 OID, or a raw AP-REQ/AP-REP/KRB-ERROR).
// Inputs larger than max_token_size are refused ("token too large") before any parsing.
decode_result<decoded_token> decode_token(std::span<const std::uint8_t> bytes);

// Only a raw NTLMSSP message (what `Authorization: NTLM <base64>` carries).
decode_result<ntlm_message> decode_ntlm(std::span<const std::uint8_t> bytes);

// One line for the handshake trace, e.g.
//   NTLM AUTHENTICATE user=EXSIM\bob ws=WS1 flags=UNICODE|NTLM|...
//   SPNEGO negTokenResp accept-incomplete mech=ntlmssp: NTLM CHALLENGE target=EXSIM flags=...
// Control characters in names are escaped (\xNN) so that a hostile name cannot forge lines.
std::string describe(const decoded_token& token);
std::string describe(const ntlm_message& message);
// "UNICODE|OEM|..." (the short form describe uses).
std::string describe_ntlm_flags(std::uint32_t flags);

// For the back-end: the NTLM AUTHENTICATE this token carries (raw or inside SPNEGO), or nullopt
// when it carries none, is malformed, or names a user the back-end must not act on: an empty
// (anonymous) user, a name whose UTF-16 had to be repaired, or a user/domain containing a control
// character (C0 or DEL, NUL included). The names are still client-chosen text: look them up in
// the directory, never splice them into files or commands.
std::optional<ntlm_message> find_ntlm_authenticate(std::span<const std::uint8_t> bytes);

// The name check of find_ntlm_authenticate, for a caller that decoded the token itself.
bool acceptable_ntlm_names(const ntlm_message& m);

// "krb5", "ntlmssp", ... for a dotted OID; the OID itself when it is not one of ours.
std::string mech_name(std::string_view dotted_oid);

}  // namespace exsim::auth
