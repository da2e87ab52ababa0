// The front-end's pool mechanics (docs/design.md section 5): a connection the back-end closed while
// idle is noticed (and a send is never sent twice), and a bounded wait queue answers 503 with
// its reason when the cap is reached.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <future>
#include <thread>

#include <fmt/format.h>

#include "proxy_support.hpp"

namespace exsim::testing {
namespace {

using proxy::close_reason;
using proxy::reuse_decision;
using proxy::worker_metrics;
using verb = http::verb;
using ::testing::HasSubstr;
using namespace std::chrono_literals;

TEST(ProxyPool, NoticesABackendThatClosedAnIdleConnectionAndSendsAPostOnce) {
    auto& env = realm_environment::get();
    backend::server_limits limits;
    limits.idle_timeout = 300ms;
    auto be1 = env.start_backend("be1", true, limits);  // shares be1's store and audit file
    auto audit = audit_since::of_file(be1->audit_log_file());
    auto p = start_proxy({.addresses = {{"be1", fmt::format("127.0.0.1:{}", be1->port())}}});

    auto first = as_user(*p, "alice");
    ASSERT_EQ(first.result_int(), 200) << first.body();
    std::this_thread::sleep_for(600ms);  // the back-end closes the pooled connection at 300 ms
    auto second = as_user(*p, "alice");
    EXPECT_EQ(second.result_int(), 200) << second.body();
    EXPECT_EQ(second["X-Exsim-Mailbox"], "alice");
    EXPECT_GE(closed(*p, close_reason::backend_closed) + metric(*p, &worker_metrics::idempotent_retries), 1);

    std::this_thread::sleep_for(600ms);
    auto send = as_user(*p, "alice", verb::post, "/exchange/Outbox/", mail_json("bob", "sent once"));
    EXPECT_EQ(send.result_int(), 200) << send.body();

    const auto records = audit.records();
    std::size_t lists = 0, sends = 0;
    for (const auto& r : records) {
        lists += r.op == "list";
        sends += r.op == "send";
        EXPECT_EQ(r.identity, "alice");
    }
    EXPECT_EQ(lists, 2u);
    EXPECT_EQ(sends, 1u) << "a POST is never sent twice";
    EXPECT_EQ(connections(records).size(), 3u) << "each request after an idle period needed a new connection";
    // The two idle closes are seen by the pool before anything is sent. Any other close is a new
    // connection that outlived the 300 ms idle timeout before its request went out (a slow
    // Kerberos start under a sanitizer): its GET was retried.
    EXPECT_EQ(closed(*p, close_reason::backend_closed) - metric(*p, &worker_metrics::idempotent_retries), 2);
    EXPECT_EQ(metric(*p, &worker_metrics::backend_errors), 0);
    p->stop();
}

// A pooled connection that dies after the pool's check and before the answer: the back-end
// reads the request and closes without a word. Only an idempotent request may be sent again.
TEST(ProxyPool, RetriesAGetOnceOnAFreshConnectionButNeverAPost) {
    using action = scripted_backend::action;
    // Requests in order: GET a (conn 1), GET b (conn 1: dropped), GET b again (conn 2), POST (conn 2: dropped).
    scripted_backend fake([](const auto&, std::size_t index) {
        return index == 1 || index == 3 ? action::drop : action::answer;
    });
    auto p = start_proxy({.addresses = {{"be1", fake.address()}}});
    connection c(p->port());
    EXPECT_EQ(c.request(verb::get, "/exchweb/a").result_int(), 200);
    auto b = c.request(verb::get, "/exchweb/b");
    EXPECT_EQ(b.result_int(), 200) << b.body();
    EXPECT_EQ(metric(*p, &worker_metrics::idempotent_retries), 1);

    auto post = connection(p->port()).request(verb::post, "/exchweb/c", {{"Content-Type", "text/plain"}}, "send me once");
    EXPECT_EQ(post.result_int(), 502) << post.body();
    EXPECT_THAT(post.body(), HasSubstr("not retried"));

    const auto requests = fake.requests();
    ASSERT_EQ(requests.size(), 4u);
    std::size_t posts = 0;
    for (const auto& r : requests) posts += r.method() == verb::post;
    EXPECT_EQ(posts, 1u) << "a POST is never sent twice";
    EXPECT_EQ(requests[1].target(), "/exchweb/b");
    EXPECT_EQ(requests[2].target(), "/exchweb/b");
    EXPECT_EQ(fake.connections(), 2u);
    EXPECT_EQ(metric(*p, &worker_metrics::idempotent_retries), 1);
    EXPECT_EQ(metric(*p, &worker_metrics::connections_opened), 2);
    EXPECT_EQ(closed(*p, close_reason::backend_closed), 2);
}

TEST(ProxyPool, ClosesAConnectionThatCarriedMaxRequests) {
    audit_since be1("be1");
    common::pool_settings pool;
    pool.max_requests = 2;
    auto p = start_proxy({.pool = pool});
    for (int i = 0; i < 5; ++i) ASSERT_EQ(as_user(*p, "alice").result_int(), 200);
    const auto records = be1.records();
    ASSERT_EQ(records.size(), 5u);
    EXPECT_EQ(connections(records).size(), 3u);
    for (const auto& [conn, n] : records_by_connection(records)) EXPECT_LE(n, 2u) << "conn " << conn;
    EXPECT_TRUE(eventually([&] { return closed(*p, close_reason::max_requests) == 2; }))
        << closed(*p, close_reason::max_requests);
    EXPECT_EQ(metric(*p, &worker_metrics::connections_opened), 3);
}

TEST(ProxyPool, DoesNotReuseAConnectionIdleLongerThanIdleTimeout) {
    audit_since be1("be1");
    common::pool_settings pool;
    pool.idle_timeout_ms = 100;
    auto p = start_proxy({.pool = pool});
    ASSERT_EQ(as_user(*p, "alice").result_int(), 200);
    std::this_thread::sleep_for(250ms);  // longer than idle_timeout_ms: only the lower bound matters
    ASSERT_EQ(as_user(*p, "alice").result_int(), 200);
    const auto records = be1.records();
    ASSERT_EQ(records.size(), 2u);
    EXPECT_NE(records[0].conn, records[1].conn);
    EXPECT_EQ(closed(*p, close_reason::idle_timeout), 1);
    EXPECT_EQ(metric(*p, &worker_metrics::connections_opened), 2);
}

// alice's send, stopped half-way through its body: the proxy holds its one be1 connection while
// it waits for the rest, which makes "the only connection is busy" deterministic.
class stalled_send {
public:
    explicit stalled_send(const proxy::server& p) : c_(p.port()) {
        const auto body = mail_json("alice", "held");
        const auto half = body.size() / 2;
        c_.write_raw(fmt::format("POST /exchange/Outbox/ HTTP/1.1\r\nHost: proxy\r\nAuthorization: {}\r\n"
                                 "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{}",
                                 basic("alice"), body.size(), body.substr(0, half)));
        rest_ = body.substr(half);
        // Holding: the proxy opened the connection and started sending to the back-end.
        held_ = eventually([&] {
            return metric(p, &worker_metrics::open_connections) == 1 && metric(p, &worker_metrics::backend_requests) >= 1;
        }, 10s);
        std::this_thread::sleep_for(50ms);
    }
    bool held() const { return held_; }
    std::optional<response> finish() {
        c_.write_raw(rest_);
        return c_.read_response();
    }

private:
    connection c_;
    std::string rest_;
    bool held_ = false;
};

common::pool_settings one_connection(std::size_t queue_limit, std::size_t queue_timeout_ms) {
    common::pool_settings s;
    s.max_connections = 1;
    s.queue_limit = queue_limit;
    s.queue_timeout_ms = queue_timeout_ms;
    return s;
}

TEST(ProxyPool, Answers503WhenTheOnlyConnectionIsBusyAndTheQueueIsFull) {
    audit_since be1("be1");
    auto p = start_proxy({.pool = one_connection(0, 5000)});
    stalled_send alice(*p);
    ASSERT_TRUE(alice.held());

    auto bob = as_user(*p, "bob");
    EXPECT_EQ(bob.result_int(), 503) << bob.body();
    EXPECT_THAT(bob.body(), HasSubstr("queue_limit"));
    EXPECT_EQ(metric(*p, &worker_metrics::queue_full), 1);
    EXPECT_EQ(metric(*p, &worker_metrics::queue_timeouts), 0);

    auto done = alice.finish();
    ASSERT_TRUE(done);
    EXPECT_EQ(done->result_int(), 200) << done->body();
    const auto records = be1.records();
    ASSERT_EQ(records.size(), 1u) << "bob never reached the back-end";
    EXPECT_EQ(records[0].op, "send");
    EXPECT_EQ(records[0].identity, "alice");
    EXPECT_EQ(metric(*p, &worker_metrics::connections_opened), 1);
}

TEST(ProxyPool, Answers503WhenNoConnectionFreesUpWithinTheQueueTimeout) {
    audit_since be1("be1");
    auto p = start_proxy({.pool = one_connection(8, 300)});
    stalled_send alice(*p);
    ASSERT_TRUE(alice.held());

    const auto start = std::chrono::steady_clock::now();
    auto bob = as_user(*p, "bob");
    const auto waited = std::chrono::steady_clock::now() - start;
    EXPECT_EQ(bob.result_int(), 503) << bob.body();
    EXPECT_THAT(bob.body(), HasSubstr("queue_timeout_ms"));
    EXPECT_GE(waited, 250ms);
    // No upper bound by the clock: alice's send is held until finish() below, so a bob who waited
    // for it would never be answered (his read gives up after 10 s and the 503 above fails); the
    // 503 naming queue_timeout_ms is what shows he was answered by the queue's own timeout.
    EXPECT_EQ(metric(*p, &worker_metrics::queue_waits), 1);
    EXPECT_EQ(metric(*p, &worker_metrics::queue_timeouts), 1);
    EXPECT_EQ(metric(*p, &worker_metrics::queue_full), 0);
    EXPECT_EQ(metric(*p, &worker_metrics::waiting), 0);

    auto done = alice.finish();
    ASSERT_TRUE(done);
    EXPECT_EQ(done->result_int(), 200) << done->body();
    EXPECT_EQ(be1.records().size(), 1u);
}

TEST(ProxyPool, QueuedRequestIsServedWhenTheConnectionComesBack) {
    audit_since be1("be1");
    auto p = start_proxy({.pool = one_connection(8, 10'000)});
    stalled_send alice(*p);
    ASSERT_TRUE(alice.held());

    auto bob = std::async(std::launch::async, [&] { return as_user(*p, "bob"); });
    ASSERT_TRUE(eventually([&] { return metric(*p, &worker_metrics::waiting) == 1; })) << "bob waits in the queue";
    auto done = alice.finish();
    ASSERT_TRUE(done);
    EXPECT_EQ(done->result_int(), 200) << done->body();
    auto res = bob.get();
    EXPECT_EQ(res.result_int(), 200) << res.body();
    EXPECT_EQ(res["X-Exsim-Mailbox"], "bob");

    const auto records = be1.records();
    ASSERT_EQ(records.size(), 2u);
    EXPECT_EQ(records[1].identity, "bob");
    EXPECT_EQ(records[1].auth, "request");
    EXPECT_EQ(records[1].conn, records[0].conn) << "bob got alice's connection back, re-authenticated";
    EXPECT_EQ(backend::count_cross_user(records), 0u);
    EXPECT_EQ(metric(*p, &worker_metrics::queue_waits), 1);
    EXPECT_EQ(acquired(*p, reuse_decision::reused_reauth), 1);
    EXPECT_EQ(metric(*p, &worker_metrics::connections_opened), 1);
}

TEST(ProxyPool, KeepsNoMoreIdleConnectionsThanMaxIdle) {
    common::pool_settings pool;
    pool.max_idle = 1;
    auto p = start_proxy({.pool = pool});
    stalled_send alice(*p);
    ASSERT_TRUE(alice.held());
    ASSERT_EQ(as_user(*p, "bob").result_int(), 200);  // a second connection, now idle
    EXPECT_TRUE(eventually([&] { return metric(*p, &worker_metrics::idle_connections) == 1; }));
    auto done = alice.finish();
    ASSERT_TRUE(done);
    EXPECT_EQ(done->result_int(), 200) << done->body();
    EXPECT_TRUE(eventually([&] { return closed(*p, close_reason::idle_full) == 1; })) << closed(*p, close_reason::idle_full);
    EXPECT_EQ(metric(*p, &worker_metrics::idle_connections), 1);
    EXPECT_EQ(metric(*p, &worker_metrics::connections_opened), 2);
}

}  // namespace
}  // namespace exsim::testing
