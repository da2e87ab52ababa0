// The browser view (/owa/) through a real front-end, back-ends and KDC: its pages reach the
// back-end through the same pool as every request, so under `legacy` with an NTLM-only back-end
// (be2: carol and dave) dave's inbox page is carol's, with a red banner; under `ms04-002` never.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <regex>

#include <fmt/format.h>

#include "exsim/proxy/owa.hpp"
#include "proxy_support.hpp"

namespace exsim::testing {
namespace {

using proxy::reuse_decision;
using proxy::worker_metrics;
using verb = http::verb;
using ::testing::HasSubstr;
using ::testing::Not;

const std::map<std::string, std::string> form_type{{"Content-Type", "application/x-www-form-urlencoded"}};

// A browser's view of the front-end: its own connection and its session cookie.
class owa_client {
public:
    owa_client(const proxy::server& p, const std::string& user) : c_(p.port()) {
        auto res = c_.request(verb::post, "/owa/auth/logon", form_type,
                              fmt::format("username={}&password={}-pw", user, user));
        EXPECT_EQ(res.result_int(), 303) << res.body();
        const std::string set(res[http::field::set_cookie]);
        cookie_ = set.substr(0, set.find(';'));
    }

    response get(const std::string& target) { return c_.request(verb::get, target, {{"Cookie", cookie_}}); }
    response post(const std::string& target, const std::string& body) {
        auto h = form_type;
        h["Cookie"] = cookie_;
        return c_.request(verb::post, target, h, body);
    }
    // The anti-CSRF token of a page's forms.
    static std::string csrf(const response& page) {
        std::smatch m;
        const std::string body = page.body();
        return std::regex_search(body, m, std::regex("name=\"csrf\" value=\"([0-9a-f]+)\"")) ? m[1].str() : "";
    }

private:
    connection c_;
    std::string cookie_;
};

bool red(const response& page) { return page.body().find("class=\"banner leak\"") != std::string::npos; }

TEST(ProxyOwa, LogonSetsAnHttpOnlySecureSameSiteStrictCookie) {
    auto p = start_proxy();
    connection c(p->port());
    auto res = c.request(verb::post, "/owa/auth/logon", form_type, "username=carol&password=carol-pw");
    EXPECT_EQ(res.result_int(), 303) << res.body();
    EXPECT_EQ(res[http::field::location], "/owa/inbox");
    const std::string cookie(res[http::field::set_cookie]);
    EXPECT_THAT(cookie, HasSubstr("HttpOnly"));
    EXPECT_THAT(cookie, HasSubstr("Secure"));
    EXPECT_THAT(cookie, HasSubstr("SameSite=Strict"));
    EXPECT_THAT(std::string(res["Content-Security-Policy"]), HasSubstr("default-src 'none'"));
}

TEST(ProxyOwa, UnderLegacyWithAnNtlmOnlyBackendDavesInboxPageShowsCarolsMailboxInRed) {
    audit_since be2("be2");
    auto p = start_proxy({.policy = "legacy"});
    owa_client carol(*p, "carol"), dave(*p, "dave");

    auto own = carol.get("/owa/inbox");
    ASSERT_EQ(own.result_int(), 200) << own.body();
    EXPECT_FALSE(red(own));
    EXPECT_THAT(own.body(), HasSubstr("Inbox of <span id=\"mailbox\">carol</span>"));

    auto leaked = dave.get("/owa/inbox");
    ASSERT_EQ(leaked.result_int(), 200) << leaked.body();
    EXPECT_TRUE(red(leaked)) << leaked.body();
    EXPECT_THAT(leaked.body(), HasSubstr("LEAK: this is not your mailbox"));
    EXPECT_THAT(leaked.body(), HasSubstr("served from mailbox <b>carol</b> as identity <b>carol</b>"));
    EXPECT_THAT(leaked.body(), HasSubstr("Inbox of <span id=\"mailbox\">carol</span>"));
    EXPECT_THAT(leaked.body(), HasSubstr("/owa/message?id=carol."));

    // The same pool and exchange as any request: one connection, re-used as it is.
    EXPECT_EQ(metric(*p, &worker_metrics::connections_opened), 1);
    EXPECT_EQ(acquired(*p, reuse_decision::reused_as_is), 1);
    EXPECT_EQ(metric(*p, &worker_metrics::cross_user_responses), 1);
    EXPECT_EQ(sample(p->metrics_text(), R"(exsim_proxy_cross_user_responses_total{policy="legacy"})"), 1);
    const auto records = be2.records();
    ASSERT_EQ(records.size(), 2u);
    EXPECT_EQ(records[1].on_behalf_of, "dave");
    EXPECT_EQ(records[1].identity, "carol");
}

TEST(ProxyOwa, UnderMs04002DaveNeverSeesAnotherMailboxOverTheSameSteps) {
    auto p = start_proxy({.policy = "ms04-002"});
    owa_client carol(*p, "carol"), dave(*p, "dave");
    for (int i = 0; i < 3; ++i) {
        auto c = carol.get("/owa/inbox");
        auto d = dave.get("/owa/inbox");
        ASSERT_EQ(c.result_int(), 200) << c.body();
        ASSERT_EQ(d.result_int(), 200) << d.body();
        EXPECT_FALSE(red(c));
        EXPECT_FALSE(red(d)) << d.body();
        EXPECT_THAT(d.body(), HasSubstr("Inbox of <span id=\"mailbox\">dave</span>"));
    }
    EXPECT_EQ(metric(*p, &worker_metrics::cross_user_responses), 0);
}

TEST(ProxyOwa, WithTheLeakGuardTheLeakedPageIsWithheldAndStillCounted) {
    auto p = start_proxy({.policy = "legacy", .leak_guard = true});
    owa_client carol(*p, "carol"), dave(*p, "dave");
    ASSERT_EQ(carol.get("/owa/inbox").result_int(), 200);
    auto d = dave.get("/owa/inbox");
    EXPECT_EQ(d.result_int(), 502) << d.body();
    EXPECT_THAT(d.body(), HasSubstr("leak guard"));
    EXPECT_THAT(d.body(), Not(HasSubstr("carol.")));
    EXPECT_EQ(metric(*p, &worker_metrics::leak_guard_hits), 1);
    EXPECT_EQ(metric(*p, &worker_metrics::cross_user_responses), 1);
}

TEST(ProxyOwa, ComposeSendsThroughTheProxyAndTheMessagePageShowsItEscaped) {
    auto p = start_proxy();
    owa_client carol(*p, "carol");
    auto form = carol.get("/owa/compose");
    ASSERT_EQ(form.result_int(), 200);
    const auto token = owa_client::csrf(form);
    ASSERT_FALSE(token.empty()) << form.body();

    auto sent = carol.post("/owa/compose", "to=carol&subject=%3Cb%3Eowa%3C%2Fb%3E&body=hello&csrf=" + token);
    ASSERT_EQ(sent.result_int(), 200) << sent.body();
    std::smatch m;
    const std::string body = sent.body();
    ASSERT_TRUE(std::regex_search(body, m, std::regex("Message (carol\\.[0-9]+) sent"))) << body;

    auto inbox = carol.get("/owa/inbox");
    ASSERT_EQ(inbox.result_int(), 200);
    EXPECT_THAT(inbox.body(), HasSubstr("&lt;b&gt;owa&lt;/b&gt;"));
    EXPECT_THAT(inbox.body(), Not(HasSubstr("<b>owa</b>")));

    auto unknown = carol.get("/owa/message?id=carol.999999");
    EXPECT_EQ(unknown.result_int(), 404) << unknown.body();
    EXPECT_THAT(unknown.body(), HasSubstr("no such message"));
}

TEST(ProxyOwa, ComposeWithoutTheTokenIs403AndSendsNothing) {
    audit_since be2("be2");
    auto p = start_proxy();
    owa_client carol(*p, "carol");
    auto res = carol.post("/owa/compose", "to=carol&subject=forged&body=x");
    EXPECT_EQ(res.result_int(), 403);
    EXPECT_TRUE(be2.records().empty());
}

TEST(ProxyOwa, FormLargerThanTheLimitIs413) {
    auto p = start_proxy();
    owa_client carol(*p, "carol");
    auto res = carol.post("/owa/compose", "body=" + std::string(proxy::owa::max_form_bytes, 'x'));
    EXPECT_EQ(res.result_int(), 413);
    EXPECT_THAT(res.body(), HasSubstr("may not exceed"));
}

}  // namespace
}  // namespace exsim::testing
