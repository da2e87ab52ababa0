#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "exsim/loadgen/oracle.hpp"

namespace exsim::loadgen {
namespace {

const std::vector<std::string> dave_only{"dave"};

constexpr std::string_view dave_list =
    R"({"mailbox":"dave","folder":"Inbox","messages":[{"id":"dave.1","from":"bob","to":"dave"},)"
    R"({"id":"dave.4","from":"carol","to":"dave"}]})";

TEST(Oracle, OwnListIsOwnAndShowsItsIds) {
    const auto j = judge(op::list, "dave", dave_only, 200, "dave", "dave", dave_list);
    EXPECT_EQ(j.v, verdict::own);
    EXPECT_EQ(j.served_as, "");
    EXPECT_EQ(j.ids, (std::vector<std::string>{"dave.1", "dave.4"}));
}

TEST(Oracle, ListServedAsAnotherIdentityIsALeak) {
    const auto j = judge(op::list, "dave", dave_only, 200, "carol", "carol",
                         R"({"mailbox":"carol","folder":"Inbox","messages":[{"id":"carol.2"}]})");
    EXPECT_EQ(j.v, verdict::leak);
    EXPECT_EQ(j.served_as, "carol");
    EXPECT_EQ(j.ids, (std::vector<std::string>{"carol.2"}));
}

TEST(Oracle, DelegateReadingTheMailboxItMayOpenIsOwn) {
    const auto j = judge(op::read, "dave", {"dave", "alice"}, 200, "dave", "alice",
                         R"({"id":"alice.3","mailbox":"alice","folder":"Inbox","body":"hi"})");
    EXPECT_EQ(j.v, verdict::own);
    EXPECT_EQ(j.ids, (std::vector<std::string>{"alice.3"}));
}

TEST(Oracle, ReadOfAMailboxNotDelegatedIsALeak) {
    const auto j = judge(op::read, "dave", dave_only, 200, "dave", "alice",
                         R"({"id":"alice.3","mailbox":"alice"})");
    EXPECT_EQ(j.v, verdict::leak);
    EXPECT_EQ(j.served_as, "alice");
}

TEST(Oracle, ListWithoutHeadersIsJudgedByItsMessageIds) {
    const auto j = judge(op::list, "dave", dave_only, 200, "", "",
                         R"({"messages":[{"id":"dave.1"},{"id":"carol.5"}]})");
    EXPECT_EQ(j.v, verdict::leak);
    EXPECT_EQ(j.served_as, "carol");
    EXPECT_EQ(j.ids, (std::vector<std::string>{"dave.1", "carol.5"}));
}

TEST(Oracle, ListWithoutHeadersOfOwnIdsIsOwn) {
    const auto j = judge(op::list, "dave", dave_only, 200, "", "", R"({"messages":[{"id":"dave.1"}]})");
    EXPECT_EQ(j.v, verdict::own);
}

TEST(Oracle, SendAsAnotherIsATamperAndIgnoresTheRecipientsCopy) {
    const auto j = judge(op::send, "dave", dave_only, 200, "", "",
                         R"({"sent":"carol.7","delivered":"bob.3"})");
    EXPECT_EQ(j.v, verdict::tamper);
    EXPECT_EQ(j.served_as, "carol");
    EXPECT_EQ(j.ids, (std::vector<std::string>{"carol.7"}));
}

TEST(Oracle, OwnSendDeliveredToAnotherMailboxIsOwn) {
    const auto j = judge(op::send, "dave", dave_only, 200, "dave", "dave",
                         R"({"mailbox":"dave","sent":"dave.8","delivered":"bob.3"})");
    EXPECT_EQ(j.v, verdict::own);
    EXPECT_EQ(j.ids, (std::vector<std::string>{"dave.8"}));
}

TEST(Oracle, OwnSendToARemoteRecipientIsOwn) {
    const auto j = judge(op::send, "dave", dave_only, 200, "dave", "dave",
                         R"({"mailbox":"dave","sent":"dave.9","delivered":null})");
    EXPECT_EQ(j.v, verdict::own);
}

TEST(Oracle, DeleteInAnotherMailboxIsATamperWithoutIds) {
    const auto j = judge(op::del, "dave", dave_only, 200, "", "", R"({"deleted":"carol.2","mailbox":"carol"})");
    EXPECT_EQ(j.v, verdict::tamper);
    EXPECT_EQ(j.served_as, "carol");
    EXPECT_TRUE(j.ids.empty());
}

TEST(Oracle, OwnDeleteIsOwnWithoutIds) {
    const auto j = judge(op::del, "dave", dave_only, 200, "dave", "dave", R"({"deleted":"dave.2","mailbox":"dave"})");
    EXPECT_EQ(j.v, verdict::own);
    EXPECT_TRUE(j.ids.empty());
}

TEST(Oracle, ErrorStatusServedNothingWhateverItNames) {
    const auto j = judge(op::read, "dave", dave_only, 404, "carol", "carol",
                         R"({"id":"carol.1","mailbox":"carol"})");
    EXPECT_EQ(j.v, verdict::own);
    EXPECT_EQ(j.served_as, "");
    EXPECT_TRUE(j.ids.empty());
}

TEST(Oracle, StatusJustBelow400IsJudged) {
    EXPECT_EQ(judge(op::list, "dave", dave_only, 399, "carol", "", "").v, verdict::leak);
}

TEST(Oracle, MalformedBodyYieldsNoIdsAndDoesNotThrow) {
    for (const std::string_view body :
         {std::string_view(R"({"messages":[{"id":"carol.1"})"), std::string_view("\xff\xfe{"),
          std::string_view("[1,2]"), std::string_view(R"({"messages":"carol.1"})"),
          std::string_view(R"({"messages":[1,{"id":7}],"mailbox":3})"), std::string_view("")}) {
        judged j;
        EXPECT_NO_THROW(j = judge(op::list, "dave", dave_only, 200, "dave", "dave", body)) << body;
        EXPECT_EQ(j.v, verdict::own) << body;
        EXPECT_TRUE(j.ids.empty()) << body;
    }
}

TEST(Oracle, HtmlBodyIsJudgedByItsHeadersOnly) {
    const std::string_view html = "<html><a href=\"/exchange/Inbox/carol.1\">hi</a></html>";
    EXPECT_EQ(judge(op::list, "dave", dave_only, 200, "dave", "dave", html).v, verdict::own);
    const auto j = judge(op::list, "dave", dave_only, 200, "carol", "carol", html);
    EXPECT_EQ(j.v, verdict::leak);
    EXPECT_TRUE(j.ids.empty());
}

TEST(Oracle, OpOfRequestFollowsTheBackEndsRoutes) {
    struct row {
        std::string_view method, path;
        std::optional<op> want;
    };
    const row rows[] = {
        {"GET", "/exchange/", op::list},
        {"GET", "/exchange", op::list},
        {"GET", "/exchange/Inbox/", op::list},
        {"GET", "/exchange/Inbox/?limit=20", op::list},
        {"GET", "/exchange/alice/", op::list},
        {"GET", "/exchange/alice/Sent", op::list},
        {"GET", "/exchange/Inbox/alice.3", op::read},
        {"GET", "/exchange/alice/Sent/alice.4?x=1", op::read},
        {"DELETE", "/exchange/Inbox/alice.3", op::del},
        {"DELETE", "/exchange/alice/Inbox/alice.3", op::del},
        {"POST", "/exchange/Outbox/", op::send},
        {"POST", "/exchange/alice/Outbox", op::send},
        {"HEAD", "/exchange/", std::nullopt},
        {"GET", "/exchweb/owa.css", std::nullopt},
        {"GET", "/exchangeX/Inbox/", std::nullopt},
        {"POST", "/exchange/Inbox/", std::nullopt},
        {"DELETE", "/exchange/Inbox/", std::nullopt},
        {"GET", "/exchange/Outbox/", std::nullopt},
        {"GET", "/exchange/alice/Drafts/", std::nullopt},
        {"GET", "/exchange/alice/Inbox/alice.3/x", std::nullopt},
        {"", "", std::nullopt},
    };
    for (const auto& r : rows) EXPECT_EQ(op_of_request(r.method, r.path), r.want) << r.method << ' ' << r.path;
}

common::audit_record rec(std::string backend, std::uint64_t conn, std::string auth, std::string method,
                          std::string path, bool cross_user = false) {
    common::audit_record r;
    r.backend = std::move(backend);
    r.conn = conn;
    r.auth = std::move(auth);
    r.method = std::move(method);
    r.path = std::move(path);
    r.cross_user = cross_user;
    return r;
}

TEST(AuditSummary, CountsConnectionsOnTheirFirstOperationAndHandshakesPerRequest) {
    const std::vector<common::audit_record> records{
        rec("be1", 1, "request", "GET", "/exchange/Inbox/"),
        rec("be1", 1, "connection", "GET", "/exchange/Inbox/bob.1", true),  // reuse, cross-user
        rec("be1", 2, "request", "POST", "/exchange/Outbox/"),
        rec("be1", 2, "request", "DELETE", "/exchange/Inbox/bob.1"),  // re-authenticated reuse
        rec("be2", 1, "request", "GET", "/exchange/carol.2"),         // same id, other back-end
        rec("be2", 1, "connection", "HEAD", "/exchange/"),
    };
    const auto s = summarize_audit(records);
    EXPECT_EQ(s.records, 6u);
    EXPECT_EQ(s.cross_user, 1u);
    EXPECT_EQ(s.connections, (std::array<std::uint64_t, 4>{2, 0, 1, 0}));  // list, read, send, delete
    EXPECT_EQ(s.handshakes, (std::array<std::uint64_t, 4>{2, 0, 1, 1}));
}

TEST(AuditSummary, ConnectionFirstUsedByAProbeGoesToTheFirstOperationOfTheMix) {
    const auto s = summarize_audit({rec("be1", 9, "request", "HEAD", "/exchange/"),
                                    rec("be1", 9, "connection", "GET", "/exchange/Inbox/bob.1")});
    EXPECT_EQ(s.connections, (std::array<std::uint64_t, 4>{0, 1, 0, 0}));
    EXPECT_EQ(s.handshakes, (std::array<std::uint64_t, 4>{}));
}

TEST(AuditSummary, EmptyIsZero) {
    const auto s = summarize_audit({});
    EXPECT_EQ(s.records, 0u);
    EXPECT_EQ(s.connections, (std::array<std::uint64_t, 4>{}));
}

// As proxy/src/metrics.cpp renders it: every sample carries the policy label.
constexpr std::string_view exposition =
    "# HELP exsim_proxy_backend_handshakes_total Back-end authentication handshakes completed, by mechanism.\n"
    "# TYPE exsim_proxy_backend_handshakes_total counter\n"
    "exsim_proxy_backend_handshakes_total{policy=\"legacy\",mechanism=\"kerberos\"} 12\n"
    "exsim_proxy_backend_handshakes_total{policy=\"legacy\",mechanism=\"ntlm\"} 30\n"
    "# HELP exsim_proxy_backend_handshake_failures_total Handshakes refused.\n"
    "exsim_proxy_backend_handshake_failures_total{policy=\"legacy\"} 4\n"
    "exsim_proxy_backend_connections_opened_total 7\n";

TEST(Prometheus, SumsEverySampleOfAFamily) {
    EXPECT_EQ(prometheus_sum(exposition, "exsim_proxy_backend_handshakes_total"), 42);
    EXPECT_EQ(prometheus_sum(exposition, "exsim_proxy_backend_connections_opened_total"), 7);
}

TEST(Prometheus, FiltersByLabel) {
    EXPECT_EQ(prometheus_sum(exposition, "exsim_proxy_backend_handshakes_total", "mechanism=\"ntlm\""), 30);
    EXPECT_EQ(prometheus_sum(exposition, "exsim_proxy_backend_handshakes_total", "mechanism=\"gss\""), 0);
    EXPECT_EQ(prometheus_sum(exposition, "exsim_proxy_backend_connections_opened_total", "policy"), 0);
}

TEST(Prometheus, MatchesTheNameExactly) {
    EXPECT_EQ(prometheus_sum(exposition, "exsim_proxy_backend_handshake"), 0);
    EXPECT_EQ(prometheus_sum(exposition, "exsim_proxy_backend_handshake_failures_total"), 4);
    EXPECT_EQ(prometheus_sum(exposition, "absent_total"), 0);
}

TEST(Prometheus, SkipsGarbageAndReadsTimestampsAndEscapes) {
    const std::string_view text =
        "garbage\n"
        "x{unterminated=\"} 5\n"
        "x{a=\"}\"} 2\n"
        "x{a=\"q\\\"} 3\"} 3 1700000000000\r\n"
        "x notanumber\n"
        "x NaN\n"
        "x{} \n"
        "   x 1.5\n"
        "x 1e1 trailing\n"
        "x\n"
        "{a=\"b\"} 9\n";
    double sum = -1;
    EXPECT_NO_THROW(sum = prometheus_sum(text, "x"));
    EXPECT_EQ(sum, 2 + 3 + 1.5 + 10);
    EXPECT_EQ(prometheus_sum(text, "x", "a=\"}\""), 2);
}

}  // namespace
}  // namespace exsim::loadgen
