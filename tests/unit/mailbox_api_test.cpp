#include "exsim/backend_sim/mailbox_api.hpp"

#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include <unistd.h>

#include <boost/json.hpp>
#include <gtest/gtest.h>

#include "api_topology.hpp"
#include "temp_folder.hpp"

namespace fs = std::filesystem;
namespace http = boost::beast::http;
namespace json = boost::json;
using namespace exsim::backend;
using exsim::common::topology;

namespace {

using exsim::testing::api_topology;
using exsim::testing::temp_folder;

// A back-end's API over a fresh, seeded store and audit log.
struct api_env {
    temp_folder dir;
    topology topo = api_topology();  // be1: alice, bob, eve (alice's delegate); be2: carol
    mailbox_store store{mailbox_database_path(dir.path(), "be1")};
    audit_log audit{audit_log_path(dir.path(), "be1")};
    mailbox_api api{topo, "be1", store, audit};

    api_env() { store.seed(topo, "be1"); }

    mailbox_api::response call(http::verb method, std::string target, std::string identity,
                               std::string body = {}, std::string on_behalf_of = {},
                               std::string accept = {}) {
        mailbox_api::request req{method, target, 11};
        if (!on_behalf_of.empty()) req.set("X-Exsim-On-Behalf-Of", on_behalf_of);
        if (!accept.empty()) req.set(http::field::accept, accept);
        if (!body.empty()) {
            req.set(http::field::content_type, "application/json");
            req.body() = std::move(body);
            req.prepare_payload();
        }
        const std::string mechanism = identity.empty() ? "" : "ntlm";
        return api.handle(req, request_context{std::move(identity), mechanism, 7});
    }
    mailbox_api::response get(std::string target, std::string identity,
                              std::string on_behalf_of = {}) {
        return call(http::verb::get, std::move(target), std::move(identity), {},
                    std::move(on_behalf_of));
    }

    std::vector<audit_record> audit_lines() const { return read_audit_log(audit.path()); }
    audit_record last_audit() const {
        const auto all = audit_lines();
        return all.empty() ? audit_record{} : all.back();
    }
    bool has(std::string_view owner, std::string_view folder, std::string_view id) {
        message m;
        return !store.get(owner, folder, id, m);
    }
};

std::string header(const mailbox_api::response& res, std::string_view name) {
    const auto v = res[name];
    return std::string(v.data(), v.size());
}

json::object body_json(const mailbox_api::response& res) {
    std::error_code ec;
    auto v = json::parse(res.body(), ec);
    if (ec || !v.is_object()) {
        ADD_FAILURE() << "not a JSON object: " << res.body();
        return {};
    }
    return v.get_object();
}

std::vector<std::string> listed_ids(const mailbox_api::response& res) {
    std::vector<std::string> ids;
    const auto o = body_json(res);
    if (const auto* ms = o.if_contains("messages"); ms != nullptr && ms->is_array()) {
        for (const auto& m : ms->get_array()) ids.emplace_back(m.at("id").as_string());
    }
    return ids;
}

}  // namespace

TEST(MailboxApi, ImplicitListServesTheIdentitysInboxWithIdentityHeaders) {
    api_env env;
    for (const std::string target : {"/exchange/", "/exchange", "/exchange/Inbox/", "/exchange/Inbox"}) {
        const auto res = env.get(target, "alice");
        ASSERT_EQ(res.result(), http::status::ok) << target << ": " << res.body();
        EXPECT_EQ(header(res, "X-Exsim-Mailbox"), "alice");
        EXPECT_EQ(header(res, "X-Exsim-Identity"), "alice");
        EXPECT_EQ(header(res, "Server"), "Microsoft-IIS/6.0");
        EXPECT_EQ(header(res, "Content-Type"), "application/json; charset=utf-8");
        const auto o = body_json(res);
        EXPECT_EQ(o.at("mailbox").as_string(), "alice");
        EXPECT_EQ(o.at("folder").as_string(), "Inbox");
        EXPECT_EQ(listed_ids(res), (std::vector<std::string>{"alice.3", "alice.2", "alice.1"}));
    }
    const auto line = env.last_audit();
    EXPECT_EQ(line.op, "list");
    EXPECT_EQ(line.mailbox, "alice");
    EXPECT_EQ(line.identity, "alice");
    EXPECT_EQ(line.mechanism, "ntlm");
    EXPECT_EQ(line.conn, 7u);
    EXPECT_EQ(line.status, 200u);
    EXPECT_EQ(line.backend, "be1");
}

