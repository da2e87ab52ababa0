// The soak (issue 5): mixed load through the real `exsim proxy` binary under ms04-002 for
// EXSIM_SOAK_SECONDS (default 40: the version CI runs; scripts/soak.sh runs it longer), while a
// fault thread restarts back-ends and closes idle pooled connections at random. The seed is
// printed; EXSIM_SOAK_SEED runs the same faults and choices again (timing still varies).
//
// At the end: no leak and no tamper (the load generator's oracle and the back-ends' audit
// logs), every send accounted for exactly once against the stores, and the proxy's open file
// descriptors and memory back where they were after the warm-up.
//
// Topology: alice and bob on be1 (Negotiate: Kerberos, pooled, re-authenticated on each
// re-use), carol and dave on be2 (NTLM only: never pooled under ms04-002), frank and gina on be3
// (Negotiate with persist_kerberos). Each back-end has a store of the test's own and sits behind
// an idle_closing_relay. The proxy is a child process so that its memory and descriptors are its
// own, and a crash is one failed test with its log.

#include <gtest/gtest.h>

#include <sys/types.h>

#include <algorithm>
#include <condition_variable>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <thread>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "exsim/common/topology.hpp"
#include "exsim/loadgen/load.hpp"
#include "exsim/loadgen/oracle.hpp"
#include "exsim/loadgen/results.hpp"
#include "exsim/proxy/tls.hpp"
#include "proxy_support.hpp"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define EXSIM_SOAK_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define EXSIM_SOAK_SANITIZED 1
#endif
#endif

namespace exsim::testing {
namespace {
namespace fs = std::filesystem;
using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

const std::vector<std::string> soak_users{"alice", "bob", "carol", "dave", "frank", "gina"};
const std::vector<std::string> soak_backends{"be1", "be2", "be3"};

std::string line(const std::string& text) { return fmt::format("[ soak     ] {}\n", text); }

// ---- settings ---------------------------------------------------------------------------------

std::optional<std::uint64_t> env_number(const char* name) {
    const char* v = std::getenv(name);
    if (!v || !*v) return std::nullopt;
    try {
        return std::stoull(v);
    } catch (const std::exception&) {
        ADD_FAILURE() << name << "='" << v << "' is not a number";
        return std::nullopt;
    }
}

struct soak_settings {
    std::chrono::seconds duration{40};
    std::uint64_t seed = 0;
};

soak_settings settings() {
    soak_settings s;
    s.duration = std::chrono::seconds(std::max<std::uint64_t>(10, env_number("EXSIM_SOAK_SECONDS").value_or(40)));
    s.seed = env_number("EXSIM_SOAK_SEED").value_or(std::random_device{}());
    return s;
}

// ---- the proxy process, seen from outside -----------------------------------------------------

std::size_t open_fds(pid_t pid) {
    std::error_code ec;
    std::size_t n = 0;
    for (fs::directory_iterator it(fmt::format("/proc/{}/fd", pid), ec), end; !ec && it != end; it.increment(ec)) ++n;
    return n;
}

// A "<field>: N kB" line of /proc/<pid>/status (VmRSS: resident now, VmHWM: its peak).
std::size_t status_kib(pid_t pid, const std::string& field) {
    std::ifstream in(fmt::format("/proc/{}/status", pid));
    for (std::string l; std::getline(in, l);)
        if (l.rfind(field + ":", 0) == 0) return std::stoull(l.substr(field.size() + 1));
    return 0;
}

std::string scrape(const proxy_process& p) {
    connection c(p.metrics_port());
    return c.request(http::verb::get, "/metrics").body();
}

std::int64_t sum(const std::string& metrics, std::string_view name, std::string_view label = {}) {
    return static_cast<std::int64_t>(loadgen::prometheus_sum(metrics, name, label));
}

// Waits until the proxy holds no client and no back-end connection: the load has stopped and
// the pool's idle timeout has closed what it kept.
bool quiescent(const proxy_process& p, std::chrono::milliseconds timeout) {
    return eventually(
        [&] {
            const auto m = scrape(p);
            return sum(m, "exsim_proxy_backend_connections_open") == 0 && sum(m, "exsim_proxy_client_connections_active") == 0;
        },
        timeout);
}

struct footprint {
    std::size_t fds = 0;
    std::size_t rss_kib = 0;
};

// Taken when the proxy is quiescent. The fewest descriptors of a few samples: the metrics
// connection that quiescent() just closed may not be closed on the proxy's side yet.
footprint measure(const proxy_process& p) {
    footprint f{std::numeric_limits<std::size_t>::max(), 0};
    for (int i = 0; i < 5; ++i) {
        std::this_thread::sleep_for(100ms);
        f.fds = std::min(f.fds, open_fds(p.pid()));
    }
    f.rss_kib = status_kib(p.pid(), "VmRSS");
    return f;
}

// ---- faults -----------------------------------------------------------------------------------

using relays = std::map<std::string, std::unique_ptr<idle_closing_relay>>;

// Every 1 to 3 s (at random) until `until`: either restarts one back-end (stopped hard, down
// 100 to 1000 ms, refused meanwhile) or closes each idle connection of every relay with
// probability 1/2. Every back-end is up again when it stops, so that the end of the run is
// measured on a healthy topology.
class fault_injector {
public:
    // `proxy`: the process whose memory each fault's line shows (a trend over a long run).
    fault_injector(fresh_backends& b, relays& r, pid_t proxy, std::uint64_t seed, clock_type::time_point until)
        : backends_(b), relays_(r), proxy_(proxy), rng_(seed), start_(clock_type::now()), until_(until) {
        thread_ = std::thread([this] { run(); });
    }
    ~fault_injector() { stop(); }
    fault_injector(const fault_injector&) = delete;
    fault_injector& operator=(const fault_injector&) = delete;

