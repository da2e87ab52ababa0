// The browser view's pure parts (form decoding, cookies, CSRF, banner) and its pages, served by
// owa::site with a stand-in for the proxy's forward path.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <thread>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>

#include "exsim/proxy/owa.hpp"

namespace exsim::proxy::owa {
namespace {
namespace net = boost::asio;
using ::testing::HasSubstr;
using ::testing::Not;

// ---- pure parts -------------------------------------------------------------------------------

TEST(OwaForm, DecodesPlusAndPercentEscapes) {
    const auto f = decode_form("to=bob&subject=Hello+there%21&body=a%26b%3Dc&empty=");
    EXPECT_EQ(f.error, "");
    EXPECT_EQ(*f.find("to"), "bob");
    EXPECT_EQ(*f.find("subject"), "Hello there!");
    EXPECT_EQ(*f.find("body"), "a&b=c");
    EXPECT_EQ(*f.find("empty"), "");
    EXPECT_EQ(f.find("missing"), nullptr);
}

TEST(OwaForm, MalformedEncodingNamesTheField) {
    EXPECT_EQ(decode_form("to=bob&subject=50%").error, "field 'subject': bad percent-encoding");
    EXPECT_EQ(decode_form("body=%zz").error, "field 'body': bad percent-encoding");
    EXPECT_EQ(decode_form("a%2=1").error, "a field name has a bad percent-encoding");
}

TEST(OwaForm, KeepsTheFirstOfARepeatedField) {
    EXPECT_EQ(*decode_form("csrf=good&csrf=evil").find("csrf"), "good");
}

TEST(OwaForm, UrlEncodeLeavesOnlyUnreservedCharacters) {
    EXPECT_EQ(url_encode("alice.12"), "alice.12");
    EXPECT_EQ(url_encode("a b&c\"<"), "a%20b%26c%22%3C");
}

TEST(OwaCookie, SessionCookieIsHttpOnlySecureAndSameSiteStrict) {
    const auto c = session_cookie("abc");
    EXPECT_EQ(c.rfind("exsim_session=abc;", 0), 0u) << c;
    EXPECT_THAT(c, HasSubstr("; Path=/owa/"));
    EXPECT_THAT(c, HasSubstr("; HttpOnly"));
    EXPECT_THAT(c, HasSubstr("; Secure"));
    EXPECT_THAT(c, HasSubstr("; SameSite=Strict"));
    EXPECT_THAT(cleared_cookie(), HasSubstr("Max-Age=0"));
}

TEST(OwaCookie, FindsItsValueAmongOthers) {
    EXPECT_EQ(cookie_value("a=1; exsim_session=xyz; b=2", "exsim_session"), "xyz");
    EXPECT_EQ(cookie_value("exsim_session_old=1", "exsim_session"), "");
    EXPECT_EQ(cookie_value("", "exsim_session"), "");
}

TEST(OwaCsrf, TokenMustMatchExactly) {
    EXPECT_TRUE(token_matches("0123abcd", "0123abcd"));
    EXPECT_FALSE(token_matches("0123abcd", "0123abce"));
    EXPECT_FALSE(token_matches("0123abcd", "0123abc"));
    EXPECT_FALSE(token_matches("", "")) << "no session token: nothing matches";
}

TEST(OwaCsrf, OnlyTheSameOriginOrNoneMayPost) {
    EXPECT_TRUE(same_origin("", "127.0.0.1:8443"));
    EXPECT_TRUE(same_origin("https://127.0.0.1:8443", "127.0.0.1:8443"));
    EXPECT_FALSE(same_origin("https://evil.example", "127.0.0.1:8443"));
    EXPECT_FALSE(same_origin("null", "127.0.0.1:8443"));
}

TEST(OwaSession, IdsAreRandom64HexDigits) {
    const auto a = random_hex(32), b = random_hex(32);
    EXPECT_EQ(a.size(), 64u);
    EXPECT_NE(a, b);
    EXPECT_EQ(a.find_first_not_of("0123456789abcdef"), std::string::npos);
}

TEST(OwaSession, ExpiresAfterItsIdleTimeout) {
    // 300 ms: longer than a busy machine keeps this thread from running between create() and the
    // finds (30 ms was not), shorter than the wait below.
    session_store store(std::chrono::milliseconds(300));
    const auto id = store.create("alice", "alice-pw");
    ASSERT_TRUE(store.find(id));
    EXPECT_EQ(store.find(id)->user, "alice");
    EXPECT_EQ(store.find(id)->csrf.size(), 64u);
    std::this_thread::sleep_for(std::chrono::milliseconds(600));
    EXPECT_FALSE(store.find(id));
    EXPECT_FALSE(store.find(""));
}

TEST(OwaBanner, IsGreenForTheUsersOwnMailboxAndRedForAnother) {
    banner own{"legacy", "be1", "bob", "bob", "bob"};
    EXPECT_FALSE(own.leak());
    EXPECT_THAT(render_banner(own), HasSubstr("class=\"banner ok\""));
    EXPECT_THAT(render_banner(own), Not(HasSubstr("LEAK")));

    banner leaked{"legacy", "be1", "bob", "alice", "alice"};
    EXPECT_TRUE(leaked.leak());
    const auto html = render_banner(leaked);
    EXPECT_THAT(html, HasSubstr("class=\"banner leak\""));
    EXPECT_THAT(html, HasSubstr("served from mailbox <b>alice</b> as identity <b>alice</b>"));
    EXPECT_THAT(html, HasSubstr("LEAK: this is not your mailbox"));
    EXPECT_THAT(html, HasSubstr("policy <b>legacy</b>"));
}

TEST(OwaBanner, EscapesWhatTheBackendSaid) {
    const auto html = render_banner({"legacy", "be1", "bob", "<script>x</script>", "a\"b"});
    EXPECT_THAT(html, Not(HasSubstr("<script>")));
    EXPECT_THAT(html, HasSubstr("&lt;script&gt;"));
    EXPECT_THAT(html, HasSubstr("a&quot;b"));
}

// ---- the site, with a stand-in back-end ---------------------------------------------------------

class OwaSite : public ::testing::Test {
protected:
    OwaSite() : users_(topo_), site_(topo_, users_, [] { return std::vector<const worker_metrics*>{}; }) {
        topo_.frontend.policy = "legacy";
    }

