#include "exsim/backend_sim/mailbox_api.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <cstdio>
#include <ctime>
#include <optional>
#include <utility>

#include <boost/json.hpp>

#include "exsim/common/audit_record.hpp"

namespace exsim::backend {

namespace http = boost::beast::http;
namespace json = boost::json;

namespace {

// Works whether beast::string_view is boost's or std's (BOOST_BEAST_USE_STD_STRING_VIEW).
std::string_view to_sv(boost::beast::string_view s) noexcept { return {s.data(), s.size()}; }

constexpr std::string_view server_header = "Microsoft-IIS/6.0";
constexpr std::string_view json_type = "application/json; charset=utf-8";
constexpr std::string_view html_type = "text/html; charset=utf-8";
// Message content is attacker-controlled (anyone can send alice a subject): no script, no
// external anything; inline styles only for our own page layout.
constexpr std::string_view mailbox_csp = "default-src 'none'; style-src 'unsafe-inline'";
constexpr std::string_view on_behalf_of_header = "X-Exsim-On-Behalf-Of";
constexpr std::size_t max_audit_path = 1024;
constexpr std::size_t max_audit_on_behalf_of = 256;
constexpr std::size_t max_echo = 64;  // bytes of client input quoted back in an error

std::string truncated(std::string_view s, std::size_t max) {
    return std::string(s.substr(0, std::min(s.size(), max)));
}

bool starts_with_segment(std::string_view path, std::string_view prefix) {
    return path == prefix ||
           (path.size() > prefix.size() && path.starts_with(prefix) && path[prefix.size()] == '/');
}

// Paths reach us canonical from the server; anything else is refused rather than interpreted
// (MS04-013: canonicalize before you route or authorize). Accepted: '/' followed by segments of
// RFC 3986 unreserved characters, no empty segment except a trailing slash, no "." or "..".
// That also refuses '%' (no second decoding), '\\', ';', controls and non-ASCII.
bool canonical_path(std::string_view p) {
    if (p.empty() || p.front() != '/') return false;
    for (const char ch : p) {
        const auto c = static_cast<unsigned char>(ch);
        const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                        c == '-' || c == '.' || c == '_' || c == '~' || c == '/';
        if (!ok) return false;
    }
    std::size_t start = 1;
    while (start <= p.size()) {
        const std::size_t end = std::min(p.find('/', start), p.size());
        const std::string_view seg = p.substr(start, end - start);
        const bool last = end == p.size();
        if (seg.empty() && !last) return false;
        if (seg == "." || seg == "..") return false;
        start = end + 1;
    }
    return true;
}

std::vector<std::string_view> split_segments(std::string_view rest) {
    std::vector<std::string_view> out;
    while (!rest.empty() && rest.front() == '/') rest.remove_prefix(1);
    if (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
    while (!rest.empty()) {
        const auto slash = rest.find('/');
        out.push_back(rest.substr(0, slash));
        if (slash == std::string_view::npos) break;
        rest.remove_prefix(slash + 1);
    }
    return out;
}

// Value of `key` in an a=b&c=d query; nullopt when absent.
std::optional<std::string_view> query_param(std::string_view query, std::string_view key) {
    while (!query.empty()) {
        const auto amp = query.find('&');
        const std::string_view pair = query.substr(0, amp);
        const auto eq = pair.find('=');
        if (pair.substr(0, eq) == key) {
            return eq == std::string_view::npos ? std::string_view{} : pair.substr(eq + 1);
        }
        if (amp == std::string_view::npos) break;
        query.remove_prefix(amp + 1);
    }
    return std::nullopt;
}

// Decimal digits only, at most 18 of them.
std::optional<std::uint64_t> parse_count(std::string_view s) {
    if (s.empty() || s.size() > 18) return std::nullopt;
    std::uint64_t v = 0;
    const auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc{} || ptr != s.data() + s.size()) return std::nullopt;
    return v;
}

// "<owner>.<n>" with a non-empty owner and 1..18 digits.
bool valid_message_id(std::string_view id) {
    const auto owner = owner_of_message_id(id);
    if (owner.empty()) return false;
    return parse_count(id.substr(owner.size() + 1)).has_value();
}

// Folder path segments and the store folders they name.
struct folder_segment {
    std::string_view segment;
    std::string_view store_folder;  // empty for Outbox (not a stored folder: POST only)
};
constexpr std::array<folder_segment, 3> folder_segments{{
    {"Inbox", inbox_folder},
    {"Sent", sent_items_folder},
    {"Outbox", {}},
}};

const folder_segment* find_folder(std::string_view seg) {
    for (const auto& f : folder_segments) {
        if (f.segment == seg) return &f;
    }
    return nullptr;
}

// ---- static content (/exchweb/) -------------------------------------------------------------

struct static_page {
    std::string_view path;
    std::string_view content_type;
    std::string_view body;
};

constexpr std::string_view index_html =
    "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
    "<title>Microsoft Outlook Web Access</title>"
    "<link rel=\"stylesheet\" href=\"/exchweb/owa.css\"></head>\n"
    "<body><h1>Outlook Web Access</h1>"
    "<p>exsim back-end: static content served without authentication, as /exchweb/ was.</p>"
    "</body></html>\n";
constexpr std::string_view owa_css =
    "body{font-family:Tahoma,Verdana,sans-serif;font-size:10pt;margin:1em}\n"
    "h1{font-size:14pt;color:#003399}\n"
    "table{border-collapse:collapse}td,th{padding:.2em .6em;border-bottom:1px solid #ccc}\n";
constexpr std::string_view owa_js =
    "// exsim: a stand-in for OWA's client script; it does nothing.\n"
    "(function(){\"use strict\";})();\n";
constexpr std::string_view version_json =
    "{\"product\":\"exsim\",\"emulates\":\"Exchange Server 2003 Outlook Web Access\","
    "\"exprox\":\"6.5.6980.57\"}\n";
constexpr std::string_view blob_line =
    "exsim static payload 0123456789 abcdefghijklmnopqrstuvwxyz ----\n";  // 64 bytes

constexpr std::array<static_page, 6> static_pages{{
    {"/exchweb", "text/html; charset=utf-8", index_html},
    {"/exchweb/index.html", "text/html; charset=utf-8", index_html},
    {"/exchweb/owa.css", "text/css; charset=utf-8", owa_css},
    {"/exchweb/owa.js", "application/javascript; charset=utf-8", owa_js},
    {"/exchweb/version.json", "application/json; charset=utf-8", version_json},
    {"/exchweb/blob", "application/octet-stream", blob_line},
}};
constexpr std::size_t default_blob_size = 4096;

// `base` repeated and cut to exactly `size` bytes.
std::string repeat_to(std::string_view base, std::size_t size) {
    std::string out;
    out.reserve(size);
    while (out.size() < size) out.append(base.substr(0, std::min(base.size(), size - out.size())));
    return out;
}

// ---- HTML -------------------------------------------------------------------------------------

std::string html_page(std::string_view title, std::string_view body) {
    std::string out;
    out.reserve(512 + title.size() + body.size());
    out += "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>";
    out += html_escape(title);
    out += "</title><style>body{font-family:Tahoma,Verdana,sans-serif;margin:1em}"
           "table{border-collapse:collapse}td,th{padding:.2em .6em;border-bottom:1px solid #ccc;"
           "text-align:left}pre{white-space:pre-wrap}</style></head>\n<body>";
    out += body;
    out += "</body></html>\n";
    return out;
}

// q of the most specific range in `accept` matching type/subtype; 0 when none matches.
double accept_quality(std::string_view accept, std::string_view type, std::string_view subtype) {
    auto trim = [](std::string_view s) {
        while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
        while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
        return s;
    };
    auto iequal = [](std::string_view a, std::string_view b) {
        return a.size() == b.size() &&
               std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
                   return (x | 0x20) == (y | 0x20);
               });
    };
    int best_specificity = -1;
    double best_q = 0.0;
    while (!accept.empty()) {
        const auto comma = accept.find(',');
        std::string_view item = accept.substr(0, comma);
        accept = comma == std::string_view::npos ? std::string_view{} : accept.substr(comma + 1);

        const auto semi = item.find(';');
        const std::string_view range = trim(item.substr(0, semi));
        double q = 1.0;
        if (semi != std::string_view::npos) {
            std::string_view params = item.substr(semi + 1);
            while (!params.empty()) {
                const auto next = params.find(';');
                const std::string_view p = trim(params.substr(0, next));
                if (p.size() > 2 && (p[0] == 'q' || p[0] == 'Q') && p[1] == '=') {
                    double v = 0.0;
                    const auto [ptr, ec] = std::from_chars(p.data() + 2, p.data() + p.size(), v);
                    q = (ec == std::errc{} && ptr == p.data() + p.size()) ? std::clamp(v, 0.0, 1.0)
                                                                         : 0.0;
                }
                if (next == std::string_view::npos) break;
                params.remove_prefix(next + 1);
            }
        }
        const auto slash = range.find('/');
        if (slash == std::string_view::npos) continue;
        const std::string_view t = range.substr(0, slash);
        const std::string_view s = range.substr(slash + 1);
        int specificity = -1;
        if (iequal(t, type) && iequal(s, subtype)) {
            specificity = 2;
        } else if (iequal(t, type) && s == "*") {
            specificity = 1;
        } else if (t == "*" && s == "*") {
            specificity = 0;
        }
        if (specificity > best_specificity) {
            best_specificity = specificity;
            best_q = q;
        }
    }
    return best_q;
}