    void stop() {
        {
            std::lock_guard lock(m_);
            stopping_ = true;
        }
        cv_.notify_all();
        if (thread_.joinable()) thread_.join();
    }

    // When each restart began and ended, in seconds from the injector's start.
    struct window {
        double from, to;
    };
    // Read after stop().
    std::map<std::string, std::size_t> restarts;
    std::chrono::milliseconds down{0};
    std::size_t idle_rounds = 0, idle_closed = 0, idle_raced = 0;
    std::vector<window> windows;
    std::vector<std::string> failures;

private:
    // Sleeps `d`; false when the injector is stopping or the faults' time is over.
    bool pause(std::chrono::milliseconds d) {
        std::unique_lock lock(m_);
        const auto wake = std::min(clock_type::now() + d, until_);
        cv_.wait_until(lock, wake, [this] { return stopping_; });
        return !stopping_ && clock_type::now() < until_;
    }

    double seconds() const { return std::chrono::duration<double>(clock_type::now() - start_).count(); }
    void say(const std::string& what) const {
        std::cout << line(fmt::format("{:6.1f} s  {:<34} proxy RSS {} KiB", seconds(), what, status_kib(proxy_, "VmRSS")))
                  << std::flush;
    }
    std::size_t below(std::size_t n) { return std::uniform_int_distribution<std::size_t>(0, n - 1)(rng_); }

    void restart(const std::string& name) {
        const auto off = std::chrono::milliseconds(100 + below(901));
        const auto from = seconds();
        relays_.at(name)->refuse();
        backends_.stop(name);
        std::this_thread::sleep_for(off);  // not cut short: the back-end always comes back
        for (int attempt = 0;; ++attempt) {
            try {
                backends_.start_again(name);
                break;
            } catch (const std::exception& e) {
                if (attempt == 20) {
                    failures.push_back(fmt::format("{} did not start again: {}", name, e.what()));
                    break;
                }
                std::this_thread::sleep_for(100ms);
            }
        }
        relays_.at(name)->accept_again();
        ++restarts[name];
        down += off;
        windows.push_back({from, seconds()});
        say(fmt::format("restarted {} (down {} ms)", name, off.count()));
    }

    void close_idle() {
        std::size_t closed = 0;
        for (auto& [name, relay] : relays_) {
            const auto n = relay->close_idle(0.5);
            closed += n.closed;
            idle_raced += n.raced;
        }
        ++idle_rounds;
        idle_closed += closed;
        say(fmt::format("closed {} idle connections", closed));
    }

    void run() {
        try {
            while (pause(std::chrono::milliseconds(1000 + below(2001)))) {
                if (below(2) == 0) restart(soak_backends[below(soak_backends.size())]);
                else close_idle();
            }
        } catch (const std::exception& e) {
            failures.push_back(fmt::format("the fault thread stopped: {}", e.what()));
        }
    }