    static backend_reply reply(unsigned status, const std::string& mailbox, std::string body) {
        backend_reply r;
        r.status = status;
        r.backend = "be1";
        r.mailbox = r.identity = mailbox;
        r.body = std::move(body);
        return r;
    }

    // What the stand-in answers for the next back-end request.
    backend_reply next_ = reply(200, "bob",
                                R"({"mailbox":"bob","folder":"Inbox","messages":[{"id":"bob.1","from":"alice",)"
                                R"("to":"bob","subject":"<img src=x onerror=alert(1)>","date":"2026-01-01T00:00:00.000Z"}]})");
    std::vector<backend_call> calls_;

    page serve(http::verb method, std::string_view target, std::string_view body = {}, std::string cookie = {},
               std::string_view origin = {}) {
        const auto q = target.find('?');
        request r{method, target.substr(0, q), q == std::string_view::npos ? std::string_view{} : target.substr(q + 1),
                  cookie, origin, "127.0.0.1:8443", body};
        net::io_context ioc;
        auto fetch = [this](backend_call c) -> net::awaitable<backend_reply> {
            calls_.push_back(c);
            co_return next_;
        };
        auto f = net::co_spawn(ioc, site_.handle(r, fetch), net::use_future);
        ioc.run();
        return f.get();
    }

    // Logs in as `user`; returns the Cookie header value.
    std::string log_in(const std::string& user) {
        auto p = serve(http::verb::post, "/owa/auth/logon", "username=" + user + "&password=" + user + "-pw");
        EXPECT_EQ(p.result_int(), 303) << p.body();
        const std::string set = std::string(p[http::field::set_cookie]);
        return set.substr(0, set.find(';'));
    }

    std::string csrf_of(const std::string& cookie) {
        return site_.sessions().find(cookie_value(cookie, cookie_name))->csrf;
    }

