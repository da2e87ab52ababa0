#include "exsim/proxy/owa.hpp"

#include <algorithm>
#include <stdexcept>

#include <boost/json.hpp>
#include <boost/url/grammar/hexdig_chars.hpp>
#include <fmt/format.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "exsim/common/html.hpp"
#include "exsim/proxy/request_checks.hpp"

// GCC 12 pairs the coroutine frame's delete with aligned_alloc inside Asio's own frame allocator
// and warns; both sides are Asio's awaitable_frame_base operators, so it is a false positive.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

namespace exsim::proxy::owa {

namespace json = boost::json;
using common::html_escape;
using net_awaitable = boost::asio::awaitable<page>;

// ---- pure parts -------------------------------------------------------------------------------

namespace {

// Decodes one name or value; false on a truncated or non-hex %XX.
bool form_decode(std::string_view in, std::string& out) {
    out.clear();
    for (std::size_t i = 0; i < in.size(); ++i) {
        if (in[i] == '+') out += ' ';
        else if (in[i] != '%') out += in[i];
        else {
            const int hi = i + 1 < in.size() ? boost::urls::grammar::hexdig_value(in[i + 1]) : -1;
            const int lo = i + 2 < in.size() ? boost::urls::grammar::hexdig_value(in[i + 2]) : -1;
            if (hi < 0 || lo < 0) return false;
            out += static_cast<char>(hi * 16 + lo);
            i += 2;
        }
    }
    return true;
}

bool unreserved(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
           c == '_' || c == '~';
}

}  // namespace

const std::string* form::find(std::string_view name) const {
    auto it = fields.find(name);
    return it == fields.end() ? nullptr : &it->second;
}

form decode_form(std::string_view encoded) {
    form f;
    std::string name, value;
    while (!encoded.empty()) {
        const auto amp = encoded.find('&');
        const std::string_view pair = encoded.substr(0, amp);
        encoded = amp == std::string_view::npos ? std::string_view{} : encoded.substr(amp + 1);
        if (pair.empty()) continue;
        const auto eq = pair.find('=');
        if (!form_decode(pair.substr(0, eq), name)) {
            f.error = "a field name has a bad percent-encoding";
            return f;
        }
        if (!form_decode(eq == std::string_view::npos ? std::string_view{} : pair.substr(eq + 1), value)) {
            f.error = fmt::format("field '{}': bad percent-encoding", name.substr(0, 64));
            return f;
        }
        f.fields.try_emplace(name, value);
    }
    return f;
}

std::string url_encode(std::string_view text) {
    std::string out;
    for (const char c : text) {
        if (unreserved(c)) out += c;
        else out += fmt::format("%{:02X}", static_cast<unsigned char>(c));
    }
    return out;
}

std::string cookie_value(std::string_view header, std::string_view name) {
    while (!header.empty()) {
        const auto semi = header.find(';');
        std::string_view item = header.substr(0, semi);
        header = semi == std::string_view::npos ? std::string_view{} : header.substr(semi + 1);
        while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
        const auto eq = item.find('=');
        if (eq != std::string_view::npos && item.substr(0, eq) == name) return std::string(item.substr(eq + 1));
    }
    return {};
}

// Secure even on the plain-HTTP listener (allow_insecure_http): browsers treat http://127.0.0.1
// and http://localhost as potentially trustworthy and keep the cookie there; on any other plain
// HTTP origin the login does not stick, which is the point of refusing clear text.
std::string session_cookie(std::string_view id) {
    return fmt::format("{}={}; Path=/owa/; HttpOnly; Secure; SameSite=Strict", cookie_name, id);
}

std::string cleared_cookie() {
    return fmt::format("{}=; Path=/owa/; Max-Age=0; HttpOnly; Secure; SameSite=Strict", cookie_name);
}

bool token_matches(std::string_view expected, std::string_view given) {
    return !expected.empty() && expected.size() == given.size() &&
           CRYPTO_memcmp(expected.data(), given.data(), expected.size()) == 0;
}

bool same_origin(std::string_view origin, std::string_view host) {
    if (origin.empty()) return true;
    return origin == fmt::format("https://{}", host) || origin == fmt::format("http://{}", host);
}

std::string random_hex(std::size_t bytes) {
    std::vector<unsigned char> buf(bytes);
    if (RAND_bytes(buf.data(), static_cast<int>(buf.size())) != 1)
        throw std::runtime_error("RAND_bytes failed: no random session id");
    std::string out;
    for (const auto b : buf) out += fmt::format("{:02x}", b);
    return out;
}

std::string render_banner(const banner& b) {
    std::string served = b.mailbox.empty()
                             ? std::string("no mailbox data on this page")
                             : fmt::format("served from mailbox <b>{}</b> as identity <b>{}</b>", html_escape(b.mailbox),
                                           html_escape(b.identity));
    return fmt::format(
        "<div id=\"banner\" class=\"banner {}\" data-user=\"{}\" data-mailbox=\"{}\" data-identity=\"{}\">"
        "<span>policy <b>{}</b></span><span>back-end <b>{}</b></span><span id=\"served\">{}</span>{}</div>\n",
        b.leak() ? "leak" : "ok", html_escape(b.user), html_escape(b.mailbox), html_escape(b.identity),
        html_escape(b.policy), html_escape(b.backend.empty() ? "-" : b.backend), served,
        b.leak() ? "<strong>LEAK: this is not your mailbox</strong>" : "");
}

// ---- sessions ---------------------------------------------------------------------------------

std::string session_store::create(std::string user, std::string password) {
    session s{std::move(user), std::move(password), random_hex(32), std::chrono::steady_clock::now() + idle_};
    auto id = random_hex(32);
    std::lock_guard lock(m_);
    const auto now = std::chrono::steady_clock::now();
    std::erase_if(sessions_, [&](const auto& kv) { return kv.second.expires <= now; });
    sessions_.emplace(id, std::move(s));
    return id;
}

std::optional<session> session_store::find(std::string_view id) {
    if (id.empty()) return std::nullopt;
    std::lock_guard lock(m_);
    auto it = sessions_.find(std::string(id));
    if (it == sessions_.end()) return std::nullopt;
    const auto now = std::chrono::steady_clock::now();
    if (it->second.expires <= now) {
        sessions_.erase(it);
        return std::nullopt;
    }
    it->second.expires = now + idle_;
    return it->second;
}

void session_store::erase(std::string_view id) {
    std::lock_guard lock(m_);
    sessions_.erase(std::string(id));
}

std::size_t session_store::size() {
    std::lock_guard lock(m_);
    return sessions_.size();
}

// ---- the site ---------------------------------------------------------------------------------

namespace {

constexpr std::string_view csp =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'";
constexpr std::string_view html_type = "text/html; charset=utf-8";

constexpr std::string_view owa_css = R"(body{font-family:Tahoma,Verdana,sans-serif;font-size:10pt;margin:0}
.banner{padding:.5em 1em;background:#dfeedd;border-bottom:3px solid #3a7d32;color:#1d3d19}
.banner.leak{background:#c62828;color:#fff;border-color:#7f0000}
.banner span{margin-right:1.5em}
.banner strong{font-size:13pt;margin-left:1em}
nav{padding:.4em 1em;background:#003399;color:#fff}
nav a{color:#fff;margin-right:1em}
nav form{display:inline;margin-left:1em}
main{padding:1em}
h1{font-size:14pt;color:#003399}
table{border-collapse:collapse}
td,th{padding:.2em .6em;border-bottom:1px solid #ccc;text-align:left}
td.leak{background:#c62828;color:#fff}
pre{white-space:pre-wrap;border:1px solid #ccc;padding:.5em}
.error{color:#b00020;font-weight:bold}
label{display:block;margin:.5em 0}
input[type=text],input[type=password],textarea{display:block;width:30em}
textarea{height:10em}
)";

// Reads the counters every second; textContent only, so nothing it shows is ever parsed as HTML.
constexpr std::string_view dashboard_js = R"("use strict";
const names = ["requests", "open", "pooled", "pinned", "kerberos", "ntlm", "cross_user_responses", "leak_guard_hits"];
async function refresh() {
  const status = document.getElementById("updated");
  try {
    const r = await fetch("/owa/dashboard/counters", {credentials: "same-origin", cache: "no-store"});
    if (!r.ok) throw new Error("HTTP " + r.status);
    const c = await r.json();
    for (const n of names) {
      const cell = document.getElementById(n);
      if (cell) cell.textContent = String(c[n]);
    }
    document.getElementById("cross_user_responses").classList.toggle("leak", c.cross_user_responses > 0);
    status.textContent = "updated " + new Date().toLocaleTimeString();
  } catch (e) {
    status.textContent = "update failed: " + e.message;
  }
}
refresh();
setInterval(refresh, 1000);
)";

void secure(page& p) {
    p.set("Content-Security-Policy", csp);
    p.set("X-Content-Type-Options", "nosniff");
    p.set(http::field::cache_control, "no-store");
    // same-origin, not no-referrer: under no-referrer Chromium sends "Origin: null" with a form
    // post, and the Origin check could no longer tell our own forms from an opaque origin's.
    // Other sites still get no referrer.
    p.set("Referrer-Policy", "same-origin");
    p.set(http::field::server, "exsim-proxy");
}

page make_page(http::status status, std::string body, std::string_view type = html_type) {
    page p{status, 11};
    p.set(http::field::content_type, type);
    secure(p);
    p.body() = std::move(body);
    return p;
}

page redirect(std::string_view location) {
    auto p = make_page(http::status::see_other, "");
    p.set(http::field::location, location);
    return p;
}

// The reason a back-end or the proxy gave for an error: the proxy's text, or the back-end's JSON
// {"reason": ...}.
std::string reason_of(const backend_reply& r) {
    if (!r.proxy_error.empty()) return r.proxy_error;
    std::error_code ec;
    auto v = json::parse(r.body, ec);
    if (!ec && v.is_object())
        if (const auto* reason = v.get_object().if_contains("reason"); reason && reason->is_string())
            return std::string(reason->get_string());
    return fmt::format("the back-end answered {}", r.status);
}

std::string string_of(const json::object& o, std::string_view key) {
    const auto* v = o.if_contains(key);
    return v && v->is_string() ? std::string(v->get_string()) : std::string();
}

std::string field_input(std::string_view name, std::string_view label, const form* values, bool multiline = false) {
    const std::string* v = values ? values->find(name) : nullptr;
    const std::string value = v ? html_escape(*v) : std::string();
    if (multiline)
        return fmt::format("<label>{}<textarea name=\"{}\">{}</textarea></label>", label, name, value);
    return fmt::format("<label>{}<input type=\"text\" name=\"{}\" value=\"{}\"></label>", label, name, value);
}

// Message ids are "<owner>.<n>"; anything else never reaches a back-end target: "." and ".." are
// unreserved characters only, but in a path they are dot segments, not a name.
bool valid_id(std::string_view id) {
    return !id.empty() && id.size() <= 128 && std::all_of(id.begin(), id.end(), unreserved) && id != "." && id != "..";
}

}  // namespace

struct site::call {
    request req;
    fetch_fn fetch;
    std::string session_id;
    std::optional<session> s;
    banner strip;

    // A whole page: banner, navigation (when logged in), content; `script` a path under /owa/static/.
    std::string layout(std::string_view title, std::string_view content, std::string_view script = {}) const {
        std::string nav;
        if (s)
            nav = fmt::format(
                "<nav><a href=\"/owa/inbox\">Inbox</a><a href=\"/owa/compose\">New message</a>"
                "<a href=\"/owa/dashboard\">Dashboard</a>Signed in as <b id=\"user\">{}</b>"
                "<form method=\"post\" action=\"/owa/auth/logoff\"><input type=\"hidden\" name=\"csrf\" value=\"{}\">"
                "<button type=\"submit\">Log off</button></form></nav>\n",
                html_escape(s->user), html_escape(s->csrf));
        return fmt::format(
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{} - exsim Outlook Web "
            "Access</title><link rel=\"stylesheet\" href=\"/owa/static/owa.css\"></head>\n<body>{}{}<main>{}</main>{}"
            "</body></html>\n",
            html_escape(title), render_banner(strip), nav, content,
            script.empty() ? "" : fmt::format("<script src=\"/owa/static/{}\"></script>", script));
    }

    page error(http::status status, std::string_view why) const {
        auto title = fmt::format("{} {}", static_cast<unsigned>(status), http::obsolete_reason(status));
        return make_page(status, layout(title, fmt::format("<h1>{}</h1><p class=\"error\" id=\"error\">{}</p>",
                                                           html_escape(title), html_escape(why))));
    }

    // Shows whose mailbox the back-end served on the banner.
    void saw(const backend_reply& r) {
        strip.backend = r.backend;
        strip.mailbox = r.mailbox;
        strip.identity = r.identity;
    }

    backend_call as_user(http::verb method, std::string target, std::string body = {}) const {
        return backend_call{method, std::move(target), std::move(body), s->user, s->password};
    }

    // An answer that carries no usable page: its status (4xx from the back-end, 5xx from the
    // proxy) and its reason.
    std::optional<page> failed(const backend_reply& r) const {
        if (r.status == 0 || r.status >= 400 || !r.proxy_error.empty())
            return error(static_cast<http::status>(r.status == 0 ? 502 : r.status), reason_of(r));
        if (r.truncated)
            return error(http::status::bad_gateway,
                         fmt::format("the back-end's answer was cut off or is larger than {} bytes", max_reply_bytes));
        return std::nullopt;
    }
};

site::site(const common::topology& topology, const common::user_index& users,
           std::function<std::vector<const worker_metrics*>()> metrics)
    : topology_(topology), users_(users), metrics_(std::move(metrics)) {}

// Routes one request. Every page but the logon form and the static files needs a session; the
// dashboard too (its counters show who is being served, which is for logged-in users only).
net_awaitable site::handle(request req, fetch_fn fetch) {
    call c;
    c.req = req;
    c.fetch = std::move(fetch);
    c.session_id = cookie_value(req.cookie, cookie_name);
    c.s = sessions_.find(c.session_id);
    c.strip.policy = topology_.frontend.policy;
    if (c.s) {
        c.strip.user = c.s->user;
        if (const auto* u = users_.find(c.s->user)) c.strip.backend = u->home;
    }
    const auto path = req.path;
    const bool get = req.method == http::verb::get || req.method == http::verb::head;
    const bool post = req.method == http::verb::post;
    auto only = [&](bool ok, std::string_view allow) -> std::optional<page> {
        if (ok) return std::nullopt;
        auto p = c.error(http::status::method_not_allowed, fmt::format("use {} on {}", allow, path));
        p.set(http::field::allow, allow);
        return p;
    };

    if (path == "/owa/static/owa.css" || path == "/owa/static/dashboard.js") {
        if (auto p = only(get, "GET")) co_return std::move(*p);
        const bool css = path.ends_with(".css");
        co_return make_page(http::status::ok, std::string(css ? owa_css : dashboard_js),
                            css ? "text/css; charset=utf-8" : "text/javascript; charset=utf-8");
    }
    if (post && !same_origin(req.origin, req.host))
        co_return c.error(http::status::forbidden,
                          fmt::format("cross-site form post refused (Origin {})", req.origin.substr(0, 100)));
    if (path == "/owa" || path == "/owa/") co_return redirect(c.s ? "/owa/inbox" : "/owa/auth/logon");
    if (path == "/owa/auth/logon") {
        if (auto p = only(get || post, "GET, POST")) co_return std::move(*p);
        co_return logon(c);
    }
    static constexpr std::string_view pages[] = {"/owa/auth/logoff", "/owa/inbox", "/owa/message", "/owa/compose",
                                                 "/owa/dashboard", "/owa/dashboard/counters"};
    if (std::find(std::begin(pages), std::end(pages), path) == std::end(pages))
        co_return c.error(http::status::not_found, fmt::format("no page {}", path));
    if (!c.s) {
        if (get && path != "/owa/dashboard/counters") co_return redirect("/owa/auth/logon");
        co_return c.error(http::status::unauthorized, "not logged in, or the session expired: log in again");
    }
    form posted;
    if (post) {
        posted = decode_form(req.body);
        if (!posted.error.empty()) co_return c.error(http::status::bad_request, posted.error);
        const auto* token = posted.find("csrf");
        if (!token || !token_matches(c.s->csrf, *token))
            co_return c.error(http::status::forbidden,
                              "the form's anti-CSRF token is missing or wrong: reload the page and try again");
    }
    if (path == "/owa/auth/logoff") {
        if (auto p = only(post, "POST")) co_return std::move(*p);
        co_return logoff(c);
    }
    if (path == "/owa/compose") {
        if (auto p = only(get || post, "GET, POST")) co_return std::move(*p);
        if (get) co_return compose_form(c, nullptr, {}, http::status::ok);
        co_return co_await send(c, posted);
    }
    if (auto p = only(get, "GET")) co_return std::move(*p);
    if (path == "/owa/inbox") co_return co_await inbox(c);
    if (path == "/owa/message") co_return co_await message(c);
    if (path == "/owa/dashboard") co_return dashboard(c);
    co_return counters(c);
}

page site::logon(call& c) {
    auto form_page = [&](http::status status, std::string_view error, std::string_view user) {
        return make_page(
            status,
            c.layout("Log on",
                     fmt::format("<h1>Outlook Web Access</h1>{}<form method=\"post\" action=\"/owa/auth/logon\">"
                                 "<label>User name<input type=\"text\" name=\"username\" value=\"{}\" "
                                 "autocomplete=\"username\"></label><label>Password<input type=\"password\" "
                                 "name=\"password\" autocomplete=\"current-password\"></label>"
                                 "<button type=\"submit\" id=\"logon\">Log on</button></form>",
                                 error.empty() ? "" : fmt::format("<p class=\"error\" id=\"error\">{}</p>", html_escape(error)),
                                 html_escape(user))));
    };
    if (c.req.method != http::verb::post) return form_page(http::status::ok, {}, {});
    // No CSRF token before there is a session: the Origin check and SameSite=Strict cover a
    // forged login.
    auto f = decode_form(c.req.body);
    if (!f.error.empty()) return form_page(http::status::bad_request, f.error, {});
    for (const auto* name : {"username", "password"})
        if (!f.find(name)) return form_page(http::status::bad_request, fmt::format("missing field '{}'", name), {});
    const auto* entry = check_login(users_, *f.find("username"), *f.find("password"));
    if (!entry) return form_page(http::status::unauthorized, "unknown user or wrong password", *f.find("username"));
    if (!c.session_id.empty()) sessions_.erase(c.session_id);  // a new id at every login: no fixation
    auto id = sessions_.create(entry->name, entry->password);
    auto p = redirect("/owa/inbox");
    p.set(http::field::set_cookie, session_cookie(id));
    return p;
}

page site::logoff(call& c) {
    sessions_.erase(c.session_id);
    auto p = redirect("/owa/auth/logon");
    p.set(http::field::set_cookie, cleared_cookie());
    return p;
}

// GET /exchange/: the mailbox of the identity the back-end authenticated: the path that leaks.
net_awaitable site::inbox(call& c) {
    auto r = co_await c.fetch(c.as_user(http::verb::get, "/exchange/"));
    c.saw(r);
    if (auto p = c.failed(r)) co_return std::move(*p);
    std::error_code ec;
    auto v = json::parse(r.body, ec);
    const json::array* messages = nullptr;
    if (!ec && v.is_object())
        if (auto* m = v.get_object().if_contains("messages"); m && m->is_array()) messages = &m->get_array();
    if (!messages) co_return c.error(http::status::bad_gateway, "the back-end's inbox is not a JSON mailbox list");
    std::string rows;
    for (const auto& m : *messages) {
        if (!m.is_object()) continue;
        const auto& o = m.get_object();
        const auto id = string_of(o, "id");
        rows += fmt::format(
            "<tr class=\"message\"><td>{}</td><td>{}</td><td><a href=\"/owa/message?id={}\">{}</a></td><td>{}</td></tr>\n",
            html_escape(string_of(o, "from")), html_escape(string_of(o, "to")), html_escape(url_encode(id)),
            html_escape(string_of(o, "subject")), html_escape(string_of(o, "date")));
    }
    co_return make_page(
        http::status::ok,
        c.layout("Inbox", fmt::format("<h1>Inbox of <span id=\"mailbox\">{}</span></h1>\n<table id=\"messages\">"
                                      "<tr><th>From</th><th>To</th><th>Subject</th><th>Date</th></tr>\n{}</table>",
                                      html_escape(r.mailbox), rows)));
}

net_awaitable site::message(call& c) {
    const auto q = decode_form(c.req.query);
    if (!q.error.empty()) co_return c.error(http::status::bad_request, q.error);
    const auto* id = q.find("id");
    if (!id) co_return c.error(http::status::bad_request, "missing field 'id'");
    if (!valid_id(*id))
        co_return c.error(http::status::bad_request, "field 'id': not a message id (letters, digits, '.', '-', '_')");
    auto r = co_await c.fetch(c.as_user(http::verb::get, fmt::format("/exchange/{}/Inbox/{}", c.s->user, *id)));
    c.saw(r);
    if (auto p = c.failed(r)) co_return std::move(*p);
    std::error_code ec;
    auto v = json::parse(r.body, ec);
    if (ec || !v.is_object()) co_return c.error(http::status::bad_gateway, "the back-end's message is not JSON");
    const auto& o = v.get_object();
    co_return make_page(
        http::status::ok,
        c.layout(string_of(o, "subject"),
                 fmt::format("<h1 id=\"subject\">{}</h1>\n<table><tr><th>From</th><td>{}</td></tr><tr><th>To</th>"
                             "<td>{}</td></tr><tr><th>Date</th><td>{}</td></tr><tr><th>Id</th><td>{}</td></tr></table>\n"
                             "<pre id=\"body\">{}</pre><p><a href=\"/owa/inbox\">Back to the inbox</a></p>",
                             html_escape(string_of(o, "subject")), html_escape(string_of(o, "from")),
                             html_escape(string_of(o, "to")), html_escape(string_of(o, "date")),
                             html_escape(string_of(o, "id")), html_escape(string_of(o, "body")))));
}

page site::compose_form(call& c, const form* values, std::string_view error, http::status status) {
    return make_page(
        status,
        c.layout("New message",
                 fmt::format("<h1>New message</h1>{}<form method=\"post\" action=\"/owa/compose\">"
                             "<input type=\"hidden\" name=\"csrf\" value=\"{}\">{}{}{}"
                             "<button type=\"submit\" id=\"send\">Send</button></form>",
                             error.empty() ? "" : fmt::format("<p class=\"error\" id=\"error\">{}</p>", html_escape(error)),
                             html_escape(c.s->csrf), field_input("to", "To", values),
                             field_input("subject", "Subject", values), field_input("body", "Message", values, true))));
}

// POST /exchange/<user>/Outbox/ with {"to","subject","body"}. An error shows the form again with
// what was typed: nothing is lost. Never retried (forward() retries no POST).
net_awaitable site::send(call& c, const form& f) {
    for (const auto* name : {"to", "subject", "body"})
        if (!f.find(name))
            co_return compose_form(c, &f, fmt::format("missing field '{}'", name), http::status::bad_request);
    json::object mail;
    mail["to"] = *f.find("to");
    mail["subject"] = *f.find("subject");
    mail["body"] = *f.find("body");
    auto r = co_await c.fetch(
        c.as_user(http::verb::post, fmt::format("/exchange/{}/Outbox/", c.s->user), json::serialize(mail)));
    c.saw(r);
    if (r.status == 0 || r.status >= 400 || !r.proxy_error.empty()) {
        const auto why = reason_of(r);
        co_return compose_form(c, &f, why, static_cast<http::status>(r.status == 0 ? 502 : r.status));
    }
    std::error_code ec;
    auto v = json::parse(r.body, ec);
    const std::string sent = !ec && v.is_object() ? string_of(v.get_object(), "sent") : std::string();
    co_return make_page(http::status::ok,
                        c.layout("Sent", fmt::format("<h1>Sent</h1><p id=\"sent\">Message {} sent from mailbox {} to {}."
                                                     "</p><p><a href=\"/owa/inbox\">Back to the inbox</a></p>",
                                                     html_escape(sent), html_escape(r.mailbox), html_escape(*f.find("to")))));
}

page site::dashboard(call& c) {
    static constexpr std::pair<std::string_view, std::string_view> rows[] = {
        {"requests", "client requests"},
        {"open", "back-end connections open"},
        {"pooled", "pooled (idle) connections"},
        {"pinned", "pinned connections"},
        {"kerberos", "Kerberos handshakes"},
        {"ntlm", "NTLM handshakes"},
        {"cross_user_responses", "responses from another user's mailbox (leaks)"},
        {"leak_guard_hits", "responses withheld by the leak guard"}};
    std::string table;
    for (const auto& [id, label] : rows)
        table += fmt::format("<tr><th>{}</th><td id=\"{}\">-</td></tr>\n", label, id);
    return make_page(http::status::ok,
                     c.layout("Dashboard",
                              fmt::format("<h1>Front-end counters</h1><table id=\"counters\">{}</table>"
                                          "<p id=\"updated\">waiting for the first update</p>",
                                          table),
                              "dashboard.js"));
}

page site::counters(call& c) {
    const auto w = metrics_();
    auto sum = [&](auto get) { return total(w, get); };
    using m = const worker_metrics&;
    json::object o;
    o["policy"] = topology_.frontend.policy;
    o["requests"] = sum([](m x) -> auto& { return x.requests; });
    o["open"] = sum([](m x) -> auto& { return x.open_connections; });
    o["pooled"] = sum([](m x) -> auto& { return x.idle_connections; });
    o["pinned"] = sum([](m x) -> auto& { return x.pinned_connections; });
    o["kerberos"] = sum([](m x) -> auto& { return x.handshakes[static_cast<std::size_t>(handshake_mechanism::kerberos)]; });
    o["ntlm"] = sum([](m x) -> auto& { return x.handshakes[static_cast<std::size_t>(handshake_mechanism::ntlm)]; });
    o["cross_user_responses"] = sum([](m x) -> auto& { return x.cross_user_responses; });
    o["leak_guard_hits"] = sum([](m x) -> auto& { return x.leak_guard_hits; });
    return make_page(http::status::ok, json::serialize(o), "application/json");
}

}  // namespace exsim::proxy::owa