// What the API serves on some resource; any other method is 501.
constexpr std::string_view implemented_methods = "GET, HEAD, POST, DELETE";
bool implemented(http::verb method) {
    return method == http::verb::get || method == http::verb::head || method == http::verb::post ||
           method == http::verb::delete_;
}

}  // namespace

bool prefers_html(std::string_view accept) {
    if (accept.empty()) return false;
    return accept_quality(accept, "text", "html") > accept_quality(accept, "application", "json");
}

// ---------------------------------------------------------------------------------------------

// One request in progress: what the router learnt so far and the audit line being built.
struct mailbox_api::call {
    call(const request& r, const request_context& x) : req(r), ctx(x) {}

    const request& req;
    const request_context& ctx;
    std::string_view path;
    std::string_view query;
    bool html = false;
    bool audited = true;     // false for anonymous static content
    bool explicit_mailbox = false;
    std::string mailbox;     // served, touched or addressed; empty until known
    const folder_segment* folder = nullptr;
    std::string_view id;
    audit_record audit;
    std::string allow;       // for 405

    // Error response: a short reason, as JSON or HTML. Sets the audit op.
    response error(http::status status, std::string_view op, std::string_view reason) {
        audit.op = op;
        response res{status, req.version()};
        if (html) {
            const std::string title = std::to_string(static_cast<unsigned>(status)) + " " +
                                      std::string(http::obsolete_reason(status));
            res.set(http::field::content_type, html_type);
            res.body() = html_page(title, "<h1>" + html_escape(title) + "</h1><p>" +
                                              html_escape(reason) + "</p>");
        } else {
            json::object o;
            o["status"] = static_cast<unsigned>(status);
            o["error"] = to_sv(http::obsolete_reason(status));
            o["reason"] = reason;
            res.set(http::field::content_type, json_type);
            res.body() = json::serialize(o);
        }
        return res;
    }

