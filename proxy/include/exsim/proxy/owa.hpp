#pragma once
// The browser view served by the front-end under /owa/ (docs/design.md section 5): an OWA-style forms
// login, an inbox, a message view, a compose form and a dashboard of live counters.
//
// Pages that show mailbox data never talk to a back-end themselves: they ask the client session
// for a back-end request (`fetch`), which runs it through the same forward() (exchange.cpp) as
// every other request (same pool, handshakes, policy, leak guard), as the logged-in user, and
// hands back the back-end's response instead of streaming it. So under `legacy` + NTLM bob's
// inbox page shows alice's mailbox, and its banner says so in red.
//
// Every page: a strict Content-Security-Policy (no inline script or style; the MS04-013 lesson),
// nosniff, no-store, no referrer to other sites; every string from the back-end or the user
// HTML-escaped; every POST but the login carries an anti-CSRF token bound to the session, and a
// cross-site Origin is refused.

#include <chrono>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/verb.hpp>

#include "exsim/common/topology.hpp"
#include "exsim/proxy/metrics.hpp"

namespace exsim::proxy::owa {

namespace http = boost::beast::http;

constexpr std::string_view cookie_name = "exsim_session";
constexpr std::size_t max_form_bytes = 64 * 1024;         // a POSTed form (413 beyond)
constexpr std::size_t max_reply_bytes = 1024 * 1024;      // a back-end response kept for a page
constexpr std::chrono::minutes session_idle_timeout{20};  // as OWA 2003's private-computer default

// ---- pure parts -------------------------------------------------------------------------------

// application/x-www-form-urlencoded (a POSTed form or a query string): '+' is a space, %XX a
// byte. `error` names the field whose encoding is malformed ("field 'to': bad percent-encoding");
// a field given twice keeps its first value.
struct form {
    std::map<std::string, std::string, std::less<>> fields;
    std::string error;
    const std::string* find(std::string_view name) const;
};
form decode_form(std::string_view encoded);

// Percent-encodes all but RFC 3986 unreserved characters, for a query value in a link.
std::string url_encode(std::string_view text);

// The value of cookie `name` in a Cookie header ("a=1; exsim_session=..."); empty when absent.
std::string cookie_value(std::string_view cookie_header, std::string_view name);

// Set-Cookie values for a session id, and for logging out.
std::string session_cookie(std::string_view id);
std::string cleared_cookie();

// Constant-time comparison of a session's CSRF token with the one a form carried.
bool token_matches(std::string_view expected, std::string_view given);

// Whether a request's Origin header may post to us: absent (older browsers; SameSite=Strict and
// the CSRF token still hold), or the scheme://host of the request itself. "null" is refused.
bool same_origin(std::string_view origin, std::string_view host);

// `bytes` random bytes from OpenSSL's RAND_bytes, as lower-case hex. Throws if it fails.
std::string random_hex(std::size_t bytes);

// The strip on every page: who serves what. `mailbox` and `identity` come from the back-end's
// X-Exsim-Mailbox / X-Exsim-Identity; empty on pages that showed no mailbox data.
struct banner {
    std::string policy;
    std::string backend;
    std::string user;      // the logged-in user (empty before login)
    std::string mailbox;
    std::string identity;
    // Red: the page shows a mailbox that is not the logged-in user's.
    bool leak() const { return !mailbox.empty() && mailbox != user; }
};
std::string render_banner(const banner& b);

// ---- sessions ---------------------------------------------------------------------------------

struct session {
    std::string user;
    // The directory password: the front-end authenticates to the back-end as the user with it,
    // as Exchange 2003 did after a forms login.
    std::string password;
    std::string csrf;
    std::chrono::steady_clock::time_point expires;
};

// Server-wide (a client's next request may land on another worker): one mutex, held only for a
// map look-up.
class session_store {
public:
    explicit session_store(std::chrono::steady_clock::duration idle = session_idle_timeout) : idle_(idle) {}
    std::string create(std::string user, std::string password);  // returns the new id
    // A copy of the live session `id`, its idle timer restarted; nullopt when unknown or expired.
    std::optional<session> find(std::string_view id);
    void erase(std::string_view id);
    std::size_t size();

private:
    std::chrono::steady_clock::duration idle_;
    std::mutex m_;
    std::unordered_map<std::string, session> sessions_;
};

// ---- the site ---------------------------------------------------------------------------------

struct request {
    http::verb method = http::verb::get;
    std::string_view path;   // canonical, starts with /owa
    std::string_view query;  // without '?'
    std::string_view cookie;
    std::string_view origin;
    std::string_view host;
    std::string_view body;   // a form, complete (the caller enforces max_form_bytes)
};

// A request for the back-end, run as `user` through the proxy's forward path.
struct backend_call {
    http::verb method = http::verb::get;
    std::string target;
    std::string body;  // JSON, for a POST
    std::string user;
    std::string password;
};

// What came back: the back-end's final response, or the proxy's own error answer (status >= 500
// with `proxy_error`) when none could be had.
struct backend_reply {
    unsigned status = 0;
    std::string backend;
    std::string mailbox;   // X-Exsim-Mailbox
    std::string identity;  // X-Exsim-Identity
    std::string body;
    bool truncated = false;  // the body was larger than max_reply_bytes
    std::string proxy_error;
};

using page = http::response<http::string_body>;
using fetch_fn = std::function<boost::asio::awaitable<backend_reply>(backend_call)>;

class site {
public:
    site(const common::topology& topology, const common::user_index& users,
         std::function<std::vector<const worker_metrics*>()> metrics);

    // Serves one /owa/ request. The caller sets the version and keep-alive and writes it.
    boost::asio::awaitable<page> handle(request req, fetch_fn fetch);

    session_store& sessions() { return sessions_; }

private:
    struct call;
    boost::asio::awaitable<page> inbox(call& c);
    boost::asio::awaitable<page> message(call& c);
    boost::asio::awaitable<page> send(call& c, const form& f);
    page logon(call& c);
    page logoff(call& c);
    page compose_form(call& c, const form* values, std::string_view error, http::status status);
    page dashboard(call& c);
    page counters(call& c);

    const common::topology& topology_;
    const common::user_index& users_;
    std::function<std::vector<const worker_metrics*>()> metrics_;
    session_store sessions_;
};

}  // namespace exsim::proxy::owa
