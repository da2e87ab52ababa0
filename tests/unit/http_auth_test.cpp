#include "exsim/auth/http_auth.hpp"

#include <boost/beast/http.hpp>
#include <gtest/gtest.h>

namespace http = boost::beast::http;
using namespace exsim::auth;

TEST(HttpAuth, ReadsTheSchemeCaseInsensitivelyAndTheTokenBetweenSpaces) {
    const auto h = parse_auth_header("negotiate   TlRMTVNTUAABAAAAB4IIAA==  ");
    EXPECT_EQ(h.scheme_text, "negotiate");
    EXPECT_EQ(h.known_scheme, scheme::negotiate);
    ASSERT_TRUE(h.token);
    EXPECT_EQ(h.token->size(), 16u);
}

TEST(HttpAuth, KeepsAnUnknownSchemeAsSentWithoutKnowingIt) {
    const auto h = parse_auth_header("Basic YWxpY2U6YWxpY2UtcHc=");
    EXPECT_EQ(h.scheme_text, "Basic");
    EXPECT_FALSE(h.known_scheme);
    EXPECT_TRUE(h.token);
}

TEST(HttpAuth, HasNoTokenWhenItIsMissingEmptyOrNotBase64) {
    for (const char* value : {"NTLM", "NTLM ", "NTLM    ", "NTLM TlRMTVNTUA", "NTLM TlRM\tTVNT", ""}) {
        const auto h = parse_auth_header(value);
        EXPECT_FALSE(h.token) << value;
    }
    EXPECT_EQ(parse_auth_header("NTLM").known_scheme, scheme::ntlm);
    EXPECT_EQ(parse_auth_header(" NTLM abcd").scheme_text, "");
}

TEST(HttpAuth, ReadsEachOfferOnceAndOnlyTheTokenOfOurScheme) {
    http::response<http::empty_body> res{http::status::unauthorized, 11};
    res.insert(http::field::www_authenticate, "NTLM");
    res.insert(http::field::www_authenticate, "Basic realm=\"x\"");
    res.insert(http::field::www_authenticate, "Negotiate oQcwBaADCgEC");
    res.insert(http::field::www_authenticate, "negotiate");
    res.insert(http::field::www_authenticate, "Negotiate not-base64!");
    const auto ours = read_challenge(res, scheme::negotiate);
    EXPECT_EQ(ours.offers, (std::vector<std::string>{"NTLM", "Negotiate"}));
    ASSERT_TRUE(ours.token);
    EXPECT_EQ(ours.token->size(), 9u);
    EXPECT_FALSE(read_challenge(res, scheme::ntlm).token);
    EXPECT_FALSE(read_challenge(res, std::nullopt).token);
}