    common::topology topo_ = common::default_topology();
    common::user_index users_;
    site site_;
};

TEST_F(OwaSite, EveryPageCarriesAStrictContentSecurityPolicy) {
    for (const auto* target : {"/owa/auth/logon", "/owa/static/owa.css", "/owa/nothing"}) {
        auto p = serve(http::verb::get, target);
        EXPECT_EQ(p["Content-Security-Policy"],
                  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
                  "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
            << target;
        EXPECT_EQ(p["X-Content-Type-Options"], "nosniff");
        EXPECT_EQ(p[http::field::cache_control], "no-store");
        EXPECT_EQ(p["Referrer-Policy"], "same-origin");
        EXPECT_THAT(p.body(), Not(HasSubstr("<script>"))) << "no inline script";
        EXPECT_THAT(p.body(), Not(HasSubstr("<style"))) << "no inline style";
    }
}

TEST_F(OwaSite, WrongPasswordAndUnknownUserGetTheSameAnswer) {
    auto wrong = serve(http::verb::post, "/owa/auth/logon", "username=alice&password=nope");
    auto unknown = serve(http::verb::post, "/owa/auth/logon", "username=mallory&password=nope");
    EXPECT_EQ(wrong.result_int(), 401);
    EXPECT_EQ(unknown.result_int(), 401);
    EXPECT_THAT(wrong.body(), HasSubstr("unknown user or wrong password"));
    EXPECT_TRUE(wrong[http::field::set_cookie].empty());
    EXPECT_EQ(site_.sessions().size(), 0u);
}

TEST_F(OwaSite, PagesWithoutASessionRedirectToTheLogon) {
    auto p = serve(http::verb::get, "/owa/inbox");
    EXPECT_EQ(p.result_int(), 303);
    EXPECT_EQ(p[http::field::location], "/owa/auth/logon");
    EXPECT_TRUE(calls_.empty());
}

TEST_F(OwaSite, InboxAsksTheBackendForTheIdentitysMailboxAndEscapesIt) {
    const auto cookie = log_in("bob");
    auto p = serve(http::verb::get, "/owa/inbox", {}, cookie);
    EXPECT_EQ(p.result_int(), 200) << p.body();
    ASSERT_EQ(calls_.size(), 1u);
    EXPECT_EQ(calls_[0].target, "/exchange/");
    EXPECT_EQ(calls_[0].user, "bob");
    EXPECT_EQ(calls_[0].password, "bob-pw");
    EXPECT_THAT(p.body(), HasSubstr("&lt;img src=x onerror=alert(1)&gt;"));
    EXPECT_THAT(p.body(), Not(HasSubstr("<img")));
    EXPECT_THAT(p.body(), HasSubstr("class=\"banner ok\""));
    EXPECT_THAT(p.body(), HasSubstr("href=\"/owa/message?id=bob.1\""));
}

TEST_F(OwaSite, InboxServedFromAnotherMailboxTurnsTheBannerRed) {
    const auto cookie = log_in("bob");
    next_.mailbox = next_.identity = "alice";
    auto p = serve(http::verb::get, "/owa/inbox", {}, cookie);
    EXPECT_EQ(p.result_int(), 200);
    EXPECT_THAT(p.body(), HasSubstr("class=\"banner leak\""));
    EXPECT_THAT(p.body(), HasSubstr("LEAK: this is not your mailbox"));
}

TEST_F(OwaSite, ComposePostWithoutTheCsrfTokenIs403AndSendsNothing) {
    const auto cookie = log_in("bob");
    auto p = serve(http::verb::post, "/owa/compose", "to=alice&subject=s&body=b", cookie);
    EXPECT_EQ(p.result_int(), 403);
    EXPECT_THAT(p.body(), HasSubstr("anti-CSRF token"));
    auto wrong = serve(http::verb::post, "/owa/compose", "to=alice&subject=s&body=b&csrf=00", cookie);
    EXPECT_EQ(wrong.result_int(), 403);
    EXPECT_TRUE(calls_.empty());
}

TEST_F(OwaSite, CrossSiteOriginIsRefused) {
    const auto cookie = log_in("bob");
    auto p = serve(http::verb::post, "/owa/compose", "to=alice&subject=s&body=b&csrf=" + csrf_of(cookie), cookie,
                   "https://evil.example");
    EXPECT_EQ(p.result_int(), 403);
    EXPECT_THAT(p.body(), HasSubstr("cross-site"));
    EXPECT_TRUE(calls_.empty());
}

TEST_F(OwaSite, ComposeSendsJsonToTheUsersOutbox) {
    const auto cookie = log_in("bob");
    next_.body = R"({"mailbox":"bob","sent":"bob.9","delivered":"alice.9"})";
    auto p = serve(http::verb::post, "/owa/compose", "to=alice&subject=Hi+%26+bye&body=text&csrf=" + csrf_of(cookie),
                   cookie);
    EXPECT_EQ(p.result_int(), 200) << p.body();
    ASSERT_EQ(calls_.size(), 1u);
    EXPECT_EQ(calls_[0].method, http::verb::post);
    EXPECT_EQ(calls_[0].target, "/exchange/bob/Outbox/");
    EXPECT_EQ(calls_[0].body, R"({"to":"alice","subject":"Hi & bye","body":"text"})");
    EXPECT_THAT(p.body(), HasSubstr("bob.9"));
}

TEST_F(OwaSite, ComposeWithAMissingFieldIs400AndKeepsWhatWasTyped) {
    const auto cookie = log_in("bob");
    auto p = serve(http::verb::post, "/owa/compose", "to=alice&body=my+long+text&csrf=" + csrf_of(cookie), cookie);
    EXPECT_EQ(p.result_int(), 400);
    EXPECT_THAT(p.body(), HasSubstr("missing field &#39;subject&#39;"));
    EXPECT_THAT(p.body(), HasSubstr(">my long text</textarea>"));
    EXPECT_TRUE(calls_.empty());
}

TEST_F(OwaSite, MalformedFormEncodingIs400NamingTheField) {
    const auto cookie = log_in("bob");
    auto p = serve(http::verb::post, "/owa/compose", "to=alice&subject=100%&csrf=" + csrf_of(cookie), cookie);
    EXPECT_EQ(p.result_int(), 400);
    EXPECT_THAT(p.body(), HasSubstr("field &#39;subject&#39;: bad percent-encoding"));
}

TEST_F(OwaSite, BackendRefusalShowsItsReasonWithItsStatus) {
    const auto cookie = log_in("bob");
    next_ = reply(404, "bob", R"({"status":404,"error":"Not Found","reason":"no such message in this mailbox"})");
    auto p = serve(http::verb::get, "/owa/message?id=bob.999", {}, cookie);
    EXPECT_EQ(p.result_int(), 404);
    EXPECT_THAT(p.body(), HasSubstr("no such message in this mailbox"));
    ASSERT_EQ(calls_.size(), 1u);
    EXPECT_EQ(calls_[0].target, "/exchange/bob/Inbox/bob.999");
}

TEST_F(OwaSite, MessageIdThatIsNotOneNeverReachesTheBackend) {
    const auto cookie = log_in("bob");
    EXPECT_EQ(serve(http::verb::get, "/owa/message?id=..%2Falice", {}, cookie).result_int(), 400);
    EXPECT_EQ(serve(http::verb::get, "/owa/message", {}, cookie).result_int(), 400);
    // A dot segment made the back-end target /exchange/bob/Inbox/.. (found by fuzz_owa_forms).
    EXPECT_EQ(serve(http::verb::get, "/owa/message?id=..", {}, cookie).result_int(), 400);
    EXPECT_EQ(serve(http::verb::get, "/owa/message?id=.", {}, cookie).result_int(), 400);
    EXPECT_TRUE(calls_.empty());
}

TEST_F(OwaSite, LogoffNeedsTheTokenThenEndsTheSession) {
    const auto cookie = log_in("bob");
    EXPECT_EQ(serve(http::verb::post, "/owa/auth/logoff", "", cookie).result_int(), 403);
    auto p = serve(http::verb::post, "/owa/auth/logoff", "csrf=" + csrf_of(cookie), cookie);
    EXPECT_EQ(p.result_int(), 303);
    EXPECT_THAT(std::string(p[http::field::set_cookie]), HasSubstr("Max-Age=0"));
    EXPECT_EQ(serve(http::verb::get, "/owa/inbox", {}, cookie).result_int(), 303);
}

TEST_F(OwaSite, DashboardCountersAreJson) {
    const auto cookie = log_in("bob");
    auto p = serve(http::verb::get, "/owa/dashboard/counters", {}, cookie);
    EXPECT_EQ(p.result_int(), 200);
    EXPECT_EQ(p[http::field::content_type], "application/json");
    EXPECT_THAT(p.body(), HasSubstr("\"cross_user_responses\":0"));
    EXPECT_EQ(serve(http::verb::get, "/owa/dashboard/counters").result_int(), 401);
}

}  // namespace
}  // namespace exsim::proxy::owa
