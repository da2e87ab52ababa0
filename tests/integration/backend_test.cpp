// The back-end as a client sees it: real KDC, real GSSAPI initiators, a real HTTP connection.

#include <gtest/gtest.h>

#include <fstream>

#include <boost/json.hpp>

#include "environment.hpp"
#include "exsim/backend_sim/audit_log.hpp"
#include "exsim/common/base64.hpp"
#include "exsim/common/net.hpp"

namespace exsim::testing {
namespace {

using auth::initiator_mode;
using verb = http::verb;

realm_environment& env() { return realm_environment::get(); }

std::unique_ptr<auth::initiator> initiator_for(const std::string& user, initiator_mode mode,
                                               const std::string& host = "be1.exsim.test") {
    auto creds = env().credentials(user, mode);
    if (!creds) throw std::runtime_error("no credentials for " + user);
    return creds->make_initiator(host);
}

// acquire_user_credentials in the test realm, bypassing the environment's expectations.
auth::credential_result acquire(const std::string& user, const std::string& password, initiator_mode mode) {
    return auth::acquire_user_credentials(user, password, mode, env().topology().realm, env().topology().ntlm_domain);
}

TEST(Backend, AliceGetsHerInboxWithKerberos) {
    audit_since audit("be1");
    connection c(env().port("be1"));
    auto ini = initiator_for("alice", initiator_mode::kerberos);
    auto res = c.authenticated(*ini, verb::get, "/exchange/");
    ASSERT_EQ(res.result_int(), 200) << res.body();
    EXPECT_EQ(header(res, http::field::www_authenticate).rfind("Negotiate ", 0), 0u) << "mutual auth token";
    EXPECT_EQ(res["X-Exsim-Mailbox"], "alice");
    EXPECT_EQ(res["X-Exsim-Identity"], "alice");
    EXPECT_EQ(ini->negotiated(), auth::mechanism::kerberos);
    auto ids = message_ids(res);
    ASSERT_FALSE(ids.empty());
    for (const auto& id : ids) EXPECT_EQ(id.rfind("alice.", 0), 0u) << id;
    const auto records = audit.records();
    ASSERT_EQ(records.size(), 1u);
    EXPECT_EQ(records[0].mechanism, "kerberos");
    EXPECT_EQ(records[0].identity, "alice");
}

TEST(Backend, AliceGetsHerInboxWithNtlm) {
    audit_since audit("be1");
    connection c(env().port("be1"));
    auto ini = initiator_for("alice", initiator_mode::ntlm);
    auto res = c.authenticated(*ini, verb::get, "/exchange/");
    ASSERT_EQ(res.result_int(), 200) << res.body();
    EXPECT_EQ(res["X-Exsim-Mailbox"], "alice");
    EXPECT_EQ(res["X-Exsim-Identity"], "alice");
    const auto records = audit.records();
    ASSERT_EQ(records.size(), 1u);
    EXPECT_EQ(records[0].mechanism, "ntlm");
    EXPECT_EQ(records[0].identity, "alice");
}

TEST(Backend, CarolGetsHerInboxFromTheNtlmOnlyBackend) {
    connection c(env().port("be2"));
    auto ini = initiator_for("carol", initiator_mode::ntlm, "be2.exsim.test");
    auto res = c.authenticated(*ini, verb::get, "/exchange/");
    ASSERT_EQ(res.result_int(), 200) << res.body();
    EXPECT_EQ(res["X-Exsim-Mailbox"], "carol");
}

TEST(Backend, WrongNtlmPasswordGets401) {
    connection c(env().port("be1"));
    auto creds = env().credentials("alice", initiator_mode::ntlm, "not-alice-pw");
    auto ini = creds->make_initiator("be1.exsim.test");
    auto res = c.authenticated(*ini, verb::get, "/exchange/");
    EXPECT_EQ(res.result_int(), 401);
    EXPECT_TRUE(res["X-Exsim-Mailbox"].empty());
    // The connection is not authenticated afterwards either.
    EXPECT_EQ(c.request(verb::get, "/exchange/").result_int(), 401);
}

TEST(Backend, WrongKerberosPasswordIsRefusedByTheKdc) {
    auto r = acquire("alice", "not-alice-pw", initiator_mode::kerberos);
    EXPECT_FALSE(r.credentials);
    EXPECT_NE(r.error.find("Preauthentication failed"), std::string::npos) << r.error;
}

TEST(Backend, UnknownUserGets401WithNtlmAndIsUnknownToTheKdc) {
    auto bad = acquire("mallory", "x-pw", initiator_mode::ntlm);
    ASSERT_TRUE(bad.credentials) << bad.error;  // NTLM cannot know before the server answers
    connection c(env().port("be1"));
    auto ini = bad.credentials->make_initiator("be1.exsim.test");
    EXPECT_EQ(c.authenticated(*ini, verb::get, "/exchange/").result_int(), 401);
    auto krb = acquire("mallory", "x-pw", initiator_mode::kerberos);
    EXPECT_FALSE(krb.credentials);
    EXPECT_NE(krb.error.find("not found"), std::string::npos) << krb.error;
}

TEST(Backend, BobCannotOpenAlicesMailbox) {
    connection c(env().port("be1"));
    auto ini = initiator_for("bob", initiator_mode::kerberos);
    auto res = c.authenticated(*ini, verb::get, "/exchange/alice/Inbox/");
    EXPECT_EQ(res.result_int(), 403) << res.body();
    EXPECT_EQ(res["X-Exsim-Identity"], "bob");
}

TEST(Backend, DelegateMayOpenTheMailbox) {
    connection c(env().port("be1"));
    auto ini = initiator_for("erin", initiator_mode::ntlm);
    auto res = c.authenticated(*ini, verb::get, "/exchange/alice/Inbox/");
    EXPECT_EQ(res.result_int(), 200) << res.body();
    EXPECT_EQ(res["X-Exsim-Mailbox"], "alice");
    EXPECT_EQ(res["X-Exsim-Identity"], "erin");
}

TEST(Backend, NtlmAuthenticatesTheConnectionAndANewHandshakeSwitchesIt) {
    connection c(env().port("be1"));
    auto alice = initiator_for("alice", initiator_mode::ntlm);
    ASSERT_EQ(c.authenticated(*alice, verb::get, "/exchange/").result_int(), 200);
    // No Authorization header: the connection is still alice's (this is what MS04-002 pooled).
    auto res = c.request(verb::get, "/exchange/");
    ASSERT_EQ(res.result_int(), 200);
    EXPECT_EQ(res["X-Exsim-Identity"], "alice");
    auto bob = initiator_for("bob", initiator_mode::ntlm);
    ASSERT_EQ(c.authenticated(*bob, verb::get, "/exchange/").result_int(), 200);
    res = c.request(verb::get, "/exchange/");
    EXPECT_EQ(res["X-Exsim-Identity"], "bob");
    EXPECT_EQ(res["X-Exsim-Mailbox"], "bob");
}

TEST(Backend, KerberosDoesNotAuthenticateTheConnection) {
    connection c(env().port("be1"));
    auto alice = initiator_for("alice", initiator_mode::kerberos);
    ASSERT_EQ(c.authenticated(*alice, verb::get, "/exchange/").result_int(), 200);
    auto res = c.request(verb::get, "/exchange/");
    EXPECT_EQ(res.result_int(), 401);
    EXPECT_TRUE(c.open()) << "a 401 keeps the connection";
}

TEST(Backend, PersistKerberosKeepsTheConnectionAuthenticated) {
    audit_since audit("be3");
    connection c(env().port("be3"));
    auto frank = initiator_for("frank", initiator_mode::kerberos, "be3.exsim.test");
    ASSERT_EQ(c.authenticated(*frank, verb::get, "/exchange/").result_int(), 200);
    auto res = c.request(verb::get, "/exchange/");
    ASSERT_EQ(res.result_int(), 200);
    EXPECT_EQ(res["X-Exsim-Identity"], "frank");
    const auto records = audit.records();
    ASSERT_EQ(records.size(), 2u);
    for (const auto& r : records) {
        EXPECT_EQ(r.mechanism, "kerberos");
        EXPECT_EQ(r.identity, "frank");
        EXPECT_EQ(r.conn, records[0].conn);
    }
    EXPECT_EQ(records[0].auth, "request");
    EXPECT_EQ(records[1].auth, "connection") << "the second request carried no token";
}

TEST(Backend, ChallengesListOneLinePerProvider) {
    connection c1(env().port("be1"));
    auto res = c1.request(verb::get, "/exchange/");
    EXPECT_EQ(res.result_int(), 401);
    EXPECT_EQ(headers(res, http::field::www_authenticate), (std::vector<std::string>{"Negotiate", "NTLM"}));
    connection c2(env().port("be2"));
    res = c2.request(verb::get, "/exchange/");
    EXPECT_EQ(headers(res, http::field::www_authenticate), std::vector<std::string>{"NTLM"});
}

TEST(Backend, NtlmOnlyBackendNeverAcceptsNegotiate) {
    connection c(env().port("be2"));
    auto carol = initiator_for("carol", initiator_mode::negotiate, "be2.exsim.test");
    auto res = c.authenticated(*carol, verb::get, "/exchange/");
    EXPECT_EQ(res.result_int(), 401);
    EXPECT_EQ(headers(res, http::field::www_authenticate), std::vector<std::string>{"NTLM"});
    EXPECT_NE(res.body().find("not offered"), std::string::npos) << res.body();
}

TEST(Backend, SpnegoFallsBackToNtlmWithoutAKerberosKey) {
    auto be = env().start_backend("be1", /*with_keytab=*/false);
    connection c(be->port());
    auto bob = initiator_for("bob", initiator_mode::negotiate);
    auto res = c.authenticated(*bob, verb::get, "/exchange/");
    ASSERT_EQ(res.result_int(), 200) << res.body();
    EXPECT_EQ(res["X-Exsim-Identity"], "bob");
    EXPECT_EQ(bob->negotiated(), auth::mechanism::ntlm);
    // Negotiate that picked NTLM binds the connection like NTLM does.
    EXPECT_EQ(c.request(verb::get, "/exchange/")["X-Exsim-Identity"], "bob");
}

TEST(Backend, NegotiatePrefersKerberosWhenTheBackendHasAKey) {
    connection c(env().port("be1"));
    auto bob = initiator_for("bob", initiator_mode::negotiate);
    ASSERT_EQ(c.authenticated(*bob, verb::get, "/exchange/").result_int(), 200);
    EXPECT_EQ(bob->negotiated(), auth::mechanism::kerberos);
}

TEST(Backend, SendAndDeleteChangeTheStoreAndTheAuditLog) {
    audit_since audit("be1");
    connection c(env().port("be1"));
    auto bob = initiator_for("bob", initiator_mode::ntlm);
    auto sent = c.authenticated(*bob, verb::post, "/exchange/Outbox/",
                                R"({"to":"alice","subject":"lunch?","body":"at noon"})",
                                {{"Content-Type", "application/json"}, {"X-Exsim-On-Behalf-Of", "bob"}});
    ASSERT_EQ(sent.result_int() / 100, 2) << sent.body();
    auto reply = boost::json::parse(sent.body());
    const std::string delivered(reply.at("delivered").as_string());
    EXPECT_EQ(delivered.rfind("alice.", 0), 0u);
    auto log = audit.records();
    ASSERT_EQ(log.size(), 1u);
    EXPECT_EQ(log[0].op, "send");
    EXPECT_EQ(log[0].identity, "bob");
    EXPECT_FALSE(log[0].cross_user);

    connection a(env().port("be1"));
    auto alice = initiator_for("alice", initiator_mode::kerberos);
    auto inbox = a.authenticated(*alice, verb::get, "/exchange/alice/Inbox/");
    auto ids = message_ids(inbox);
    ASSERT_NE(std::find(ids.begin(), ids.end(), delivered), ids.end()) << "delivered to alice's inbox";

    auto alice2 = initiator_for("alice", initiator_mode::kerberos);
    auto del = a.authenticated(*alice2, verb::delete_, "/exchange/alice/Inbox/" + delivered);
    ASSERT_EQ(del.result_int() / 100, 2) << del.body();
    log = audit.records();
    ASSERT_EQ(log.size(), 3u) << "send, list, delete";
    EXPECT_EQ(log[2].op, "delete");
    EXPECT_EQ(log[2].identity, "alice");
    EXPECT_EQ(log[2].message, delivered);
    auto alice3 = initiator_for("alice", initiator_mode::kerberos);
    ids = message_ids(a.authenticated(*alice3, verb::get, "/exchange/alice/Inbox/"));
    EXPECT_EQ(std::find(ids.begin(), ids.end(), delivered), ids.end()) << "really deleted";
}

TEST(Backend, AuditMarksARequestServedAsAnotherUserAsCrossUser) {
    audit_since audit("be1");
    connection c(env().port("be1"));
    auto alice = initiator_for("alice", initiator_mode::ntlm);
    ASSERT_EQ(c.authenticated(*alice, verb::get, "/exchange/").result_int(), 200);
    // What a legacy front-end does: bob's request on alice's NTLM connection.
    auto res = c.request(verb::get, "/exchange/", {{"X-Exsim-On-Behalf-Of", "bob"}});
    EXPECT_EQ(res["X-Exsim-Mailbox"], "alice");
    const auto records = audit.records();
    ASSERT_EQ(records.size(), 2u);
    EXPECT_FALSE(records[0].cross_user);
    const auto& last = records[1];
    EXPECT_EQ(last.on_behalf_of, "bob");
    EXPECT_EQ(last.identity, "alice");
    EXPECT_TRUE(last.cross_user);
}

TEST(Backend, AnonymousStaticPathNeedsNoAuthentication) {
    connection c(env().port("be1"));
    auto res = c.request(verb::get, "/exchweb/blob?size=16384");
    EXPECT_EQ(res.result_int(), 200) << res.body();
    EXPECT_EQ(res.body().size(), 16384u);
}

TEST(Backend, MalformedAuthorizationTokenGets400) {
    connection c(env().port("be1"));
    auto res = c.request(verb::get, "/exchange/", {{"Authorization", "NTLM %%%not-base64"}});
    EXPECT_EQ(res.result_int(), 400);
    EXPECT_NE(res.body().find("base64"), std::string::npos);
}

TEST(Backend, GarbageTokenGets401NotACrash) {
    connection c(env().port("be1"));
    auto res = c.request(verb::get, "/exchange/", {{"Authorization", "Negotiate " + common::base64_encode("hello world")}});
    EXPECT_EQ(res.result_int(), 401);
    res = c.request(verb::get, "/exchange/", {{"Authorization", "NTLM " + common::base64_encode("NTLMSSP\0\3\0\0\0", 12)}});
    EXPECT_EQ(res.result_int(), 401);
}

TEST(Backend, OversizedHeaderGets431) {
    connection c(env().port("be1"));
    auto res = c.request(verb::get, "/exchange/", {{"X-Padding", std::string(20000, 'a')}});
    EXPECT_EQ(res.result_int(), 431);
}

TEST(Backend, OversizedBodyGets413) {
    auto be = env().start_backend("be1", true, backend::server_limits{.body_bytes = 1024});
    connection c(be->port());
    auto res = c.request(verb::post, "/exchange/Outbox/", {}, std::string(4096, 'x'));
    EXPECT_EQ(res.result_int(), 413);
}

TEST(Backend, MalformedRequestGets400AndCloses) {
    connection c(env().port("be1"));
    c.write_raw("GET /exchange/ HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\nhello");
    auto res = c.read_response();
    ASSERT_TRUE(res);
    EXPECT_EQ(res->result_int(), 400);
    EXPECT_FALSE(res->keep_alive());
}

TEST(Backend, IdleConnectionIsClosed) {
    backend::server_limits limits;
    limits.idle_timeout = std::chrono::milliseconds(200);
    auto be = env().start_backend("be1", true, limits);
    connection c(be->port());
    ASSERT_TRUE(c.open());
    EXPECT_TRUE(eventually([&] { return !c.open(); }, std::chrono::seconds(20))) << "still open after idle_timeout (200 ms)";
}

TEST(Backend, AUserOfAnotherBackendAuthenticatesButIsNotAuthorized) {
    connection c(env().port("be1"));
    auto carol = initiator_for("carol", initiator_mode::ntlm);  // carol's mailbox is on be2
    auto res = c.authenticated(*carol, verb::get, "/exchange/alice/Inbox/");
    EXPECT_EQ(res.result_int(), 403) << res.body();
    EXPECT_EQ(res["X-Exsim-Identity"], "carol");
}

TEST(Backend, StopReleasesThePortAndClosesConnections) {
    auto be = env().start_backend("be1");
    const auto port = be->port();
    connection c(port);
    ASSERT_EQ(c.request(verb::get, "/exchweb/blob?size=10").result_int(), 200);
    be->stop();
    EXPECT_FALSE(common::tcp_port_open(port));
    EXPECT_FALSE(c.open());
}


}  // namespace
}  // namespace exsim::testing
