// The HTTP authentication headers: the back-end's reading of `Authorization: Negotiate|NTLM
// <base64>` and the clients' reading of a 401's `WWW-Authenticate` lines (auth/http_auth.hpp),
// and the front-end's `Authorization: Basic` (proxy/request_checks.hpp). The input is one header
// value given straight to the parsers; its first lines are also sent as the WWW-Authenticate lines
// of a 401 through Beast's response parser, as the front-end and the load generator receive them.
// Beyond "no crash": what a parser accepts is written back and read again to the same thing, a
// Basic user never holds a colon or a control character, and a challenge only names the two
// schemes, each once.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <boost/beast/http.hpp>

#include "exsim/auth/http_auth.hpp"
#include "exsim/common/base64.hpp"
#include "exsim/proxy/request_checks.hpp"
#include "fuzz_check.hpp"

namespace {

using namespace exsim;
namespace http = boost::beast::http;

void check_auth_header(std::string_view value) {
    const auto h = auth::parse_auth_header(value);
    EXSIM_FUZZ_CHECK(h.scheme_text.data() == value.data() && h.scheme_text.find(' ') == std::string_view::npos);
    if (h.known_scheme) EXSIM_FUZZ_CHECK(auth::parse_scheme(auth::scheme_name(*h.known_scheme)) == h.known_scheme);
    if (!h.token) return;
    EXSIM_FUZZ_CHECK(!h.token->empty());
    if (!h.known_scheme) return;
    const auto again = auth::parse_auth_header(auth::token_header(*h.known_scheme, *h.token));
    EXSIM_FUZZ_CHECK(again.known_scheme == h.known_scheme && again.token == h.token);
}

void check_basic(std::string_view value) {
    const auto credentials = proxy::parse_basic_authorization(value);
    if (!credentials) return;
    EXSIM_FUZZ_CHECK(value.size() <= 1024);
    EXSIM_FUZZ_CHECK(!credentials->user.empty() && credentials->user.find(':') == std::string::npos);
    EXSIM_FUZZ_CHECK(!fuzz::has_control(credentials->user) && !fuzz::has_control(credentials->password));
    const auto again =
        proxy::parse_basic_authorization("Basic " + common::base64_encode(credentials->user + ":" + credentials->password));
    EXSIM_FUZZ_CHECK(again && again->user == credentials->user && again->password == credentials->password);
}

// Each of the first lines of the input as one WWW-Authenticate line of a 401, read by Beast
// first. (A real 401 has two or three; thousands only slow the fuzzer down in Beast's field set.)
void check_challenge(std::string_view input, std::optional<auth::scheme> ours) {
    constexpr std::size_t max_lines = 16;
    std::string wire = "HTTP/1.1 401 Unauthorized\r\n";
    std::size_t lines = 0;
    for (std::size_t begin = 0; begin <= input.size() && lines++ < max_lines;) {
        const auto end = std::min(input.find('\n', begin), input.size());
        wire += "WWW-Authenticate: ";
        wire += input.substr(begin, end - begin);
        wire += "\r\n";
        begin = end + 1;
    }
    wire += "Content-Length: 0\r\n\r\n";
    http::response_parser<http::empty_body> parser;
    boost::beast::error_code ec;
    parser.put(boost::asio::buffer(wire), ec);
    if (ec || !parser.is_done()) return;
    const auto c = auth::read_challenge(parser.get(), ours);
    for (const auto& offer : c.offers) {
        EXSIM_FUZZ_CHECK(offer == "Negotiate" || offer == "NTLM");
        EXSIM_FUZZ_CHECK(std::count(c.offers.begin(), c.offers.end(), offer) == 1);
    }
    if (c.token) {
        EXSIM_FUZZ_CHECK(ours && !c.token->empty());
        EXSIM_FUZZ_CHECK(std::find(c.offers.begin(), c.offers.end(), auth::scheme_name(*ours)) != c.offers.end());
    }
    const bool negotiate = auth::offers_negotiate(c.offers);
    const auto mode = auth::mode_for(c.offers, false);
    EXSIM_FUZZ_CHECK(mode && (*mode == auth::initiator_mode::ntlm) == (!c.offers.empty() && !negotiate));
    const auto kerberos_only = auth::mode_for(c.offers, true);
    EXSIM_FUZZ_CHECK(kerberos_only ? *kerberos_only == auth::initiator_mode::kerberos : !c.offers.empty() && !negotiate);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view input(reinterpret_cast<const char*>(data), size);
    check_auth_header(input);
    check_basic(input);
    check_challenge(input, std::nullopt);
    check_challenge(input, auth::scheme::negotiate);
    check_challenge(input, auth::scheme::ntlm);
    return 0;
}
