// Faults (issue 5): a back-end killed mid-response, back-ends that close idle pooled
// connections at random, a KDC that is stopped or answers slowly. What is lost must be nothing:
// a send the client was told went is in the store once, a send it was refused is not there.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <csignal>
#include <cstdlib>
#include <future>
#include <random>
#include <thread>

#include <boost/json.hpp>
#include <fmt/format.h>

#include "proxy_support.hpp"

namespace exsim::testing {
namespace {

using proxy::close_reason;
using proxy::handshake_mechanism;
using proxy::worker_metrics;
using verb = http::verb;
using ::testing::HasSubstr;
using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

std::chrono::milliseconds since(clock_type::time_point t) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(clock_type::now() - t);
}

// ---------------------------------------------------------------------------------------------
// A back-end killed mid-response

// POST, then read what comes back on the same connection (nullopt: no complete response).
std::optional<response> post_raw(connection& c, const std::string& target, const std::string& body) {
    c.write_raw(fmt::format("POST {} HTTP/1.1\r\nHost: proxy\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{}",
                            target, body.size(), body));
    return c.read_response();
}

std::size_t count(const std::vector<scripted_backend::request>& requests, verb method) {
    return static_cast<std::size_t>(std::count_if(requests.begin(), requests.end(),
                                                  [&](const auto& r) { return r.method() == method; }));
}

// A chunked response arriving in pieces is relayed chunk by chunk, re-framed by the proxy (its
// header with the first piece, then each piece as a chunk, then the last chunk): the client reads
// the whole body, and its connection frames the next response too.
TEST(FaultBackendSlow, AChunkedResponseInPiecesReachesTheClientWholeAndKeepsItsConnection) {
    using action = scripted_backend::action;
    scripted_backend fake([](const auto&, std::size_t) { return action::answer_chunked; });
    auto p = start_proxy({.addresses = {{"be1", fake.address()}}});
    connection c(p->port());
    for (int i = 0; i < 2; ++i) {
        auto res = c.request(verb::get, "/exchweb/chunked");
        EXPECT_EQ(res.result_int(), 200);
        EXPECT_EQ(res.body(), "scripted\n");
        EXPECT_TRUE(res.chunked());
    }
    EXPECT_TRUE(c.open());
    EXPECT_EQ(fake.connections(), 1u) << "the back-end connection was kept: the chunked body ended where it should";
}

// Killed before its header is complete: nothing reached the client yet, so the proxy answers
// 502 itself; the back-end connection is closed, and neither the POST nor (once a byte of its
// answer came back) the GET is sent again.
TEST(FaultBackendKilled, InTheMiddleOfItsHeaderGives502AndResendsNothing) {
    using action = scripted_backend::action;
    // GET a (conn 1), POST (conn 1: killed), GET b (conn 2), GET c (conn 2: killed), GET d (conn 3).
    scripted_backend fake([](const auto&, std::size_t index) {
        return index == 1 || index == 3 ? action::cut_in_headers : action::answer;
    });
    auto p = start_proxy({.addresses = {{"be1", fake.address()}}});
    connection c(p->port());
    ASSERT_EQ(c.request(verb::get, "/exchweb/a").result_int(), 200);

    connection c2(p->port());
    auto post = post_raw(c2, "/exchweb/send", "send me once");
    ASSERT_TRUE(post) << "the client gets an answer, not a dead connection";
    EXPECT_EQ(post->result_int(), 502) << post->body();
    EXPECT_THAT(post->body(), HasSubstr("back-end be1"));
    EXPECT_EQ(fake.connections(), 1u);

    auto b = connection(p->port()).request(verb::get, "/exchweb/b");
    EXPECT_EQ(b.result_int(), 200) << b.body();
    EXPECT_EQ(fake.connections(), 2u) << "the killed connection was discarded, not pooled";

    auto get = connection(p->port()).request(verb::get, "/exchweb/c");
    EXPECT_EQ(get.result_int(), 502) << get.body();
    EXPECT_EQ(connection(p->port()).request(verb::get, "/exchweb/d").result_int(), 200);
    EXPECT_EQ(fake.connections(), 3u);

    const auto requests = fake.requests();
    ASSERT_EQ(requests.size(), 5u);
    EXPECT_EQ(count(requests, verb::post), 1u) << "a POST is never sent twice";
    EXPECT_EQ(requests[3].target(), "/exchweb/c");
    EXPECT_EQ(requests[4].target(), "/exchweb/d") << "GET c was not sent again";
    EXPECT_EQ(metric(*p, &worker_metrics::idempotent_retries), 0);
    EXPECT_EQ(metric(*p, &worker_metrics::backend_errors), 2);
    EXPECT_EQ(closed(*p, close_reason::error), 2);
}

// Killed in the middle of its body: the 200 header has already been relayed (the proxy streams),
// so the client cannot be given a 502: it gets a response that never completes and its
// connection closed, never a short body presented as whole. The back-end connection is
// discarded and the POST is not sent again.
TEST(FaultBackendKilled, InTheMiddleOfItsBodyClosesTheClientConnectionAndResendsNothing) {
    using action = scripted_backend::action;
    scripted_backend fake([](const auto& req, std::size_t) {
        return req.method() == verb::post ? action::cut_in_body : action::answer;
    });
    auto p = start_proxy({.addresses = {{"be1", fake.address()}}});
    ASSERT_EQ(connection(p->port()).request(verb::get, "/exchweb/a").result_int(), 200);

    connection c(p->port());
    EXPECT_FALSE(post_raw(c, "/exchweb/send", "send me once")) << "a truncated body must not read as a response";
    EXPECT_FALSE(c.open()) << "the client connection is closed: it cannot frame another response";
    EXPECT_EQ(metric(*p, &worker_metrics::backend_errors), 1);

    EXPECT_EQ(connection(p->port()).request(verb::get, "/exchweb/b").result_int(), 200);
    EXPECT_EQ(fake.connections(), 2u) << "the killed connection was discarded, not pooled";
    const auto requests = fake.requests();
    ASSERT_EQ(requests.size(), 3u);
    EXPECT_EQ(count(requests, verb::post), 1u) << "a POST is never sent twice";
    EXPECT_EQ(metric(*p, &worker_metrics::idempotent_retries), 0);
    EXPECT_TRUE(eventually([&] { return closed(*p, close_reason::error) == 1; })) << closed(*p, close_reason::error);
}

// ---------------------------------------------------------------------------------------------
// Back-ends that close idle pooled connections at random

// What a run of lists and sends through the proxy saw, to compare with the store.
struct mixed_run {
    std::size_t lists = 0, lists_ok = 0;
    std::vector<std::string> sent, refused;  // subjects answered 2xx / 502
    std::vector<std::string> other;          // anything else: "subject: status body"
};

// Subjects of `user`'s Sent folder that start with `prefix`, as often as each is stored.
std::map<std::string, std::size_t> sent_subjects(const proxy::server& p, const std::string& user,
                                                 const std::string& prefix) {
    auto res = as_user(p, user, verb::get, "/exchange/Sent/?limit=500");
    EXPECT_EQ(res.result_int(), 200) << res.body();
    std::map<std::string, std::size_t> out;
    boost::system::error_code ec;
    const auto v = boost::json::parse(res.body(), ec);
    const auto* list = !ec && v.is_object() ? v.as_object().if_contains("messages") : nullptr;
    if (!list || !list->is_array()) {
        ADD_FAILURE() << "not a message list: " << res.body().substr(0, 300);
        return out;
    }
    for (const auto& m : list->as_array()) {
        const auto& subject = m.as_object().at("subject").as_string();
        if (subject.starts_with(prefix)) ++out[std::string(subject)];
    }
    return out;
}

// Sent exactly once when the client was told so, absent when it was told 502: message by message.
void expect_store_agrees(const proxy::server& p, const std::string& user, const std::string& prefix,
                         const mixed_run& run) {
    const auto stored = sent_subjects(p, user, prefix);
    for (const auto& s : run.sent) {
        auto it = stored.find(s);
        EXPECT_TRUE(it != stored.end() && it->second == 1)
            << s << ": answered 2xx, stored " << (it == stored.end() ? 0 : it->second) << " times";
    }
    for (const auto& s : run.refused) EXPECT_EQ(stored.count(s), 0u) << s << ": answered 502 but stored";
    EXPECT_EQ(stored.size(), run.sent.size()) << "every stored send was answered 2xx";
    EXPECT_THAT(run.other, ::testing::IsEmpty());
}

// `rounds` times: a list then a send of a distinct subject, as `user` (one connection each),
// with `pause` before each request.
mixed_run list_and_send(const proxy::server& p, const std::string& user, const std::string& prefix, int rounds,
                        const std::function<void()>& pause) {
    mixed_run run;
    for (int i = 0; i < rounds; ++i) {
        pause();
        auto list = as_user(p, user);
        ++run.lists;
        run.lists_ok += list.result_int() == 200;
        if (list.result_int() != 200) run.other.push_back(fmt::format("list: {} {}", list.result_int(), list.body()));
        pause();
        const auto subject = fmt::format("{}{:03}", prefix, i);
        auto send = as_user(p, user, verb::post, "/exchange/Outbox/", mail_json("alice", subject));
        if (send.result_int() / 100 == 2) run.sent.push_back(subject);
        else if (send.result_int() == 502) run.refused.push_back(subject);
        else run.other.push_back(fmt::format("{}: {} {}", subject, send.result_int(), send.body()));
    }
    return run;
}

std::string unique_prefix(const std::string& what) {
    return fmt::format("{}-{}-{}-", what, getpid(), clock_type::now().time_since_epoch().count());
}

// Every list succeeds (after one retry when its pooled connection was cut); every send the
// relay cut is answered 502 and is not in the store; every other send is in it once.
TEST(FaultIdleClose, AtRandomRetriesEachListOnceAndNeitherDuplicatesNorLosesASend) {
    auto& env = realm_environment::get();
    idle_closing_relay relay(env.port("be1"), 0.35, 20240605);
    auto p = start_proxy({.addresses = {{"be1", relay.address()}}});
    const auto prefix = unique_prefix("idle-cut");
    const auto run = list_and_send(*p, "erin", prefix, 40, [] {});
    const auto cut = relay.cut();
    const auto cut_gets = cut.contains("GET") ? cut.at("GET") : 0;
    const auto cut_posts = cut.contains("POST") ? cut.at("POST") : 0;
    fmt::print("idle-closing relay: {} lists, {} sends ({} 2xx, {} 502); cut {} GET, {} POST; {} retries\n",
               run.lists, run.sent.size() + run.refused.size(), run.sent.size(), run.refused.size(), cut_gets,
               cut_posts, metric(*p, &worker_metrics::idempotent_retries));

    EXPECT_EQ(run.lists_ok, run.lists);
    ASSERT_GE(cut_gets, 3u) << "the relay cut too few lists for the test to mean anything";
    ASSERT_GE(cut_posts, 3u) << "the relay cut too few sends for the test to mean anything";
    EXPECT_EQ(metric(*p, &worker_metrics::idempotent_retries), static_cast<std::int64_t>(cut_gets))
        << "one retry per cut list, none for a send";
    EXPECT_EQ(run.refused.size(), cut_posts);
    expect_store_agrees(*p, "erin", prefix, run);
}

// The real back-end's own idle timeout, with requests spaced around it: the close is seen by the
// pool's check (or, in a race, on use): no request is lost and the store agrees.
TEST(FaultIdleClose, BackendIdleTimeoutAtRandomMomentsLosesNothing) {
    // Under ASan on a loaded machine this once gave a GET 502 "end of stream": not a re-used
    // connection (those were retried) but, most likely, a new one whose 100 ms idle timeout ran
    // out before the proxy's Kerberos handshake start sent the request. New connections closed
    // before answering are now retried too (ProxyProcess covers it deterministically).
    auto& env = realm_environment::get();
    backend::server_limits limits;
    limits.idle_timeout = 100ms;
    auto be1 = env.start_backend("be1", true, limits);  // shares be1's store
    auto p = start_proxy({.addresses = {{"be1", fmt::format("127.0.0.1:{}", be1->port())}}});
    std::mt19937 rng(7);
    std::uniform_int_distribution<int> around(85, 115);
    const auto prefix = unique_prefix("idle-timeout");
    const auto run = list_and_send(*p, "erin", prefix, 20,
                                   [&] { std::this_thread::sleep_for(std::chrono::milliseconds(around(rng))); });
    fmt::print("back-end idle_timeout 100 ms: {} lists, {} sends ({} 2xx, {} 502); closes seen {}, retries {}, "
               "connections {}\n",
               run.lists, run.sent.size() + run.refused.size(), run.sent.size(), run.refused.size(),
               closed(*p, close_reason::backend_closed), metric(*p, &worker_metrics::idempotent_retries),
               metric(*p, &worker_metrics::connections_opened));
    EXPECT_EQ(run.lists_ok, run.lists);
    EXPECT_GE(closed(*p, close_reason::backend_closed), 5) << "the spacing made the back-end close connections";
    expect_store_agrees(*p, "erin", prefix, run);
}

// ---------------------------------------------------------------------------------------------
// The KDC stopped, or answering slowly

// Stops the environment's KDC (shared by every test of the program) and starts it again on the
// same port when destroyed, so that a failed assertion leaves the other tests a KDC.
class kdc_stopped {
public:
    kdc_stopped() : realm_(realm_environment::get().realm()), port_(realm_.kdc_port()) { realm_.stop_kdc(); }
    ~kdc_stopped() { restart(); }
    kdc_stopped(const kdc_stopped&) = delete;
    kdc_stopped& operator=(const kdc_stopped&) = delete;
    void restart() {
        if (restarted_) return;
        restarted_ = true;
        try {
            realm_.start_kdc(port_);
        } catch (const std::exception& e) {
            ADD_FAILURE() << "the KDC did not start again: " << e.what();
        }
    }

private:
    auth::realm& realm_;
    std::uint16_t port_;
    bool restarted_ = false;
};

// SIGSTOPs the KDC (its sockets stay open: requests wait, as with an overloaded KDC); SIGCONT
// when destroyed.
class kdc_paused {
public:
    kdc_paused() : pid_(realm_environment::get().realm().kdc_pid()) { ::kill(pid_, SIGSTOP); }
    ~kdc_paused() { resume(); }
    kdc_paused(const kdc_paused&) = delete;
    kdc_paused& operator=(const kdc_paused&) = delete;
    void resume() {
        if (!resumed_) ::kill(pid_, SIGCONT);
        resumed_ = true;
    }

private:
    pid_t pid_;
    bool resumed_ = false;
};

// The mechanism be1/be2 used for `user`'s last request, from the audit lines.
std::string last_mechanism(const audit_since& audit, const std::string& user) {
    std::string m = "(none)";
    for (const auto& r : audit.records())
        if (r.on_behalf_of == user) m = r.mechanism;
    return m;
}

struct timed {
    response res;
    std::chrono::milliseconds took;
};
timed timed_as_user(const proxy::server& p, const std::string& user) {
    const auto t = clock_type::now();
    auto res = as_user(p, user);
    return {std::move(res), since(t)};
}

// Stopped: an uncached Kerberos user for whom NTLM is not allowed (require_kerberos) gets a 503
// naming the KDC, at once; a user whose Kerberos credentials are cached, NTLM users (served
// before or not) and, without require_kerberos, an uncached Kerberos user (falling back to
// NTLM, counted) are served. When the KDC comes back, Kerberos resumes without a restart.
// "At once" is measured against the first logins of the warm-up on the same machine (a bound of
// three of them, at least 1 s): waiting for the stopped KDC instead would take libkrb5's retries.
TEST(FaultKdc, StoppedAnswers503NamingItServesTheOthersAndResumesWhenItReturns) {
    audit_since be1("be1"), be2("be2");
    auto p = start_proxy();  // Negotiate may fall back to NTLM
    auto q = start_proxy({.require_kerberos = true});
    std::chrono::milliseconds first_login{0};
    for (auto [proxy, user] : {std::pair{p.get(), "alice"}, {p.get(), "dave"}, {q.get(), "alice"}}) {
        auto r = timed_as_user(*proxy, user);
        ASSERT_EQ(r.res.result_int(), 200) << user << ": " << r.res.body();
        first_login = std::max(first_login, r.took);
    }
    ASSERT_EQ(last_mechanism(be1, "alice"), "kerberos");
    const auto at_once = bound(0ms, first_login, 3);

    kdc_stopped kdc;
    const auto kerberos_before = handshakes(*q, handshake_mechanism::kerberos);
    auto refused = timed_as_user(*q, "bob");
    EXPECT_EQ(refused.res.result_int(), 503) << refused.res.body();
    EXPECT_THAT(refused.res.body(), HasSubstr("KDC"));
    EXPECT_LT(refused.took, at_once);
    auto cached = timed_as_user(*q, "alice");
    EXPECT_EQ(cached.res.result_int(), 200) << cached.res.body();
    EXPECT_EQ(handshakes(*q, handshake_mechanism::kerberos), kerberos_before + 1) << "alice still uses Kerberos";
    EXPECT_LT(cached.took, at_once);

    for (const auto& user : {"alice", "dave", "carol"}) {  // carol: never served before
        auto r = timed_as_user(*p, user);
        EXPECT_EQ(r.res.result_int(), 200) << user << ": " << r.res.body();
        EXPECT_EQ(r.res["X-Exsim-Mailbox"], user);
        EXPECT_LT(r.took, at_once) << user;
    }
    EXPECT_EQ(last_mechanism(be1, "alice"), "kerberos");
    EXPECT_EQ(last_mechanism(be2, "carol"), "ntlm");
    const auto fallbacks = metric(*p, &worker_metrics::ntlm_fallbacks);
    auto bob = timed_as_user(*p, "bob");
    EXPECT_EQ(bob.res.result_int(), 200) << bob.res.body();
    EXPECT_LT(bob.took, at_once);
    EXPECT_EQ(last_mechanism(be1, "bob"), "ntlm");
    EXPECT_EQ(metric(*p, &worker_metrics::ntlm_fallbacks), fallbacks + 1) << "the fall-back is counted";
    const auto warm = timed_as_user(*p, "bob").took;  // the baseline of "as before", below

    const auto fell_back = clock_type::now();

    // The KDC returns: require_kerberos serves bob once its failure is forgotten (10 s).
    kdc.restart();
    const auto back = clock_type::now();
    std::optional<std::chrono::milliseconds> q_resumed;
    while (!q_resumed && since(back) < 15s) {
        if (as_user(*q, "bob").result_int() == 200) q_resumed = since(back);
        else std::this_thread::sleep_for(200ms);
    }
    ASSERT_TRUE(q_resumed) << "require_kerberos: bob is still refused 15 s after the KDC returned";
    EXPECT_EQ(last_mechanism(be1, "bob"), "kerberos");

    // bob's NTLM-only Negotiate credentials are kept 10 s, not an hour: then Kerberos is tried
    // again, in the background, while they keep serving him (here against a KDC that hangs).
    // Waiting for it would take credential_timeout (15 s); served "as before" is measured against
    // bob's warm NTLM request (`warm`, 20 of them, at least 500 ms).
    std::this_thread::sleep_for(10'300ms - since(fell_back));
    std::optional<std::chrono::milliseconds> p_resumed;
    const auto retried = since(fell_back);
    {
        kdc_paused slow;
        for (int i = 0; i < 2; ++i) {
            auto r = timed_as_user(*p, "bob");
            EXPECT_EQ(r.res.result_int(), 200) << r.res.body();
            EXPECT_LT(r.took, bound(0ms, warm, 20, 500ms)) << "bob waited for the KDC instead of being served as before";
            EXPECT_EQ(last_mechanism(be1, "bob"), "ntlm");
            std::this_thread::sleep_for(300ms);
        }
    }
    const auto resumed = clock_type::now();
    while (!p_resumed && since(resumed) < 15s) {
        if (as_user(*p, "bob").result_int() == 200 && last_mechanism(be1, "bob") == "kerberos") p_resumed = since(resumed);
        else std::this_thread::sleep_for(100ms);
    }
    fmt::print("KDC back: require_kerberos serves bob again {} ms after the KDC restarted; Negotiate tries "
               "Kerberos for bob again {} ms after falling back, and uses it {} ms after the KDC stopped hanging\n",
               q_resumed->count(), retried.count(), p_resumed ? p_resumed->count() : -1);
    EXPECT_TRUE(p_resumed) << "Negotiate: bob still falls back to NTLM after the KDC returned";
}

// Paused (SIGSTOP): the users whose first request needs the KDC wait for it on the blocking
// pool (two of them: as many as its threads); meanwhile the event loop serves a cached Kerberos
// user and a new NTLM user at once. When the KDC answers, the waiting requests complete with
// Kerberos. Asserted by order, not by the clock: alice and carol are answered while the KDC is
// still paused and bob's and erin's requests are still waiting; theirs are answered after it resumes.
TEST(FaultKdc, SlowDelaysOnlyTheRequestsThatNeedIt) {
    audit_since be1("be1"), be2("be2");
    auto p = start_proxy();
    ASSERT_EQ(as_user(*p, "alice").result_int(), 200);
    // The worker learns that be2 offers only NTLM. (Until it knows, it tries Negotiate first,
    // and a first request to be2 waits for the KDC too.)
    ASSERT_EQ(as_user(*p, "dave").result_int(), 200);

    struct answered {
        response res;
        clock_type::time_point at;
    };
    std::vector<std::future<answered>> waiting;
    clock_type::time_point resumed_at;
    {
        kdc_paused kdc;
        for (const auto& user : {"bob", "erin"})
            waiting.push_back(std::async(std::launch::async, [&p, user] { return answered{as_user(*p, user), clock_type::now()}; }));
        std::this_thread::sleep_for(300ms);
        for (const auto& user : {"alice", "carol"}) {  // carol: never served before
            auto r = timed_as_user(*p, user);
            EXPECT_EQ(r.res.result_int(), 200) << user << ": " << r.res.body();
            fmt::print("KDC paused: {} served in {} ms\n", user, r.took.count());
        }
        for (auto& w : waiting) EXPECT_EQ(w.wait_for(0s), std::future_status::timeout) << "needs the KDC";
        std::this_thread::sleep_for(1s);
        for (auto& w : waiting) EXPECT_EQ(w.wait_for(0s), std::future_status::timeout) << "needs the KDC";
        resumed_at = clock_type::now();
    }
    for (std::size_t i = 0; i < waiting.size(); ++i) {
        const std::string user = i == 0 ? "bob" : "erin";
        ASSERT_EQ(waiting[i].wait_for(30s), std::future_status::ready) << user;
        auto r = waiting[i].get();
        EXPECT_EQ(r.res.result_int(), 200) << r.res.body();
        EXPECT_GE(r.at, resumed_at) << user << " was answered before the KDC resumed";
        EXPECT_EQ(last_mechanism(be1, user), "kerberos");
    }
    EXPECT_EQ(last_mechanism(be1, "alice"), "kerberos");
    EXPECT_EQ(last_mechanism(be2, "carol"), "ntlm");
}

// Hung for longer than credential_timeout: a new Kerberos user (NTLM not allowed) gets a 503
// naming the timeout instead of waiting for libkrb5's own (about 27 s); a user served before is
// not delayed. The acquisition goes on, and once the KDC answers the new user is served.
// The timeout is three first logins measured on this machine just before (at least 600 ms), so
// that a cold acquisition with a KDC that answers fits in it on a slow, busy machine; the 503 comes
// no earlier than the timeout and within bound(timeout, first login); alice's cached credentials
// answer before the timeout would have run out (waiting for the KDC would have given a 503).
TEST(FaultKdc, HungAnswers503AfterTheCredentialTimeoutAndServesOnceItAnswers) {
    audit_since be1("be1");
    auto first_login = timed_as_user(*start_proxy({.require_kerberos = true}), "alice");
    ASSERT_EQ(first_login.res.result_int(), 200) << first_login.res.body();
    proxy::proxy_limits limits;
    limits.credential_timeout = std::max<std::chrono::milliseconds>(600ms, 3 * first_login.took);
    auto q = start_proxy({.require_kerberos = true, .limits = limits});
    ASSERT_TRUE(eventually([&] { return as_user(*q, "alice").result_int() == 200; }, 20s));
    {
        kdc_paused kdc;
        auto refused = timed_as_user(*q, "bob");
        EXPECT_EQ(refused.res.result_int(), 503) << refused.res.body();
        EXPECT_THAT(refused.res.body(),
                    HasSubstr(fmt::format("did not answer within {} ms", limits.credential_timeout.count())));
        EXPECT_GE(refused.took, limits.credential_timeout - 100ms);
        EXPECT_LT(refused.took, bound(limits.credential_timeout, first_login.took, 3));
        auto cached = timed_as_user(*q, "alice");
        EXPECT_EQ(cached.res.result_int(), 200) << cached.res.body();
        EXPECT_LT(cached.took, limits.credential_timeout) << "alice waited for the KDC";
    }
    EXPECT_TRUE(eventually([&] { return as_user(*q, "bob").result_int() == 200; }, 20s));
    EXPECT_EQ(last_mechanism(be1, "bob"), "kerberos");
}

}  // namespace
}  // namespace exsim::testing
