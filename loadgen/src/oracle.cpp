#include "exsim/loadgen/oracle.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <set>
#include <system_error>
#include <utility>

#include <boost/json.hpp>

#include "exsim/common/message_id.hpp"

namespace exsim::loadgen {

namespace json = boost::json;

namespace {

// The string at `key` of `o`, "" when absent or not a string (a send's "delivered" may be null).
std::string_view string_at(const json::object& o, std::string_view key) {
    const json::value* v = o.if_contains(key);
    if (v == nullptr || !v->is_string()) return {};
    const json::string& s = v->get_string();
    return {s.data(), s.size()};
}

// Inputs: the operation and a response body. Returns the body's "mailbox" and the message ids
// it showed or created; both empty when the body is not a JSON object (an HTML page, garbage).
std::pair<std::string, std::vector<std::string>> parse_body(op o, std::string_view body) {
    std::error_code ec;
    const json::value v = json::parse(body, ec);
    if (ec || !v.is_object()) return {};
    const json::object& obj = v.get_object();
    std::vector<std::string> ids;
    auto add = [&](std::string_view id) {
        if (!id.empty()) ids.emplace_back(id);
    };
    switch (o) {
        case op::list:
            if (const json::value* m = obj.if_contains("messages"); m != nullptr && m->is_array()) {
                for (const json::value& item : m->get_array()) {
                    if (item.is_object()) add(string_at(item.get_object(), "id"));
                }
            }
            break;
        case op::read: add(string_at(obj, "id")); break;
        // "delivered" is the recipient's copy, owned by the recipient: never a sign of tamper.
        case op::send: add(string_at(obj, "sent")); break;
        case op::del: add(string_at(obj, "deleted")); break;
    }
    return {std::string(string_at(obj, "mailbox")), std::move(ids)};
}

bool is_folder(std::string_view seg) { return seg == "Inbox" || seg == "Sent" || seg == "Outbox"; }

// One sample line "name{labels} value [timestamp]" or "name value [timestamp]"; false when the
// line is not one. Label values are quoted and may hold '}' or spaces, hence the quote tracking.
bool parse_sample(std::string_view line, std::string_view& name, std::string_view& labels,
                  double& value) {
    std::size_t i = 0;
    while (i < line.size() && line[i] != '{' && line[i] != ' ' && line[i] != '\t') ++i;
    name = line.substr(0, i);
    labels = {};
    if (name.empty()) return false;
    if (i < line.size() && line[i] == '{') {
        const std::size_t open = ++i;
        bool quoted = false;
        for (; i < line.size(); ++i) {
            if (quoted && line[i] == '\\') ++i;
            else if (line[i] == '"') quoted = !quoted;
            else if (!quoted && line[i] == '}') break;
        }
        if (i >= line.size()) return false;
        labels = line.substr(open, i - open);
        ++i;
    }
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
    const std::size_t end = std::min(line.find_first_of(" \t", i), line.size());
    if (i == end) return false;
    const auto [ptr, ec] = std::from_chars(line.data() + i, line.data() + end, value);
    // A NaN or an infinity would poison the whole sum; our counters are never either.
    return ec == std::errc{} && ptr == line.data() + end && std::isfinite(value);
}

}  // namespace

judged judge(op o, std::string_view user, const std::vector<std::string>& may_open, unsigned status,
             std::string_view identity_header, std::string_view mailbox_header, std::string_view body) {
    judged out;
    // An error page served nothing, as the audit log's is_cross_user() agrees.
    if (status >= 400) return out;

    auto [body_mailbox, ids] = parse_body(o, body);
    auto foreign = [&](std::string_view mailbox) {
        return !mailbox.empty() &&
               std::find(may_open.begin(), may_open.end(), mailbox) == may_open.end();
    };
    if (!identity_header.empty() && identity_header != user) {
        out.served_as = identity_header;
    } else if (foreign(mailbox_header)) {
        out.served_as = mailbox_header;
    } else if (foreign(body_mailbox)) {
        out.served_as = body_mailbox;
    } else {
        // An id without a dot names no owner: nothing to compare with.
        for (const auto& id : ids) {
            if (const auto owner = common::owner_of_message_id(id); foreign(owner)) {
                out.served_as = owner;
                break;
            }
        }
    }
    if (!out.served_as.empty()) {
        out.v = (o == op::list || o == op::read) ? verdict::leak : verdict::tamper;
    }
    // A delete's id is the one the user asked for: it shows nothing the user did not know.
    if (o != op::del) out.ids = std::move(ids);
    return out;
}

std::optional<op> op_of_request(std::string_view method, std::string_view path) {
    path = path.substr(0, path.find('?'));
    constexpr std::string_view root = "/exchange";
    if (!path.starts_with(root)) return std::nullopt;
    path.remove_prefix(root.size());
    if (!path.empty() && path.front() != '/') return std::nullopt;  // "/exchangeX"

    std::vector<std::string_view> segs;
    while (!path.empty()) {
        path.remove_prefix(1);  // the '/'
        const std::size_t slash = std::min(path.find('/'), path.size());
        if (slash > 0) segs.push_back(path.substr(0, slash));
        path.remove_prefix(slash);
    }
    // Same routing as the back-end: a first segment that is not a folder names the mailbox.
    const std::size_t first = !segs.empty() && !is_folder(segs[0]) ? 1 : 0;
    const std::size_t n = segs.size() - first;
    const std::string_view folder = n > 0 ? segs[first] : "Inbox";
    if (n > 0 && !is_folder(folder)) return std::nullopt;

    if (n <= 1 && folder != "Outbox" && method == "GET") return op::list;
    if (n == 1 && folder == "Outbox" && method == "POST") return op::send;
    if (n == 2 && folder != "Outbox") {
        if (method == "GET") return op::read;
        if (method == "DELETE") return op::del;
    }
    return std::nullopt;
}

audit_summary summarize_audit(const std::vector<common::audit_record>& records) {
    audit_summary s;
    std::set<std::pair<std::string_view, std::uint64_t>> seen;
    for (const auto& r : records) {
        ++s.records;
        if (r.cross_user) ++s.cross_user;
        const auto o = op_of_request(r.method, r.path);
        if (!o) continue;  // a connection first used by a probe goes to the mix's first user of it
        const auto i = static_cast<std::size_t>(*o);
        if (r.status < 400) ++s.served;
        if (seen.emplace(r.backend, r.conn).second) ++s.connections[i];
        if (r.auth == "request") ++s.handshakes[i];
    }
    return s;
}

double prometheus_sum(std::string_view text, std::string_view name, std::string_view label) {
    double sum = 0;
    while (!text.empty()) {
        const std::size_t eol = std::min(text.find('\n'), text.size());
        std::string_view line = text.substr(0, eol);
        text.remove_prefix(std::min(eol + 1, text.size()));
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        while (!line.empty() && (line.front() == ' ' || line.front() == '\t')) line.remove_prefix(1);
        if (line.empty() || line.front() == '#') continue;

        std::string_view sample_name, labels;
        double value = 0;
        if (!parse_sample(line, sample_name, labels, value) || sample_name != name) continue;
        if (!label.empty() && labels.find(label) == std::string_view::npos) continue;
        sum += value;
    }
    return sum;
}

}  // namespace exsim::loadgen
