// The browser view's decoding of what a browser sends (proxy/owa.hpp): forms and query strings
// (decode_form), the session cookie (cookie_value), the Origin check, and the site itself, whose
// pages are built from the form, the cookie and a back-end's JSON.
//
// Input: a flags byte, then fields separated by 0x1f: path (after "/owa", canonicalized as the
// session does), query, Cookie, Origin, body, the back-end's answer body. The flags: bit 0 POST
// (else GET), bits 1-3 the back-end's status (200, 200, 400, 403, 404, 500, 502, 0 = no answer).
// "{sid}" in the cookie and "{csrf}" in the body or query become the id and anti-CSRF token of a
// live session of alice's, so that the pages behind the login are reached.
//
// Beyond "no crash": a decoded form re-encodes (url_encode) to one that decodes to the same
// fields; a cookie value is a piece of the header; every page carries its security headers, a
// known status, and no tag or link the site does not write itself (whatever the form, cookie or
// back-end held is escaped); a redirect stays under /owa/; only a login or a logoff sets a
// cookie; and nothing reaches a back-end without a session, or as anyone but its user.

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include "exsim/common/topology.hpp"
#include "exsim/proxy/owa.hpp"
#include "exsim/proxy/request_checks.hpp"
#include "directory.hpp"
#include "fuzz_check.hpp"

namespace {

using namespace exsim;
using fuzz::directory;
using fuzz::users;
namespace net = boost::asio;
namespace http = boost::beast::http;
namespace owa = proxy::owa;

void check_form(std::string_view encoded) {
    const auto f = owa::decode_form(encoded);
    if (!f.error.empty()) return;
    std::string again;
    for (const auto& [name, value] : f.fields) {
        if (!again.empty()) again += '&';
        again += owa::url_encode(name) + '=' + owa::url_encode(value);
    }
    const auto g = owa::decode_form(again);
    EXSIM_FUZZ_CHECK(g.error.empty() && g.fields == f.fields);
}

void check_cookie(std::string_view header) {
    const auto value = owa::cookie_value(header, owa::cookie_name);
    if (value.empty()) return;
    EXSIM_FUZZ_CHECK(value.find(';') == std::string::npos);
    EXSIM_FUZZ_CHECK(header.find(std::string(owa::cookie_name) + '=' + value) != std::string_view::npos);
}

std::string replaced(std::string_view text, std::string_view what, std::string_view with) {
    std::string out(text);
    for (auto at = out.find(what); at != std::string::npos; at = out.find(what, at + with.size()))
        out.replace(at, what.size(), with);
    return out;
}

// Every tag the site writes itself; a page holding any other was given markup from outside.
bool known_tag(std::string_view name) {
    static constexpr std::string_view tags[] = {"!DOCTYPE", "html", "head", "meta", "title", "link", "body", "div",
                                                "span", "b", "strong", "nav", "a", "form", "input", "button", "main",
                                                "h1", "p", "table", "tr", "th", "td", "pre", "label", "textarea",
                                                "script"};
    for (const auto t : tags)
        if (name == t) return true;
    return false;
}

// The attributes of one tag, from just after its name to its '>': bare names and name="value"
// pairs, whose values are escaped (no quote inside). Every link, form target and source stays
// on the site. (Attributes are parsed, not searched for: a value may hold the text `src="`, as
// an escaped form field `to=bobsrc=` written back as value="bobsrc=" does.)
void check_attributes(std::string_view rest) {
    for (;;) {
        rest.remove_prefix(std::min(rest.find_first_not_of(" \n"), rest.size()));
        EXSIM_FUZZ_CHECK(!rest.empty());
        if (rest.front() == '>') return;
        const auto name_end = rest.find_first_of("= >\n");
        EXSIM_FUZZ_CHECK(name_end != 0 && name_end != std::string_view::npos);
        const auto name = rest.substr(0, name_end);
        rest.remove_prefix(name_end);
        if (!rest.starts_with('=')) continue;  // a bare attribute
        EXSIM_FUZZ_CHECK(rest.starts_with("=\""));
        const auto close = rest.find('"', 2);
        EXSIM_FUZZ_CHECK(close != std::string_view::npos);
        if (name == "href" || name == "action" || name == "src") EXSIM_FUZZ_CHECK(rest.substr(2).starts_with("/owa/"));
        rest.remove_prefix(close + 1);
    }
}

void check_markup(std::string_view body) {
    for (auto at = body.find('<'); at != std::string_view::npos; at = body.find('<', at + 1)) {
        auto rest = body.substr(at + 1);
        if (rest.starts_with('/')) rest.remove_prefix(1);
        const auto end = rest.find_first_of(" >\n");
        EXSIM_FUZZ_CHECK(end != std::string_view::npos && known_tag(rest.substr(0, end)));
        check_attributes(rest.substr(end));
    }
    // The one script: the dashboard's own file.
    if (const auto at = body.find("<script"); at != std::string_view::npos)
        EXSIM_FUZZ_CHECK(body.substr(at).starts_with("<script src=\"/owa/static/dashboard.js\"></script>"));
}

void check_page(const owa::page& p, const owa::request& req) {
    static constexpr unsigned statuses[] = {200, 303, 400, 401, 403, 404, 405, 500, 502};
    const unsigned status = p.result_int();
    EXSIM_FUZZ_CHECK(std::find(std::begin(statuses), std::end(statuses), status) != std::end(statuses));
    EXSIM_FUZZ_CHECK(!p["Content-Security-Policy"].empty() && p["X-Content-Type-Options"] == "nosniff");
    EXSIM_FUZZ_CHECK(p[http::field::cache_control] == "no-store");
    if (status == 303) EXSIM_FUZZ_CHECK(p[http::field::location].starts_with("/owa/"));
    if (p.count(http::field::set_cookie) != 0)
        EXSIM_FUZZ_CHECK(req.method == http::verb::post && (req.path == "/owa/auth/logon" || req.path == "/owa/auth/logoff"));
    if (p[http::field::content_type].starts_with("text/html")) check_markup(p.body());
}

constexpr std::array<unsigned, 8> backend_statuses{200, 200, 400, 403, 404, 500, 502, 0};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return 0;
    const std::uint8_t flags = data[0];
    std::array<std::string_view, 6> fields{};
    std::string_view rest(reinterpret_cast<const char*>(data + 1), size - 1);
    for (std::size_t i = 0; i < fields.size(); ++i) {
        const auto sep = i + 1 < fields.size() ? rest.find('\x1f') : std::string_view::npos;
        fields[i] = rest.substr(0, sep);
        rest = sep == std::string_view::npos ? std::string_view{} : rest.substr(sep + 1);
    }
    const std::string_view path = fields[0], query = fields[1], cookie = fields[2], origin = fields[3], body = fields[4],
                           reply_body = fields[5];

