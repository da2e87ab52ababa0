#include "exsim/common/audit_record.hpp"

#include <chrono>
#include <cstdio>
#include <ctime>
#include <fstream>

#include <boost/json.hpp>

namespace exsim::common {

namespace json = boost::json;

bool is_cross_user(std::string_view identity, std::string_view on_behalf_of, unsigned status) noexcept {
    return !on_behalf_of.empty() && on_behalf_of != identity && status < 400;
}

std::string iso8601_utc(std::int64_t ms_since_epoch) {
    const std::time_t secs = static_cast<std::time_t>(ms_since_epoch / 1000);
    const int ms = static_cast<int>(ms_since_epoch % 1000);
    std::tm tm{};
    gmtime_r(&secs, &tm);
    char buf[64];
    std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                  tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ms < 0 ? 0 : ms);
    return buf;
}

std::string iso8601_utc_now() {
    return iso8601_utc(std::chrono::duration_cast<std::chrono::milliseconds>(
                           std::chrono::system_clock::now().time_since_epoch())
                           .count());
}

namespace {

// Length of the well-formed UTF-8 sequence (RFC 3629) at the start of `s`; 0 when there is none.
std::size_t utf8_sequence(std::string_view s) {
    const auto b = static_cast<unsigned char>(s[0]);
    if (b < 0x80) return 1;
    std::size_t n = 0;
    unsigned char lo = 0x80, hi = 0xBF;  // range of the second byte
    if (b >= 0xC2 && b <= 0xDF) n = 2;
    else if (b == 0xE0) n = 3, lo = 0xA0;
    else if ((b >= 0xE1 && b <= 0xEC) || b == 0xEE || b == 0xEF) n = 3;
    else if (b == 0xED) n = 3, hi = 0x9F;  // no surrogates
    else if (b == 0xF0) n = 4, lo = 0x90;
    else if (b >= 0xF1 && b <= 0xF3) n = 4;
    else if (b == 0xF4) n = 4, hi = 0x8F;  // nothing above U+10FFFF
    else return 0;
    if (s.size() < n) return 0;
    for (std::size_t i = 1; i < n; ++i) {
        const auto c = static_cast<unsigned char>(s[i]);
        if (c < (i == 1 ? lo : 0x80) || c > (i == 1 ? hi : 0xBF)) return 0;
    }
    return n;
}

// JSON text is UTF-8 (RFC 8259) and Boost.JSON writes strings byte for byte: a client's path or
// X-Exsim-On-Behalf-Of with a byte that is not UTF-8 (or one cut inside a character by the
// length limit) would make a line no reader accepts, and read_audit_log would skip it, cross-user
// or not. Each such byte is written as U+FFFD instead.
std::string valid_utf8(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    while (!s.empty()) {
        const std::size_t n = utf8_sequence(s);
        if (n == 0) {
            out += "\xEF\xBF\xBD";
            s.remove_prefix(1);
        } else {
            out.append(s.substr(0, n));
            s.remove_prefix(n);
        }
    }
    return out;
}

}  // namespace

std::string to_json_line(const audit_record& r) {
    // Field order is fixed so that lines read well with grep/less.
    json::object o;
    o.reserve(14);
    o["ts"] = valid_utf8(r.ts);
    o["backend"] = valid_utf8(r.backend);
    o["conn"] = r.conn;
    o["identity"] = valid_utf8(r.identity);
    o["mechanism"] = valid_utf8(r.mechanism);
    o["auth"] = valid_utf8(r.auth);
    o["method"] = valid_utf8(r.method);
    o["path"] = valid_utf8(r.path);
    o["mailbox"] = valid_utf8(r.mailbox);
    o["op"] = valid_utf8(r.op);
    o["status"] = r.status;
    o["message"] = valid_utf8(r.message);
    o["on_behalf_of"] = valid_utf8(r.on_behalf_of);
    o["cross_user"] = r.cross_user;
    return json::serialize(o);
}

namespace {

std::string string_field(const json::object& o, std::string_view key) {
    const auto* v = o.if_contains(key);
    if (v == nullptr || !v->is_string()) return {};
    return std::string(v->get_string());
}

std::uint64_t uint_field(const json::object& o, std::string_view key) {
    const auto* v = o.if_contains(key);
    if (v == nullptr) return 0;
    if (v->is_uint64()) return v->get_uint64();
    if (v->is_int64() && v->get_int64() >= 0) return static_cast<std::uint64_t>(v->get_int64());
    return 0;
}

}  // namespace

bool parse_audit_line(std::string_view line, audit_record& out) {
    std::error_code ec;
    json::value v = json::parse(line, ec);
    if (ec || !v.is_object()) return false;
    const auto& o = v.get_object();
    out = audit_record{};
    out.ts = string_field(o, "ts");
    out.backend = string_field(o, "backend");
    out.conn = uint_field(o, "conn");
    out.identity = string_field(o, "identity");
    out.mechanism = string_field(o, "mechanism");
    out.auth = string_field(o, "auth");
    out.method = string_field(o, "method");
    out.path = string_field(o, "path");
    out.mailbox = string_field(o, "mailbox");
    out.op = string_field(o, "op");
    out.status = static_cast<unsigned>(uint_field(o, "status"));
    out.message = string_field(o, "message");
    out.on_behalf_of = string_field(o, "on_behalf_of");
    if (const auto* c = o.if_contains("cross_user"); c != nullptr && c->is_bool()) {
        out.cross_user = c->get_bool();
    }
    return true;
}

std::filesystem::path audit_log_path(const std::filesystem::path& state_dir,
                                     std::string_view backend_name) {
    return state_dir / ("audit-" + std::string(backend_name) + ".jsonl");
}

std::vector<audit_record> read_audit_log(const std::filesystem::path& file,
                                         std::size_t* malformed, std::uintmax_t from) {
    std::vector<audit_record> records;
    if (malformed != nullptr) *malformed = 0;
    std::ifstream in(file);
    if (!in || !in.seekg(static_cast<std::streamoff>(from))) return records;
    std::string line;
    while (std::getline(in, line)) {
        if (line.empty()) continue;
        audit_record r;
        if (parse_audit_line(line, r)) {
            records.push_back(std::move(r));
        } else if (malformed != nullptr) {
            ++*malformed;
        }
    }
    return records;
}

std::size_t count_cross_user(const std::vector<audit_record>& records) noexcept {
    std::size_t n = 0;
    for (const auto& r : records) n += r.cross_user ? 1 : 0;
    return n;
}

std::size_t count_cross_user(const std::filesystem::path& file) {
    return count_cross_user(read_audit_log(file));
}

}  // namespace exsim::common
