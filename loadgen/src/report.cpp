#include "exsim/loadgen/report.hpp"

#include <algorithm>
#include <cmath>

#include <boost/json.hpp>
#include <fmt/format.h>

#include "exsim/common/html.hpp"
#include "exsim/loadgen/demo_summary.hpp"
#include "demo_figures.hpp"

namespace exsim::loadgen {

namespace json = boost::json;
using common::html_escape;

namespace {

using rows_t = std::vector<std::vector<std::string>>;

double ms(std::uint64_t micros) { return static_cast<double>(micros) / 1000.0; }
double per_second(std::uint64_t n, double seconds) { return seconds > 0 ? static_cast<double>(n) / seconds : 0.0; }
std::string fixed2(double v) { return fmt::format("{:.2f}", v); }
std::string fixed3(double v) { return fmt::format("{:.3f}", v); }  // per-request ratios: 32 in 20000 is not 0.00

// The latency columns of every report, in this order, with their JSON keys.
struct latency_column {
    std::string_view name, key;
};
constexpr std::array<latency_column, 5> latency_columns{
    {{"p50", "p50_ms"}, {"p90", "p90_ms"}, {"p99", "p99_ms"}, {"p99.9", "p99_9_ms"}, {"max", "max_ms"}}};
std::array<double, 5> latencies_ms(const histogram& h) {
    return {ms(h.percentile(50)), ms(h.percentile(90)), ms(h.percentile(99)), ms(h.percentile(99.9)), ms(h.max())};
}

std::string describe(const load_result& r) {
    return fmt::format("mode {}, url {}{}{}, model {}{}, {}, {}, {:.1f} s", r.mode, r.url,
                       r.policy.empty() ? "" : ", policy " + r.policy,
                       r.backend_auth.empty() ? "" : ", back-end auth " + r.backend_auth, r.model,
                       r.model == "open" ? fmt::format(" ({:g} req/s asked{})", r.rate,
                                                         r.unsent ? fmt::format(", {} due and never sent", r.unsent) : "")
                                         : "", plural(r.sessions, "session"),
                       plural(r.users, "user"), r.seconds);
}

// The cells of the run's table, header first; the text and the HTML reports share them.
rows_t op_rows(const load_result& r) {
    rows_t rows{{"op", "requests", "errors", "leaks", "tampers", "req/s"}};
    for (const auto& c : latency_columns) rows[0].push_back(fmt::format("{} ms", c.name));
    const auto row = [&](std::string_view name, const op_stats& s) {
        std::vector<std::string> cells{std::string(name), std::to_string(s.requests), std::to_string(s.errors),
                                       std::to_string(s.leaks), std::to_string(s.tampers),
                                       fmt::format("{:.1f}", per_second(s.requests, r.seconds))};
        for (double v : latencies_ms(s.latency)) cells.push_back(fixed2(v));
        rows.push_back(std::move(cells));
    };
    for (op o : all_ops) row(op_name(o), r.ops[static_cast<std::size_t>(o)]);
    row("total", r.total());
    return rows;
}

// What follows the table: errors, the back-end side, and whether the audit log agrees.
std::vector<std::string> notes(const load_result& r) {
    std::vector<std::string> lines;
    const op_stats t = r.total();
    if (!t.errors_by_kind.empty()) {
        std::vector<std::string> kinds;
        for (const auto& [kind, n] : t.errors_by_kind) kinds.push_back(fmt::format("{} {}", kind, n));
        lines.push_back(fmt::format("errors by kind: {}", fmt::join(kinds, ", ")));
    }
    const backend_side& b = r.backend;
    lines.push_back(fmt::format(
        "back-end connections: {} ({:.3f} per request), handshakes: {} kerberos + {} ntlm ({:.3f} per request) [{}]",
        b.connections, per(b.connections, t.requests), b.handshakes_kerberos, b.handshakes_ntlm,
        per(b.handshakes(), t.requests), b.source.empty() ? "source unknown" : b.source));
    if (!r.audit_cross_user) {
        lines.emplace_back("audit: not read");
        return lines;
    }
    std::vector<std::string> per_op;
    for (op o : all_ops) {
        const op_stats& s = r.ops[static_cast<std::size_t>(o)];
        per_op.push_back(
            fmt::format("{} {} connections, {} handshakes", op_name(o), s.backend_connections, s.handshakes));
    }
    lines.push_back(fmt::format("audit per operation: {}", fmt::join(per_op, "; ")));
    lines.push_back(fmt::format("audit cross-user: {} \u2014 {} the oracle (leaks+tampers = {})", *r.audit_cross_user,
                                r.audit_agrees() ? "agrees with" : "DISAGREES with", t.leaks + t.tampers));
    if (r.unaudited.value_or(0) > 0)
        lines.push_back(fmt::format("UNAUDITED: {} successful responses that the back-ends' audit logs never saw "
                                    "(answered by something in between, not by an exsim back-end)", *r.unaudited));
    return lines;
}

// Columns padded to their widest cell: the first `text` columns left-aligned, numbers right-aligned.
std::string align(const rows_t& rows, std::size_t text) {
    std::vector<std::size_t> width;
    for (const auto& row : rows) {
        width.resize(std::max(width.size(), row.size()));
        for (std::size_t i = 0; i < row.size(); ++i) width[i] = std::max(width[i], row[i].size());
    }
    std::string out;
    for (const auto& row : rows) {
        std::string line;
        for (std::size_t i = 0; i < row.size(); ++i)
            line += i < text ? fmt::format("{:<{}}  ", row[i], width[i]) : fmt::format("{:>{}}  ", row[i], width[i]);
        out += line.substr(0, line.size() - 2) + "\n";
    }
    return out;
}

std::string html_table(const rows_t& rows, std::size_t text) {
    std::string out = "<table>\n";
    for (std::size_t r = 0; r < rows.size(); ++r) {
        out += "<tr>";
        for (std::size_t i = 0; i < rows[r].size(); ++i)
            out += fmt::format("<{0}{1}>{2}</{0}>", r == 0 ? "th" : "td", i < text ? "" : " class=\"n\"",
                               html_escape(rows[r][i]));
        out += "</tr>\n";
    }
    return out + "</table>\n";
}

json::value optional_count(const std::optional<std::uint64_t>& n) { return n ? json::value(*n) : json::value(); }

// Boost.JSON 1.81 writes 50.175 as 5.0175E1; fmt writes the shortest text that reads back the
// same double, which people and jq both read well.
std::string json_text(const json::value& v) {
    std::vector<std::string> parts;
    if (v.is_object()) {
        for (const auto& kv : v.get_object()) parts.push_back(json::serialize(kv.key()) + ":" + json_text(kv.value()));
        return fmt::format("{{{}}}", fmt::join(parts, ","));
    }
    if (v.is_array()) {
        for (const auto& e : v.get_array()) parts.push_back(json_text(e));
        return fmt::format("[{}]", fmt::join(parts, ","));
    }
    return v.is_double() ? fmt::format("{}", v.get_double()) : json::serialize(v);
}

std::string paragraphs(const std::vector<std::string>& lines) {
    std::string out;
    for (const auto& l : lines) out += "<p>" + html_escape(l) + "</p>\n";
    return out;
}

// Everything is inline: the policy forbids every fetch, so the page reads the same offline.
std::string page(std::string_view title, const std::string& body) {
    return fmt::format(R"(<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{0}</title>
<style>
body{{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:1100px}} th{{text-align:left}}
table{{border-collapse:collapse;margin:1em 0}} th,td{{padding:.25em .6em;border-bottom:1px solid #ddd}}
.n{{text-align:right;font-variant-numeric:tabular-nums}} figure{{display:inline-block;margin:.5em}}
svg{{width:640px;max-width:100%;height:auto;background:#fafafa}} svg .g{{stroke:#ddd}}
svg text{{font-size:11px;fill:#444}} svg .t{{font-size:13px;font-weight:bold;fill:#222}}
</style></head><body>
<h1>{0}</h1>
{1}</body></html>
)",
                       html_escape(title), body);
}

// Charts are inline SVG; the line and the bar chart share one frame (open_chart).
constexpr std::array<std::string_view, 6> palette{"#4e79a7", "#e15759", "#59a14f",
                                                  "#f28e2b", "#76b7b2", "#b07aa1"};
constexpr double chart_w = 640, chart_h = 260, pad_l = 60, pad_r = 16, pad_t = 48, pad_b = 36;
constexpr double plot_w = chart_w - pad_l - pad_r, plot_h = chart_h - pad_t - pad_b;

struct series {
    std::string name;
    std::vector<double> values;
};

// A round top for the y axis (1, 2 or 5 x 10^k), so that the grid labels read well.
double axis_max(double v) {
    if (!(v > 0)) return 1;
    const double p = std::pow(10.0, std::floor(std::log10(v)));
    for (double m : {1.0, 2.0, 5.0})
        if (m * p >= v) return m * p;
    return 10 * p;
}

double y_of(double v, double top) { return pad_t + plot_h * (1 - v / top); }

// Opens an <svg> with its title, the unit, four grid lines and a legend; returns the y top.
double open_chart(std::string& svg, std::string_view title, std::string_view unit,
                  const std::vector<series>& all) {
    double top = 0;
    for (const auto& s : all)
        for (double v : s.values) top = std::max(top, v);
    top = axis_max(top);
    svg += fmt::format(R"(<figure><svg viewBox="0 0 {} {}" role="img" aria-label="{}">)"
                       R"(<text class="t" x="{}" y="16">{}</text><text x="{}" y="16" text-anchor="end">{}</text>)",
                       chart_w, chart_h, html_escape(title), pad_l, html_escape(title), chart_w - pad_r,
                       html_escape(unit));
    for (int k = 0; k <= 4; ++k) {
        const double y = y_of(top * k / 4, top);
        svg += fmt::format(R"(<line class="g" x1="{}" x2="{}" y1="{:.1f}" y2="{:.1f}"/>)"
                           R"(<text x="{}" y="{:.1f}" text-anchor="end">{:g}</text>)",
                           pad_l, chart_w - pad_r, y, y, pad_l - 4, y + 4, top * k / 4);
    }
    if (all.size() > 1) {
        const double step = std::min(110.0, plot_w / static_cast<double>(all.size()));
        for (std::size_t i = 0; i < all.size(); ++i) {
            const double x = pad_l + step * static_cast<double>(i);
            svg += fmt::format(R"(<rect x="{:.1f}" y="24" width="10" height="10" fill="{}"/>)"
                               R"(<text x="{:.1f}" y="33">{}</text>)",
                               x, palette[i % palette.size()], x + 14, html_escape(all[i].name));
        }
    }
    return top;
}

// One value per second, t = 0 at the left.
std::string line_chart(std::string_view title, std::string_view unit, std::vector<double> per_second) {
    std::string svg;
    const std::vector<series> all{{"", std::move(per_second)}};
    const double top = open_chart(svg, title, unit, all);
    const auto& v = all[0].values;
    const double step = v.size() > 1 ? plot_w / static_cast<double>(v.size() - 1) : 0;
    std::string points;
    for (std::size_t i = 0; i < v.size(); ++i)
        points += fmt::format("{:.1f},{:.1f} ", pad_l + step * static_cast<double>(i), y_of(v[i], top));
    svg += fmt::format(R"(<polyline fill="none" stroke="{}" stroke-width="2" points="{}"/>)", palette[0], points);
    svg += fmt::format(R"(<text x="{}" y="{}">0 s</text><text x="{}" y="{}" text-anchor="end">{} s</text>)", pad_l,
                       chart_h - pad_b + 16, chart_w - pad_r, chart_h - pad_b + 16, v.empty() ? 0 : v.size() - 1);
    return svg + "</svg></figure>\n";
}

// Bars grouped by `groups`; series i gives bar i of each group (values[g]).
std::string bar_chart(std::string_view title, std::string_view unit, const std::vector<std::string>& groups,
                      const std::vector<series>& all) {
    std::string svg;
    const double top = open_chart(svg, title, unit, all);
    const double group_w = groups.empty() ? 0 : plot_w / static_cast<double>(groups.size());
    const double bar_w = all.empty() ? 0 : group_w * 0.8 / static_cast<double>(all.size());
    for (std::size_t g = 0; g < groups.size(); ++g) {
        const double x0 = pad_l + group_w * static_cast<double>(g) + group_w * 0.1;
        for (std::size_t i = 0; i < all.size(); ++i) {
            const double v = g < all[i].values.size() ? all[i].values[g] : 0;
            svg += fmt::format(R"(<rect x="{:.1f}" y="{:.1f}" width="{:.1f}" height="{:.1f}" fill="{}">)"
                               R"(<title>{}: {:.2f}</title></rect>)",
                               x0 + bar_w * static_cast<double>(i), y_of(v, top), bar_w * 0.9, plot_h * v / top,
                               palette[i % palette.size()], html_escape(all[i].name), v);
        }
        svg += fmt::format(R"(<text x="{:.1f}" y="{}" text-anchor="middle">{}</text>)", x0 + group_w * 0.4,
                           chart_h - pad_b + 16, html_escape(groups[g]));
    }
    return svg + "</svg></figure>\n";
}

rows_t demo_rows(const std::vector<demo_run>& runs) {
    rows_t rows{{"policy", "backend auth", "requests", "req/s", "p50 ms", "p99 ms", "backend conns", "conns/req",
                 "handshakes/req", "leaks", "tampers", "audit x-user"}};
    for (const auto& run : runs) {
        const load_result& r = run.result;
        const op_stats t = r.total();
        const auto& a = r.audit_cross_user;
        rows.push_back({run.policy, run.backend_auth, std::to_string(t.requests), fmt::format("{:.1f}", r.rps()),
                        fixed2(ms(t.latency.percentile(50))), fixed2(ms(t.latency.percentile(99))),
                        std::to_string(r.backend.connections), fixed3(conns_per_request(r)),
                        fixed3(handshakes_per_request(r)), std::to_string(t.leaks), std::to_string(t.tampers),
                        a ? fmt::format("{}{}", *a, r.audit_agrees() ? "" : " *") : std::string("-")});
    }
    return rows;
}

std::vector<std::string> demo_footnotes(const std::vector<demo_run>& runs) {
    std::vector<std::string> notes;
    for (const auto& run : runs)
        if (!run.result.audit_agrees()) {
            notes.emplace_back("* the back-ends' audit log DISAGREES with the oracle's leaks+tampers");
            break;
        }
    // The oracle's blind spot, said out loud: responses that no back-end produced.
    for (const auto& run : runs) {
        const auto t = run.result.total();
        const auto it = t.errors_by_kind.find("unattributed");
        const auto unattributed = it == t.errors_by_kind.end() ? 0 : it->second;
        if (unattributed + run.result.unaudited.value_or(0) > 0)
            notes.push_back(fmt::format("! {} with back-ends {}: {} responses without X-Exsim-Identity, {} the audit never "
                                        "saw", run.policy, run.backend_auth, unattributed, run.result.unaudited.value_or(0)));
    }
    return notes;
}

}  // namespace

std::string render_table(const load_result& r) {
    std::string out = describe(r) + "\n" + align(op_rows(r), 1);
    for (const auto& line : notes(r)) out += line + "\n";
    return out;
}

std::string to_json(const load_result& r) {
    const auto stats = [&](const op_stats& s) {
        json::object o{{"requests", s.requests}, {"errors", s.errors}, {"leaks", s.leaks},
                       {"tampers", s.tampers}, {"rps", per_second(s.requests, r.seconds)}};
        const auto l = latencies_ms(s.latency);
        for (std::size_t i = 0; i < l.size(); ++i) o[latency_columns[i].key] = l[i];
        o["mean_ms"] = s.latency.mean() / 1000.0;
        json::object kinds;
        for (const auto& [kind, n] : s.errors_by_kind) kinds[kind] = n;
        o["errors_by_kind"] = std::move(kinds);
        o["backend_connections"] = s.backend_connections;
        o["handshakes"] = s.handshakes;
        return o;
    };
    json::object doc{{"mode", r.mode}, {"url", r.url}, {"policy", r.policy}, {"backend_auth", r.backend_auth},
                     {"model", r.model}, {"rate", r.rate}, {"unsent", r.unsent}, {"sessions", r.sessions}, {"users", r.users},
                     {"seconds", r.seconds}, {"rps", r.rps()}};
    json::object ops;
    for (op o : all_ops) ops[op_name(o)] = stats(r.ops[static_cast<std::size_t>(o)]);
    doc["ops"] = std::move(ops);
    doc["total"] = stats(r.total());
    json::array timeline;
    for (std::size_t i = 0; i < r.timeline.size(); ++i) {
        const time_slice& s = r.timeline[i];
        timeline.push_back(json::object{{"t", i}, {"requests", s.requests}, {"errors", s.errors},
                                        {"leaks", s.leaks}, {"tampers", s.tampers},
                                        {"p99_ms", ms(s.latency.percentile(99))}});
    }
    doc["timeline"] = std::move(timeline);
    const backend_side& b = r.backend;
    doc["backend"] = json::object{{"source", b.source}, {"connections", b.connections},
                                  {"handshakes_kerberos", b.handshakes_kerberos},
                                  {"handshakes_ntlm", b.handshakes_ntlm}, {"handshakes", b.handshakes()}};
    doc["audit_cross_user"] = optional_count(r.audit_cross_user);
    doc["audit_agrees"] = r.audit_agrees();
    doc["unaudited"] = optional_count(r.unaudited);
    return json_text(doc) + "\n";
}

std::string render_html(const load_result& r) {
    std::vector<double> rps, p99, leaked;
    std::uint64_t cumulative = 0;
    for (const auto& s : r.timeline) {
        rps.push_back(static_cast<double>(s.requests));  // slices are one second long
        p99.push_back(ms(s.latency.percentile(99)));
        cumulative += s.leaks + s.tampers;
        leaked.push_back(static_cast<double>(cumulative));
    }
    // Grouped by operation (and the total), one bar per percentile.
    std::vector<std::string> groups;
    std::vector<series> percentiles;
    for (const auto& c : latency_columns) percentiles.push_back({std::string(c.name), {}});
    const auto add = [&](std::string_view name, const op_stats& s) {
        groups.emplace_back(name);
        const auto l = latencies_ms(s.latency);
        for (std::size_t i = 0; i < l.size(); ++i) percentiles[i].values.push_back(l[i]);
    };
    for (op o : all_ops) add(op_name(o), r.ops[static_cast<std::size_t>(o)]);
    add("total", r.total());
    const std::string body = "<p>" + html_escape(describe(r)) + "</p>\n" + html_table(op_rows(r), 1) +
                             paragraphs(notes(r)) + line_chart("throughput", "req/s", std::move(rps)) +
                             line_chart("p99 latency", "ms", std::move(p99)) +
                             bar_chart("latency percentiles per operation", "ms", groups, percentiles) +
                             line_chart("leaks + tampers, cumulative", "count", std::move(leaked));
    return page("exsim load report", body);
}

std::string render_demo_table(const std::vector<demo_run>& runs) {
    std::string out = align(demo_rows(runs), 2);
    for (const auto& line : demo_footnotes(runs)) out += line + "\n";
    return out;
}

std::string demo_json(const std::vector<demo_run>& runs) {
    std::vector<std::string> lines;
    for (const auto& run : runs) {
        const load_result& r = run.result;
        const op_stats t = r.total();
        const json::object o{{"policy", run.policy}, {"backend_auth", run.backend_auth}, {"requests", t.requests},
                             {"leaks", t.leaks}, {"tampers", t.tampers},
                             {"audit_cross_user", optional_count(r.audit_cross_user)},
                             {"backend_connections", r.backend.connections},
                             {"auth_handshakes", r.backend.handshakes()},
                             {"ntlm_handshakes", r.backend.handshakes_ntlm},
                             {"rps", r.rps()}, {"p50_ms", ms(t.latency.percentile(50))},
                             {"p99_ms", ms(t.latency.percentile(99))}, {"errors", t.errors}};
        lines.push_back(json_text(o));
    }
    return fmt::format("{{\"runs\":[\n{}\n]}}\n", fmt::join(lines, ",\n"));
}

std::string render_demo_html(const std::vector<demo_run>& runs) {
    const auto auths = distinct(runs, &demo_run::backend_auth);
    const auto policies = distinct(runs, &demo_run::policy);
    // One bar per policy in each back-end auth group; a run that did not happen shows as 0.
    const auto chart = [&](std::string_view title, std::string_view unit, const auto& metric) {
        std::vector<series> all;
        for (const auto& policy : policies) {
            all.push_back({policy, {}});
            for (const auto& auth : auths) {
                const demo_run* run = find_run(runs, policy, auth);
                all.back().values.push_back(run ? metric(run->result) : 0.0);
            }
        }
        return bar_chart(title, unit, auths, all);
    };
    const std::string body =
        "<p>" + html_escape(demo_summary(runs)) + "</p>\n" + html_table(demo_rows(runs), 2) +
        paragraphs(demo_footnotes(runs)) + chart("throughput", "req/s", [](const load_result& r) { return r.rps(); }) +
        chart("p99 latency", "ms", [](const load_result& r) { return ms(r.total().latency.percentile(99)); }) +
        chart("back-end connections per request", "conns/req", conns_per_request) +
        chart("leaks + tampers", "count", [](const load_result& r) { return double(leaks_and_tampers(r)); });
    return page("exsim demo: pool policies side by side", body);
}

}  // namespace exsim::loadgen
