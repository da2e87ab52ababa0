// The front-end's pool policies against the real back-ends (DESIGN.md sections 1, 5, 6): each
// test counts what the back-end's audit log says it served, and what the proxy's metrics say it
// decided. A test that finds no leak under a safe policy is paired with one that finds leaks
// under `legacy` with the same workload: the oracle must be able to fail.

#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <thread>

#include <boost/json.hpp>
#include <fmt/format.h>

#include "proxy_support.hpp"

namespace exsim::testing {
namespace {

using proxy::close_reason;
using proxy::handshake_mechanism;
using proxy::reuse_decision;
using proxy::worker_metrics;
using verb = http::verb;

std::vector<backend::audit_record> concat(std::vector<backend::audit_record> a, const std::vector<backend::audit_record>& b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
}

// What the clients of a workload saw.
struct client_view {
    std::size_t ok = 0;
    std::size_t leaks = 0;  // 200 from a mailbox that is not the user's
    std::vector<std::string> errors;
};

// `threads` clients, each on its own kept-alive connection to the proxy, each making
// `per_thread` GET /exchange/ requests, cycling through `users` (thread t starts at user t).
client_view mixed_workload(const proxy::server& p, std::size_t threads, std::size_t per_thread,
                           const std::vector<std::string>& users) {
    client_view view;
    std::mutex m;
    std::vector<std::thread> pool;
    for (std::size_t t = 0; t < threads; ++t) {
        pool.emplace_back([&, t] {
            std::optional<connection> c;
            for (std::size_t i = 0; i < per_thread; ++i) {
                const auto& user = users[(t + i) % users.size()];
                try {
                    if (!c) c.emplace(p.port());
                    auto res = c->request(verb::get, "/exchange/", {{"Authorization", basic(user)}});
                    std::lock_guard lock(m);
                    if (res.result_int() != 200) {
                        view.errors.push_back(fmt::format("{}: {} {}", user, res.result_int(), res.body()));
                        if (!res.keep_alive()) c.reset();
                    } else if (res["X-Exsim-Mailbox"] != user) {
                        ++view.leaks;
                    } else {
                        ++view.ok;
                    }
                } catch (const std::exception& e) {
                    std::lock_guard lock(m);
                    view.errors.push_back(fmt::format("{}: {}", user, e.what()));
                    c.reset();
                }
            }
        });
    }
    for (auto& th : pool) th.join();
    return view;
}

const std::vector<std::string> mixed_users{"alice", "carol", "bob", "dave"};

// The workload every policy is compared on: 4 clients x `per_thread` requests through `p`,
// cycling through alice and bob (be1: Kerberos) and carol and dave (be2: NTLM only).
struct mixed_run {
    client_view clients;
    std::vector<backend::audit_record> be1, be2;  // what each back-end audited meanwhile
    std::size_t requests = 0;
};

mixed_run run_mixed(const proxy::server& p, std::size_t per_thread = 25) {
    constexpr std::size_t threads = 4;
    audit_since be1("be1"), be2("be2");
    mixed_run run;
    run.clients = mixed_workload(p, threads, per_thread, mixed_users);
    run.be1 = be1.records();
    run.be2 = be2.records();
    run.requests = threads * per_thread;
    return run;
}

// ---- legacy: the MS04-002 bug -----------------------------------------------------------------

// Also shows that the client's Basic Authorization is not forwarded: be2 would refuse that
// scheme with a 401, and the proxy would then authenticate dave.
TEST(ProxyLegacy, WithAnNtlmOnlyBackendServesDaveTheMailboxOfCarol) {
    audit_since be2("be2");
    auto p = start_proxy({.policy = "legacy"});
    auto carol = as_user(*p, "carol");
    ASSERT_EQ(carol.result_int(), 200) << carol.body();
    EXPECT_EQ(carol["X-Exsim-Mailbox"], "carol");

    auto dave = as_user(*p, "dave");
    ASSERT_EQ(dave.result_int(), 200) << dave.body();
    EXPECT_EQ(dave["X-Exsim-Mailbox"], "carol") << "the bug: dave is served on carol's NTLM connection";
    EXPECT_EQ(dave["X-Exsim-Identity"], "carol");
    const auto ids = message_ids(dave);
    ASSERT_FALSE(ids.empty());
    for (const auto& id : ids) EXPECT_EQ(id.rfind("carol.", 0), 0u) << id;

    const auto records = be2.records();
    ASSERT_EQ(records.size(), 2u);
    EXPECT_EQ(backend::count_cross_user(records), 1u);
    EXPECT_EQ(records[1].identity, "carol");
    EXPECT_EQ(records[1].on_behalf_of, "dave");
    EXPECT_EQ(records[1].mechanism, "ntlm");
    EXPECT_EQ(records[1].auth, "connection") << "dave's request carried no handshake of its own";
    EXPECT_EQ(records[1].conn, records[0].conn);

    EXPECT_EQ(metric(*p, &worker_metrics::connections_opened), 1);
    EXPECT_EQ(acquired(*p, reuse_decision::reused_as_is), 1);
    EXPECT_EQ(handshakes(*p, handshake_mechanism::ntlm), 1);
    EXPECT_EQ(metric(*p, &worker_metrics::ntlm_fallbacks), 1);
}

TEST(ProxyLegacy, WithAnNtlmOnlyBackendLetsDaveDeleteAMessageOfCarol) {
    audit_since be2("be2");
    auto p = start_proxy({.policy = "legacy"});
    // A message of carol's own, so that the test does not depend on what others did to her inbox.
    auto sent = as_user(*p, "carol", verb::post, "/exchange/Outbox/", mail_json("carol", "MS04-002 victim"));
    ASSERT_EQ(sent.result_int(), 200) << sent.body();
    const auto delivered = boost::json::parse(sent.body()).at("delivered");
    ASSERT_TRUE(delivered.is_string()) << sent.body();
    const std::string id(delivered.as_string());
    ASSERT_EQ(id.rfind("carol.", 0), 0u) << id;

    auto del = as_user(*p, "dave", verb::delete_, "/exchange/Inbox/" + id);
    EXPECT_EQ(del.result_int(), 200) << del.body();
    EXPECT_EQ(del["X-Exsim-Mailbox"], "carol");

    auto read = as_user(*p, "carol", verb::get, "/exchange/Inbox/" + id);
    EXPECT_EQ(read.result_int(), 404) << "carol's message is gone: " << read.body();
    auto list = as_user(*p, "carol");
    ASSERT_EQ(list.result_int(), 200);
    const auto ids = message_ids(list);
    EXPECT_EQ(std::find(ids.begin(), ids.end(), id), ids.end());

    const auto records = be2.records();
    ASSERT_EQ(records.size(), 4u);
    EXPECT_EQ(backend::count_cross_user(records), 1u);
    const auto& d = records[1];
    EXPECT_EQ(d.op, "delete");
    EXPECT_EQ(d.identity, "carol");
    EXPECT_EQ(d.on_behalf_of, "dave");
    EXPECT_EQ(d.message, id);
    EXPECT_TRUE(d.cross_user);

    EXPECT_EQ(metric(*p, &worker_metrics::connections_opened), 1);
    EXPECT_EQ(acquired(*p, reuse_decision::reused_as_is), 3);
}

TEST(ProxyLegacy, WithAnNtlmOnlyBackendLetsDaveSendMailAsCarol) {
    audit_since be2("be2");
    auto p = start_proxy({.policy = "legacy"});
    ASSERT_EQ(as_user(*p, "carol").result_int(), 200);
    auto sent = as_user(*p, "dave", verb::post, "/exchange/Outbox/", mail_json("dave", "sent by dave?"));
    ASSERT_EQ(sent.result_int(), 200) << sent.body();
    EXPECT_EQ(sent["X-Exsim-Mailbox"], "carol");
    const auto reply = boost::json::parse(sent.body());
    EXPECT_EQ(reply.at("mailbox").as_string(), "carol") << "the mail went out from carol's mailbox";

    const auto records = be2.records();
    ASSERT_EQ(records.size(), 2u);
    EXPECT_EQ(backend::count_cross_user(records), 1u);
    EXPECT_EQ(records[1].op, "send");
    EXPECT_EQ(records[1].identity, "carol");
    EXPECT_EQ(records[1].on_behalf_of, "dave");
    EXPECT_EQ(acquired(*p, reuse_decision::reused_as_is), 1);
    EXPECT_EQ(metric(*p, &worker_metrics::connections_opened), 1);
}

// "Negotiate that picks NTLM" (DESIGN.md section 3): a back-end that offers Negotiate but has no
// Kerberos key. The connection is NTLM-bound, and legacy hands it to the next user.
TEST(ProxyLegacy, WithNegotiateThatPickedNtlmServesBobTheMailboxOfAlice) {
    auto no_key = realm_environment::get().start_backend("be1", /*with_keytab=*/false);
    auto audit = audit_since::of_file(no_key->audit_log_file());
    auto p = start_proxy({.policy = "legacy", .addresses = {{"be1", fmt::format("127.0.0.1:{}", no_key->port())}}});
    ASSERT_EQ(as_user(*p, "alice").result_int(), 200);
    auto bob = as_user(*p, "bob");
    ASSERT_EQ(bob.result_int(), 200) << bob.body();
    EXPECT_EQ(bob["X-Exsim-Mailbox"], "alice");

    const auto records = audit.records();
    ASSERT_EQ(records.size(), 2u);
    EXPECT_EQ(backend::count_cross_user(records), 1u);
    EXPECT_EQ(records[1].identity, "alice");
    EXPECT_EQ(records[1].on_behalf_of, "bob");
    EXPECT_EQ(records[1].mechanism, "ntlm");
    EXPECT_EQ(handshakes(*p, handshake_mechanism::ntlm), 1);
    EXPECT_EQ(handshakes(*p, handshake_mechanism::kerberos), 0);
    EXPECT_EQ(metric(*p, &worker_metrics::ntlm_fallbacks), 1);
}

TEST(ProxyLegacy, WithKerberosPerRequestResendsAPostsBodyWhenTheBackendAsksAgain) {
    audit_since be1("be1");
    auto p = start_proxy({.policy = "legacy"});
    ASSERT_EQ(as_user(*p, "alice").result_int(), 200);
    auto sent = as_user(*p, "bob", verb::post, "/exchange/Outbox/", mail_json("bob", "replayed after a 401"));
    ASSERT_EQ(sent.result_int(), 200) << sent.body();
    EXPECT_EQ(sent["X-Exsim-Mailbox"], "bob");

    const auto records = be1.records();
    ASSERT_EQ(records.size(), 2u);
    EXPECT_EQ(records[1].op, "send");
    EXPECT_EQ(records[1].identity, "bob");
    EXPECT_EQ(records[1].conn, records[0].conn);
    EXPECT_EQ(backend::count_cross_user(records), 0u);
    // alice: one leg; bob: the token-less try that got the 401, then the one with his token.
    EXPECT_EQ(metric(*p, &worker_metrics::backend_requests), 3);
}

TEST(ProxyLegacy, WithKerberosPerRequestDoesNotLeakBecauseTheBackendAsksAgain) {
    audit_since be1("be1");
    auto p = start_proxy({.policy = "legacy"});
    auto alice = as_user(*p, "alice");
    ASSERT_EQ(alice.result_int(), 200) << alice.body();
    auto bob = as_user(*p, "bob");
    ASSERT_EQ(bob.result_int(), 200) << bob.body();
    EXPECT_EQ(bob["X-Exsim-Mailbox"], "bob");

    const auto records = be1.records();
    ASSERT_EQ(records.size(), 2u);
    EXPECT_EQ(backend::count_cross_user(records), 0u);
    for (const auto& r : records) {
        EXPECT_EQ(r.mechanism, "kerberos");
        EXPECT_EQ(r.auth, "request");
    }
    EXPECT_EQ(records[1].identity, "bob");
    EXPECT_EQ(records[1].conn, records[0].conn) << "the connection was re-used, and re-authenticated on the 401";

    EXPECT_EQ(metric(*p, &worker_metrics::connections_opened), 1);
    EXPECT_EQ(acquired(*p, reuse_decision::reused_as_is), 1);
    EXPECT_EQ(handshakes(*p, handshake_mechanism::kerberos), 2);
    EXPECT_EQ(handshakes(*p, handshake_mechanism::ntlm), 0);
}

TEST(ProxyLegacy, WithPersistedKerberosServesGinaTheMailboxOfFrank) {
    audit_since be3("be3");
    auto p = start_proxy({.policy = "legacy"});
    ASSERT_EQ(as_user(*p, "frank").result_int(), 200);
    auto gina = as_user(*p, "gina");
    ASSERT_EQ(gina.result_int(), 200) << gina.body();
    EXPECT_EQ(gina["X-Exsim-Mailbox"], "frank") << "Kerberos is not what makes a proxy safe: re-authentication is";

    const auto records = be3.records();
    ASSERT_EQ(records.size(), 2u);
    EXPECT_EQ(backend::count_cross_user(records), 1u);
    EXPECT_EQ(records[1].identity, "frank");
    EXPECT_EQ(records[1].on_behalf_of, "gina");
    EXPECT_EQ(records[1].mechanism, "kerberos");
    EXPECT_EQ(records[1].auth, "connection");

    EXPECT_EQ(acquired(*p, reuse_decision::reused_as_is), 1);
    EXPECT_EQ(handshakes(*p, handshake_mechanism::kerberos), 1);
}

// ---- ms04-002: the fix ------------------------------------------------------------------------

TEST(ProxyMs04002, WithPersistedKerberosReauthenticatesGinaOnFranksConnection) {
    audit_since be3("be3");
    auto p = start_proxy({.policy = "ms04-002"});
    ASSERT_EQ(as_user(*p, "frank").result_int(), 200);
    auto gina = as_user(*p, "gina");
    ASSERT_EQ(gina.result_int(), 200) << gina.body();
    EXPECT_EQ(gina["X-Exsim-Mailbox"], "gina");

    const auto records = be3.records();
    ASSERT_EQ(records.size(), 2u);
    EXPECT_EQ(backend::count_cross_user(records), 0u);
    EXPECT_EQ(records[1].identity, "gina");
    EXPECT_EQ(records[1].auth, "request");
    EXPECT_EQ(records[1].conn, records[0].conn);
    EXPECT_EQ(acquired(*p, reuse_decision::reused_reauth), 1);
    EXPECT_EQ(metric(*p, &worker_metrics::connections_opened), 1);
}

TEST(ProxyMs04002, HasNoLeaksUnderConcurrentMixedUsers) {
    auto p = start_proxy({.policy = "ms04-002", .workers = 2});
    const auto run = run_mixed(*p);
    const auto& view = run.clients;
    const auto& r1 = run.be1;
    const auto& r2 = run.be2;
    ASSERT_TRUE(view.errors.empty()) << view.errors.size() << " errors, first: " << view.errors.front();
    EXPECT_EQ(view.leaks, 0u);
    EXPECT_EQ(view.ok, run.requests);
    EXPECT_EQ(r1.size() + r2.size(), run.requests);
    EXPECT_EQ(backend::count_cross_user(r1) + backend::count_cross_user(r2), 0u);
    for (const auto& records : {r1, r2})
        for (const auto& r : records) EXPECT_EQ(r.identity, r.on_behalf_of);
    // Every NTLM connection served exactly one request.
    std::size_t ntlm = 0;
    for (const auto* records : {&r1, &r2}) {
        std::vector<backend::audit_record> only_ntlm;
        for (const auto& r : *records)
            if (r.mechanism == "ntlm") only_ntlm.push_back(r);
        ntlm += only_ntlm.size();
        for (const auto& [conn, n] : records_by_connection(only_ntlm)) EXPECT_EQ(n, 1u) << "NTLM conn " << conn;
    }
    EXPECT_EQ(ntlm, r2.size());
    // Every Kerberos request carried its own fresh token.
    for (const auto& r : r1) {
        EXPECT_EQ(r.mechanism, "kerberos");
        EXPECT_EQ(r.auth, "request") << "conn " << r.conn;
    }
    EXPECT_LT(connections(r1).size(), r1.size()) << "be1's connections were re-used";

    EXPECT_GT(acquired(*p, reuse_decision::reused_reauth), 0);
    EXPECT_EQ(acquired(*p, reuse_decision::reused_as_is), 0);
    EXPECT_TRUE(eventually([&] {
        return closed(*p, close_reason::ntlm_not_pooled) == static_cast<std::int64_t>(r2.size());
    })) << closed(*p, close_reason::ntlm_not_pooled);
    EXPECT_EQ(handshakes(*p, handshake_mechanism::ntlm), static_cast<std::int64_t>(r2.size()));
    EXPECT_EQ(handshakes(*p, handshake_mechanism::kerberos), static_cast<std::int64_t>(r1.size()));
}

TEST(ProxyMs04002, NeverPoolsAConnectionWhereNegotiatePickedNtlm) {
    auto no_key = realm_environment::get().start_backend("be1", /*with_keytab=*/false);
    auto audit = audit_since::of_file(no_key->audit_log_file());
    auto p = start_proxy({.addresses = {{"be1", fmt::format("127.0.0.1:{}", no_key->port())}}});
    for (const auto* user : {"alice", "bob", "alice"}) {
        auto res = as_user(*p, user);
        ASSERT_EQ(res.result_int(), 200) << res.body();
        EXPECT_EQ(res["X-Exsim-Mailbox"], user);
    }
    const auto records = audit.records();
    ASSERT_EQ(records.size(), 3u);
    EXPECT_EQ(backend::count_cross_user(records), 0u);
    EXPECT_EQ(connections(records).size(), 3u);
    for (const auto& r : records) {
        EXPECT_EQ(r.mechanism, "ntlm");
        EXPECT_EQ(r.auth, "request");
    }
    EXPECT_EQ(handshakes(*p, handshake_mechanism::ntlm), 3);
    EXPECT_EQ(metric(*p, &worker_metrics::ntlm_fallbacks), 3);
    EXPECT_TRUE(eventually([&] { return closed(*p, close_reason::ntlm_not_pooled) == 3; }))
        << closed(*p, close_reason::ntlm_not_pooled);
    EXPECT_EQ(metric(*p, &worker_metrics::idle_connections), 0);
}

// The same workload under legacy: the oracle finds the leaks, from both sides.
TEST(ProxyLegacy, HasLeaksUnderTheSameConcurrentMixedUsers) {
    auto p = start_proxy({.policy = "legacy", .workers = 2});
    const auto run = run_mixed(*p);
    const auto& view = run.clients;
    const auto& r1 = run.be1;
    const auto& r2 = run.be2;
    ASSERT_TRUE(view.errors.empty()) << view.errors.size() << " errors, first: " << view.errors.front();
    EXPECT_GT(view.leaks, 0u);
    EXPECT_EQ(view.ok + view.leaks, run.requests);

    EXPECT_EQ(r1.size() + r2.size(), run.requests);
    EXPECT_EQ(backend::count_cross_user(r1), 0u) << "be1 re-asks for Kerberos on every request";
    EXPECT_GT(backend::count_cross_user(r2), 0u);
    EXPECT_EQ(backend::count_cross_user(r2), view.leaks) << "the clients and the back-end see the same leaks";
    EXPECT_GT(acquired(*p, reuse_decision::reused_as_is), 0);
    // The check the pinned and per-user tests rely on finds these leaks.
    EXPECT_FALSE(one_user_per_connection(r2));
}

// ---- no-reuse: the workaround -----------------------------------------------------------------

TEST(ProxyNoReuse, OpensOneBackendConnectionPerRequest) {
    audit_since be1("be1"), be2("be2");
    auto p = start_proxy({.policy = "no-reuse"});
    connection c(p->port());
    for (int i = 0; i < 12; ++i) {
        const auto& user = mixed_users[i % mixed_users.size()];
        auto res = c.request(verb::get, "/exchange/", {{"Authorization", basic(user)}});
        ASSERT_EQ(res.result_int(), 200) << res.body();
        EXPECT_EQ(res["X-Exsim-Mailbox"], user);
    }
    const auto r1 = be1.records(), r2 = be2.records();
    EXPECT_EQ(r1.size(), 6u);
    EXPECT_EQ(r2.size(), 6u);
    EXPECT_EQ(connections(r1).size(), r1.size());
    EXPECT_EQ(connections(r2).size(), r2.size());
    EXPECT_EQ(backend::count_cross_user(concat(r1, r2)), 0u);

    EXPECT_EQ(metric(*p, &worker_metrics::connections_opened), 12);
    EXPECT_EQ(acquired(*p, reuse_decision::new_connection), 12);
    EXPECT_TRUE(eventually([&] { return closed(*p, close_reason::no_reuse) == 12; }))
        << closed(*p, close_reason::no_reuse);
    EXPECT_EQ(metric(*p, &worker_metrics::idle_connections), 0);
}

// ---- pinned -----------------------------------------------------------------------------------

TEST(ProxyPinned, BindsEachNtlmConnectionToItsClientAndClosesItWithTheClient) {
    audit_since be2("be2");
    auto p = start_proxy({.policy = "pinned"});
    const std::vector<std::string> users{"carol", "dave", "carol"};
    std::vector<std::unique_ptr<connection>> clients;
    for (std::size_t i = 0; i < users.size(); ++i) clients.push_back(std::make_unique<connection>(p->port()));
    // Interleaved, so that a shared pool would hand carol's connection to dave.
    for (int round = 0; round < 3; ++round)
        for (std::size_t i = 0; i < users.size(); ++i) {
            auto res = clients[i]->request(verb::get, "/exchange/", {{"Authorization", basic(users[i])}});
            ASSERT_EQ(res.result_int(), 200) << res.body();
            EXPECT_EQ(res["X-Exsim-Mailbox"], users[i]) << "client " << i << " round " << round;
        }

    const auto records = be2.records();
    ASSERT_EQ(records.size(), 9u);
    EXPECT_EQ(backend::count_cross_user(records), 0u);
    EXPECT_EQ(connections(records).size(), clients.size()) << "one NTLM connection per client connection";
    EXPECT_TRUE(one_user_per_connection(records));
    for (const auto& [conn, n] : records_by_connection(records)) EXPECT_EQ(n, 3u) << "conn " << conn;

    EXPECT_EQ(acquired(*p, reuse_decision::new_connection), 3);
    EXPECT_EQ(acquired(*p, reuse_decision::reused_pinned), 6);
    EXPECT_EQ(handshakes(*p, handshake_mechanism::ntlm), 3);
    EXPECT_TRUE(eventually([&] { return metric(*p, &worker_metrics::pinned_connections) == 3; }));

    clients.clear();  // the clients leave
    EXPECT_TRUE(eventually([&] { return metric(*p, &worker_metrics::pinned_connections) == 0; }))
        << metric(*p, &worker_metrics::pinned_connections);
    EXPECT_TRUE(eventually([&] { return closed(*p, close_reason::client_gone) == 3; }))
        << closed(*p, close_reason::client_gone);
    EXPECT_EQ(metric(*p, &worker_metrics::open_connections), 0);

    // What a scraper sees on the admin port says the same.
    const auto text = connection(p->admin_port()).request(verb::get, "/metrics").body();
    EXPECT_EQ(sample(text, R"(exsim_proxy_backend_connections_closed_total{policy="pinned",reason="client_gone"})"), 3) << text;
    EXPECT_EQ(sample(text, R"(exsim_proxy_backend_connections_acquired_total{policy="pinned",decision="reused_pinned"})"), 6);
    EXPECT_EQ(sample(text, R"(exsim_proxy_backend_connections_pinned{policy="pinned"})"), 0);
}

TEST(ProxyPinned, KeepsNoMorePinsPerUserThanPinnedPerUser) {
    audit_since be2("be2");
    common::pool_settings pool;
    pool.pinned_per_user = 1;
    auto p = start_proxy({.policy = "pinned", .pool = pool});
    connection first(p->port()), second(p->port());
    for (int round = 0; round < 2; ++round)
        for (auto* c : {&first, &second}) {
            auto res = c->request(verb::get, "/exchange/", {{"Authorization", basic("carol")}});
            ASSERT_EQ(res.result_int(), 200) << res.body();
            EXPECT_EQ(res["X-Exsim-Mailbox"], "carol");
        }
    const auto records = be2.records();
    ASSERT_EQ(records.size(), 4u);
    EXPECT_EQ(connections(records).size(), 3u) << "the first client's pin, and one connection per request of the second";
    EXPECT_EQ(acquired(*p, reuse_decision::reused_pinned), 1);
    EXPECT_TRUE(eventually([&] { return closed(*p, close_reason::ntlm_not_pooled) == 2; }))
        << closed(*p, close_reason::ntlm_not_pooled);
    EXPECT_EQ(metric(*p, &worker_metrics::pinned_connections), 1);
}

TEST(ProxyPinned, ClosesThePinWhenItsClientConnectionSwitchesUser) {
    audit_since be2("be2");
    auto p = start_proxy({.policy = "pinned"});
    connection c(p->port());
    auto carol = c.request(verb::get, "/exchange/", {{"Authorization", basic("carol")}});
    ASSERT_EQ(carol.result_int(), 200);
    auto dave = c.request(verb::get, "/exchange/", {{"Authorization", basic("dave")}});
    ASSERT_EQ(dave.result_int(), 200) << dave.body();
    EXPECT_EQ(dave["X-Exsim-Mailbox"], "dave");

    const auto records = be2.records();
    ASSERT_EQ(records.size(), 2u);
    EXPECT_EQ(backend::count_cross_user(records), 0u);
    EXPECT_EQ(connections(records).size(), 2u);
    EXPECT_EQ(closed(*p, close_reason::pin_rebound), 1);
}

// pool.cpp's evict_one_idle(): at the connection cap, the least recently used pin is closed to
// make room. A pin is only in the pool while its client is between requests.
TEST(ProxyPinned, ClosesAnIdleClientsPinToMakeRoomAtTheConnectionCap) {
    audit_since be2("be2");
    common::pool_settings pool;
    pool.max_connections = 1;
    pool.queue_timeout_ms = 500;
    auto p = start_proxy({.policy = "pinned", .pool = pool});
    connection carol(p->port());  // stays open and idle, holding its pin
    ASSERT_EQ(carol.request(verb::get, "/exchange/", {{"Authorization", basic("carol")}}).result_int(), 200);
    ASSERT_TRUE(eventually([&] { return metric(*p, &worker_metrics::pinned_connections) == 1; }));

    auto dave = as_user(*p, "dave");
    EXPECT_EQ(dave.result_int(), 200) << dave.body();
    EXPECT_EQ(dave["X-Exsim-Mailbox"], "dave");
    EXPECT_EQ(be2.records().size(), 2u);
    EXPECT_EQ(metric(*p, &worker_metrics::queue_timeouts), 0);
    EXPECT_EQ(closed(*p, close_reason::idle_full), 1) << "carol's pin made room";
    // carol is still connected: only the eviction (and dave leaving) can bring the gauge to 0.
    EXPECT_TRUE(carol.open());
    EXPECT_TRUE(eventually([&] { return metric(*p, &worker_metrics::pinned_connections) == 0; }))
        << metric(*p, &worker_metrics::pinned_connections);
}

// ---- per-user ---------------------------------------------------------------------------------

TEST(ProxyPerUser, NeverServesAUserOnAnotherUsersConnection) {
    auto p = start_proxy({.policy = "per-user", .workers = 2});
    const auto run = run_mixed(*p);
    const auto& view = run.clients;
    const auto& r1 = run.be1;
    const auto& r2 = run.be2;
    ASSERT_TRUE(view.errors.empty()) << view.errors.size() << " errors, first: " << view.errors.front();
    EXPECT_EQ(view.leaks, 0u);
    EXPECT_EQ(view.ok, run.requests);

    EXPECT_EQ(r1.size() + r2.size(), run.requests);
    EXPECT_EQ(backend::count_cross_user(r1) + backend::count_cross_user(r2), 0u);
    for (const auto* records : {&r1, &r2}) {
        EXPECT_TRUE(one_user_per_connection(*records));
        for (const auto& r : *records) EXPECT_EQ(r.identity, r.on_behalf_of);
    }
    EXPECT_LT(connections(r2).size(), r2.size()) << "NTLM connections were re-used by their own user";
    EXPECT_GT(acquired(*p, reuse_decision::reused_same_user), 0);
    EXPECT_EQ(acquired(*p, reuse_decision::reused_as_is), 0);
}

TEST(ProxyPerUser, ClosesAnotherUsersIdleConnectionToMakeRoomAtTheConnectionCap) {
    audit_since be1("be1");
    common::pool_settings pool;
    pool.max_connections = 1;
    pool.queue_timeout_ms = 500;
    auto p = start_proxy({.policy = "per-user", .pool = pool});
    ASSERT_EQ(as_user(*p, "alice").result_int(), 200);
    auto bob = as_user(*p, "bob");
    EXPECT_EQ(bob.result_int(), 200) << bob.body();
    EXPECT_EQ(bob["X-Exsim-Mailbox"], "bob");
    const auto records = be1.records();
    ASSERT_EQ(records.size(), 2u);
    EXPECT_NE(records[0].conn, records[1].conn) << "bob never gets alice's connection";
    EXPECT_EQ(closed(*p, close_reason::idle_full), 1);
    EXPECT_EQ(metric(*p, &worker_metrics::queue_timeouts), 0);
}

}  // namespace
}  // namespace exsim::testing
