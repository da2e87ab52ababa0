#include "forwarding.hpp"

#include <algorithm>
#include <iterator>

#include <boost/beast/core/string.hpp>

namespace exsim::proxy {
namespace http = boost::beast::http;
using boost::beast::iequals;  // ASCII: boost::iequals takes a std::locale facet per character

bool is_hop_by_hop(std::string_view name) {
    static constexpr std::string_view names[] = {"connection", "keep-alive", "proxy-connection", "proxy-authorization",
                                                 "proxy-authenticate", "te", "trailer", "upgrade", "expect", "host",
                                                 "authorization", "www-authenticate"};
    return std::any_of(std::begin(names), std::end(names), [&](auto n) { return iequals(n, name); });
}

http::request<http::buffer_body> backend_request(const http::request_header<>& req, const std::string& target,
                                                 const std::string& user, const std::string& host) {
    // By its text: an extension method (one Beast has no verb for) would leave the line without one.
    http::request<http::buffer_body> out;
    out.method_string(req.method_string());
    out.target(target);
    out.version(11);
    for (const auto& f : req) {
        const auto name = f.name_string();
        if (is_hop_by_hop(name) || iequals(name.substr(0, 8), "x-exsim-")) continue;
        out.insert(name, f.value());
    }
    out.set(http::field::host, host);
    if (!user.empty()) out.set("X-Exsim-On-Behalf-Of", user);
    out.keep_alive(true);
    return out;
}

http::response<http::buffer_body> client_response(const http::response_header<>& res, unsigned version) {
    // By its number: result() reads a code Beast has no name for (299, 509, ...) as 0.
    http::response<http::buffer_body> out;
    out.result(res.result_int());
    out.version(version);
    for (const auto& f : res)
        if (!is_hop_by_hop(f.name_string())) out.insert(f.name_string(), f.value());
    return out;
}

void mark_tls_only(http::fields& header, bool tls) {
    if (tls)
        header.set(http::field::strict_transport_security, "max-age=63072000");
    else
        header.erase(http::field::strict_transport_security);
}

namespace {

void append(std::string& out, boost::beast::string_view s) { out.append(s.data(), s.size()); }

void append_version(std::string& out, unsigned version) {
    out += "HTTP/";
    out += static_cast<char>('0' + version / 10);
    out += '.';
    out += static_cast<char>('0' + version % 10);
}

void append_fields(std::string& out, const http::fields& fields) {
    for (const auto& f : fields) {
        append(out, f.name_string());
        out += ": ";
        append(out, f.value());
        out += "\r\n";
    }
    out += "\r\n";
}

}  // namespace

std::string header_bytes(const http::request_header<>& req) {
    std::string out;
    out.reserve(512);
    append(out, req.method_string());
    out += ' ';
    append(out, req.target());
    out += ' ';
    append_version(out, req.version());
    out += "\r\n";
    append_fields(out, req);
    return out;
}

std::string header_bytes(const http::response_header<>& res) {
    std::string out;
    out.reserve(512);
    append_version(out, res.version());
    const unsigned code = res.result_int();
    out += ' ';
    out += static_cast<char>('0' + code / 100);
    out += static_cast<char>('0' + code / 10 % 10);
    out += static_cast<char>('0' + code % 10);
    out += ' ';
    append(out, res.reason());  // the back-end's, or the standard one
    out += "\r\n";
    append_fields(out, res);
    return out;
}

}  // namespace exsim::proxy
