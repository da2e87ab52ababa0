// The front-end's defences (docs/design.md sections 1 and 5): the user's login, never downgrading
// silently (require_kerberos, TLS 1.2+), canonical targets (MS04-013), what it forwards, and the
// leak guard. Each test counts the back-end's audit lines and the proxy's metrics.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/algorithm/string/case_conv.hpp>
#include <boost/algorithm/string/predicate.hpp>
#include <fmt/format.h>

#include "exsim/common/process.hpp"
#include "proxy_support.hpp"

namespace exsim::testing {
namespace {

using proxy::close_reason;
using proxy::handshake_mechanism;
using proxy::reuse_decision;
using proxy::worker_metrics;
using verb = http::verb;
using ::testing::HasSubstr;
using ::testing::Not;

std::vector<std::string> forwarded_names(const scripted_backend::request& req) {
    std::vector<std::string> names;
    for (const auto& f : req) names.emplace_back(f.name_string());
    return names;
}

// ---- login ------------------------------------------------------------------------------------

TEST(ProxyLogin, WrongPasswordAndUnknownUserGetTheSame401WithABasicChallenge) {
    audit_since be1("be1"), be2("be2");
    auto p = start_proxy();
    auto wrong = with_authorization(*p, basic("alice", "not-alice-pw"));
    auto unknown = with_authorization(*p, basic("mallory", "mallory-pw"));
    EXPECT_EQ(wrong.result_int(), 401);
    EXPECT_EQ(unknown.result_int(), 401);
    EXPECT_EQ(wrong.body(), unknown.body()) << "the answer must not say which of the two was wrong";
    EXPECT_EQ(header(wrong, http::field::www_authenticate).rfind("Basic ", 0), 0u) << header(wrong, http::field::www_authenticate);
    EXPECT_EQ(header(wrong, http::field::www_authenticate), header(unknown, http::field::www_authenticate));
    EXPECT_TRUE(wrong["X-Exsim-Mailbox"].empty());

    EXPECT_EQ(metric(*p, &worker_metrics::login_failures), 2);
    EXPECT_EQ(metric(*p, &worker_metrics::connections_opened), 0) << "nothing reaches a back-end";
    EXPECT_TRUE(be1.records().empty());
    EXPECT_TRUE(be2.records().empty());
}

TEST(ProxyLogin, RequestWithoutAuthorizationGets401WithABasicChallenge) {
    auto p = start_proxy();
    connection c(p->port());
    auto res = c.request(verb::get, "/exchange/");
    EXPECT_EQ(res.result_int(), 401);
    EXPECT_EQ(header(res, http::field::www_authenticate).rfind("Basic ", 0), 0u);
    EXPECT_EQ(metric(*p, &worker_metrics::login_failures), 0) << "no credentials is not a failed login";
    EXPECT_EQ(metric(*p, &worker_metrics::connections_opened), 0);
}

TEST(ProxyLogin, StaticContentUnderExchwebIsServedWithoutLogin) {
    audit_since be1("be1");
    auto p = start_proxy();
    connection c(p->port());
    auto res = c.request(verb::get, "/exchweb/version.json");
    EXPECT_EQ(res.result_int(), 200) << res.body();
    EXPECT_THAT(res.body(), HasSubstr("\"product\":\"exsim\""));
    EXPECT_TRUE(res["X-Exsim-Identity"].empty());
    EXPECT_TRUE(be1.records().empty()) << "static content is not audited";
    EXPECT_EQ(handshakes(*p, handshake_mechanism::kerberos) + handshakes(*p, handshake_mechanism::ntlm), 0);
}

// ---- never downgrade silently -----------------------------------------------------------------

TEST(ProxyRequireKerberos, RefusesAnNtlmOnlyBackendWith502NamingTheReason) {
    audit_since be1("be1"), be2("be2");
    auto p = start_proxy({.require_kerberos = true});
    auto carol = as_user(*p, "carol");
    EXPECT_EQ(carol.result_int(), 502) << carol.body();
    EXPECT_THAT(carol.body(), HasSubstr("require_kerberos"));
    EXPECT_THAT(carol.body(), HasSubstr("NTLM"));
    EXPECT_TRUE(carol["X-Exsim-Mailbox"].empty());
    EXPECT_EQ(metric(*p, &worker_metrics::kerberos_required_refusals), 1);
    EXPECT_TRUE(be2.records().empty()) << "nothing was served to carol";

    auto alice = as_user(*p, "alice");
    ASSERT_EQ(alice.result_int(), 200) << alice.body();
    EXPECT_EQ(alice["X-Exsim-Mailbox"], "alice");
    const auto records = be1.records();
    ASSERT_EQ(records.size(), 1u);
    EXPECT_EQ(records[0].mechanism, "kerberos");
    EXPECT_EQ(handshakes(*p, handshake_mechanism::kerberos), 1);
    EXPECT_EQ(handshakes(*p, handshake_mechanism::ntlm), 0);
    EXPECT_EQ(metric(*p, &worker_metrics::ntlm_fallbacks), 0);
    EXPECT_EQ(metric(*p, &worker_metrics::kerberos_required_refusals), 1);
}

TEST(ProxyTls, CurlGetsBobsInboxOverTls) {
    audit_since be1("be1");
    auto p = start_proxy({.tls = true});
    ASSERT_TRUE(p->tls());
    ASSERT_EQ(p->url().rfind("https://", 0), 0u) << p->url();
    auto curl = common::find_program("curl");
    ASSERT_TRUE(curl);
    auto r = common::run_program(*curl, {"-s", "-S", "-k", "-D", "-", "-u", "bob:bob-pw", p->url() + "/exchange/"}, {});
    EXPECT_EQ(r.exit_code, 0) << r.output;
    EXPECT_THAT(r.output, HasSubstr("HTTP/1.1 200"));
    EXPECT_THAT(r.output, HasSubstr("X-Exsim-Mailbox: bob"));
    EXPECT_THAT(r.output, HasSubstr("\"id\":\"bob."));
    const auto records = be1.records();
    ASSERT_EQ(records.size(), 1u);
    EXPECT_EQ(records[0].identity, "bob");
    EXPECT_EQ(metric(*p, &worker_metrics::requests), 1);
}

TEST(ProxyTls, RefusesTls11) {
    auto p = start_proxy({.tls = true});
    auto curl = common::find_program("curl");
    ASSERT_TRUE(curl);
    // SECLEVEL=0 lets this client offer TLS 1.1 at all, so that the refusal is the proxy's.
    auto r = common::run_program(*curl, {"-s", "-S", "-k", "--tlsv1.1", "--tls-max", "1.1", "--ciphers",
                                         "DEFAULT@SECLEVEL=0", "-u", "bob:bob-pw", p->url() + "/exchange/"},
                                 {});
    EXPECT_NE(r.exit_code, 0) << r.output;
    // The server's alert, not a client that could not offer TLS 1.1 at all.
    EXPECT_THAT(r.output, HasSubstr("alert protocol version"));
    EXPECT_THAT(r.output, Not(HasSubstr("X-Exsim-Mailbox")));
    EXPECT_EQ(metric(*p, &worker_metrics::requests), 0);
}

// testssl.sh had found CBC suites offered at TLS 1.2 ("LUCKY13 potentially vulnerable"). Mozilla's
// "intermediate" profile: AEAD only. openssl s_client offering one suite at a time.
TEST(ProxyTls, AtTls12RefusesEveryCbcSuiteAndTakesAesGcmAndChaCha20) {
    auto p = start_proxy({.tls = true});
    auto openssl = common::find_program("openssl");
    ASSERT_TRUE(openssl);
    const auto s_client = [&](const std::string& suite) {
        return common::run_program(*openssl, {"s_client", "-connect", fmt::format("127.0.0.1:{}", p->port()), "-tls1_2",
                                              "-cipher", suite, "-servername", "localhost"},
                                   {}, "Q\n");
    };
    for (const auto* cbc : {"ECDHE-ECDSA-AES128-SHA", "ECDHE-ECDSA-AES256-SHA", "ECDHE-ECDSA-AES128-SHA256",
                            "ECDHE-ECDSA-AES256-SHA384", "ECDHE-RSA-AES128-SHA"}) {
        SCOPED_TRACE(cbc);
        const auto r = s_client(cbc);
        EXPECT_NE(r.exit_code, 0) << r.output;
        EXPECT_THAT(r.output, HasSubstr("handshake failure")) << "the server's alert, not the client's refusal";
        EXPECT_THAT(r.output, Not(HasSubstr("Cipher is " + std::string(cbc))));
    }
    for (const auto* aead : {"ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384",
                             "ECDHE-ECDSA-CHACHA20-POLY1305"}) {
        SCOPED_TRACE(aead);
        const auto r = s_client(aead);
        EXPECT_EQ(r.exit_code, 0) << r.output;
        EXPECT_THAT(r.output, HasSubstr("Protocol  : TLSv1.2"));
        EXPECT_THAT(r.output, HasSubstr("Cipher    : " + std::string(aead)));
    }
}

// HSTS (RFC 6797) on every response over TLS, whoever wrote it: a proxied one, the proxy's own
// error, the browser view's page and its redirect. Never over plain HTTP.
TEST(ProxyTls, SendsStrictTransportSecurityOnEveryResponseOverTlsAndNeverOverPlainHttp) {
    auto curl = common::find_program("curl");
    ASSERT_TRUE(curl);
    const std::string hsts = "strict-transport-security: max-age=63072000\r\n";
    for (const bool tls : {true, false}) {
        SCOPED_TRACE(tls ? "TLS" : "plain HTTP");
        auto p = start_proxy({.tls = tls});
        const auto headers = [&](std::vector<std::string> args) {
            args.insert(args.begin(), {"-s", "-S", "-k", "-o", "/dev/null", "-D", "-"});
            auto r = common::run_program(*curl, args, {});
            EXPECT_EQ(r.exit_code, 0) << r.output;
            return boost::algorithm::to_lower_copy(r.output);
        };
        const std::vector<std::pair<std::string, std::vector<std::string>>> responses{
            {"a proxied 200", {"-u", "bob:bob-pw", p->url() + "/exchange/"}},
            {"a proxied 403 from the back-end", {"-u", "bob:bob-pw", p->url() + "/exchange/alice/"}},
            {"the proxy's own 401", {p->url() + "/exchange/"}},
            {"the proxy's own 400", {"--path-as-is", p->url() + "/exchange/%2e%2e/%2e%2e/x"}},
            {"the browser view's logon page", {p->url() + "/owa/auth/logon"}},
            {"the browser view's redirect", {"-d", "username=bob&password=bob-pw", p->url() + "/owa/auth/logon"}},
        };
        for (const auto& [name, args] : responses) {
            SCOPED_TRACE(name);
            const auto h = headers(args);
            EXPECT_THAT(h, HasSubstr("http/1.1 ")) << h;
            if (tls) {
                EXPECT_THAT(h, HasSubstr(hsts));
            } else {
                EXPECT_THAT(h, Not(HasSubstr("strict-transport-security")));
            }
        }
    }
}

TEST(ProxyTls, RefusesPlainHttpOnTheTlsPort) {
    auto p = start_proxy({.tls = true});
    connection c(p->port());
    c.write_raw(fmt::format("GET /exchange/ HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\n\r\n", basic("bob")));
    EXPECT_FALSE(c.read_response().has_value());
    EXPECT_EQ(metric(*p, &worker_metrics::requests), 0);
}

// ---- canonicalize before you route or authorize (MS04-013) ------------------------------------

TEST(ProxyCanonicalTargets, NeverLetBobIntoTheMailboxOfAlice) {
    audit_since be1("be1");
    auto p = start_proxy();
    const std::vector<std::string> tricks{"/exchange/bob/../alice/",   "/exchange/bob/..%2falice/",
                                          "/exchange/bob%2f..%2falice/", "/exchange%5calice/",
                                          "//exchange//alice/",        "/exchange/./alice/"};
    const std::vector<std::string> more{"/exchange/bob/%2e%2e/alice/", "/exchange/bob/%2E%2E%2Falice/",
                                        "/exchange/%61lice/",          "/exchange/bob/..;/alice/",
                                        "/exchange/alice%00/",         "/exchange/bob/../../exchange/alice/"};
    std::size_t refused = 0, denied = 0;
    for (const auto& target : tricks) {
        auto res = as_user(*p, "bob", verb::get, target);
        EXPECT_TRUE(res.result_int() == 400 || res.result_int() == 403) << target << ": " << res.result_int() << " " << res.body();
        EXPECT_FALSE(res.result_int() < 400 && res["X-Exsim-Mailbox"] == "alice") << target;
        refused += res.result_int() == 400;
        denied += res.result_int() == 403;
    }
    for (const auto& target : more) {
        auto res = as_user(*p, "bob", verb::get, target);
        EXPECT_GE(res.result_int(), 400) << target << ": " << res.body();
        // A 403 names the mailbox it refused; only a success from alice's mailbox is a leak.
        EXPECT_FALSE(res.result_int() < 400 && res["X-Exsim-Mailbox"] == "alice") << target;
        EXPECT_NE(res["X-Exsim-Identity"], "alice") << target;
    }
    const auto records = be1.records();
    for (const auto& r : records) {
        EXPECT_EQ(r.identity, "bob") << r.path;
        EXPECT_FALSE(r.mailbox == "alice" && r.status < 400) << r.path << " " << r.status;
    }
    std::size_t audited_denied = 0;
    for (const auto& r : records) audited_denied += r.op == "denied" && r.mailbox == "alice";
    EXPECT_GE(audited_denied, denied) << "each 403 is the back-end's own authorization check";
    EXPECT_GE(metric(*p, &worker_metrics::bad_requests), static_cast<std::int64_t>(refused));
    EXPECT_GT(refused, 0u);
}

// The most dangerous combination: under legacy an anonymous /exchweb/ request re-uses whatever
// connection is idle, NTLM-bound ones included, so a target that only looks like /exchweb/
// would be served from the mailbox of whoever authenticated that connection.
TEST(ProxyCanonicalTargets, NeverLetAnAnonymousRequestRideAnNtlmConnectionIntoAMailbox) {
    auto no_key = realm_environment::get().start_backend("be1", /*with_keytab=*/false);  // Negotiate picks NTLM
    auto audit = audit_since::of_file(no_key->audit_log_file());
    auto p = start_proxy({.policy = "legacy", .addresses = {{"be1", fmt::format("127.0.0.1:{}", no_key->port())}}});
    ASSERT_EQ(as_user(*p, "alice").result_int(), 200);
    ASSERT_EQ(handshakes(*p, handshake_mechanism::ntlm), 1);
    for (const std::string target : {"/exchweb/../exchange/", "/exchweb/%2e%2e/exchange/", "/exchweb/..%2fexchange/",
                                     "/exchweb/./../exchange/Inbox/", "//exchweb/../exchange/"}) {
        auto res = connection(p->port()).request(verb::get, target);
        EXPECT_TRUE(res.result_int() == 401 || res.result_int() == 400) << target << ": " << res.result_int();
        EXPECT_TRUE(res["X-Exsim-Mailbox"].empty()) << target;
    }
    // An honest anonymous request does ride alice's connection, and gets static content only.
    auto page = connection(p->port()).request(verb::get, "/exchweb/version.json");
    EXPECT_EQ(page.result_int(), 200);
    EXPECT_TRUE(page["X-Exsim-Mailbox"].empty());
    EXPECT_EQ(audit.records().size(), 1u) << "only alice's own request touched a mailbox";
}

// ---- what is forwarded ------------------------------------------------------------------------

TEST(ProxyForwarding, NeverForwardsTheClientsXExsimHeadersToTheBackend) {
    audit_since be1("be1");
    auto p = start_proxy();
    connection c(p->port());
    auto res = c.request(verb::get, "/exchange/",
                         {{"Authorization", basic("bob")}, {"X-Exsim-On-Behalf-Of", "alice"}, {"X-Exsim-Identity", "alice"}});
    ASSERT_EQ(res.result_int(), 200) << res.body();
    EXPECT_EQ(res["X-Exsim-Mailbox"], "bob");
    const auto records = be1.records();
    ASSERT_EQ(records.size(), 1u);
    EXPECT_EQ(records[0].identity, "bob");
    EXPECT_EQ(records[0].on_behalf_of, "bob");
    EXPECT_FALSE(records[0].cross_user);
}

TEST(ProxyForwarding, SendsTheBackendNeitherTheClientsPasswordNorItsXExsimHeaders) {
    scripted_backend fake([](const auto&, std::size_t) { return scripted_backend::action::answer_and_close; });
    auto p = start_proxy({.addresses = {{"be1", fake.address()}}});
    const std::map<std::string, std::string> sent{{"Authorization", basic("bob")},
                                                  {"X-Exsim-On-Behalf-Of", "alice"},
                                                  {"X-Exsim-Identity", "alice"},
                                                  {"Proxy-Authorization", "Basic eDp5"},
                                                  {"Accept", "application/json"}};
    // Anonymous static content: the proxy does not even look at the Authorization header.
    ASSERT_EQ(connection(p->port()).request(verb::get, "/exchweb/version.json", sent).result_int(), 200);
    // A logged-in request: the back-end gets the proxy's own Negotiate token.
    ASSERT_EQ(connection(p->port()).request(verb::get, "/exchange/", sent).result_int(), 200);

    const auto requests = fake.requests();
    ASSERT_EQ(requests.size(), 2u);
    const auto& anonymous = requests[0];
    EXPECT_TRUE(anonymous[http::field::authorization].empty()) << anonymous[http::field::authorization];
    EXPECT_TRUE(anonymous["X-Exsim-On-Behalf-Of"].empty()) << "nobody logged in";
    const auto& bob = requests[1];
    EXPECT_EQ(std::string(bob[http::field::authorization]).rfind("Negotiate ", 0), 0u) << bob[http::field::authorization];
    EXPECT_EQ(bob["X-Exsim-On-Behalf-Of"], "bob");
    EXPECT_EQ(bob.count("X-Exsim-On-Behalf-Of"), 1u);
    for (const auto& req : requests) {
        EXPECT_EQ(req[http::field::accept], "application/json") << "end-to-end headers pass";
        EXPECT_TRUE(req[http::field::proxy_authorization].empty());
        EXPECT_TRUE(req["X-Exsim-Identity"].empty());
        EXPECT_THAT(std::string(req[http::field::authorization]), Not(HasSubstr(basic("bob").substr(6))))
            << "bob's password reached the back-end";
        for (const auto& name : forwarded_names(req))
            EXPECT_TRUE(!boost::istarts_with(name, "X-Exsim-") || name == "X-Exsim-On-Behalf-Of") << name;
    }
}

TEST(ProxyForwarding, AnswersExpect100ContinueThenForwardsTheBody) {
    audit_since be1("be1");
    auto p = start_proxy();
    connection c(p->port());
    const auto body = mail_json("alice", "after 100-continue");
    c.write_raw(fmt::format("POST /exchange/Outbox/ HTTP/1.1\r\nHost: proxy\r\nAuthorization: {}\r\n"
                            "Content-Type: application/json\r\nExpect: 100-continue\r\nContent-Length: {}\r\n\r\n",
                            basic("alice"), body.size()));
    auto interim = c.read_response();
    ASSERT_TRUE(interim);
    EXPECT_EQ(interim->result_int(), 100);
    c.write_raw(body);
    auto res = c.read_response();
    ASSERT_TRUE(res);
    EXPECT_EQ(res->result_int(), 200) << res->body();
    const auto records = be1.records();
    ASSERT_EQ(records.size(), 1u);
    EXPECT_EQ(records[0].op, "send");
    EXPECT_EQ(records[0].identity, "alice");
}

TEST(ProxyForwarding, StreamsALargeResponseWhole) {
    auto p = start_proxy();
    connection c(p->port());
    auto res = c.request(verb::get, "/exchweb/blob?size=1048576");
    ASSERT_EQ(res.result_int(), 200) << res.body().substr(0, 200);
    EXPECT_EQ(res.body().size(), 1048576u);
    EXPECT_EQ(res.body().substr(0, 20), "exsim static payload");
}

// A send larger than the replay copy (limits.replay_bytes, 64 KiB), as the first request of a
// fresh proxy to the NTLM-only back-end: the proxy does not know yet that be2 offers only NTLM.
TEST(ProxyForwarding, SendsALargeMailThroughAFreshProxyToAnNtlmOnlyBackend) {
    audit_since be2("be2");
    auto p = start_proxy();
    const auto body = mail_json("carol", "large", std::string(100 * 1024, 'x'));
    auto res = as_user(*p, "dave", verb::post, "/exchange/Outbox/", body);
    EXPECT_EQ(res.result_int(), 200) << res.body();
    const auto records = be2.records();
    std::size_t sends = 0;
    for (const auto& r : records) sends += r.op == "send" && r.identity == "dave";
    EXPECT_EQ(sends, 1u);
    // The same send once the proxy knows what be2 offers goes through.
    auto again = as_user(*p, "dave", verb::post, "/exchange/Outbox/", body);
    EXPECT_EQ(again.result_int(), 200) << again.body();
}

// ---- limits -----------------------------------------------------------------------------------

TEST(ProxyLimits, RefusesADeclaredBodyOverTheLimitWith413BeforeAnyBackendWork) {
    auto p = start_proxy();
    connection c(p->port());
    c.write_raw(fmt::format("POST /exchange/Outbox/ HTTP/1.1\r\nHost: proxy\r\nAuthorization: {}\r\n"
                            "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{{",
                            basic("alice"), 4 * 1024 * 1024));
    auto res = c.read_response();
    ASSERT_TRUE(res);
    EXPECT_EQ(res->result_int(), 413) << res->body();
    EXPECT_EQ(metric(*p, &worker_metrics::connections_opened), 0);
}

TEST(ProxyLimits, RefusesHeadersOverTheLimitWith431) {
    auto p = start_proxy();
    connection c(p->port());
    c.write_raw(fmt::format("GET /exchange/ HTTP/1.1\r\nHost: proxy\r\nAuthorization: {}\r\nX-Filler: {}\r\n\r\n",
                            basic("alice"), std::string(20 * 1024, 'x')));
    auto res = c.read_response();
    ASSERT_TRUE(res);
    EXPECT_EQ(res->result_int(), 431) << res->body();
    EXPECT_EQ(metric(*p, &worker_metrics::connections_opened), 0);
}

// ---- defence in depth -------------------------------------------------------------------------

TEST(ProxyLeakGuard, ReplacesTheLeakedResponseWith502UnderLegacyAndNtlm) {
    audit_since be2("be2");
    auto p = start_proxy({.policy = "legacy", .leak_guard = true});
    ASSERT_EQ(as_user(*p, "carol").result_int(), 200);
    auto dave = as_user(*p, "dave");
    EXPECT_EQ(dave.result_int(), 502) << dave.body();
    EXPECT_THAT(dave.body(), HasSubstr("leak guard"));
    EXPECT_THAT(dave.body(), Not(HasSubstr("carol")));
    EXPECT_TRUE(dave["X-Exsim-Mailbox"].empty());
    EXPECT_TRUE(dave["X-Exsim-Identity"].empty());
    EXPECT_EQ(metric(*p, &worker_metrics::leak_guard_hits), 1);

    // The back-end did serve it (the guard withholds, it cannot undo), and the connection that
    // leaked is not used again: dave's next request gets a connection of his own.
    auto again = as_user(*p, "dave");
    EXPECT_EQ(again.result_int(), 200) << again.body();
    EXPECT_EQ(again["X-Exsim-Mailbox"], "dave");
    const auto records = be2.records();
    ASSERT_EQ(records.size(), 3u);
    EXPECT_EQ(backend::count_cross_user(records), 1u);
    EXPECT_EQ(records[1].identity, "carol");
    EXPECT_EQ(records[1].on_behalf_of, "dave");
    EXPECT_EQ(records[2].identity, "dave");
    EXPECT_NE(records[2].conn, records[1].conn);
    EXPECT_EQ(metric(*p, &worker_metrics::leak_guard_hits), 1);
    EXPECT_EQ(metric(*p, &worker_metrics::connections_opened), 2);
}

TEST(ProxyLeakGuard, LetsADelegateOpenTheMailboxSheIsDelegatedTo) {
    audit_since be1("be1");
    auto p = start_proxy({.leak_guard = true});
    auto erin = as_user(*p, "erin", verb::get, "/exchange/alice/");
    EXPECT_EQ(erin.result_int(), 200) << erin.body();
    EXPECT_EQ(erin["X-Exsim-Mailbox"], "alice");
    EXPECT_EQ(erin["X-Exsim-Identity"], "erin");
    auto bob = as_user(*p, "bob", verb::get, "/exchange/alice/");
    EXPECT_EQ(bob.result_int(), 403) << "bob is no delegate: the back-end refuses, the guard has nothing to do";
    EXPECT_EQ(metric(*p, &worker_metrics::leak_guard_hits), 0);
    const auto records = be1.records();
    ASSERT_EQ(records.size(), 2u);
    EXPECT_EQ(records[0].op, "list");
    EXPECT_EQ(records[1].op, "denied");
    EXPECT_EQ(backend::count_cross_user(records), 0u);
}

}  // namespace
}  // namespace exsim::testing
