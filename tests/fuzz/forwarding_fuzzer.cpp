// What the front-end forwards (proxy/src/forwarding.hpp): a client's request header on its way to
// a back-end, and a back-end's response header on its way to the client. The input's first byte
// chooses who the front-end acts for (anonymous, alice or bob) and the client's HTTP version; the
// rest is read as a request header, as the front-end reads it (its header limit; obs-fold and
// targets that do not canonicalize are refused before anything is forwarded), and again as a
// response header. Beyond "no crash, no exception" (the front-end's data path has none):
//  - the back-end reads back exactly one request: the client's method, the canonical target, one
//    Host (the back-end's), no Authorization, and of the X-Exsim-* fields only the front-end's
//    X-Exsim-On-Behalf-Of naming the user it acts for (docs/design.md section 7: a client cannot spoof
//    it); every other field is one the client sent, unchanged;
//  - the client gets the back-end's status and end-to-end fields, none of its WWW-Authenticate.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <sstream>
#include <string>
#include <string_view>

#include <boost/beast/core/string.hpp>
#include <boost/beast/http.hpp>

#include "exsim/backend_sim/server.hpp"
#include "exsim/common/http_framing.hpp"
#include "exsim/proxy/request_checks.hpp"
#include "exsim/proxy/server.hpp"
#include "forwarding.hpp"
#include "fuzz_check.hpp"
#include "http_input.hpp"

namespace {

using namespace exsim;
namespace http = boost::beast::http;
using boost::beast::iequals;

constexpr std::string_view users[] = {"", "alice", "bob"};
const std::string backend_host = "be1.exsim.test:8081";

std::string_view sv(boost::beast::string_view s) { return {s.data(), s.size()}; }

// How often `name: value` appears among `fields`.
template <class Fields>
std::size_t occurrences(const Fields& fields, std::string_view name, std::string_view value) {
    return static_cast<std::size_t>(std::count_if(fields.begin(), fields.end(), [&](const auto& f) {
        return iequals(f.name_string(), name) && sv(f.value()) == value;
    }));
}

// Reads a header the way a peer would, from its serialized bytes; false when it does not parse.
template <bool isRequest>
bool read_header(std::string_view wire, http::parser<isRequest, http::empty_body>& parser, std::size_t limit) {
    parser.header_limit(static_cast<std::uint32_t>(limit));
    parser.skip(true);  // a header only: what follows is a body or nothing
    return !fuzz::feed(parser, wire) && parser.is_header_done();
}

void check_request(std::string_view raw, const std::string& user) {
    const proxy::proxy_limits limits;
    const auto end = common::header_end(raw);
    if (end == std::string_view::npos || common::has_obs_fold(raw.substr(0, end))) return;
    http::request_parser<http::empty_body> parser;
    if (!read_header(raw, parser, limits.header_bytes)) return;
    const auto& req = parser.get();
    const auto canonical = proxy::canonicalize_target(sv(req.target()));
    if (!canonical.error.empty()) return;

    const auto out = proxy::backend_request(req, canonical.target, user, backend_host);
    std::ostringstream os;
    os << out.base();
    const std::string wire = os.str();
    EXSIM_FUZZ_CHECK(common::header_end(wire) == wire.size() && !common::has_obs_fold(wire));

    http::request_parser<http::empty_body> backend;
    EXSIM_FUZZ_CHECK(read_header(wire, backend, backend::server_limits{}.header_bytes));
    const auto& got = backend.get();
    EXSIM_FUZZ_CHECK(got.method_string() == req.method_string() && got.target() == canonical.target);
    EXSIM_FUZZ_CHECK(got.version() == 11 && got.keep_alive());
    EXSIM_FUZZ_CHECK(got.count(http::field::host) == 1 && got[http::field::host] == backend_host);
    EXSIM_FUZZ_CHECK(got.count(http::field::authorization) == 0);
    for (const auto& f : got) {
        const auto name = sv(f.name_string());
        if (iequals(name.substr(0, 8), "x-exsim-")) {
            EXSIM_FUZZ_CHECK(iequals(name, "X-Exsim-On-Behalf-Of") && !user.empty() && f.value() == user);
            EXSIM_FUZZ_CHECK(got.count("X-Exsim-On-Behalf-Of") == 1);
        } else if (f.name() != http::field::host && f.name() != http::field::connection) {
            EXSIM_FUZZ_CHECK(!proxy::is_hop_by_hop(name));
            EXSIM_FUZZ_CHECK(occurrences(got, name, sv(f.value())) <= occurrences(req, name, sv(f.value())));
        }
    }
    EXSIM_FUZZ_CHECK(user.empty() == (got.count("X-Exsim-On-Behalf-Of") == 0));
}

void check_response(std::string_view raw, unsigned client_version) {
    http::response_parser<http::empty_body> parser;
    if (!read_header(raw, parser, 64 * 1024)) return;
    const auto& res = parser.get();
    const auto out = proxy::client_response(res, client_version);
    EXSIM_FUZZ_CHECK(out.result_int() == res.result_int() && out.version() == client_version);
    for (const auto& f : out) {
        EXSIM_FUZZ_CHECK(!proxy::is_hop_by_hop(sv(f.name_string())));
        EXSIM_FUZZ_CHECK(occurrences(out, sv(f.name_string()), sv(f.value())) ==
                         occurrences(res, sv(f.name_string()), sv(f.value())));
    }
    EXSIM_FUZZ_CHECK(out.count(http::field::www_authenticate) == 0);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return 0;
    const std::string user(users[(data[0] & 0x0f) % std::size(users)]);
    const unsigned client_version = (data[0] & 0x10) ? 10 : 11;
    const std::string_view raw(reinterpret_cast<const char*>(data + 1), size - 1);
    check_request(raw, user);
    check_response(raw, client_version);
    return 0;
}