TEST(MailboxApi, TheSameImplicitPathServesWhoeverTheConnectionIsAuthenticatedAs) {
    // The back-end's half of MS04-002: it can only serve the identity it authenticated.
    api_env env;
    const auto res = env.get("/exchange/", "bob");
    EXPECT_EQ(header(res, "X-Exsim-Mailbox"), "bob");
    for (const auto& id : listed_ids(res)) EXPECT_EQ(owner_of_message_id(id), "bob");
}

TEST(MailboxApi, ImplicitReadReturnsTheMessageWithItsBody) {
    api_env env;
    const auto res = env.get("/exchange/Inbox/alice.2", "alice");
    ASSERT_EQ(res.result(), http::status::ok) << res.body();
    const auto o = body_json(res);
    EXPECT_EQ(o.at("id").as_string(), "alice.2");
    EXPECT_EQ(o.at("subject").as_string(), "Welcome, alice (2/3)");
    EXPECT_NE(std::string(o.at("body").as_string()).find("alice"), std::string::npos);
    EXPECT_EQ(header(res, "X-Exsim-Mailbox"), "alice");
    EXPECT_EQ(env.last_audit().op, "read");
    EXPECT_EQ(env.last_audit().message, "alice.2");
}

TEST(MailboxApi, ExplicitOwnMailboxIsServed) {
    api_env env;
    for (const std::string target : {"/exchange/alice/", "/exchange/alice/Inbox/"}) {
        const auto res = env.get(target, "alice");
        ASSERT_EQ(res.result(), http::status::ok) << target;
        EXPECT_EQ(header(res, "X-Exsim-Mailbox"), "alice");
        EXPECT_EQ(listed_ids(res).size(), 3u);
    }
    EXPECT_EQ(env.get("/exchange/alice/Inbox/alice.1", "alice").result(), http::status::ok);
}

TEST(MailboxApi, BobCannotOpenAliceExplicitly) {
    api_env env;
    const std::vector<std::pair<http::verb, std::string>> attempts = {
        {http::verb::get, "/exchange/alice/"},
        {http::verb::get, "/exchange/alice/Inbox/"},
        {http::verb::get, "/exchange/alice/Inbox/alice.1"},
        {http::verb::delete_, "/exchange/alice/Inbox/alice.1"},
        {http::verb::post, "/exchange/alice/Outbox/"},
    };
    for (const auto& [method, target] : attempts) {
        const auto res = env.call(method, target, "bob", R"({"to":"bob","subject":"s","body":"b"})");
        EXPECT_EQ(res.result(), http::status::forbidden) << target;
        EXPECT_EQ(header(res, "X-Exsim-Mailbox"), "alice");
        EXPECT_EQ(header(res, "X-Exsim-Identity"), "bob");
        EXPECT_EQ(res.body().find("Welcome"), std::string::npos);
        const auto line = env.last_audit();
        EXPECT_EQ(line.op, "denied");
        EXPECT_EQ(line.status, 403u);
        EXPECT_EQ(line.mailbox, "alice");
        EXPECT_EQ(line.identity, "bob");
    }
    EXPECT_TRUE(env.has("alice", inbox_folder, "alice.1"));
    std::vector<message> sent;
    env.store.list("alice", sent_items_folder, 10, sent);
    EXPECT_TRUE(sent.empty());
}

TEST(MailboxApi, DelegateMayOpenReadAndSendAsTheMailbox) {
    api_env env;
    auto res = env.get("/exchange/alice/Inbox/", "eve");
    ASSERT_EQ(res.result(), http::status::ok);
    EXPECT_EQ(header(res, "X-Exsim-Mailbox"), "alice");
    EXPECT_EQ(header(res, "X-Exsim-Identity"), "eve");
    EXPECT_EQ(env.get("/exchange/alice/Inbox/alice.1", "eve").result(), http::status::ok);

    res = env.call(http::verb::post, "/exchange/alice/Outbox/", "eve",
                   R"({"to":"bob","subject":"On behalf","body":"of alice"})");
    ASSERT_EQ(res.result(), http::status::ok) << res.body();
    EXPECT_EQ(body_json(res).at("sent").as_string(), "alice.4");
    message m;
    ASSERT_FALSE(env.store.get("bob", inbox_folder, "bob.4", m));
    EXPECT_EQ(m.from, "alice");

    // Delegation is one way: alice is not eve's delegate.
    EXPECT_EQ(env.get("/exchange/eve/", "alice").result(), http::status::forbidden);
}