    fresh_backends& backends_;
    relays& relays_;
    pid_t proxy_;
    std::mt19937_64 rng_;
    clock_type::time_point start_, until_;
    std::mutex m_;
    std::condition_variable cv_;
    bool stopping_ = false;
    std::thread thread_;
};

// ---- sends, against the stores ----------------------------------------------------------------

// How many times each (sender, subject) is in the sender's Sent Items, read from the stores.
using sent_items = std::map<std::pair<std::string, std::string>, std::size_t>;

sent_items read_sent_items(const fresh_backends& b) {
    sent_items out;
    for (const auto& user : soak_users)
        for (const auto& [subject, n] : b.sent_subjects(user)) out[{user, subject}] = n;
    return out;
}

// Each send the client made, against what the run added to the stores: told 2xx, stored once;
// told an error, stored at most once (once: the back-end acted and its answer was lost, e.g.
// stopped before it went out: "uncertain", as it is for the client). Anything else is a
// failure: a duplicate, a success missing, a stored message no send of the run explains.
struct send_accounting {
    std::size_t made = 0, ok = 0, failed = 0, uncertain = 0, stored = 0;
    std::vector<std::string> problems;
};

send_accounting account(const std::vector<loadgen::send_record>& sends, const sent_items& before,
                        const sent_items& after) {
    send_accounting a;
    auto added = [&](const std::pair<std::string, std::string>& key) {
        const auto it = after.find(key);
        const auto was = before.find(key);
        return (it == after.end() ? 0 : it->second) - (was == before.end() ? 0 : was->second);
    };
    std::set<std::pair<std::string, std::string>> made;
    for (const auto& s : sends) {
        const std::pair key{s.user, s.subject};
        ++a.made;
        if (!made.insert(key).second) a.problems.push_back(fmt::format("{} '{}': made twice by the load", s.user, s.subject));
        const auto n = added(key);
        if (n > 1) a.problems.push_back(fmt::format("{} '{}': stored {} times", s.user, s.subject, n));
        if (s.error.empty()) {
            ++a.ok;
            if (n == 0) a.problems.push_back(fmt::format("{} '{}': answered {} but not stored", s.user, s.subject, s.status));
        } else if (n == 0) {
            ++a.failed;
        } else {
            ++a.uncertain;
        }
    }
    for (const auto& [key, count] : after) {
        const auto n = added(key);
        a.stored += n;
        if (n > 0 && !made.count(key))
            a.problems.push_back(fmt::format("{} '{}': stored {} times, sent by no one", key.first, key.second, n));
    }
    return a;
}

// ---- what is expected of the errors -----------------------------------------------------------

// The errors a fault explains: 502 while a back-end is down, or when it closed a connection
// that had a request on it that may not be sent again; 404 for a read or a delete of a message
// that a delete, whose answer the fault cut, did remove (or that the proxy's retry of the
// delete did not find again). Anything else (401, 403, 500, 503, a timeout, a closed client
// connection) is a failure.
bool explained(loadgen::op o, const std::string& kind) {
    if (kind == "http_502") return true;
    return kind == "http_404" && (o == loadgen::op::read || o == loadgen::op::del);
}

// Errors of the seconds of the run (the load generator's timeline) that no restart touches,
// with a margin: half a second before (the timeline starts a little after the injector) and
// one and a half after (requests in flight when a back-end stopped, answered late on a loaded
// machine).
bool restart_touches(std::size_t second, const std::vector<fault_injector::window>& windows) {
    const auto from = static_cast<double>(second), to = from + 1;
    return std::any_of(windows.begin(), windows.end(), [&](const auto& w) { return w.from - 0.5 < to && from < w.to + 1.5; });
}

std::uint64_t errors_outside(const loadgen::load_result& r, const std::vector<fault_injector::window>& windows) {
    std::uint64_t n = 0;
    for (std::size_t second = 0; second < r.timeline.size(); ++second)
        if (!restart_touches(second, windows)) n += r.timeline[second].errors;
    return n;
}

std::size_t seconds_outside(const loadgen::load_result& r, const std::vector<fault_injector::window>& windows) {
    std::size_t n = 0;
    for (std::size_t second = 0; second < r.timeline.size(); ++second) n += !restart_touches(second, windows);
    return n;
}

std::string errors_of(const loadgen::op_stats& s) {
    std::vector<std::string> out;
    for (const auto& [kind, n] : s.errors_by_kind) out.push_back(fmt::format("{} {}", kind, n));
    return out.empty() ? "none" : fmt::format("{}", fmt::join(out, ", "));
}

// ---- the proxy's configuration ----------------------------------------------------------------

// The test topology under ms04-002, with a pool idle timeout of 2 s so that the end of the run
// is measured with every back-end connection closed (the default keeps them 30 s).
fs::path write_soak_config(const fs::path& dir) {
    auto t = realm_environment::get().topology();
    t.frontend.policy = "ms04-002";
    t.frontend.pool.idle_timeout_ms = 2000;
    const auto file = dir / "soak-topology.json";
    std::ofstream(file) << common::to_json(t);
    return file;
}

loadgen::load_options soak_load(const proxy_process& p, const fs::path& ca, std::chrono::milliseconds duration,
                                   std::uint64_t seed) {
    loadgen::load_options o;
    o.url = p.url();
    o.ca_file = ca;
    o.directory = realm_environment::get().topology();
    o.users = soak_users;
    o.sessions = 2 * soak_users.size();  // each user's two sessions share its messages without racing
    o.threads = 2;
    o.think = 2ms;
    o.duration = duration;
    o.mix = {40, 25, 20, 15};
    o.seed = seed;
    o.timeout = 15s;  // far beyond any answer or fault: a request that takes it has hung
    o.policy = "ms04-002";
    return o;
}

// ---- the soak ---------------------------------------------------------------------------------

TEST(Soak, MixedLoadThroughBackendRestartsAndIdleClosesLosesNothingLeaksNothingAndStaysFlat) {
    const auto s = settings();
    const auto warm_up = std::clamp<std::chrono::milliseconds>(s.duration / 5, 5s, 30s);
    std::cout << line(fmt::format("seed {} (EXSIM_SOAK_SEED), {} s of load (EXSIM_SOAK_SECONDS) after a {} s warm-up",
                                  s.seed, s.duration.count(), warm_up.count() / 1000))
              << std::flush;

    fresh_backends backends(soak_backends);
    relays relay;
    std::map<std::string, std::string> addresses;
    unsigned relay_seed = static_cast<unsigned>(s.seed);
    for (const auto& name : soak_backends) {
        relay[name] = std::make_unique<idle_closing_relay>(backends.port(name), 0.0, ++relay_seed);
        addresses[name] = relay[name]->address();
    }
    const auto dir = realm_environment::get().dir() / fmt::format("soak-{}", s.seed);
    fs::create_directories(dir);
    const auto tls = proxy::ensure_self_signed(dir / "tls", {"localhost", "127.0.0.1"});
    proxy_process p(addresses, {"--config", write_soak_config(dir).string(), "--workers", "2", "--tls-cert",
                                tls.certificate.string(), "--tls-key", tls.private_key.string()});
    ASSERT_NE(p.port(), 0) << "exsim proxy did not start; " << p.status();

    // Warm-up: the same load without faults, so that what a steady state holds (connections,
    // credentials, TLS, allocator arenas of every thread) is in the baseline.
    loadgen::run_load(soak_load(p, tls.certificate, warm_up, s.seed + 1));
    ASSERT_TRUE(quiescent(p, 20s)) << "the proxy still holds connections after the warm-up";
    const auto start = measure(p);
    const auto stored_before = read_sent_items(backends);
    const auto metrics_before = scrape(p);

    // A re-used connection is cut on its next request now and then: the idle close that races
    // the proxy's send, which the pool's check cannot see.
    for (auto& [name, rl] : relay) rl->set_cut_probability(0.02);
    auto o = soak_load(p, tls.certificate, s.duration, s.seed);
    o.record_sends = true;
    o.metrics_url = p.metrics_url();
    o.audit_logs = backends.audit_logs();
    fault_injector faults(backends, relay, p.pid(), s.seed, clock_type::now() + s.duration - 3s);
    const auto r = loadgen::run_load(o);
    faults.stop();
    for (auto& [name, rl] : relay) rl->set_cut_probability(0.0);

    ASSERT_TRUE(p.running()) << p.status();
    const bool settled = quiescent(p, 20s);
    const auto end = measure(p);
    const auto peak_kib = status_kib(p.pid(), "VmHWM");
    const auto metrics = scrape(p);
    const auto a = account(r.sends, stored_before, read_sent_items(backends));
    std::map<std::string, std::size_t> cuts;
    std::size_t cut = 0;
    for (auto& [name, rl] : relay)
        for (const auto& [method, n] : rl->cut()) {
            cuts[method] += n;
            cut += n;
        }
    std::size_t restarts = 0;
    for (const auto& [name, n] : faults.restarts) restarts += n;
    auto grew = [&](std::string_view name, std::string_view label = {}) {
        return sum(metrics, name, label) - sum(metrics_before, name, label);
    };
    const auto t = r.total();
    std::uint64_t not_found = 0;
    for (const auto& st : r.ops) not_found += st.errors_by_kind.count("http_404") ? st.errors_by_kind.at("http_404") : 0;
    const auto outside = errors_outside(r, faults.windows);
    const auto retries = grew("exsim_proxy_idempotent_retries_total");
    // Away from restarts a request fails only when the relay cut it or closed it idle under it:
    // a send (never retried), or a list, read or delete whose one retry was cut again (p = 0.02:
    // a tenth is a wide margin); or it is a 404 after a delete whose answer a fault cut.
    const auto cut_idempotent = cut - (cuts.count("POST") ? cuts.at("POST") : 0);
    const auto allowed_outside = (cut - cut_idempotent) + faults.idle_raced + cut_idempotent / 10 + not_found;

    // ---- the summary
    auto row = [](std::string_view what, const std::string& value) { return line(fmt::format("{:<26} {}", what, value)); };
    auto named = [](const auto& counts) {
        std::vector<std::string> out;
        for (const auto& [name, n] : counts) out.push_back(fmt::format("{} {}", name, n));
        return out.empty() ? std::string("none") : fmt::format("{}", fmt::join(out, ", "));
    };
    std::string table = line(fmt::format("---- summary: seed {}, {} s under ms04-002, {} sessions of {}", s.seed,
                                         s.duration.count(), r.sessions, fmt::join(soak_users, ",")));
    table += row("requests", fmt::format("{} in {:.1f} s ({:.0f}/s), {} errors ({:.2f}%)", t.requests, r.seconds, r.rps(),
                                         t.errors, 100.0 * static_cast<double>(t.errors) /
                                                       static_cast<double>(std::max<std::uint64_t>(t.requests, 1))));
    for (const auto op : loadgen::all_ops) {
        const auto& st = r.ops[static_cast<std::size_t>(op)];
        table += row(fmt::format("  {}", loadgen::op_name(op)), fmt::format("{}, errors: {}", st.requests, errors_of(st)));
    }
    table += row("errors away from restarts",
                 fmt::format("{} in {} of {} seconds (allowed {}: sends cut, requests under an idle close, a tenth "
                             "of the other requests cut, not found)",
                             outside, seconds_outside(r, faults.windows), r.timeline.size(), allowed_outside));
    table += row("restarts", fmt::format("{} ({}), down {} ms in all", restarts, named(faults.restarts), faults.down.count()));
    table += row("idle closes injected", fmt::format("{} in {} rounds ({} with a request on its way)", faults.idle_closed,
                                                     faults.idle_rounds, faults.idle_raced));
    table += row("re-used connections cut", named(cuts));
    table += row("proxy: retries", fmt::format("{} (idempotent requests retried once)", retries));
    table += row("proxy: back-end errors", fmt::format("{} (502/504 answered)", grew("exsim_proxy_backend_errors_total")));
    table += row("proxy: connections",
                 fmt::format("{} opened, {} closed by the back-end",
                             grew("exsim_proxy_backend_connections_opened_total"),
                             grew("exsim_proxy_backend_connections_closed_total", "reason=\"backend_closed\"")));
    table += row("proxy: handshakes", fmt::format("kerberos {}, ntlm {}",
                                                  grew("exsim_proxy_backend_handshakes_total", "mechanism=\"kerberos\""),
                                                  grew("exsim_proxy_backend_handshakes_total", "mechanism=\"ntlm\"")));
    table += row("sends", fmt::format("{} made: {} ok (stored once), {} failed (not stored), {} uncertain (failed, "
                                      "stored once); {} stored",
                                      a.made, a.ok, a.failed, a.uncertain, a.stored));
    table += row("leaks / tampers / audit", fmt::format("{} / {} / {}", t.leaks, t.tampers,
                                                        r.audit_cross_user ? fmt::format("{}", *r.audit_cross_user) : "-"));
    table += row("proxy open fds", fmt::format("{} -> {}", start.fds, end.fds));
    table += row("proxy RSS", fmt::format("{} KiB -> {} KiB ({:+.1f}%), peak {} KiB", start.rss_kib, end.rss_kib,
                                          100.0 * (static_cast<double>(end.rss_kib) - static_cast<double>(start.rss_kib)) /
                                              static_cast<double>(std::max<std::size_t>(start.rss_kib, 1)),
                                          peak_kib));
    std::cout << table << std::flush;

    // ---- nothing let in, nothing lost
    EXPECT_EQ(t.leaks, 0u);
    EXPECT_EQ(t.tampers, 0u);
    ASSERT_TRUE(r.audit_cross_user.has_value());
    EXPECT_EQ(*r.audit_cross_user, 0u);
    EXPECT_TRUE(a.problems.empty()) << a.problems.size() << " sends not accounted for exactly once:\n  "
                                    << fmt::format("{}", fmt::join(a.problems, "\n  "));
    EXPECT_EQ(a.made, r.ops[static_cast<std::size_t>(loadgen::op::send)].requests) << "every send was recorded";
    EXPECT_TRUE(faults.failures.empty()) << fmt::format("{}", fmt::join(faults.failures, "; "));

    // ---- every error has a fault behind it
    for (const auto op : loadgen::all_ops)
        for (const auto& [kind, n] : r.ops[static_cast<std::size_t>(op)].errors_by_kind)
            EXPECT_TRUE(explained(op, kind)) << n << " " << loadgen::op_name(op) << " errors " << kind
                                             << " that no fault explains";
    EXPECT_LE(outside, allowed_outside) << "errors where no fault was";
    // Each list, read or delete the relay cut was retried (bar a retry cut again): the retries
    // the restarts caused come on top.
    EXPECT_GE(retries + static_cast<std::int64_t>(cut_idempotent / 10), static_cast<std::int64_t>(cut_idempotent))
        << "requests the relay cut were not retried";

    // ---- it meant something
    EXPECT_GT(a.ok, 0u);
    EXPECT_GT(restarts, 0u) << "no back-end was restarted";
    EXPECT_GT(faults.idle_closed + cut, 0u) << "no idle connection was closed";

    // ---- flat at the end
    EXPECT_TRUE(settled) << "the proxy still holds connections 20 s after the load stopped";
    // Both counts are taken with no client and no back-end connection open, so a descriptor
    // leaked per connection, request or restart (thousands of each) would show by the hundred.
    // The slack of 2 is for descriptors a library may open once, late, and keep (none seen).
    EXPECT_LE(end.fds, start.fds + 2) << "the proxy holds more descriptors than after the warm-up";
#ifndef EXSIM_SOAK_SANITIZED
    // The warm-up has allocated what the steady state needs; what is left is allocator noise
    // (memory glibc keeps after the bursts of reconnections a restart causes). Measured: about
    // +0.7 MiB of a 19 MiB proxy, both over 40 s (70,000 requests) and over 300 s (500,000
    // requests, 58 restarts), flat from the first minute. 8 MiB is ten times the noise, and a
    // leak of about 120 bytes per request or 350 bytes per back-end connection (70,000 and
    // 25,000 of them in the CI run) goes past it. 25% of the proxy would be under 5 MiB: too
    // near the noise for a loaded CI machine.
    EXPECT_LE(end.rss_kib, start.rss_kib + 8 * 1024) << "the proxy's memory grew by more than 8 MiB";
#else
    // Under a sanitizer the allocator keeps freed memory in quarantine: RSS says nothing;
    // LeakSanitizer in the proxy process (its exit code below) does the job.
#endif

    // ---- and it stops cleanly
    EXPECT_EQ(p.stop().value_or(-1), 0) << "exsim proxy did not stop cleanly on SIGTERM; its log:\n" << p.log();
}

}  // namespace
}  // namespace exsim::testing