    // RFC 9110 9.1: a method that no resource here implements is 501; 405 (with Allow) is for a
    // method some resource implements, but not the one asked for.
    response not_implemented() {
        return error(http::status::not_implemented, "not_implemented",
                     "method " + truncated(to_sv(req.method_string()), max_echo) +
                         " is not implemented here; the mailbox API implements " + std::string(implemented_methods));
    }

    response ok(std::string_view op, const json::object& o, std::string_view title,
                std::string_view html_body) {
        audit.op = op;
        response res{http::status::ok, req.version()};
        if (html) {
            res.set(http::field::content_type, html_type);
            res.body() = html_page(title, html_body);
        } else {
            res.set(http::field::content_type, json_type);
            res.body() = json::serialize(o);
        }
        return res;
    }

    response store_failure(std::error_code ec) {
        if (ec == store_errc::busy) {
            auto res = error(http::status::service_unavailable, "error", "mailbox store busy");
            res.set(http::field::retry_after, "1");
            return res;
        }
        return error(http::status::internal_server_error, "error", "mailbox store error");
    }

    // What a route under /exchange/ asks for.
    enum class operation { list, item, send };
    operation kind = operation::list;

    // Reads "[mailbox/][folder[/id]]" (after /exchange/) into mailbox, folder, id and kind; the
    // error to answer when the path names no resource.
    std::optional<response> route(const std::vector<std::string_view>& segments) {
        std::size_t i = 0;
        if (!segments.empty() && find_folder(segments[0]) == nullptr) {
            explicit_mailbox = true;
            mailbox = std::string(segments[0]);
            i = 1;
        } else {
            mailbox = ctx.identity;
        }
        const std::size_t n = segments.size() - i;
        if (n == 0) {
            folder = &folder_segments[0];  // the mailbox itself: its Inbox
            return std::nullopt;
        }
        folder = find_folder(segments[i]);
        if (folder == nullptr) return error(http::status::not_found, "not_found", "no such folder");
        const bool outbox = folder->store_folder.empty();
        if (n == 1) {
            kind = outbox ? operation::send : operation::list;
        } else if (n == 2 && !outbox) {
            kind = operation::item;
            id = segments[i + 1];
        } else {
            return error(http::status::not_found, "not_found", "no such resource");
        }
        return std::nullopt;
    }