    check_form(body);
    check_form(query);
    check_cookie(cookie);
    EXSIM_FUZZ_CHECK(owa::same_origin({}, "exsim"));

    // As the session hands it over: a canonical path under /owa, a form no larger than the limit.
    const auto canonical = proxy::canonicalize_target("/owa" + std::string(path));
    if (!canonical.error.empty() || body.size() > owa::max_form_bytes) return 0;
    if (canonical.path != "/owa" && !canonical.path.starts_with("/owa/")) return 0;

    owa::site site(directory(), users(), [] { return std::vector<const proxy::worker_metrics*>{}; });
    const auto sid = site.sessions().create("alice", "alice-pw");
    const auto csrf = site.sessions().find(sid)->csrf;
    const auto cookie_text = replaced(cookie, "{sid}", sid);
    const auto body_text = replaced(body, "{csrf}", csrf);
    const auto query_text = replaced(query, "{csrf}", csrf);
    const bool logged_in = owa::cookie_value(cookie_text, owa::cookie_name) == sid;

    owa::request req{(flags & 1) ? http::verb::post : http::verb::get, canonical.path, query_text, cookie_text, origin,
                     "exsim", body_text};
    bool fetched = false;
    auto fetch = [&](owa::backend_call call) -> net::awaitable<owa::backend_reply> {
        EXSIM_FUZZ_CHECK(logged_in && !fetched);  // one back-end request per page, only with a session
        fetched = true;
        EXSIM_FUZZ_CHECK(call.user == "alice" && call.password == "alice-pw");
        EXSIM_FUZZ_CHECK(call.target == "/exchange/" || call.target.starts_with("/exchange/alice/"));
        EXSIM_FUZZ_CHECK(proxy::canonicalize_target(call.target).target == call.target);
        owa::backend_reply r;
        r.status = backend_statuses[(flags >> 1) & 7];
        r.backend = "be1";
        r.mailbox = "alice";
        r.identity = "alice";
        r.body = std::string(reply_body);
        if (r.status == 0) r.proxy_error = "the back-end did not answer";
        co_return r;
    };
    static net::io_context ioc;
    std::optional<owa::page> page;
    net::co_spawn(ioc, site.handle(req, fetch), [&](std::exception_ptr e, owa::page p) {
        EXSIM_FUZZ_CHECK(!e);
        page = std::move(p);
    });
    ioc.restart();
    ioc.run();
    EXSIM_FUZZ_CHECK(page.has_value());
    check_page(*page, req);
    return 0;
}
