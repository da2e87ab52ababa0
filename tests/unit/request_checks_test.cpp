#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "exsim/common/base64.hpp"
#include "exsim/proxy/request_checks.hpp"

namespace exsim::proxy {
namespace {

struct accepted_row {
    std::string target;
    std::string canonical;
};

struct refused_row {
    std::string target;
    std::string reason;  // a part of the expected error
};

void expect_accepted(const std::vector<accepted_row>& rows) {
    for (const auto& row : rows) {
        const auto result = canonicalize_target(row.target);
        EXPECT_EQ(result.error, "") << row.target;
        EXPECT_EQ(result.target, row.canonical) << row.target;
    }
}

void expect_refused(const std::vector<refused_row>& rows) {
    for (const auto& row : rows) {
        const auto result = canonicalize_target(row.target);
        EXPECT_NE(result.error.find(row.reason), std::string::npos)
            << row.target << " gave error \"" << result.error << "\" and target \"" << result.target << "\"";
        EXPECT_EQ(result.target, "") << row.target;
    }
}

TEST(CanonicalTarget, KeepsACleanTargetAsItIs) {
    expect_accepted({
        {"/", "/"},
        {"/exchange/bob/", "/exchange/bob/"},
        {"/exchange/bob/Inbox/hello.EML", "/exchange/bob/Inbox/hello.EML"},
    });
}

TEST(CanonicalTarget, RemovesDotSegmentsBeforeRouting) {
    expect_accepted({
        {"/exchange/bob/../alice/", "/exchange/alice/"},
        {"/exchange/./bob/./Inbox", "/exchange/bob/Inbox"},
        {"/exchange/bob/..", "/exchange/"},
        {"/exchange/bob/.", "/exchange/bob/"},
        {"/exchange/bob/Inbox/../../alice/Inbox", "/exchange/alice/Inbox"},
    });
}

TEST(CanonicalTarget, TreatsPercentEncodedDotsAsDotSegments) {
    expect_accepted({
        {"/exchange/bob/%2e%2e/alice/", "/exchange/alice/"},
        {"/exchange/bob/%2E%2E/alice/", "/exchange/alice/"},
        {"/exchange/bob/.%2e/alice/", "/exchange/alice/"},
        {"/exchange/bob/%2e/Inbox", "/exchange/bob/Inbox"},
    });
}

TEST(CanonicalTarget, CollapsesDuplicateSlashes) {
    expect_accepted({
        {"//exchange//alice", "/exchange/alice"},
        {"/exchange///bob//", "/exchange/bob/"},
        {"//", "/"},
    });
}

TEST(CanonicalTarget, DecodesUnreservedCharactersAndUpperCasesTheRest) {
    expect_accepted({
        {"/exchange/%61lice/", "/exchange/alice/"},
        {"/exchange/bob/a%3fb%7e", "/exchange/bob/a%3Fb~"},
        {"/exchange/bob/caf%c3%a9", "/exchange/bob/caf%C3%A9"},
    });
}

TEST(CanonicalTarget, DecodesOnlyOnce) {
    expect_accepted({
        {"/exchange/bob/x%252Fy", "/exchange/bob/x%252Fy"},
        {"/exchange/bob/%252e%252e/alice", "/exchange/bob/%252e%252e/alice"},
        // An overlong UTF-8 "." is not a dot: it stays an opaque, encoded name.
        {"/exchange/bob/%c0%ae%c0%ae/alice", "/exchange/bob/%C0%AE%C0%AE/alice"},
    });
}

TEST(CanonicalTarget, KeepsTheQueryAsReceived) {
    expect_accepted({
        {"/exchange/bob/Inbox?Cmd=contents&x=%2f%2e", "/exchange/bob/Inbox?Cmd=contents&x=%2f%2e"},
        {"/exchange/bob/../alice?x", "/exchange/alice?x"},
        {"/exchange/bob?", "/exchange/bob?"},
    });
}

TEST(CanonicalTarget, ReportsThePathWithoutTheQuery) {
    const auto result = canonicalize_target("/exchange/bob/../alice/Inbox?Cmd=contents");
    EXPECT_EQ(result.path, "/exchange/alice/Inbox");
    EXPECT_EQ(result.target, "/exchange/alice/Inbox?Cmd=contents");
}

TEST(CanonicalTarget, RefusesPercentEncodedSlashesAndBackslashes) {
    expect_refused({
        {"/exchange/bob/..%2Falice/", "percent-encoded slash in the path"},
        {"/exchange/bob/..%2falice/", "percent-encoded slash in the path"},
        {"/exchange%2Falice/", "percent-encoded slash in the path"},
        {"/exchange/bob/..%5Calice/", "percent-encoded backslash in the path"},
        {"/exchange/bob/..%5calice/", "percent-encoded backslash in the path"},
    });
}

TEST(CanonicalTarget, RefusesRawBackslashes) {
    expect_refused({
        {"/exchange/bob/..\\alice/", "backslash"},
        {"\\exchange\\alice", "backslash"},
    });
}

TEST(CanonicalTarget, RefusesDotSegmentsAboveTheRoot) {
    expect_refused({
        {"/..", "above the root"},
        {"/exchange/../../exchange/alice/", "above the root"},
        {"/exchange/%2e%2e/%2E%2E/etc", "above the root"},
    });
}

TEST(CanonicalTarget, RefusesNulAndControlCharacters) {
    expect_refused({
        {"/exchange/bob%00/", "percent-encoded NUL in the path"},
        {"/exchange/bob%0a/", "percent-encoded control character in the path"},
        {"/exchange/bob%7F/", "percent-encoded control character in the path"},
        {"/exchange/bob/Inbox?x=%00", "control character in the query"},
        {"/exchange/bob\r\nX-Injected: 1", "control character"},
        {std::string("/exchange/bob\0/", 15), "control character"},
    });
}

TEST(CanonicalTarget, RefusesWhatIsNotOriginForm) {
    expect_refused({
        {"", "origin-form"},
        {"*", "origin-form"},
        {"http://backend/exchange/alice/", "origin-form"},
        {"backend:80", "origin-form"},
        {"exchange/alice", "origin-form"},
    });
}

TEST(CanonicalTarget, RefusesFragmentsAndMalformedTargets) {
    expect_refused({
        {"/exchange/bob#x", "fragment"},
        {"/exchange/bob/%zz", "malformed"},
        {"/exchange/bob/%2", "malformed"},
        {"/exchange/bob alice", "malformed"},
        {"/exchange/bob/caf\xc3\xa9", "malformed"},
    });
}

TEST(CanonicalTarget, RefusesTargetsLongerThan8KiB) {
    const std::string longest = "/" + std::string(8 * 1024 - 1, 'a');
    EXPECT_EQ(canonicalize_target(longest).error, "");
    expect_refused({{longest + "a", "8 KiB"}});
}

std::string basic(std::string_view user_colon_password) {
    return "Basic " + common::base64_encode(user_colon_password);
}

TEST(BasicAuth, ParsesUserAndPassword) {
    const auto credentials = parse_basic_authorization(basic("bob:secret"));
    ASSERT_TRUE(credentials);
    EXPECT_EQ(credentials->user, "bob");
    EXPECT_EQ(credentials->password, "secret");
}

TEST(BasicAuth, AcceptsTheSchemeInAnyCase) {
    for (const char* scheme : {"basic", "BASIC", "bAsIc"})
        EXPECT_TRUE(parse_basic_authorization(std::string(scheme) + " " + common::base64_encode("bob:x"))) << scheme;
}

TEST(BasicAuth, AcceptsSeveralSpacesAfterTheScheme) {
    EXPECT_TRUE(parse_basic_authorization("Basic   " + common::base64_encode("bob:x")));
}

TEST(BasicAuth, KeepsColonsInThePassword) {
    const auto credentials = parse_basic_authorization(basic("bob:a:b:"));
    ASSERT_TRUE(credentials);
    EXPECT_EQ(credentials->user, "bob");
    EXPECT_EQ(credentials->password, "a:b:");
}

TEST(BasicAuth, AcceptsAnEmptyPassword) {
    const auto credentials = parse_basic_authorization(basic("bob:"));
    ASSERT_TRUE(credentials);
    EXPECT_EQ(credentials->password, "");
}

TEST(BasicAuth, RefusesOtherSchemes) {
    const std::string token = common::base64_encode("bob:x");
    const std::vector<std::string> values = {
        "Bearer abc", "NTLM TlRMTVNTUAABAAAAB4IIogAAAAAAAAAAAAAAAAAAAAAGAbEdAAAADw==", "Negotiate YIIB",
        "Basically " + token, "Basic\t" + token, " Basic " + token, "Basic", "Basic ", "",
    };
    for (const auto& value : values) EXPECT_FALSE(parse_basic_authorization(value)) << value;
}

TEST(BasicAuth, RefusesBadBase64) {
    const std::vector<std::string> values = {
        "Basic Ym9iOng", "Basic Ym9iOng=!", "Basic Ym9i Ong=", basic("bob:x") + " ", basic("bob:x") + "\r\n",
    };
    for (const auto& value : values) EXPECT_FALSE(parse_basic_authorization(value)) << value;
}

TEST(BasicAuth, RefusesCredentialsWithoutAColon) {
    EXPECT_FALSE(parse_basic_authorization(basic("bob")));
}

TEST(BasicAuth, RefusesAnEmptyUser) {
    EXPECT_FALSE(parse_basic_authorization(basic(":secret")));
    EXPECT_FALSE(parse_basic_authorization(basic(":")));
}

TEST(BasicAuth, RefusesControlCharacters) {
    const std::vector<std::string> decoded_values = {"bob\n:x", "bob:x\ry", std::string("bob:x\0y", 7), "bob\x7f:x"};
    for (const auto& decoded : decoded_values)
        EXPECT_FALSE(parse_basic_authorization(basic(decoded))) << decoded;
}

TEST(BasicAuth, RefusesHeadersLongerThan1KiB) {
    // "Basic " (6) + 1016 base64 characters = 1022 bytes; one more block of 4 is over 1 KiB.
    const std::string fits = basic("bob:" + std::string(758, 'p'));
    ASSERT_EQ(fits.size(), 1022u);
    EXPECT_TRUE(parse_basic_authorization(fits));
    EXPECT_FALSE(parse_basic_authorization(basic("bob:" + std::string(761, 'p'))));
}

}  // namespace
}  // namespace exsim::proxy
