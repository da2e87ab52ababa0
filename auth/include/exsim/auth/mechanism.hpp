#pragma once
// One small interface for an authentication mechanism, with both sides:
//  - initiator: acts as a user towards a back-end (front-end, load generator, tests);
//  - acceptor:  verifies a user on the back-end.
// Both are driven token by token; the HTTP layer carries the tokens in
// `Authorization: <scheme> <base64>` and `WWW-Authenticate: <scheme> <base64>`.

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace exsim::auth {

// The HTTP auth-scheme: "Negotiate" carries SPNEGO (Kerberos, or NTLM as its fallback);
// "NTLM" carries raw NTLMSSP messages.
enum class scheme { negotiate, ntlm };
std::string_view scheme_name(scheme s);
std::optional<scheme> parse_scheme(std::string_view name);  // case-insensitive

// The mechanism that really authenticated. NTLM, whichever scheme carried it, authenticates
// the connection rather than the request (docs/design.md section 3).
enum class mechanism { none, kerberos, ntlm };
std::string_view mechanism_name(mechanism m);

enum class step_status { continue_needed, complete, failed };

struct step_result {
    step_status status = step_status::failed;
    std::vector<std::uint8_t> token;  // to send to the peer; may be empty
    std::string error;                // why, when failed
    bool kdc_unreachable = false;     // failed because no KDC answered (a passing outage, not a refusal)
};

class initiator {
public:
    virtual ~initiator() = default;
    virtual scheme http_scheme() const = 0;
    // First call with an empty input; then with each token the acceptor sent back.
    virtual step_result step(std::span<const std::uint8_t> input) = 0;
    // Known once the acceptor has answered (SPNEGO may fall back from Kerberos to NTLM).
    virtual mechanism negotiated() const = 0;
};

class acceptor {
public:
    virtual ~acceptor() = default;
    virtual step_result step(std::span<const std::uint8_t> input) = 0;
    // The authenticated user, as a directory name ("alice"), once step() returned complete.
    virtual const std::string& peer() const = 0;
    virtual mechanism negotiated() const = 0;
};

// What an initiator offers.
enum class initiator_mode {
    kerberos,   // Negotiate: SPNEGO narrowed to Kerberos, never falls back
    negotiate,  // Negotiate: SPNEGO with Kerberos first and NTLM as its fallback
    ntlm,       // NTLM: raw NTLMSSP
};
std::string_view mode_name(initiator_mode m);
std::optional<initiator_mode> parse_mode(std::string_view name);

}  // namespace exsim::auth
