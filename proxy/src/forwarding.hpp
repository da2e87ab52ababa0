#pragma once
// Header rewriting for a forwarded message (RFC 9110 section 7.6.1): what the back-end gets of a
// client's request and what the client gets of the back-end's response. Private to the proxy;
// the benchmarks include it to time it alone.

#include <string>
#include <string_view>

#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/message.hpp>

namespace exsim::proxy {

// Fields that belong to one hop (Connection and what it governs, Host) or to one hop's
// authentication (Authorization, WWW-Authenticate: the proxy authenticates to the back-end
// itself). Case-insensitive.
bool is_hop_by_hop(std::string_view name);

// The request header as the back-end gets it: the client's end-to-end fields, never its
// Authorization nor any X-Exsim-* it sent; then the back-end's Host (`host`, "be1.exsim.test:8081"),
// who the proxy acts for (X-Exsim-On-Behalf-Of, when `user` is not empty), HTTP/1.1 keep-alive.
boost::beast::http::request<boost::beast::http::buffer_body> backend_request(
    const boost::beast::http::request_header<>& req, const std::string& target, const std::string& user,
    const std::string& host);

// The response header as the client gets it, in the client's HTTP `version`: the back-end's
// end-to-end fields (its WWW-Authenticate is the proxy's business). Framing is the caller's.
boost::beast::http::response<boost::beast::http::buffer_body> client_response(
    const boost::beast::http::response_header<>& res, unsigned version);

// RFC 6797: every response over TLS tells the browser to come back over TLS only, for two years
// (Mozilla's value); never one over plain HTTP, where anyone on the path could add or strip it.
// The header is the proxy's: a back-end's own is replaced, or dropped.
void mark_tls_only(boost::beast::http::fields& header, bool tls);

// A header's bytes exactly as Beast's serializer writes them (start line, the fields in order,
// the blank line), in one buffer. Beast hands a socket one buffer per field, and walking that
// sequence to size, gather and consume it took about an eighth of the proxy's CPU for a small
// request; one buffer is one iovec.
std::string header_bytes(const boost::beast::http::request_header<>& req);
std::string header_bytes(const boost::beast::http::response_header<>& res);

}  // namespace exsim::proxy