    // The methods the routed resource allows (kept in `allow` for a 405); the 405 when the
    // request's is not one of them. HEAD is GET without the body (RFC 9110 9.3.2): the server
    // drops the body and keeps its length.
    std::optional<response> check_method() {
        const http::verb method = req.method();
        const bool read = method == http::verb::get || method == http::verb::head;
        bool allowed = false;
        switch (kind) {
            case operation::list: allowed = read; allow = "GET, HEAD"; break;
            case operation::item:
                allowed = read || method == http::verb::delete_;
                allow = "GET, HEAD, DELETE";
                break;
            case operation::send: allowed = method == http::verb::post; allow = "POST"; break;
        }
        if (allowed) return std::nullopt;
        return error(http::status::method_not_allowed, "method_not_allowed",
                     "method not allowed on this resource");
    }

    // A message that is not in the mailbox asked for, whether its id names another owner or
    // the store has no such row: the same 404 either way, so that one reveals nothing.
    response no_such_message() {
        return error(http::status::not_found, "not_found", "no such message in this mailbox");
    }

    // What reading or deleting one message answers when the store refuses.
    response message_failure(std::error_code ec) {
        return ec == store_errc::not_found ? no_such_message() : store_failure(ec);
    }

    // "/exchange/Inbox/" or "/exchange/alice/Inbox/": links follow the style of the request.
    std::string folder_url(std::string_view segment) const {
        std::string url = "/exchange/";
        if (explicit_mailbox) {
            url += mailbox;
            url += '/';
        }
        url += segment;
        url += '/';
        return url;
    }
};

mailbox_api::mailbox_api(const common::topology& topo, std::string backend_name,
                         mailbox_store& store, audit_log& audit, api_limits limits)
    : backend_(std::move(backend_name)), store_(store), audit_(audit), limits_(limits) {
    // A private index, so that a lookup is O(log n) for generated topologies and this library
    // does not depend on topology's out-of-line functions.
    for (const auto& u : topo.users) {
        mailboxes_[u.name] = mailbox_info{u.home, u.delegates};
    }
}

const mailbox_api::mailbox_info* mailbox_api::find_mailbox(std::string_view name) const {
    const auto it = mailboxes_.find(name);
    return it == mailboxes_.end() ? nullptr : &it->second;
}

bool mailbox_api::may_open(std::string_view identity, std::string_view mailbox) const {
    if (identity.empty()) return false;
    if (identity == mailbox) return true;
    const auto* info = find_mailbox(mailbox);
    if (info == nullptr) return false;
    return std::find(info->delegates.begin(), info->delegates.end(), identity) !=
           info->delegates.end();
}