TEST(MailboxApi, MailboxOfAnotherBackendIsNotFound) {
    api_env env;
    const auto res = env.get("/exchange/carol/Inbox/", "alice");
    EXPECT_EQ(res.result(), http::status::not_found);
    EXPECT_NE(res.body().find("not on this back-end"), std::string::npos) << res.body();
    EXPECT_EQ(header(res, "X-Exsim-Mailbox"), "carol");
    EXPECT_EQ(env.last_audit().op, "not_found");

    // carol authenticated here (she should have been sent to be2): her implicit mailbox is not
    // on this back-end either.
    const auto implicit = env.get("/exchange/", "carol");
    EXPECT_EQ(implicit.result(), http::status::not_found);
    EXPECT_EQ(header(implicit, "X-Exsim-Mailbox"), "carol");

    EXPECT_EQ(env.get("/exchange/nobody/", "alice").result(), http::status::not_found);
}

TEST(MailboxApi, AMessageIdOfAnotherMailboxIsNotFoundAndTheMessageIsUntouched) {
    api_env env;
    auto res = env.get("/exchange/bob/Inbox/alice.1", "bob");
    EXPECT_EQ(res.result(), http::status::not_found);
    EXPECT_EQ(header(res, "X-Exsim-Mailbox"), "bob");
    EXPECT_EQ(res.body().find("Welcome"), std::string::npos);

    res = env.call(http::verb::delete_, "/exchange/bob/Inbox/alice.1", "bob");
    EXPECT_EQ(res.result(), http::status::not_found);
    res = env.call(http::verb::delete_, "/exchange/Inbox/alice.1", "bob");
    EXPECT_EQ(res.result(), http::status::not_found);
    EXPECT_TRUE(env.has("alice", inbox_folder, "alice.1"));

    const auto line = env.last_audit();
    EXPECT_EQ(line.op, "not_found");
    EXPECT_EQ(line.mailbox, "bob");
    EXPECT_EQ(line.message, "alice.1");
}

TEST(MailboxApi, SendStoresBothCopiesAndWritesAnAuditLine) {
    api_env env;
    const auto res = env.call(http::verb::post, "/exchange/Outbox/", "alice",
                              R"({"to":"bob","subject":"Lunch?","body":"At noon."})", "alice");
    ASSERT_EQ(res.result(), http::status::ok) << res.body();
    EXPECT_EQ(header(res, "X-Exsim-Mailbox"), "alice");
    const auto o = body_json(res);
    EXPECT_EQ(o.at("sent").as_string(), "alice.4");
    EXPECT_EQ(o.at("delivered").as_string(), "bob.4");

    message m;
    ASSERT_FALSE(env.store.get("alice", sent_items_folder, "alice.4", m));
    EXPECT_EQ(m.subject, "Lunch?");
    ASSERT_FALSE(env.store.get("bob", inbox_folder, "bob.4", m));
    EXPECT_EQ(m.body, "At noon.");

    const auto sent_list = env.get("/exchange/Sent/", "alice");
    EXPECT_EQ(listed_ids(sent_list), std::vector<std::string>{"alice.4"});
    EXPECT_EQ(body_json(sent_list).at("folder").as_string(), "Sent Items");

    const auto lines = env.audit_lines();
    ASSERT_GE(lines.size(), 2u);
    const auto& line = lines[lines.size() - 2];
    EXPECT_EQ(line.op, "send");
    EXPECT_EQ(line.method, "POST");
    EXPECT_EQ(line.path, "/exchange/Outbox/");
    EXPECT_EQ(line.mailbox, "alice");
    EXPECT_EQ(line.identity, "alice");
    EXPECT_EQ(line.message, "alice.4");
    EXPECT_EQ(line.status, 200u);
    EXPECT_EQ(line.on_behalf_of, "alice");
    EXPECT_FALSE(line.cross_user);
}

TEST(MailboxApi, SendToAnotherBackendsMailboxKeepsOnlyTheSentCopy) {
    api_env env;
    const auto res = env.call(http::verb::post, "/exchange/Outbox", "alice",
                              R"({"to":"carol","subject":"Hi","body":"x"})");
    ASSERT_EQ(res.result(), http::status::ok) << res.body();
    EXPECT_TRUE(body_json(res).at("delivered").is_null());
}

