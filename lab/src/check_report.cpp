// The report card of `exsim check-proxy`: a text table, JSON (docs/check-proxy.md has the
// schema) and a self-contained HTML page.

#include <algorithm>

#include <boost/json.hpp>
#include <fmt/format.h>

#include "exsim/common/html.hpp"
#include "exsim/lab/check_report.hpp"

namespace exsim::lab {
namespace json = boost::json;

namespace {

using rows_t = std::vector<std::vector<std::string>>;

rows_t card_rows(const check_report& r) {
    rows_t rows{{"check", "verdict", "requests", "leaks", "tampers", "unattributed", "audit x-user", "backend conns",
                 "handshakes", "seconds", "evidence"}};
    for (const auto& c : r.checks)
        rows.push_back({c.name, std::string(verdict_name(c.verdict)), std::to_string(c.requests), std::to_string(c.leaks),
                        std::to_string(c.tampers), std::to_string(c.unattributed), std::to_string(c.audit_cross_user),
                        std::to_string(c.backend_connections), std::to_string(c.handshakes),
                        fmt::format("{:.1f}", c.seconds), c.evidence});
    return rows;
}

std::vector<std::string> cost_lines(const check_report& r) {
    if (!r.cost) return {};
    const auto line = [](const char* what, const cost_side& s) {
        return fmt::format("{:<14} {:>8.1f} req/s   p50 {:>7.2f} ms   p99 {:>7.2f} ms   ({} requests, {} errors)", what,
                           s.rps, s.p50_ms, s.p99_ms, s.requests, s.errors);
    };
    return {line("through proxy", r.cost->through_proxy), line("direct to be1", r.cost->direct)};
}

std::string summary(const check_report& r) {
    const auto failed = r.failed();
    return failed.empty() ? fmt::format("every check run is safe ({:.1f} s)", r.seconds)
                          : fmt::format("{} of {} checks failed: {} ({:.1f} s)", failed.size(), r.checks.size(),
                                        fmt::join(failed, ", "), r.seconds);
}

}  // namespace

std::string render_check_table(const check_report& r) {
    const auto rows = card_rows(r);
    std::vector<std::size_t> width(rows[0].size(), 0);
    for (const auto& row : rows)
        for (std::size_t i = 0; i + 1 < row.size(); ++i) width[i] = std::max(width[i], row[i].size());
    std::string out = fmt::format("exsim check-proxy: proxy {}, started {}\n", r.proxy, r.started);
    for (const auto& row : rows) {
        for (std::size_t i = 0; i < row.size(); ++i) {
            if (i + 1 == row.size()) out += row[i];  // the evidence, unpadded
            else if (i < 2) out += fmt::format("{:<{}}  ", row[i], width[i]);
            else out += fmt::format("{:>{}}  ", row[i], width[i]);
        }
        out += "\n";
    }
    for (const auto& line : cost_lines(r)) out += line + "\n";
    return out + summary(r) + "\n";
}

std::string check_json(const check_report& r) {
    json::array backends;
    for (const auto& [name, address] : r.backends) backends.push_back(json::object{{"name", name}, {"address", address}});
    json::array checks;
    for (const auto& c : r.checks) {
        json::object kinds;
        for (const auto& [kind, n] : c.errors_by_kind) kinds[kind] = n;
        json::object o{{"name", c.name}, {"backend", c.backend}, {"title", c.title},
                       {"verdict", verdict_name(c.verdict)}, {"seconds", c.seconds}, {"requests", c.requests},
                       {"errors", c.errors}, {"errors_by_kind", std::move(kinds)}, {"leaks", c.leaks},
                       {"tampers", c.tampers}, {"unattributed", c.unattributed}, {"audit_requests", c.audit_requests},
                       {"audit_cross_user", c.audit_cross_user}, {"backend_connections", c.backend_connections},
                       {"handshakes", c.handshakes}, {"evidence", c.evidence}};
        if (const auto& x = c.first_crossing)
            o["first_crossing"] = json::object{{"user", x->user},     {"served_as", x->served_as}, {"backend", x->backend},
                                               {"conn", x->conn},     {"method", x->method},       {"path", x->path},
                                               {"source", x->source}};
        checks.push_back(std::move(o));
    }
    json::object doc{{"proxy", r.proxy}, {"started", r.started}, {"seconds", r.seconds},
                     {"backends", std::move(backends)}, {"checks", std::move(checks)}};
    if (r.cost) {
        const auto side = [](const cost_side& s) {
            return json::object{{"requests", s.requests}, {"errors", s.errors}, {"rps", s.rps}, {"p50_ms", s.p50_ms},
                                {"p99_ms", s.p99_ms}};
        };
        doc["cost"] = json::object{{"through_proxy", side(r.cost->through_proxy)}, {"direct", side(r.cost->direct)}};
    }
    json::array failed;
    for (const auto& f : r.failed()) failed.push_back(json::string(f));
    doc["failed"] = std::move(failed);
    return json::serialize(doc) + "\n";
}

std::string render_check_html(const check_report& r) {
    using common::html_escape;
    std::string rows;
    const auto card = card_rows(r);
    for (std::size_t i = 0; i < card.size(); ++i) {
        const bool head = i == 0;
        const std::string verdict = head ? "" : card[i][1];
        rows += fmt::format("<tr class=\"{}\">", verdict == "safe" ? "safe" : verdict == "skipped" || head ? "" : "bad");
        for (const auto& cell : card[i]) rows += (head ? "<th>" : "<td>") + html_escape(cell) + (head ? "</th>" : "</td>");
        rows += "</tr>\n";
    }
    std::string cost;
    for (const auto& line : cost_lines(r)) cost += "<pre>" + html_escape(line) + "</pre>\n";
    return fmt::format(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>exsim check-proxy: {0}</title>\n"
        "<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}"
        "td,th{{border:1px solid #ccc;padding:.3em .6em;text-align:left}}tr.bad td{{background:#fdd}}"
        "tr.safe td{{background:#dfd}}pre{{margin:.2em 0}}</style></head><body>\n"
        "<h1>exsim check-proxy</h1>\n<p>proxy {0}, started {1}</p>\n<table>\n{2}</table>\n{3}<p>{4}</p>\n</body></html>\n",
        html_escape(r.proxy), html_escape(r.started), rows, cost, html_escape(summary(r)));
}

}  // namespace exsim::lab