// Inputs: the parsed request and what the server established about it.
// Returns: the response; never throws for client input. Order of checks:
//   400 path not canonical -> /exchweb/ (anonymous) -> 401 no identity -> 501 method -> 404 not /exchange ->
//   handle_mailbox (404 route, 405 method, 404 mailbox, 403 authorization, operation).
mailbox_api::response mailbox_api::handle(const request& req, const request_context& ctx) {
    call c(req, ctx);
    const std::string_view target = to_sv(req.target());
    const auto qmark = target.find('?');
    c.path = target.substr(0, qmark);
    c.query = qmark == std::string_view::npos ? std::string_view{} : target.substr(qmark + 1);
    c.html = prefers_html(to_sv(req[http::field::accept]));

    c.audit.backend = backend_;
    c.audit.conn = ctx.connection_id;
    c.audit.identity = ctx.identity;
    c.audit.mechanism = ctx.mechanism;
    c.audit.auth = ctx.identity.empty() ? "" : ctx.fresh_auth ? "request" : "connection";
    c.audit.method = std::string(to_sv(req.method_string()));
    c.audit.path = truncated(target, max_audit_path);
    c.audit.on_behalf_of = truncated(to_sv(req[on_behalf_of_header]), max_audit_on_behalf_of);

    if (!canonical_path(c.path)) {
        return finish(c, c.error(http::status::bad_request, "bad_request",
                                 "request path is not canonical"));
    }
    if (starts_with_segment(c.path, "/exchweb")) {
        c.audited = false;
        return handle_static(c);
    }
    if (ctx.identity.empty()) {
        // The server answers anonymous requests with its own 401 and WWW-Authenticate lines;
        // this is only the last line of defence.
        return finish(c, c.error(http::status::unauthorized, "unauthenticated",
                                 "authentication required"));
    }
    if (!implemented(req.method())) return finish(c, c.not_implemented());
    if (!starts_with_segment(c.path, "/exchange")) {
        return finish(c, c.error(http::status::not_found, "not_found", "no such resource"));
    }
    return handle_mailbox(c);
}

mailbox_api::response mailbox_api::handle_static(call& c) {
    const static_page* page = nullptr;
    const std::string_view path = c.path == "/exchweb/" ? std::string_view("/exchweb") : c.path;
    for (const auto& p : static_pages) {
        if (p.path == path) page = &p;
    }
    if (!implemented(c.req.method())) return finish(c, c.not_implemented());
    if (page == nullptr) {
        return finish(c, c.error(http::status::not_found, "not_found", "no such page"));
    }
    if (c.req.method() != http::verb::get && c.req.method() != http::verb::head) {
        c.allow = "GET, HEAD";
        return finish(c, c.error(http::status::method_not_allowed, "method_not_allowed",
                                 "method not allowed"));
    }
    std::size_t size = page->path == "/exchweb/blob" ? default_blob_size : page->body.size();
    if (const auto v = query_param(c.query, "size")) {
        const auto n = parse_count(*v);
        if (!n) {
            return finish(c, c.error(http::status::bad_request, "bad_request",
                                     "size must be a number of bytes"));
        }
        size = static_cast<std::size_t>(std::min<std::uint64_t>(*n, limits_.max_static));
    }
    response res{http::status::ok, c.req.version()};
    res.set(http::field::content_type, page->content_type);
    if (page->content_type.starts_with("text/html")) {
        res.set("Content-Security-Policy",
                "default-src 'none'; style-src 'self' 'unsafe-inline'");
    }
    res.body() = size == page->body.size() ? std::string(page->body) : repeat_to(page->body, size);
    return finish(c, std::move(res));
}

mailbox_api::response mailbox_api::handle_mailbox(call& c) {
    const std::string& identity = c.ctx.identity;
    const auto segments = split_segments(c.path.substr(std::string_view("/exchange").size()));

    // 1. The route's shape: which mailbox, which folder, which message; 2. the method for it.
    if (auto refused = c.route(segments)) return finish(c, std::move(*refused));
    if (auto refused = c.check_method()) return finish(c, std::move(*refused));

    // 3. The mailbox must live here.
    const mailbox_info* info = find_mailbox(c.mailbox);
    if (info == nullptr) {
        return finish(c, c.error(http::status::not_found, "not_found", "no such mailbox"));
    }
    if (info->home != backend_) {
        return finish(c, c.error(http::status::not_found, "not_found",
                                 "mailbox not on this back-end"));
    }

    // 4. Authorization (MS02-011): having authenticated `identity` says nothing about which
    // mailbox it may open. The implicit mailbox is the identity's own by construction.
    if (!may_open(identity, c.mailbox)) {
        return finish(c, c.error(http::status::forbidden, "denied",
                                 identity + " may not open the mailbox of " + c.mailbox));
    }

    // 5. A message id names its owner: one of another mailbox is simply not in this one, and
    // never reaches the store.
    using op = call::operation;
    if (c.kind == op::item) {
        c.audit.message = truncated(c.id, max_echo);
        if (!valid_message_id(c.id) || owner_of_message_id(c.id) != c.mailbox) {
            return finish(c, c.no_such_message());
        }
    }

    switch (c.kind) {
        case op::list: return do_list(c);
        case op::send: return do_send(c);
        case op::item: break;
    }
    return c.req.method() == http::verb::delete_ ? do_delete(c) : do_read(c);
}