TEST(MailboxApi, DeleteRemovesTheMessageAndASecondDeleteIsNotFound) {
    api_env env;
    auto res = env.call(http::verb::delete_, "/exchange/Inbox/alice.2", "alice");
    ASSERT_EQ(res.result(), http::status::ok) << res.body();
    EXPECT_EQ(body_json(res).at("deleted").as_string(), "alice.2");
    EXPECT_EQ(header(res, "X-Exsim-Mailbox"), "alice");
    EXPECT_FALSE(env.has("alice", inbox_folder, "alice.2"));
    auto line = env.last_audit();
    EXPECT_EQ(line.op, "delete");
    EXPECT_EQ(line.method, "DELETE");
    EXPECT_EQ(line.message, "alice.2");
    EXPECT_EQ(line.mailbox, "alice");

    res = env.call(http::verb::delete_, "/exchange/alice/Inbox/alice.2", "alice");
    EXPECT_EQ(res.result(), http::status::not_found);
    EXPECT_EQ(env.last_audit().op, "not_found");
}

TEST(MailboxApi, CrossUserIsFlaggedWhenOnBehalfOfDiffersFromIdentity) {
    // What the MS04-002 leak looks like from here: the front-end acted for bob over a
    // connection NTLM bound to alice, and alice's mailbox was served.
    api_env env;
    const auto res = env.get("/exchange/", "alice", "bob");
    EXPECT_EQ(res.result(), http::status::ok);
    EXPECT_EQ(header(res, "X-Exsim-Mailbox"), "alice");
    const auto line = env.last_audit();
    EXPECT_EQ(line.identity, "alice");
    EXPECT_EQ(line.on_behalf_of, "bob");
    EXPECT_TRUE(line.cross_user);
    EXPECT_EQ(count_cross_user(env.audit.path()), 1u);
}

TEST(MailboxApi, CrossUserIsNotFlaggedWhenOnBehalfOfMatchesOrIsAbsent) {
    api_env env;
    env.get("/exchange/", "alice", "alice");
    env.get("/exchange/", "alice");
    const auto lines = env.audit_lines();
    ASSERT_EQ(lines.size(), 2u);
    EXPECT_FALSE(lines[0].cross_user);
    EXPECT_FALSE(lines[1].cross_user);
    EXPECT_EQ(lines[1].on_behalf_of, "");
}

TEST(MailboxApi, OnBehalfOfNeverAuthorizesAnything) {
    api_env env;
    const auto res = env.get("/exchange/alice/", "bob", "alice");
    EXPECT_EQ(res.result(), http::status::forbidden);
    // Refused, so nothing crossed: the line records the attempt but does not count as a leak.
    EXPECT_EQ(env.last_audit().on_behalf_of, "alice");
    EXPECT_FALSE(env.last_audit().cross_user);
}

TEST(MailboxApi, BadSendJsonIsRejectedNamingTheField) {
    api_env env;
    const std::vector<std::pair<std::string, std::string>> cases = {
        {"not json", "JSON"},
        {"[1,2]", "object"},
        {R"({"subject":"s","body":"b"})", "'to'"},
        {R"({"to":"bob","body":"b"})", "'subject'"},
        {R"({"to":"bob","subject":"s"})", "'body'"},
        {R"({"to":7,"subject":"s","body":"b"})", "'to'"},
        {R"({"to":"bob","subject":["s"],"body":"b"})", "'subject'"},
        {R"({"to":"bob","subject":"s","body":null})", "'body'"},
        {R"({"to":"nobody","subject":"s","body":"b"})", "'to'"},
        {R"({"to":"bob","subject":"s","body":"b","cc":"eve"})", "'cc'"},
        {R"({"to":"bob","subject":")" + std::string(2000, 'x') + R"(","body":"b"})", "'subject'"},
    };
    for (const auto& [body, field] : cases) {
        const auto res = env.call(http::verb::post, "/exchange/Outbox/", "alice", body);
        EXPECT_EQ(res.result(), http::status::bad_request) << body;
        EXPECT_NE(res.body().find(field), std::string::npos) << res.body();
        EXPECT_EQ(header(res, "X-Exsim-Mailbox"), "alice");
        EXPECT_EQ(env.last_audit().op, "bad_request");
    }
    std::vector<message> sent;
    env.store.list("alice", sent_items_folder, 10, sent);
    EXPECT_TRUE(sent.empty());
}

