// The load generator and its leak oracle (docs/design.md sections 2, 7, 8) against the real realm:
// the same workload through the front-end under each pool policy, straight at a back-end with
// each mechanism, the open model, thresholds, bad input, and `exsim demo` / `exsim load` as
// processes.
//
// Every run gets back-ends of its own (a fresh state folder, stores from the seed, an empty audit
// log): the load sends and deletes a lot, and the environment's back-ends are shared by every
// test of the program. A "0 leaks" here is always beside the same workload finding leaks under
// `legacy`: otherwise the oracle would prove nothing.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <fstream>
#include <future>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include <boost/json.hpp>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include "exsim/common/net.hpp"
#include "exsim/common/process.hpp"
#include "exsim/loadgen/load.hpp"
#include "exsim/loadgen/oracle.hpp"
#include "exsim/loadgen/results.hpp"
#include "proxy_support.hpp"

namespace exsim::testing {
namespace {
namespace fs = std::filesystem;
namespace json = boost::json;
using ::testing::HasSubstr;
using namespace std::chrono_literals;

// ---- helpers ------------------------------------------------------------------------------------

// A workload through the front-end: who, on which back-ends, and what they do. One session per
// user, so that no two sessions of one user race to delete the same message (a 404 under a safe
// policy would be an error of the workload, not of the policy).
struct workload {
    std::vector<std::string> users;
    std::vector<std::string> backends;  // the users' homes
    std::uint64_t requests = 400;
    loadgen::op_mix mix{40, 20, 20, 20};  // list, read, send, delete: plenty of tampering chances
    std::uint64_t seed = 20040210;        // the same choices under every policy
    std::size_t sessions = 0;             // 0: one per user
};

// Two sessions per user: with one each, a loaded machine can settle into each session finding its
// own connection idle every time, and legacy then (rarely) shows no leak (seen in about one run of
// five while other builds ran).
const workload ntlm_only{{"carol", "dave"}, {"be2"}, 400, {40, 20, 20, 20}, 20040210, 4};
const workload persisted_kerberos{{"frank", "gina"}, {"be3"}, 400, {40, 20, 20, 20}, 20040210, 4};

// The options every front-end run uses; only the URL, the metrics and the audit logs differ.
loadgen::load_options frontend_options(const workload& w, const proxy::server& p, const fresh_backends& b,
                                       const std::string& policy) {
    loadgen::load_options o;
    o.mode = loadgen::entry::frontend;
    o.url = p.url();
    o.directory = realm_environment::get().topology();
    o.users = w.users;
    o.sessions = w.sessions ? w.sessions : w.users.size();
    o.requests = w.requests;
    o.mix = w.mix;
    o.seed = w.seed;
    o.timeout = 10s;
    o.metrics_url = p.metrics_url();
    o.audit_logs = b.audit_logs();
    o.policy = policy;
    return o;
}

struct policy_run {
    loadgen::load_result result;
    std::vector<backend::audit_record> audit;  // every record of the run's own back-ends
    double seconds = 0;                        // wall time of run_load
};

// `w` through a front-end (one worker, so that a run repeats as closely as it can) with
// `policy`, in front of fresh back-ends. Memoized: the policy tests and the threshold test look
// at the same runs, and each run takes seconds.
const policy_run& run_policy(const workload& w, const std::string& policy) {
    static std::map<std::string, policy_run> cache;
    const auto key = fmt::format("{}|{}", policy, fmt::join(w.users, ","));
    if (auto it = cache.find(key); it != cache.end()) return it->second;
    fresh_backends b(w.backends);
    auto p = start_proxy({.policy = policy, .workers = 1, .addresses = b.addresses()});
    policy_run run;
    const auto t0 = std::chrono::steady_clock::now();
    run.result = loadgen::run_load(frontend_options(w, *p, b, policy));
    run.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    p->stop();
    run.audit = b.audit();
    std::cout << fmt::format("[ load     ] {:<9} {:<12} {} requests in {:.2f} s: leaks {} tampers {} audit {} "
                             "errors {} back-end connections {} handshakes kerberos {} ntlm {}\n",
                             policy, fmt::format("{}", fmt::join(w.users, ",")), run.result.total().requests, run.seconds,
                             run.result.total().leaks, run.result.total().tampers,
                             run.result.audit_cross_user.value_or(0), run.result.total().errors,
                             run.result.backend.connections, run.result.backend.handshakes_kerberos,
                             run.result.backend.handshakes_ntlm);
    return cache.emplace(key, std::move(run)).first->second;
}

std::string errors_of(const loadgen::load_result& r) {
    std::vector<std::string> out;
    for (const auto& [kind, n] : r.total().errors_by_kind) out.push_back(fmt::format("{}={}", kind, n));
    return fmt::format("{}", fmt::join(out, ", "));
}

// What every front-end run must show, whatever the policy: it ran, the counters come from the
// front-end, and both sides of the oracle agree.
void expect_complete(const policy_run& run, const workload& w) {
    const auto t = run.result.total();
    EXPECT_EQ(t.requests, w.requests);
    EXPECT_EQ(run.result.model, "closed");
    EXPECT_EQ(run.result.mode, "frontend");
    EXPECT_EQ(run.result.sessions, w.sessions ? w.sessions : w.users.size());
    EXPECT_EQ(run.result.backend.source, "front-end metrics");
    EXPECT_GT(run.result.backend.connections, 0u);
    ASSERT_TRUE(run.result.audit_cross_user.has_value()) << "the audit logs were given: they must be read";
    EXPECT_EQ(*run.result.audit_cross_user, t.leaks + t.tampers) << "the back-ends and the oracle disagree";
    EXPECT_TRUE(run.result.audit_agrees());
    EXPECT_EQ(*run.result.audit_cross_user, backend::count_cross_user(run.audit));
}

// ---- the oracle under legacy, and the same workload under each safe policy --------------------

TEST(Load, OracleFindsLeaksAndTampersUnderLegacyWithNtlm) {
    const auto& run = run_policy(ntlm_only, "legacy");
    expect_complete(run, ntlm_only);
    const auto t = run.result.total();
    EXPECT_GT(t.leaks, 0u) << "the MS04-002 bug did not show: the oracle proves nothing";
    EXPECT_GT(t.tampers, 0u) << "no send or delete carried out as another user";
    EXPECT_GT(run.result.ops[static_cast<std::size_t>(loadgen::op::list)].leaks, 0u);

    // From the back-end's side: a delete through /exchange/ that landed in another mailbox.
    std::size_t foreign_deletes = 0;
    for (const auto& r : run.audit) {
        if ((r.op == "delete" || r.method == "DELETE") && r.cross_user && !r.mailbox.empty() &&
            r.mailbox != r.on_behalf_of) {
            ++foreign_deletes;
            EXPECT_EQ(r.path.rfind("/exchange/", 0), 0u) << r.path;
            EXPECT_LT(r.status, 400u);
            EXPECT_EQ(r.mechanism, "ntlm");
        }
    }
    EXPECT_GT(foreign_deletes, 0u) << "no delete was carried out in another user's mailbox";
    EXPECT_EQ(run.result.ops[static_cast<std::size_t>(loadgen::op::del)].tampers +
                  run.result.ops[static_cast<std::size_t>(loadgen::op::send)].tampers,
              t.tampers);
}

class LoadSafePolicy : public ::testing::TestWithParam<std::string> {};

TEST_P(LoadSafePolicy, SameNtlmWorkloadHasNoLeaksNoTampersNoErrors) {
    const auto& legacy = run_policy(ntlm_only, "legacy");
    ASSERT_GT(legacy.result.total().leaks + legacy.result.total().tampers, 0u) << "the paired legacy run must leak";

    const auto& run = run_policy(ntlm_only, GetParam());
    expect_complete(run, ntlm_only);
    const auto t = run.result.total();
    EXPECT_EQ(t.leaks, 0u);
    EXPECT_EQ(t.tampers, 0u);
    EXPECT_EQ(run.result.audit_cross_user.value_or(1), 0u);
    EXPECT_EQ(t.errors, 0u) << errors_of(run.result);
    EXPECT_TRUE(one_user_per_connection(run.audit));
    // It is the same workload: the same number of mailbox requests reached the back-end.
    std::size_t mailbox_requests = 0;
    for (const auto& r : run.audit) mailbox_requests += loadgen::op_of_request(r.method, r.path).has_value();
    EXPECT_EQ(mailbox_requests, ntlm_only.requests);
}

INSTANTIATE_TEST_SUITE_P(Load, LoadSafePolicy, ::testing::Values("ms04-002", "no-reuse", "pinned", "per-user"),
                         [](const ::testing::TestParamInfo<std::string>& param) {
                             std::string name = param.param;
                             for (auto& c : name)
                                 if (c == '-') c = '_';
                             return name;
                         });

TEST(Load, PersistedKerberosLeaksUnderLegacyAndNotUnderMs04002) {
    const auto& legacy = run_policy(persisted_kerberos, "legacy");
    expect_complete(legacy, persisted_kerberos);
    EXPECT_GT(legacy.result.total().leaks, 0u) << "Kerberos is not what makes a proxy safe: re-authentication is";
    EXPECT_GT(legacy.result.backend.handshakes_kerberos, 0u);
    EXPECT_EQ(legacy.result.backend.handshakes_ntlm, 0u);

    const auto& fixed = run_policy(persisted_kerberos, "ms04-002");
    expect_complete(fixed, persisted_kerberos);
    const auto t = fixed.result.total();
    EXPECT_EQ(t.leaks, 0u);
    EXPECT_EQ(t.tampers, 0u);
    EXPECT_EQ(fixed.result.audit_cross_user.value_or(1), 0u);
    EXPECT_EQ(t.errors, 0u) << errors_of(fixed.result);
    EXPECT_EQ(fixed.result.backend.handshakes_ntlm, 0u);
    // Kerberos connections stay pooled under ms04-002: far fewer connections than requests.
    EXPECT_LT(fixed.result.backend.connections * 5, t.requests);
}

// record_sends: each send of the run with its sender, subject and outcome, so that a test can
// check the store message by message (the soak does, under faults). Off, nothing is kept.
TEST(Load, RecordSendsKeepsEachSendWithItsSubjectAndOutcome) {
    const workload sends_only{{"carol", "dave"}, {"be2"}, 40, {0, 0, 1, 0}};
    fresh_backends b(sends_only.backends);
    auto p = start_proxy({.policy = "ms04-002", .workers = 1, .addresses = b.addresses()});
    auto o = frontend_options(sends_only, *p, b, "ms04-002");
    o.record_sends = true;
    const auto r = loadgen::run_load(o);
    ASSERT_EQ(r.sends.size(), 40u);
    std::map<std::string, std::set<std::string>> subjects;
    for (const auto& s : r.sends) {
        EXPECT_EQ(s.status, 200u) << s.subject;
        EXPECT_EQ(s.error, "") << s.subject;
        EXPECT_TRUE(realm_environment::get().topology().find_user(s.to)) << s.to;
        EXPECT_TRUE(subjects[s.user].insert(s.subject).second) << "a subject made twice: " << s.subject;
    }
    EXPECT_EQ(subjects.size(), 2u) << "both users sent";
    for (const auto& [user, made] : subjects) {
        std::set<std::string> stored;
        for (const auto& [subject, n] : b.sent_subjects(user)) {
            EXPECT_EQ(n, 1u) << subject;
            if (subject.starts_with("load test ")) stored.insert(subject);
        }
        EXPECT_EQ(stored, made) << user << ": the store holds exactly the sends recorded";
    }
    EXPECT_TRUE(run_policy(ntlm_only, "ms04-002").result.sends.empty());
}

// ---- thresholds -----------------------------------------------------------------------------

TEST(Load, MaxLeaksThresholdFailsOnTheLegacyRunAndPassesOnASafeOne) {
    loadgen::thresholds th;
    th.max_leaks = 0;
    const auto failed = loadgen::failed_thresholds(run_policy(ntlm_only, "legacy").result, th);
    ASSERT_EQ(failed.size(), 1u) << fmt::format("{}", fmt::join(failed, "; "));
    EXPECT_THAT(failed[0], HasSubstr("max-leaks"));
    EXPECT_TRUE(loadgen::failed_thresholds(run_policy(ntlm_only, "ms04-002").result, th).empty());
    EXPECT_TRUE(loadgen::failed_thresholds(run_policy(ntlm_only, "per-user").result, th).empty());
}

// ---- pass-through: each virtual user speaks Negotiate or NTLM itself ---------------------------

struct passthrough_case {
    std::string backend;
    std::vector<std::string> users;
    std::optional<auth::initiator_mode> mechanism;
};

loadgen::load_result run_passthrough(const passthrough_case& c, fresh_backends& b, std::uint64_t requests = 200) {
    const auto* be = realm_environment::get().topology().find_backend(c.backend);
    EXPECT_NE(be, nullptr);
    loadgen::load_options o;
    o.mode = loadgen::entry::passthrough;
    o.url = fmt::format("http://{}:{}", be->host, b.port(c.backend));  // Host and SPN: the back-end's name
    o.connect_to = fmt::format("127.0.0.1:{}", b.port(c.backend));
    o.directory = realm_environment::get().topology();
    o.users = c.users;
    o.requests = requests;
    o.mix = {40, 20, 20, 20};
    o.seed = 7;
    o.timeout = 10s;
    o.mechanism = c.mechanism;
    o.audit_logs = b.audit_logs();
    auto r = loadgen::run_load(o);
    std::cout << fmt::format("[ load     ] pass-through {} {}: {} requests, {} errors, {} connections, "
                             "handshakes kerberos {} ntlm {}, audit {}\n",
                             c.backend, fmt::join(c.users, ","), r.total().requests, r.total().errors,
                             r.backend.connections, r.backend.handshakes_kerberos, r.backend.handshakes_ntlm,
                             r.audit_cross_user.value_or(0));
    return r;
}

void expect_clean_passthrough(const loadgen::load_result& r, std::uint64_t requests) {
    const auto t = r.total();
    EXPECT_EQ(r.mode, "passthrough");
    EXPECT_EQ(t.requests, requests);
    EXPECT_EQ(t.errors, 0u) << errors_of(r);
    EXPECT_EQ(t.leaks, 0u);
    EXPECT_EQ(t.tampers, 0u);
    EXPECT_EQ(r.backend.source, "load generator");
    ASSERT_TRUE(r.audit_cross_user.has_value());
    EXPECT_EQ(*r.audit_cross_user, 0u) << "each virtual user says who it is: the back-end served each as itself";
}

TEST(Load, PassThroughToANegotiateBackendUsesKerberosOnEveryRequest) {
    fresh_backends b({"be1"});
    const auto r = run_passthrough({"be1", {"alice", "bob"}, std::nullopt}, b);
    expect_clean_passthrough(r, 200);
    EXPECT_GT(r.backend.handshakes_kerberos, 0u);
    EXPECT_EQ(r.backend.handshakes_ntlm, 0u);
    // Kerberos authenticates the request, not the connection: each one is asked again.
    EXPECT_EQ(r.backend.handshakes_kerberos, r.total().requests);
    std::set<std::string> identities;
    for (const auto& rec : b.audit()) {
        EXPECT_EQ(rec.identity, rec.on_behalf_of);
        EXPECT_EQ(rec.mechanism, "kerberos");
        identities.insert(rec.identity);
    }
    EXPECT_EQ(identities, (std::set<std::string>{"alice", "bob"}));
}

TEST(Load, PassThroughToAnNtlmOnlyBackendAuthenticatesEachConnectionOnce) {
    fresh_backends b({"be2"});
    const auto r = run_passthrough({"be2", {"carol", "dave"}, std::nullopt}, b);
    expect_clean_passthrough(r, 200);
    EXPECT_EQ(r.sessions, 2u);
    EXPECT_GT(r.backend.handshakes_ntlm, 0u);
    EXPECT_EQ(r.backend.handshakes_kerberos, 0u);
    EXPECT_EQ(r.backend.connections, r.sessions) << "each session keeps its connection alive";
    EXPECT_EQ(r.backend.handshakes_ntlm, r.backend.connections)
        << "NTLM authenticates the connection: later requests ride on it";
    EXPECT_LT(r.backend.handshakes_ntlm * 10, r.total().requests);
    for (const auto& rec : b.audit()) EXPECT_EQ(rec.mechanism, "ntlm");
}

TEST(Load, PassThroughWithNtlmForcedAtANegotiateBackendUsesNtlm) {
    fresh_backends b({"be1"});
    const auto r = run_passthrough({"be1", {"alice", "bob"}, auth::initiator_mode::ntlm}, b);
    expect_clean_passthrough(r, 200);
    EXPECT_GT(r.backend.handshakes_ntlm, 0u);
    EXPECT_EQ(r.backend.handshakes_kerberos, 0u);
    EXPECT_EQ(r.backend.handshakes_ntlm, r.backend.connections);
    for (const auto& rec : b.audit()) EXPECT_EQ(rec.mechanism, "ntlm");
}

// ---- the open model ---------------------------------------------------------------------------

TEST(Load, OpenModelKeepsTheRateAskedFor) {
    fresh_backends b({"be2"});
    auto p = start_proxy({.policy = "per-user", .workers = 1, .addresses = b.addresses()});
    loadgen::load_options o;
    o.url = p->url();
    o.directory = realm_environment::get().topology();
    o.users = {"carol", "dave"};
    o.sessions = 4;
    o.rate = 200;
    o.duration = 2s;
    o.mix = {70, 30, 0, 0};  // reads only: two sessions of one user cannot race on a delete
    o.timeout = 10s;
    o.metrics_url = p->metrics_url();
    o.audit_logs = b.audit_logs();
    const auto r = loadgen::run_load(o);
    const auto t = r.total();
    std::cout << fmt::format("[ load     ] open model: {} requests in {:.2f} s, p99 {} us, {} seconds in the timeline\n",
                             t.requests, r.seconds, t.latency.percentile(99), r.timeline.size());
    EXPECT_EQ(r.model, "open");
    EXPECT_EQ(r.rate, 200.0);
    EXPECT_EQ(r.sessions, 4u);
    // 2 s at 200/s: 400 requests due. Each was either sent or is reported as due and never sent
    // (a slow machine, e.g. under a sanitizer, cannot always keep up; the report must say so:
    // 4 sent and 396 unsent were seen under ASan with both cores busy).
    EXPECT_GT(t.requests, 0u);
    EXPECT_GE(t.requests + r.unsent, 390u) << "sent " << t.requests << ", unsent " << r.unsent;
    EXPECT_LE(t.requests + r.unsent, 410u) << "sent " << t.requests << ", unsent " << r.unsent;
    EXPECT_EQ(t.errors, 0u) << errors_of(r);
    EXPECT_EQ(t.leaks + t.tampers, 0u);
    ASSERT_FALSE(r.timeline.empty());
    std::uint64_t in_timeline = 0;
    for (const auto& s : r.timeline) in_timeline += s.requests;
    EXPECT_EQ(in_timeline, t.requests);
    // The run lasts 2 s and then as long as its last requests take (longer on a slow machine).
    EXPECT_LE(r.timeline.size(), static_cast<std::size_t>(std::ceil(r.seconds)) + 2)
        << "a run of " << r.seconds << " s spread over more seconds than it lasted";
}

// ---- bad input --------------------------------------------------------------------------------

template <class F>
std::string config_error_of(F&& f) {
    try {
        f();
    } catch (const common::config_error& e) {
        return e.what();
    } catch (const std::exception& e) {
        ADD_FAILURE() << "not a config_error: " << e.what();
        return {};
    }
    ADD_FAILURE() << "no exception";
    return {};
}

TEST(Load, AMisspelledMixOperationIsNamed) {
    EXPECT_THAT(config_error_of([] { loadgen::parse_mix("list=50,raed=3"); }), HasSubstr("raed"));
    const auto mix = loadgen::parse_mix("list=50,delete=3");
    EXPECT_EQ(mix, (loadgen::op_mix{50, 0, 0, 3}));
}

loadgen::load_options minimal_options(const std::string& url) {
    loadgen::load_options o;
    o.url = url;
    o.directory = realm_environment::get().topology();
    o.users = {"carol"};
    o.requests = 20;
    o.timeout = 5s;
    return o;
}

TEST(Load, AUrlThatIsNotHttpIsRefusedNamingTheOption) {
    EXPECT_THAT(config_error_of([] { loadgen::run_load(minimal_options("ftp://x")); }), HasSubstr("--url"));
}

TEST(Load, AUserNotInTheDirectoryIsRefusedByName) {
    auto o = minimal_options("http://127.0.0.1:1");
    o.users = {"carol", "mallory"};
    EXPECT_THAT(config_error_of([&] { loadgen::run_load(o); }), HasSubstr("mallory"));
}

// Three sessions per user, with deletes: each session acts only on its share of the user's
// messages, so that two never race for one (a 404 here would be the workload's error, not the
// policy's). Under legacy the same sessions leak, so the sharing hides nothing.
TEST(Load, SessionsOfOneUserDoNotRaceForItsMessages) {
    workload w = ntlm_only;
    w.requests = 300;
    fresh_backends b(w.backends);
    auto p = start_proxy({.policy = "ms04-002", .workers = 1, .addresses = b.addresses()});
    auto o = frontend_options(w, *p, b, "ms04-002");
    o.sessions = 6;
    const auto r = loadgen::run_load(o);
    EXPECT_EQ(r.total().requests, 300u);
    EXPECT_EQ(r.total().errors, 0u) << errors_of(r);
    EXPECT_GT(r.ops[static_cast<std::size_t>(loadgen::op::del)].requests, 0u);
    EXPECT_EQ(r.total().leaks + r.total().tampers, 0u);
    EXPECT_EQ(r.users, 2u);
    EXPECT_EQ(r.sessions, 6u);
}

// A target that cannot be used at all is one clear error before the run, not a run of failed
// requests that looks like a measurement.
TEST(Load, NothingListeningIsOneClearErrorBeforeTheRun) {
    const auto port = common::pick_free_port();
    auto o = minimal_options(fmt::format("http://127.0.0.1:{}", port));
    std::atomic<bool> stop{false};
    o.stop = &stop;
    auto done = std::async(std::launch::async, [o] { return loadgen::run_load(o); });
    const bool finished = done.wait_for(20s) == std::future_status::ready;
    stop = true;  // so that a hung run can still end (and the test fail rather than hang)
    ASSERT_TRUE(finished) << "run_load did not finish against a closed port";
    try {
        done.get();
        ADD_FAILURE() << "a run against a closed port did not fail";
    } catch (const std::runtime_error& e) {
        EXPECT_THAT(e.what(), HasSubstr(fmt::format("connect to 127.0.0.1:{}", port)));
    }
}

// A server that accepts TCP connections and never says a word: the TLS handshake of a request
// to it must end at the request's timeout (docs/design.md section 6: timeouts on every read, write,
// connect and handshake), not wait forever.
class silent_server {
public:
    silent_server() : acceptor_(io_, {boost::asio::ip::make_address("127.0.0.1"), 0}) {
        thread_ = std::thread([this] {
            for (;;) {
                boost::asio::ip::tcp::socket s(io_);
                boost::system::error_code ec;
                acceptor_.accept(s, ec);
                if (ec || stopping_) return;
                std::lock_guard lock(m_);
                held_.push_back(std::move(s));
            }
        });
    }
    ~silent_server() {
        stopping_ = true;
        hang_up();
        boost::system::error_code ec;
        boost::asio::ip::tcp::socket wake(io_);
        wake.connect(acceptor_.local_endpoint(), ec);  // unblocks accept()
        thread_.join();
    }
    std::uint16_t port() const { return acceptor_.local_endpoint().port(); }
    std::size_t accepted() {
        std::lock_guard lock(m_);
        return held_.size();
    }
    // Closes every connection it holds (what ends a client that has no timeout of its own).
    void hang_up() {
        std::lock_guard lock(m_);
        for (auto& s : held_) {
            boost::system::error_code ec;
            s.shutdown(boost::asio::ip::tcp::socket::shutdown_both, ec);
            s.close(ec);
        }
    }

private:
    boost::asio::io_context io_;
    boost::asio::ip::tcp::acceptor acceptor_;
    std::atomic<bool> stopping_{false};
    std::mutex m_;
    std::vector<boost::asio::ip::tcp::socket> held_;
    std::thread thread_;
};

TEST(Load, AServerThatNeverAnswersTheTlsHandshakeIsAnErrorAtTheTimeout) {
    silent_server server;
    auto o = minimal_options(fmt::format("https://127.0.0.1:{}", server.port()));
    o.insecure = true;
    o.requests = 3;
    o.timeout = 500ms;
    std::atomic<bool> stop{false};
    o.stop = &stop;
    const auto t0 = std::chrono::steady_clock::now();
    auto done = std::async(std::launch::async, [o] { return loadgen::run_load(o); });
    const bool in_time = done.wait_for(10s) == std::future_status::ready;
    if (!in_time) {  // end the run from the server's side, so that the test fails instead of hanging
        stop = true;
        server.hang_up();
    }
    std::string error;
    try {
        done.get();
    } catch (const std::runtime_error& e) {
        error = e.what();
    }
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    // By the 10 s wait above, not a tighter clock: without the timeout the run waits for the
    // silent server for ever, with it each request ends after 500 ms (however slow the machine).
    EXPECT_TRUE(in_time) << "a 500 ms timeout was still waiting after 10 s";
    fmt::print("3 requests to a silent server with a 500 ms timeout: {:.1f} s\n", secs);
    EXPECT_GE(server.accepted(), 1u);
    EXPECT_THAT(error, HasSubstr("TLS handshake with 127.0.0.1"));
}

// ---- the binary -------------------------------------------------------------------------------

struct temp_dir {
    fs::path path;
    explicit temp_dir(const std::string& prefix) : path(fs::temp_directory_path() / fmt::format("{}-{}", prefix, getpid())) {
        fs::remove_all(path);
        fs::create_directories(path);
    }
    ~temp_dir() {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
};

TEST(Load, ExsimLoadWithAMisspelledMixExitsWith2NamingTheOption) {
    temp_dir dir("exsim-load-mix");
    auto r = common::run_program(EXSIM_BINARY,
                                 {"load", "--state-dir", (dir.path / "state").string(), "--url",
                                  "http://127.0.0.1:1", "--requests", "5", "--mix", "list=1,bogus=2"},
                                 {});
    EXPECT_EQ(r.exit_code, 2) << r.output;
    EXPECT_THAT(r.output, HasSubstr("--mix"));
    EXPECT_THAT(r.output, HasSubstr("bogus"));
}

TEST(Load, ExsimDemoQuickShowsLeaksExactlyWhereMs04002Predicts) {
    temp_dir dir("exsim-demo");
    const auto json_file = dir.path / "demo.json";
    const auto log = dir.path / "demo.log";
    const auto t0 = std::chrono::steady_clock::now();
    std::vector<std::string> args{"demo", "--quick", "--json", json_file.string(), "--state-dir",
                                  (dir.path / "state").string()};
#ifdef EXSIM_SANITIZED
    // Under ASan the 15 rows of 3,000 requests took 9 minutes; 600 per row still shows every
    // difference the assertions below look for (legacy leaked 118 to 198 times per row). 200 do
    // not: leaks begin only once every session has its connections, and legacy with persisted
    // Kerberos leaked 0 times in 200 requests in one run.
    args.insert(args.end(), {"--requests", "600"});
#endif
    auto child = common::child_process::start(EXSIM_BINARY, args, {}, log);
    const auto deadline = t0 + 900s;  // a hang guard only: sanitizer builds run it several times slower
    while (child.running() && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(200ms);
    const bool finished = !child.running();
    if (!finished) child.stop();
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::cout << fmt::format("[ load     ] exsim demo --quick took {:.1f} s\n", secs);
    const auto log_text = [&] {
        std::ifstream in(log);
        return std::string{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
    };
    ASSERT_TRUE(finished) << "exsim demo --quick did not finish in 900 s; log:\n" << log_text();
    ASSERT_EQ(child.exit_code(), 0) << log_text();

    std::ifstream in(json_file);
    ASSERT_TRUE(in) << "no " << json_file << "; log:\n" << log_text();
    const std::string text{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
    boost::system::error_code ec;
    const auto doc = json::parse(text, ec);
    ASSERT_FALSE(ec) << ec.message() << ": " << text;
    const auto& runs = doc.at("runs").as_array();
    ASSERT_EQ(runs.size(), 15u) << text;

    std::set<std::pair<std::string, std::string>> seen;
    for (const auto& v : runs) {
        const auto& row = v.as_object();
        const std::string policy(row.at("policy").as_string());
        const std::string auth(row.at("backend_auth").as_string());
        SCOPED_TRACE(policy + " with " + auth);
        seen.emplace(policy, auth);
        const auto n = [&](const char* key) { return json::value_to<std::uint64_t>(row.at(key)); };
        const auto requests = n("requests");
        const auto leaks = n("leaks");
        const auto tampers = n("tampers");
        const auto connections = n("backend_connections");
        std::cout << fmt::format("[ load     ]   {:<9} {:<17} requests {} leaks {} tampers {} audit {} "
                                 "connections {} handshakes {} errors {}\n",
                                 policy, auth, requests, leaks, tampers, json::serialize(row.at("audit_cross_user")),
                                 connections, n("auth_handshakes"), n("errors"));
        ASSERT_GT(requests, 0u);
        // Negotiate falls back to NTLM for a user whose Kerberos credentials the KDC did not give
        // in time (seen under ASan on a busy machine): those connections are NTLM-authenticated,
        // which is MS04-002's own condition. So legacy may then leak under any back-end auth, and
        // ms04-002 closes those connections instead of re-using them.
        const bool fell_back = auth != "ntlm" && n("ntlm_handshakes") > 0;
        if (fell_back) std::cout << fmt::format("[ load     ]   ({} NTLM fall-backs)\n", n("ntlm_handshakes"));
        const bool vulnerable = policy == "legacy" && (auth == "ntlm" || auth == "kerberos-persist");
        if (vulnerable) {
            EXPECT_GT(leaks, 0u);
        } else if (policy != "legacy" || !fell_back) {
            EXPECT_EQ(leaks, 0u);
            EXPECT_EQ(tampers, 0u);
        }
        ASSERT_TRUE(row.at("audit_cross_user").is_number()) << "the demo reads its back-ends' audit logs";
        EXPECT_EQ(n("audit_cross_user"), leaks + tampers);
        const double per_request = static_cast<double>(connections) / static_cast<double>(requests);
        if (policy == "no-reuse" || (policy == "ms04-002" && auth == "ntlm")) {
            EXPECT_GT(per_request, 0.9) << "a new back-end connection for (almost) every request";
        }
        if (policy == "pinned" || (policy == "ms04-002" && !fell_back && (auth == "negotiate" || auth == "kerberos-persist"))) {
            EXPECT_LT(per_request, 0.2) << "connections are re-used";
        }
    }
    EXPECT_EQ(seen.size(), 15u) << "each policy under each back-end configuration, once";
}

}  // namespace
}  // namespace exsim::testing