mailbox_api::response mailbox_api::do_list(call& c) {
    std::size_t limit = limits_.default_list;
    if (const auto v = query_param(c.query, "limit")) {
        const auto n = parse_count(*v);
        if (!n || *n == 0 || *n > limits_.max_list) {
            return finish(c, c.error(http::status::bad_request, "bad_request",
                                     "limit must be 1.." + std::to_string(limits_.max_list)));
        }
        limit = static_cast<std::size_t>(*n);
    }
    std::vector<message> messages;
    if (auto ec = store_.list(c.mailbox, c.folder->store_folder, limit, messages)) {
        return finish(c, c.store_failure(ec));
    }

    json::object o;
    o["mailbox"] = c.mailbox;
    o["folder"] = c.folder->store_folder;
    json::array arr;
    arr.reserve(messages.size());
    for (const auto& m : messages) {
        json::object item;
        item["id"] = m.id;
        item["from"] = m.from;
        item["to"] = m.to;
        item["subject"] = m.subject;
        item["date"] = common::iso8601_utc(m.created_ms);
        arr.push_back(std::move(item));
    }
    o["messages"] = std::move(arr);

    std::string body;
    const std::string title = c.mailbox + ": " + std::string(c.folder->store_folder);
    if (c.html) {
        const std::string base = c.folder_url(c.folder->segment);
        body += "<h1>" + html_escape(title) + "</h1><p>Signed in as " +
                html_escape(c.ctx.identity) + "</p>\n<table><tr><th>From</th><th>To</th>"
                "<th>Subject</th><th>Date</th></tr>\n";
        for (const auto& m : messages) {
            body += "<tr><td>" + html_escape(m.from) + "</td><td>" + html_escape(m.to) +
                    "</td><td><a href=\"" + html_escape(base + m.id) + "\">" +
                    html_escape(m.subject) + "</a></td><td>" + common::iso8601_utc(m.created_ms) +
                    "</td></tr>\n";
        }
        body += "</table>";
    }
    return finish(c, c.ok("list", o, title, body));
}

mailbox_api::response mailbox_api::do_read(call& c) {
    message m;
    if (auto ec = store_.get(c.mailbox, c.folder->store_folder, c.id, m)) {
        return finish(c, c.message_failure(ec));
    }
    json::object o;
    o["id"] = m.id;
    o["mailbox"] = m.owner;
    o["folder"] = m.folder;
    o["from"] = m.from;
    o["to"] = m.to;
    o["subject"] = m.subject;
    o["date"] = common::iso8601_utc(m.created_ms);
    o["body"] = m.body;

    std::string body;
    if (c.html) {
        body = "<h1>" + html_escape(m.subject) + "</h1>\n<table>"
               "<tr><th>From</th><td>" + html_escape(m.from) + "</td></tr>"
               "<tr><th>To</th><td>" + html_escape(m.to) + "</td></tr>"
               "<tr><th>Date</th><td>" + common::iso8601_utc(m.created_ms) + "</td></tr>"
               "<tr><th>Id</th><td>" + html_escape(m.id) + "</td></tr></table>\n<pre>" +
               html_escape(m.body) + "</pre>\n<p><a href=\"" +
               html_escape(c.folder_url(c.folder->segment)) + "\">Back to " +
               html_escape(m.folder) + "</a></p>";
    }
    return finish(c, c.ok("read", o, m.subject, body));
}