TEST(MailboxApi, ExchwebIsServedAnonymouslyAndHonoursSize) {
    api_env env;
    auto res = env.get("/exchweb/", "");
    ASSERT_EQ(res.result(), http::status::ok);
    EXPECT_NE(header(res, "Content-Type").find("text/html"), std::string::npos);
    EXPECT_EQ(header(res, "X-Exsim-Mailbox"), "");

    res = env.get("/exchweb/owa.css", "");
    ASSERT_EQ(res.result(), http::status::ok);
    EXPECT_NE(header(res, "Content-Type").find("text/css"), std::string::npos);

    res = env.get("/exchweb/blob?size=16384", "");
    ASSERT_EQ(res.result(), http::status::ok);
    EXPECT_EQ(res.body().size(), 16384u);
    EXPECT_EQ(header(res, "Content-Length"), "16384");

    res = env.get("/exchweb/owa.js?size=10", "");
    EXPECT_EQ(res.body().size(), 10u);
    res = env.get("/exchweb/blob?size=0", "");
    EXPECT_EQ(res.body().size(), 0u);
    res = env.get("/exchweb/blob?size=99999999", "");
    EXPECT_EQ(res.body().size(), 1024u * 1024u);  // capped
    EXPECT_EQ(env.get("/exchweb/blob?size=-1", "").result(), http::status::bad_request);
    EXPECT_EQ(env.get("/exchweb/blob?size=12kb", "").result(), http::status::bad_request);

    EXPECT_EQ(env.get("/exchweb/nothing-here.gif", "").result(), http::status::not_found);
    EXPECT_EQ(env.call(http::verb::post, "/exchweb/owa.css", "").result(),
              http::status::method_not_allowed);
    EXPECT_TRUE(env.audit_lines().empty());  // static content is not a mailbox request
}

TEST(MailboxApi, HtmlEscapesMessageContentAndSetsAStrictCsp) {
    api_env env;
    const auto sent = env.call(
        http::verb::post, "/exchange/Outbox/", "bob",
        R"({"to":"alice","subject":"<script>alert('x')</script>","body":"<img src=x onerror=alert(1)> & \"q\""})");
    ASSERT_EQ(sent.result(), http::status::ok) << sent.body();
    const std::string id(body_json(sent).at("delivered").as_string());

    const std::string accept = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
    for (const auto& target : {std::string("/exchange/"), "/exchange/Inbox/" + id}) {
        const auto res = env.call(http::verb::get, target, "alice", {}, {}, accept);
        ASSERT_EQ(res.result(), http::status::ok) << target;
        EXPECT_NE(header(res, "Content-Type").find("text/html"), std::string::npos);
        EXPECT_EQ(header(res, "Content-Security-Policy"),
                  "default-src 'none'; style-src 'unsafe-inline'");
        EXPECT_EQ(header(res, "X-Exsim-Mailbox"), "alice");
        EXPECT_EQ(res.body().find("<script"), std::string::npos) << res.body();
        EXPECT_EQ(res.body().find("<img"), std::string::npos) << res.body();
        EXPECT_NE(res.body().find("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"),
                  std::string::npos)
            << res.body();
    }
    const auto read = env.call(http::verb::get, "/exchange/Inbox/" + id, "alice", {}, {}, accept);
    EXPECT_NE(read.body().find("&lt;img src=x onerror=alert(1)&gt; &amp; &quot;q&quot;"),
              std::string::npos)
        << read.body();
}

TEST(MailboxApi, JsonIsTheDefaultAndHtmlOnlyWhenPreferred) {
    EXPECT_FALSE(prefers_html(""));
    EXPECT_FALSE(prefers_html("*/*"));
    EXPECT_FALSE(prefers_html("application/json"));
    EXPECT_FALSE(prefers_html("text/html;q=0.5, application/json"));
    EXPECT_FALSE(prefers_html("text/html;q=0"));
    EXPECT_TRUE(prefers_html("text/html"));
    EXPECT_TRUE(prefers_html("TEXT/HTML"));
    EXPECT_TRUE(prefers_html("text/*, application/json;q=0.5"));
    EXPECT_TRUE(prefers_html("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"));
    EXPECT_EQ(html_escape(R"(<a href="x">&'</a>)"),
              "&lt;a href=&quot;x&quot;&gt;&amp;&#39;&lt;/a&gt;");
}

TEST(MailboxApi, NonCanonicalPathsAreRejected) {
    api_env env;
    for (const std::string target :
         {"/exchange/alice/../bob/", "/exchange/bob/Inbox/..", "/exchange/%62ob/", "/exchange//bob/",
          "/exchange/bob/./Inbox/", "/exchange\\bob", "exchange/bob/", "http://be1/exchange/",
          "/exchange/bob;x/", "/exchweb/../exchange/bob/", "/exchange/b\xC3\xB6" "b/"}) {
        const auto res = env.get(target, "alice");
        EXPECT_EQ(res.result(), http::status::bad_request) << target;
        EXPECT_EQ(res.body().find("Welcome"), std::string::npos);
        EXPECT_EQ(env.last_audit().op, "bad_request");
    }
}

