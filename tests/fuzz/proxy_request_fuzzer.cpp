// The front-end's own handling of a client request, without sockets: raw client bytes, one or
// more requests as on a kept-alive connection, through the steps of the proxy's client session in
// its order and with its functions: the raw-header checks (a request line without a version,
// obs-fold), Beast's parser with the proxy's limits, then route_request() (framing, field count,
// target canonicalization, the browser view, the Basic login against the directory, the user's
// home back-end), the very function the session calls. Directory: the default topology (alice
// and bob on be1, carol and dave on be2, passwords "<user>-pw").
//
// Beyond "no crash": a refusal is one of the statuses the session answers with, closes exactly
// when framing is in doubt, and names no one; a forwarded request goes, as a user, only where that
// user's own Basic credentials (name and password exactly) and home back-end say, and anonymously
// only to /exchweb/ on the first back-end; its target is canonical (canonicalizing again changes
// nothing); the browser view gets /owa only. A request after a refusal that closes is never read.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <boost/beast/http.hpp>

#include "exsim/common/http_framing.hpp"
#include "exsim/common/topology.hpp"
#include "exsim/proxy/request_checks.hpp"
#include "exsim/proxy/server.hpp"
#include "directory.hpp"
#include "fuzz_check.hpp"
#include "http_input.hpp"

namespace {

using namespace exsim;
using fuzz::directory;
using fuzz::users;
namespace http = boost::beast::http;
using route = proxy::request_route;

constexpr std::size_t max_requests_per_input = 8;

void check_refusal(const route& r) {
    using refusal = route::refusal;
    EXSIM_FUZZ_CHECK(r.refused != refusal::none && !r.why.empty() && !fuzz::has_control(r.why));
    EXSIM_FUZZ_CHECK(r.user == nullptr && r.backend == nullptr);
    switch (r.refused) {
        case refusal::framing:
        case refusal::bad_target:
            EXSIM_FUZZ_CHECK(r.status == http::status::bad_request);
            break;
        case refusal::too_many_fields:
            EXSIM_FUZZ_CHECK(r.status == http::status::request_header_fields_too_large);
            break;
        case refusal::no_login:
        case refusal::bad_login:
            EXSIM_FUZZ_CHECK(r.status == http::status::unauthorized);
            // The same words for an unknown user and a wrong password: they name neither.
            EXSIM_FUZZ_CHECK(r.why == "unknown user or wrong password" || r.why == "log in with Basic authentication");
            break;
        case refusal::none:
            break;
    }
    EXSIM_FUZZ_CHECK(r.closes() == (r.refused == refusal::framing || r.refused == refusal::too_many_fields));
}

void check_forward(const http::request_header<>& req, const route& r) {
    EXSIM_FUZZ_CHECK(r.refused == route::refusal::none && r.backend != nullptr);
    const auto& path = r.canonical.path;
    const auto again = proxy::canonicalize_target(r.canonical.target);
    EXSIM_FUZZ_CHECK(again.error.empty() && again.target == r.canonical.target && again.path == path);
    if (!r.user) {  // anonymous: static content only, from the first back-end
        EXSIM_FUZZ_CHECK(path.starts_with("/exchweb/") && r.backend == &directory().backends.front());
        return;
    }
    EXSIM_FUZZ_CHECK(!path.starts_with("/exchweb/") && path != "/owa" && !path.starts_with("/owa/"));
    const auto credentials = proxy::parse_basic_authorization(req[http::field::authorization]);
    EXSIM_FUZZ_CHECK(credentials && credentials->user == r.user->name && credentials->password == r.user->password);
    EXSIM_FUZZ_CHECK(r.backend == directory().find_backend(r.user->home));
}

// One request from the front of `input`, as the session reads it. False when the connection
// would close.
bool serve_one(std::string_view& input, const proxy::proxy_limits& limits) {
    const std::string_view buffered = input.substr(0, limits.header_bytes + 1);
    if (common::request_line_lacks_version(buffered)) return false;  // 400, closed
    if (const auto end = common::header_end(buffered); end != std::string_view::npos && common::has_obs_fold(buffered.substr(0, end)))
        return false;  // 400, closed

    // The session's parser has a buffer_body it fills piece by piece; a string_body reads the
    // same header and the same body framing.
    http::request_parser<http::string_body> parser;
    parser.header_limit(static_cast<std::uint32_t>(limits.header_bytes));
    parser.body_limit(limits.body_bytes);
    parser.eager(false);  // the header alone: the session routes before it reads a body
    boost::beast::error_code ec;
    input.remove_prefix(parser.put(boost::asio::buffer(input.data(), input.size()), ec));
    if (ec || !parser.is_header_done()) return false;  // malformed (4xx, closed) or not whole yet

    const auto& req = parser.get();
    const auto r = proxy::route_request(req, parser.chunked(), directory(), users());
    switch (r.what) {
        case route::outcome::refuse:
            check_refusal(r);
            if (r.closes()) return false;
            break;
        case route::outcome::browser_view:
            EXSIM_FUZZ_CHECK(r.refused == route::refusal::none && r.user == nullptr);
            EXSIM_FUZZ_CHECK(r.canonical.path == "/owa" || r.canonical.path.starts_with("/owa/"));
            break;
        case route::outcome::forward:
            check_forward(req, r);
            break;
    }
    // The body, read on (or refused: 413) before the next request.
    parser.eager(true);
    ec = fuzz::feed(parser, input);
    return !ec && parser.is_done() && req.keep_alive();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static const proxy::proxy_limits limits;
    std::string_view input(reinterpret_cast<const char*>(data), size);
    for (std::size_t n = 0; n < max_requests_per_input && !input.empty(); ++n)
        if (!serve_one(input, limits)) break;
    return 0;
}
