// The front-end's canonicalization of a request target (proxy/request_checks.hpp), which decides
// what the back-end sees and so which mailbox a request names (MS04-013: canonicalize before you
// route or authorize). The input is the request target. A target that is accepted must come out
// in a form with nothing left to interpret:
//  - origin-form, no empty, "." or ".." segment but a trailing slash, no backslash, control
//    character or fragment;
//  - percent-encodings only for bytes that are not unreserved, in upper-case hex, and never for
//    '/', '\', NUL or a control character (a second decoding must not find another path);
//  - canonical: canonicalizing it again changes nothing, and it is no longer than the input;
//  - the route the front-end takes (anonymous /exchweb/ or a user's back-end) is read from it.

#include <cctype>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include <boost/url/grammar/hexdig_chars.hpp>
#include <boost/url/rfc/unreserved_chars.hpp>

#include "exsim/proxy/request_checks.hpp"
#include "fuzz_check.hpp"

namespace {

using namespace exsim;

void check_path(std::string_view path) {
    EXSIM_FUZZ_CHECK(!path.empty() && path.front() == '/');
    EXSIM_FUZZ_CHECK(path.find('?') == std::string_view::npos && path.find('#') == std::string_view::npos);
    EXSIM_FUZZ_CHECK(path.find('\\') == std::string_view::npos && !fuzz::has_control(path));
    for (std::size_t begin = 1; begin < path.size();) {
        const auto end = std::min(path.find('/', begin), path.size());
        const auto segment = path.substr(begin, end - begin);
        EXSIM_FUZZ_CHECK(!segment.empty() && segment != "." && segment != "..");
        begin = end + 1;
    }
    for (std::size_t i = 0; i < path.size(); ++i) {
        if (path[i] != '%') continue;
        EXSIM_FUZZ_CHECK(i + 2 < path.size());
        const char hi = path[i + 1], lo = path[i + 2];
        EXSIM_FUZZ_CHECK(boost::urls::grammar::hexdig_chars(hi) && boost::urls::grammar::hexdig_chars(lo));
        EXSIM_FUZZ_CHECK(!std::islower(static_cast<unsigned char>(hi)) && !std::islower(static_cast<unsigned char>(lo)));
        const auto c = static_cast<unsigned char>(boost::urls::grammar::hexdig_value(hi) * 16 +
                                                  boost::urls::grammar::hexdig_value(lo));
        EXSIM_FUZZ_CHECK(c != '/' && c != '\\' && c >= 0x20 && c != 0x7f);
        EXSIM_FUZZ_CHECK(!boost::urls::unreserved_chars(static_cast<char>(c)));
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view target(reinterpret_cast<const char*>(data), size);
    const auto canonical = proxy::canonicalize_target(target);
    if (!canonical.error.empty()) {
        EXSIM_FUZZ_CHECK(canonical.target.empty() && canonical.path.empty());
        EXSIM_FUZZ_CHECK(!fuzz::has_control(canonical.error));  // it is quoted in the 400
        return 0;
    }
    EXSIM_FUZZ_CHECK(size <= 8 * 1024);
    check_path(canonical.path);
    const std::string_view out = canonical.target;
    EXSIM_FUZZ_CHECK(out.starts_with(canonical.path));
    EXSIM_FUZZ_CHECK(out.size() == canonical.path.size() || out[canonical.path.size()] == '?');
    EXSIM_FUZZ_CHECK(!fuzz::has_control(out) && out.find('#') == std::string_view::npos);
    EXSIM_FUZZ_CHECK(out.size() <= target.size());
    // The query is passed on as received.
    const auto query = target.find('?');
    EXSIM_FUZZ_CHECK((query == std::string_view::npos) == (out.size() == canonical.path.size()));
    if (query != std::string_view::npos) EXSIM_FUZZ_CHECK(out.substr(canonical.path.size()) == target.substr(query));

    const auto again = proxy::canonicalize_target(out);
    EXSIM_FUZZ_CHECK(again.error.empty() && again.target == canonical.target && again.path == canonical.path);

    // The route: /exchweb/ is served anonymously by the first back-end; anything else needs a user.
    const bool anonymous = canonical.path.starts_with("/exchweb/");
    EXSIM_FUZZ_CHECK(!anonymous || again.path.starts_with("/exchweb/"));
    return 0;
}