TEST(MailboxApi, MethodNotAllowedOnAResourceIs405AndNamesTheAllowedOnes) {
    api_env env;
    auto res = env.call(http::verb::post, "/exchange/Inbox/", "alice");
    EXPECT_EQ(res.result(), http::status::method_not_allowed);
    EXPECT_EQ(header(res, "Allow"), "GET, HEAD");
    res = env.call(http::verb::post, "/exchange/alice/Inbox/alice.1", "alice");
    EXPECT_EQ(res.result(), http::status::method_not_allowed);
    EXPECT_EQ(header(res, "Allow"), "GET, HEAD, DELETE");
    res = env.get("/exchange/Outbox/", "alice");
    EXPECT_EQ(res.result(), http::status::method_not_allowed);
    EXPECT_EQ(header(res, "Allow"), "POST");
    EXPECT_EQ(env.last_audit().op, "method_not_allowed");
}

TEST(MailboxApi, AMethodNoResourceImplementsIs501AndNamesTheImplementedOnes) {
    api_env env;
    for (const auto method : {http::verb::put, http::verb::patch, http::verb::propfind, http::verb::options}) {
        SCOPED_TRACE(std::string(http::to_string(method)));
        const auto res = env.call(method, "/exchange/Inbox/", "alice");
        EXPECT_EQ(res.result(), http::status::not_implemented);
        EXPECT_NE(res.body().find("implements GET, HEAD, POST, DELETE"), std::string::npos) << res.body();
        EXPECT_EQ(env.last_audit().op, "not_implemented");
    }
    mailbox_api::request brew{http::verb::unknown, "/exchweb/owa.css", 11};
    brew.method_string("BREW");  // an extension method, by its text
    const auto res = env.api.handle(brew, {"", "", 1});
    EXPECT_EQ(res.result(), http::status::not_implemented);
    EXPECT_NE(res.body().find("method BREW is not implemented here"), std::string::npos) << res.body();
}

TEST(MailboxApi, HeadIsServedAsGet) {
    api_env env;
    EXPECT_EQ(env.call(http::verb::head, "/exchange/Inbox/", "alice").result(), http::status::ok);
    EXPECT_EQ(env.last_audit().op, "list");
    EXPECT_EQ(env.call(http::verb::head, "/exchweb/owa.css", "").result(), http::status::ok);
}

TEST(MailboxApi, AnonymousMailboxRequestIsUnauthorized) {
    api_env env;
    const auto res = env.get("/exchange/", "");
    EXPECT_EQ(res.result(), http::status::unauthorized);
    EXPECT_EQ(res.body().find("Welcome"), std::string::npos);
    EXPECT_EQ(env.last_audit().op, "unauthenticated");
    EXPECT_EQ(env.last_audit().status, 401u);
}

TEST(MailboxApi, UnknownRoutesAreNotFound) {
    api_env env;
    for (const std::string target : {"/", "/owa/", "/exchange/alice/Drafts/", "/exchange/Inbox/alice.1/x",
                                     "/exchange/Outbox/alice.1", "/exchange/Inbox/not-an-id",
                                     "/exchange/Inbox/alice.x"}) {
        const auto res = env.get(target, "alice");
        EXPECT_EQ(res.result(), http::status::not_found) << target;
        EXPECT_EQ(header(res, "X-Exsim-Identity"), "alice");
    }
}

TEST(MailboxApi, ListHonoursLimit) {
    api_env env;
    auto res = env.get("/exchange/Inbox/?limit=2", "alice");
    EXPECT_EQ(listed_ids(res), (std::vector<std::string>{"alice.3", "alice.2"}));
    EXPECT_EQ(env.get("/exchange/Inbox/?limit=0", "alice").result(), http::status::bad_request);
    EXPECT_EQ(env.get("/exchange/Inbox/?limit=100000", "alice").result(),
              http::status::bad_request);
}

TEST(MailboxApi, ResponseKeepsTheRequestsHttpVersion) {
    api_env env;
    mailbox_api::request req{http::verb::get, "/exchange/", 10};
    const auto res = env.api.handle(req, request_context{"alice", "kerberos", 1});
    EXPECT_EQ(res.version(), 10u);
    EXPECT_EQ(env.last_audit().mechanism, "kerberos");
}
