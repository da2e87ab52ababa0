// Boost's assertions in a build that defines BOOST_ENABLE_ASSERT_HANDLER (the fuzz preset): each
// one aborts, as BOOST_ASSERT would, except one that Boost itself has since found false. Other
// builds compile nothing here.
//
// Beast 1.81's basic_parser::parse_chunk_header asserts `n >= 5` in the trailer state after a
// final chunk; a peer that sends "0\r\n" and then the rest a byte at a time reaches it with 3 or
// 4 bytes, and the code after it answers need_more correctly. Upstream corrected the assertion
// (boostorg/beast pull request 2861, Boost 1.86). Builds with NDEBUG (dev, release) never check
// it; fuzz_backend_request found it.

#ifdef BOOST_ENABLE_ASSERT_HANDLER

#include <cstdio>
#include <cstdlib>
#include <string_view>

#include <boost/assert.hpp>

namespace boost {

void assertion_failed(char const* expr, char const* function, char const* file, long line) {
    if (std::string_view(expr) == "n >= 5" && std::string_view(file).ends_with("beast/http/impl/basic_parser.ipp"))
        return;
    std::fprintf(stderr, "%s:%ld: %s: Assertion `%s' failed.\n", file, line, function, expr);
    std::abort();
}

void assertion_failed_msg(char const* expr, char const* msg, char const* function, char const* file, long line) {
    std::fprintf(stderr, "%s:%ld: %s: Assertion `%s' failed: %s\n", file, line, function, expr, msg);
    std::abort();
}

}  // namespace boost

#endif  // BOOST_ENABLE_ASSERT_HANDLER