mailbox_api::response mailbox_api::do_delete(call& c) {
    if (auto ec = store_.remove(c.mailbox, c.folder->store_folder, c.id)) {
        return finish(c, c.message_failure(ec));
    }
    json::object o;
    o["deleted"] = c.id;
    o["mailbox"] = c.mailbox;
    const std::string body = "<p>Deleted " + html_escape(c.id) + " from " +
                             html_escape(c.mailbox) + ".</p>";
    return finish(c, c.ok("delete", o, "Deleted", body));
}

// Send body: {"to":"bob","subject":"...","body":"..."}, all three strings, nothing else.
mailbox_api::response mailbox_api::do_send(call& c) {
    auto bad = [&](std::string reason) {
        return finish(c, c.error(http::status::bad_request, "bad_request", reason));
    };
    std::error_code ec;
    json::value v = json::parse(c.req.body(), ec);
    if (ec) return bad("body: invalid JSON (" + ec.message() + ")");
    if (!v.is_object()) return bad("body: expected a JSON object");
    const json::object& o = v.get_object();
    for (const auto& kv : o) {
        const std::string_view key = kv.key();
        if (key != "to" && key != "subject" && key != "body") {
            return bad("unknown field '" + truncated(key, max_echo) + "'");
        }
    }
    std::string_view fields[3];
    constexpr std::string_view names[3] = {"to", "subject", "body"};
    for (int k = 0; k < 3; ++k) {
        const json::value* f = o.if_contains(names[k]);
        if (f == nullptr) return bad("missing field '" + std::string(names[k]) + "'");
        if (!f->is_string()) return bad("field '" + std::string(names[k]) + "' must be a string");
        fields[k] = f->get_string();
    }
    const std::string_view to = fields[0], subject = fields[1], text = fields[2];
    const mailbox_info* recipient = find_mailbox(to);
    if (recipient == nullptr) {
        return bad("field 'to': unknown recipient '" + truncated(to, max_echo) + "'");
    }
    if (subject.size() > limits_.max_subject) {
        return bad("field 'subject' is too long (max " + std::to_string(limits_.max_subject) +
                   " bytes)");
    }
    if (text.size() > limits_.max_body) {
        return bad("field 'body' is too long (max " + std::to_string(limits_.max_body) +
                   " bytes)");
    }

    send_result sent;
    const outgoing_message m{c.mailbox, to, subject, text};
    if (auto err = store_.send(m, recipient->home == backend_, sent)) {
        return finish(c, c.store_failure(err));
    }
    c.audit.message = sent.sent_id;

    json::object r;
    r["mailbox"] = c.mailbox;
    r["sent"] = sent.sent_id;
    if (sent.delivered_id.empty()) {
        r["delivered"] = nullptr;  // the recipient's mailbox is on another back-end
    } else {
        r["delivered"] = sent.delivered_id;
    }
    const std::string body = "<p>Sent " + html_escape(sent.sent_id) + " from " +
                             html_escape(c.mailbox) + " to " + html_escape(to) + ".</p>";
    return finish(c, c.ok("send", r, "Sent", body));
}

// Adds the headers every response carries, sizes the payload and writes the audit line.
mailbox_api::response mailbox_api::finish(call& c, response res) {
    res.set(http::field::server, server_header);
    res.set("X-Powered-By", "ASP.NET");
    res.set("X-Content-Type-Options", "nosniff");
    if (c.audited) {
        res.set("Content-Security-Policy", mailbox_csp);
        res.set(http::field::cache_control, "no-store");
    }
    if (!c.allow.empty() && res.result() == http::status::method_not_allowed) {
        res.set(http::field::allow, c.allow);
    }
    // Every audited response to an authenticated request names who it was served as, and,
    // once known, which mailbox: the load generator's leak oracle compares them with itself.
    if (c.audited && !c.ctx.identity.empty()) {
        res.set("X-Exsim-Identity", c.ctx.identity);
        if (!c.mailbox.empty()) res.set("X-Exsim-Mailbox", c.mailbox);
    }
    res.prepare_payload();

    if (c.audited) {
        c.audit.mailbox = c.mailbox;
        c.audit.status = res.result_int();
        // A failed audit write is counted by audit_log::failures(); the response stands, since
        // the operation it reports has already been committed.
        audit_.append(std::move(c.audit));
    }
    return res;
}

}  // namespace exsim::backend
