// Back-end authentication costs with a large directory (the measurements of the scale issue).
//
// One private realm per process, in a fresh temp folder, with the real krb5kdc running and
// generated_topology(N) users (N from EXSIM_BENCH_USERS, default 10000). Every completed
// handshake is checked: the acceptor must report the user the initiator acted for, through the
// expected mechanism, or the benchmark stops with SkipWithError.
//
//   BM_KerberosAccept        back-end cost of one Kerberos (SPNEGO) acceptance of a pre-built
//                            AP-REQ; 1 and 2 threads, one acceptor credential per thread
//   BM_NtlmAccept/raw        acceptor side of a raw NTLM handshake for the last user of the
//                            directory, on the last line of be1's user file (every back-end's
//                            file lists every domain user); Time = acceptor only
//   BM_NtlmAccept/spnego     same through SPNEGO falling back to NTLM (acceptor without keytab)
//   BM_NtlmAcceptWholeFile   baseline: gss-ntlmssp directly on the whole user file, which it
//                            scans line by line, for that same last line (what the back-end
//                            would cost without its one-line key file)
//   BM_NtlmHandshakeFull     both sides, raw NTLM and NTLM through SPNEGO
//   BM_KerberosHandshakeFull both sides, Kerberos through SPNEGO with a cached service ticket
//   BM_DecodeToken/<token>   the token decoder on real tokens of those handshakes
//   BM_FindNtlmAuthenticate  the back-end's check of the user an NTLM AUTHENTICATE claims
//   BM_RssFlat               RSS before/after 20,000 NTLM + 20,000 Kerberos full handshakes
//
// Environment: EXSIM_BENCH_USERS (10000), EXSIM_BENCH_KRB_USERS (64 Kerberos users with cached
// credentials), EXSIM_BENCH_KRB_TOKENS (4000 AP-REQs per thread for BM_KerberosAccept),
// EXSIM_BENCH_RSS_HANDSHAKES (20000 of each kind), EXSIM_BENCH_STATE_DIR (use and keep this
// folder instead of a temp one: an existing realm for the same directory is reused).

#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <gssapi/gssapi.h>
#include <gssapi/gssapi_ext.h>
#include <gssapi/gssapi_ntlmssp.h>
#include <sys/resource.h>
#include <unistd.h>

#include "exsim/auth/gss.hpp"
#include "exsim/auth/mechanism.hpp"
#include "exsim/auth/realm.hpp"
#include "exsim/auth/token_decoder.hpp"
#include "exsim/common/topology.hpp"

namespace {

namespace fs = std::filesystem;
namespace auth = exsim::auth;
namespace common = exsim::common;
using clock_type = std::chrono::steady_clock;

std::size_t env_size(const char* name, std::size_t fallback) {
    const char* v = std::getenv(name);
    if (!v || !*v) return fallback;
    return static_cast<std::size_t>(std::strtoull(v, nullptr, 10));
}

double seconds_since(clock_type::time_point t0) {
    return std::chrono::duration<double>(clock_type::now() - t0).count();
}

// Resident set size in KiB, from /proc/self/statm (second field, in pages).
long rss_kib() {
    std::ifstream in("/proc/self/statm");
    long size = 0, resident = 0;
    in >> size >> resident;
    return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

// Open file descriptors (the NTLM fast path makes a memfd per AUTHENTICATE: none may stay open).
long open_fds() {
    long n = 0;
    for ([[maybe_unused]] const auto& e : fs::directory_iterator("/proc/self/fd")) ++n;
    return n;
}

// Context switches of the calling thread, per operation. Voluntary ones mean waiting (a lock, a
// file lock, I/O); involuntary ones mean the CPU was taken away (other load on the machine).
// Counting starts at the first iteration, after the library's start barrier: the setup before
// the loop is not counted. Call start() at the top of every iteration, report() after the loop.
class switch_counter {
public:
    void start() {
        if (!started_) {
            before_ = now();
            started_ = true;
        }
    }

    void report(benchmark::State& state) const {
        const auto after = now();
        const double n = static_cast<double>(std::max<benchmark::IterationCount>(state.iterations(), 1));
        using C = benchmark::Counter;
        state.counters["vol_cs_per_op"] = C(static_cast<double>(after.ru_nvcsw - before_.ru_nvcsw) / n, C::kAvgThreads);
        state.counters["invol_cs_per_op"] =
            C(static_cast<double>(after.ru_nivcsw - before_.ru_nivcsw) / n, C::kAvgThreads);
    }

private:
    static rusage now() {
        rusage ru{};
        getrusage(RUSAGE_THREAD, &ru);
        return ru;
    }

    bool started_ = false;
    rusage before_{};
};

// The 1-based line of `domain\user` in an smbpasswd-format NTLM user file; 0 when absent.
std::size_t line_in_user_file(const fs::path& file, const std::string& domain, const std::string& user) {
    std::ifstream in(file);
    const std::string prefix = domain + "\\" + user + ":";
    std::string line;
    for (std::size_t n = 1; std::getline(in, line); ++n)
        if (line.starts_with(prefix)) return n;
    return 0;
}

// ---------------------------------------------------------------------------------------------
// The realm, created once per process (in main, before any benchmark runs).

struct bench_env {
    common::topology topo;
    fs::path state_dir;
    bool remove_state = false;
    std::optional<auth::realm> realm;
    // The last user of the directory: realm::create writes every user, in directory order and
    // with no header, into every back-end's NTLM user file, so this is the file's last line.
    std::string worst_ntlm_user;
    std::size_t worst_ntlm_line = 0;  // its line in be1's user file, as read from the file
    std::optional<auth::credential_cache> creds;  // emplaced once the realm exists

    std::shared_ptr<const auth::user_credentials> credentials(const std::string& user, auth::initiator_mode mode) {
        auto r = creds->get(user, user_password(user), mode);
        if (!r.credentials) throw std::runtime_error(r.error);
        return r.credentials;
    }

    std::string user_password(const std::string& user) const {
        const auto* u = topo.find_user(user);
        if (!u) throw std::runtime_error("no user " + user);
        return u->password;
    }

    // Kerberos users: the first `n` users of the directory (any realm user can get a ticket for
    // HTTP/be1, whatever its home back-end).
    std::vector<std::string> kerberos_users() const {
        const std::size_t n = std::min(env_size("EXSIM_BENCH_KRB_USERS", 64), topo.users.size());
        std::vector<std::string> out;
        for (std::size_t i = 0; i < n; ++i) out.push_back(topo.users[i].name);
        return out;
    }

    auth::acceptor_config acceptor_config(bool with_keytab) const {
        auth::acceptor_config c;
        c.host = "be1.exsim.test";
        c.keytab = with_keytab ? realm->paths().keytab("be1") : state_dir / "no-such.keytab";
        c.ntlm_user_file = realm->paths().ntlm_user_file("be1");
        c.providers = {"Negotiate", "NTLM"};
        c.realm = topo.realm;
        c.ntlm_domain = topo.ntlm_domain;
        return c;
    }
};

bench_env* env = nullptr;

// ---------------------------------------------------------------------------------------------
// Handshakes. Each returns an empty string on success (peer and mechanism checked) or why not.

struct handshake_timing {
    double acceptor = 0;   // seconds inside make_acceptor + acceptor->step
    double initiator = 0;  // seconds inside make_initiator + initiator->step
    int legs = 0;          // tokens exchanged
};

// `transcript`, when given, receives every token in the order sent (initiator's first).
std::string handshake(const auth::user_credentials& creds, auth::acceptor_credentials& acc_creds, auth::scheme s,
                      auth::mechanism expected, handshake_timing* timing = nullptr,
                      std::vector<std::vector<std::uint8_t>>* transcript = nullptr) {
    auto record = [transcript](const std::vector<std::uint8_t>& token) {
        if (transcript && !token.empty()) transcript->push_back(token);
    };
    auto t0 = clock_type::now();
    auto ini = creds.make_initiator("be1.exsim.test");
    auto out = ini->step({});
    double ini_s = seconds_since(t0);
    record(out.token);
    t0 = clock_type::now();
    auto acc = acc_creds.make_acceptor(s);
    double acc_s = seconds_since(t0);
    if (!acc) return "the acceptor does not offer this scheme";
    int legs = 1;
    auth::step_result acc_out;
    for (int round = 0; round < 8; ++round) {
        if (out.status == auth::step_status::failed) return "initiator: " + out.error;
        t0 = clock_type::now();
        acc_out = acc->step(out.token);
        acc_s += seconds_since(t0);
        ++legs;
        record(acc_out.token);
        if (acc_out.status != auth::step_status::continue_needed) break;
        t0 = clock_type::now();
        out = ini->step(acc_out.token);
        ini_s += seconds_since(t0);
        ++legs;
        record(out.token);
    }
    if (acc_out.status != auth::step_status::complete) return "acceptor: " + acc_out.error;
    // Mutual authentication: the initiator checks the acceptor's last token (Kerberos AP-REP).
    if (!acc_out.token.empty() && out.status == auth::step_status::continue_needed) {
        t0 = clock_type::now();
        out = ini->step(acc_out.token);
        ini_s += seconds_since(t0);
        if (out.status != auth::step_status::complete) return "initiator (final): " + out.error;
    }
    if (acc->peer() != creds.user())
        return fmt::format("acceptor saw '{}' for user '{}'", acc->peer(), creds.user());
    if (acc->negotiated() != expected)
        return fmt::format("mechanism {} instead of {}", auth::mechanism_name(acc->negotiated()),
                           auth::mechanism_name(expected));
    if (timing) *timing = {acc_s, ini_s, legs};
    return {};
}

// A first Kerberos token (SPNEGO NegTokenInit carrying an AP-REQ from the cached service ticket).
std::vector<std::uint8_t> kerberos_token(const auth::user_credentials& creds, std::string& error) {
    auto ini = creds.make_initiator("be1.exsim.test");
    auto out = ini->step({});
    if (out.status == auth::step_status::failed) error = out.error;
    return std::move(out.token);
}

// ---------------------------------------------------------------------------------------------
// BM_CpuControl: a fixed amount of pure computation, no locks, no memory traffic. Its 2-thread
// rate over its 1-thread rate says how many cores the machine gave this process right now (the
// build machine is shared): compare other benchmarks' thread scaling with it.

void BM_CpuControl(benchmark::State& state) {
    std::uint64_t x = 0x9E3779B97F4A7C15ull + static_cast<std::uint64_t>(state.thread_index());
    for (auto _ : state) {
        for (int i = 0; i < 20000; ++i) x = (x * 6364136223846793005ull + 1442695040888963407ull) ^ (x >> 29);
        benchmark::DoNotOptimize(x);
    }
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_CpuControl)->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_CpuControl)->Threads(2)->UseRealTime()->Unit(benchmark::kMicrosecond);

// ---------------------------------------------------------------------------------------------
// BM_KerberosAccept: back-end cost of one acceptance of a pre-built AP-REQ.

void BM_KerberosAccept(benchmark::State& state) {
    const std::size_t per_thread = env_size("EXSIM_BENCH_KRB_TOKENS", 4000);
    std::unique_ptr<auth::acceptor_credentials> acc_creds;
    struct token {
        std::vector<std::uint8_t> bytes;
        const std::string* user;
    };
    std::vector<token> tokens;
    std::vector<std::string> users;
    try {
        acc_creds = auth::make_acceptor_credentials(env->acceptor_config(true));
        // Each thread uses its own users: no two threads build tokens from one ccache.
        auto all = env->kerberos_users();
        for (std::size_t i = static_cast<std::size_t>(state.thread_index()); i < all.size();
             i += static_cast<std::size_t>(state.threads()))
            users.push_back(all[i]);
        if (users.empty()) throw std::runtime_error("not enough Kerberos users for the threads");
        // No more than this run will use: every run of the benchmark (the library probes with
        // growing iteration counts) builds its own tokens, since an AP-REQ cannot be replayed.
        const std::size_t wanted = std::min<std::size_t>(per_thread, static_cast<std::size_t>(state.max_iterations));
        tokens.reserve(wanted);
        for (std::size_t i = 0; i < wanted; ++i) {
            const auto& u = users[i % users.size()];
            std::string error;
            auto bytes = kerberos_token(*env->credentials(u, auth::initiator_mode::kerberos), error);
            if (!error.empty()) throw std::runtime_error(error);
            tokens.push_back({std::move(bytes), &u});
        }
    } catch (const std::exception& e) {
        state.SkipWithError(e.what());
        for (auto _ : state) {
        }
        return;
    }
    std::size_t next = 0;
    switch_counter cs;
    for (auto _ : state) {
        cs.start();
        if (next == tokens.size()) {  // only when run longer than --benchmark_min_time asked for
            state.PauseTiming();
            std::string error;
            try {
                for (auto& t : tokens) {
                    t.bytes = kerberos_token(*env->credentials(*t.user, auth::initiator_mode::kerberos), error);
                    if (!error.empty()) break;
                }
            } catch (const std::exception& e) {
                error = e.what();
            }
            if (!error.empty()) {  // no ResumeTiming after SkipWithError: the run reports no time
                state.SkipWithError(("building Kerberos tokens again: " + error).c_str());
                break;
            }
            next = 0;
            state.ResumeTiming();
        }
        const auto& t = tokens[next++];
        auto acc = acc_creds->make_acceptor(auth::scheme::negotiate);
        auto r = acc->step(t.bytes);
        if (r.status != auth::step_status::complete) {
            state.SkipWithError(("Kerberos accept failed: " + r.error).c_str());
            break;
        }
        if (acc->peer() != *t.user || acc->negotiated() != auth::mechanism::kerberos) {
            state.SkipWithError(fmt::format("acceptor saw '{}' ({}) for '{}'", acc->peer(),
                                            auth::mechanism_name(acc->negotiated()), *t.user)
                                    .c_str());
            break;
        }
    }
    cs.report(state);
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_KerberosAccept)->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_KerberosAccept)->Threads(2)->UseRealTime()->Unit(benchmark::kMicrosecond);

// ---------------------------------------------------------------------------------------------
// The two sides of the NTLM benchmarks: the worst-case user's initiator credentials and a be1
// acceptor. Through SPNEGO the acceptor gets no keytab, since SPNEGO falls back to NTLM only
// when the acceptor has no Kerberos key. Throws when a credential cannot be acquired.

struct ntlm_sides {
    std::shared_ptr<const auth::user_credentials> creds;
    std::unique_ptr<auth::acceptor_credentials> acc_creds;
    auth::scheme scheme = auth::scheme::ntlm;
};

ntlm_sides make_ntlm_sides(bool spnego) {
    ntlm_sides s;
    const auto mode = spnego ? auth::initiator_mode::negotiate : auth::initiator_mode::ntlm;
    s.creds = env->credentials(env->worst_ntlm_user, mode);
    s.acc_creds = auth::make_acceptor_credentials(env->acceptor_config(!spnego));
    s.scheme = spnego ? auth::scheme::negotiate : auth::scheme::ntlm;
    return s;
}

// ---------------------------------------------------------------------------------------------
// BM_NtlmAccept: the acceptor's side of an NTLM handshake for the last user of the directory
// (the last line of be1's user file). The reported Time is acceptor-only (manual timing);
// acceptor_us and initiator_us are counters.

void ntlm_accept(benchmark::State& state, bool spnego) {
    ntlm_sides sides;
    try {
        sides = make_ntlm_sides(spnego);
    } catch (const std::exception& e) {
        state.SkipWithError(e.what());
        for (auto _ : state) {
        }
        return;
    }
    double acc_total = 0, ini_total = 0;
    int legs = 0;
    for (auto _ : state) {
        handshake_timing t;
        auto error = handshake(*sides.creds, *sides.acc_creds, sides.scheme, auth::mechanism::ntlm, &t);
        if (!error.empty()) {
            state.SkipWithError(error.c_str());
            break;
        }
        state.SetIterationTime(t.acceptor);
        acc_total += t.acceptor;
        ini_total += t.initiator;
        legs = t.legs;
    }
    const double n = static_cast<double>(std::max<benchmark::IterationCount>(state.iterations(), 1));
    state.counters["acceptor_us"] = acc_total / n * 1e6;
    state.counters["initiator_us"] = ini_total / n * 1e6;
    state.counters["legs"] = legs;
    state.counters["file_line"] = static_cast<double>(env->worst_ntlm_line);
    state.SetLabel(env->worst_ntlm_user);
    state.SetItemsProcessed(state.iterations());
}

void BM_NtlmAccept_raw(benchmark::State& state) { ntlm_accept(state, false); }
void BM_NtlmAccept_spnego(benchmark::State& state) { ntlm_accept(state, true); }
BENCHMARK(BM_NtlmAccept_raw)->Name("BM_NtlmAccept/raw")->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_NtlmAccept_spnego)->Name("BM_NtlmAccept/spnego")->UseManualTime()->Unit(benchmark::kMicrosecond);

// ---------------------------------------------------------------------------------------------
// BM_NtlmAcceptWholeFile: gss-ntlmssp accepting directly with the whole be1 user file as its key
// file (no one-line fast path). The baseline that shows what its line-by-line scan costs per
// handshake for the last user of the file. Time = the AUTHENTICATE step only.

struct gss_name_holder {
    gss_name_t n = GSS_C_NO_NAME;
    ~gss_name_holder() {
        OM_uint32 m;
        if (n != GSS_C_NO_NAME) gss_release_name(&m, &n);
    }
};
struct gss_cred_holder {
    gss_cred_id_t c = GSS_C_NO_CREDENTIAL;
    ~gss_cred_holder() {
        OM_uint32 m;
        if (c != GSS_C_NO_CREDENTIAL) gss_release_cred(&m, &c);
    }
};
struct gss_ctx_holder {
    gss_ctx_id_t c = GSS_C_NO_CONTEXT;
    ~gss_ctx_holder() {
        OM_uint32 m;
        if (c != GSS_C_NO_CONTEXT) gss_delete_sec_context(&m, &c, GSS_C_NO_BUFFER);
    }
};

void BM_NtlmAcceptWholeFile(benchmark::State& state) {
    static gss_OID_desc ntlmssp_oid = {GSS_NTLMSSP_OID_LENGTH, const_cast<char*>(GSS_NTLMSSP_OID_STRING)};
    const auto& user = env->worst_ntlm_user;
    const std::string file = env->realm->paths().ntlm_user_file("be1").string();
    const std::string service = "HTTP@be1.exsim.test";
    std::shared_ptr<const auth::user_credentials> creds;
    gss_name_holder name;
    gss_cred_holder cred;
    OM_uint32 maj, min = 0;
    try {
        creds = env->credentials(user, auth::initiator_mode::ntlm);
        gss_buffer_desc b{service.size(), const_cast<char*>(service.data())};
        maj = gss_import_name(&min, &b, GSS_C_NT_HOSTBASED_SERVICE, &name.n);
        if (GSS_ERROR(maj)) throw std::runtime_error("gss_import_name");
        gss_key_value_element_desc kv{GSS_NTLMSSP_CS_KEYFILE, file.c_str()};
        gss_key_value_set_desc set{1, &kv};
        gss_OID_set_desc mechs{1, &ntlmssp_oid};
        maj = gss_acquire_cred_from(&min, name.n, GSS_C_INDEFINITE, &mechs, GSS_C_ACCEPT, &set, &cred.c, nullptr,
                                    nullptr);
        if (GSS_ERROR(maj)) throw std::runtime_error("gss_acquire_cred_from (NTLM acceptor, whole file)");
    } catch (const std::exception& e) {
        state.SkipWithError(e.what());
        for (auto _ : state) {
        }
        return;
    }
    double negotiate_total = 0;
    for (auto _ : state) {
        auto ini = creds->make_initiator("be1.exsim.test");
        auto out = ini->step({});
        gss_ctx_holder ctx;
        std::string peer;
        bool complete = false;
        for (int round = 0; round < 3 && out.status != auth::step_status::failed; ++round) {
            gss_buffer_desc in{out.token.size(), out.token.data()};
            gss_buffer_desc tok = GSS_C_EMPTY_BUFFER;
            gss_name_t src = GSS_C_NO_NAME;
            auto t0 = clock_type::now();
            maj = gss_accept_sec_context(&min, &ctx.c, cred.c, &in, GSS_C_NO_CHANNEL_BINDINGS, &src, nullptr, &tok,
                                         nullptr, nullptr, nullptr);
            const double dt = seconds_since(t0);
            std::vector<std::uint8_t> reply(static_cast<std::uint8_t*>(tok.value),
                                            static_cast<std::uint8_t*>(tok.value) + tok.length);
            OM_uint32 m;
            gss_release_buffer(&m, &tok);
            if (GSS_ERROR(maj)) {
                if (src != GSS_C_NO_NAME) gss_release_name(&m, &src);
                break;
            }
            if (maj & GSS_S_CONTINUE_NEEDED) {
                negotiate_total += dt;
                out = ini->step(reply);
                continue;
            }
            state.SetIterationTime(dt);
            gss_buffer_desc disp = GSS_C_EMPTY_BUFFER;
            gss_display_name(&m, src, &disp, nullptr);
            peer.assign(static_cast<const char*>(disp.value), disp.length);
            if (auto nul = peer.find('\0'); nul != std::string::npos) peer.resize(nul);
            gss_release_buffer(&m, &disp);
            gss_release_name(&m, &src);
            complete = true;
            break;
        }
        const std::string expected = env->topo.ntlm_domain + "\\" + user;
        if (!complete || peer != expected) {
            state.SkipWithError(fmt::format("whole-file NTLM accept: got '{}' for '{}' (status {:#x})", peer,
                                            expected, maj)
                                    .c_str());
            break;
        }
    }
    const double n = static_cast<double>(std::max<benchmark::IterationCount>(state.iterations(), 1));
    state.counters["negotiate_step_us"] = negotiate_total / n * 1e6;
    state.counters["file_line"] = static_cast<double>(env->worst_ntlm_line);
    state.SetLabel(user);
}
BENCHMARK(BM_NtlmAcceptWholeFile)->UseManualTime()->Unit(benchmark::kMicrosecond);

// ---------------------------------------------------------------------------------------------
// Full handshakes, both sides (compare with the costs in docs/design.md section 3).

void BM_NtlmHandshakeFull(benchmark::State& state) {
    const bool spnego = state.range(0) != 0;
    ntlm_sides sides;
    try {
        sides = make_ntlm_sides(spnego);
    } catch (const std::exception& e) {
        state.SkipWithError(e.what());
        for (auto _ : state) {
        }
        return;
    }
    for (auto _ : state) {
        auto error = handshake(*sides.creds, *sides.acc_creds, sides.scheme, auth::mechanism::ntlm);
        if (!error.empty()) {
            state.SkipWithError(error.c_str());
            break;
        }
    }
    state.SetLabel(spnego ? "spnego" : "raw");
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_NtlmHandshakeFull)->ArgName("spnego")->Arg(0)->Arg(1)->UseRealTime()->Unit(benchmark::kMicrosecond);

void BM_KerberosHandshakeFull(benchmark::State& state) {
    std::vector<std::shared_ptr<const auth::user_credentials>> creds;
    std::unique_ptr<auth::acceptor_credentials> acc_creds;
    try {
        acc_creds = auth::make_acceptor_credentials(env->acceptor_config(true));
        auto all = env->kerberos_users();
        for (std::size_t i = static_cast<std::size_t>(state.thread_index()); i < all.size();
             i += static_cast<std::size_t>(state.threads()))
            creds.push_back(env->credentials(all[i], auth::initiator_mode::kerberos));
        // Warm the service tickets (the first context per user makes the TGS exchange).
        for (const auto& c : creds)
            if (auto e = handshake(*c, *acc_creds, auth::scheme::negotiate, auth::mechanism::kerberos); !e.empty())
                throw std::runtime_error(e);
    } catch (const std::exception& e) {
        state.SkipWithError(e.what());
        for (auto _ : state) {
        }
        return;
    }
    std::size_t next = 0;
    switch_counter cs;
    for (auto _ : state) {
        cs.start();
        const auto& c = *creds[next++ % creds.size()];
        auto error = handshake(c, *acc_creds, auth::scheme::negotiate, auth::mechanism::kerberos);
        if (!error.empty()) {
            state.SkipWithError(error.c_str());
            break;
        }
    }
    cs.report(state);
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_KerberosHandshakeFull)->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_KerberosHandshakeFull)->Threads(2)->UseRealTime()->Unit(benchmark::kMicrosecond);

// ---------------------------------------------------------------------------------------------
// BM_DecodeToken/<token>: auth::decode_token (the handshake trace's decoder) on the real tokens
// of one handshake, captured outside the timed loop; BM_FindNtlmAuthenticate/<carrier>: the
// back-end's check of who an AUTHENTICATE claims, raw and inside SPNEGO.

enum class captured { ntlm_negotiate, ntlm_challenge, ntlm_authenticate, spnego_ntlm_authenticate, spnego_krb5_ap_req,
                      spnego_krb5_ap_rep };

// The token of that kind from a real handshake, found by decoding its transcript; throws when
// the handshake fails or has no such token.
std::vector<std::uint8_t> capture(captured which) {
    std::vector<std::vector<std::uint8_t>> transcript;
    std::string error;
    const bool spnego_ntlm = which == captured::spnego_ntlm_authenticate;
    const bool kerberos = which == captured::spnego_krb5_ap_req || which == captured::spnego_krb5_ap_rep;
    if (kerberos) {
        auto acc = auth::make_acceptor_credentials(env->acceptor_config(true));
        const auto user = env->kerberos_users().front();
        error = handshake(*env->credentials(user, auth::initiator_mode::kerberos), *acc, auth::scheme::negotiate,
                          auth::mechanism::kerberos, nullptr, &transcript);
    } else {
        auto sides = make_ntlm_sides(spnego_ntlm);
        error = handshake(*sides.creds, *sides.acc_creds, sides.scheme, auth::mechanism::ntlm, nullptr, &transcript);
    }
    if (!error.empty()) throw std::runtime_error(error);
    for (auto& token : transcript) {
        auto d = auth::decode_token(token);
        if (!d) continue;
        const int ntlm_type = d->ntlm ? d->ntlm->type : 0;
        const bool match =
            (which == captured::ntlm_negotiate && d->mechanism == "ntlmssp" && ntlm_type == 1) ||
            (which == captured::ntlm_challenge && d->mechanism == "ntlmssp" && ntlm_type == 2) ||
            (which == captured::ntlm_authenticate && d->mechanism == "ntlmssp" && ntlm_type == 3) ||
            (spnego_ntlm && d->mechanism == "spnego" && ntlm_type == 3) ||
            (which == captured::spnego_krb5_ap_req && d->kerberos_kind == "AP-REQ") ||
            (which == captured::spnego_krb5_ap_rep && d->kerberos_kind == "AP-REP");
        if (match) return std::move(token);
    }
    throw std::runtime_error(fmt::format("none of the handshake's {} tokens is of that kind", transcript.size()));
}

// Times `parse` on a token captured from a real handshake; skips when it cannot be captured or
// `parse` does not accept it. Returns the token (empty when skipped).
template <class Parse>
std::vector<std::uint8_t> time_parsing(benchmark::State& state, captured which, Parse parse) {
    std::vector<std::uint8_t> token;
    try {
        token = capture(which);
        if (!parse(token)) throw std::runtime_error("the captured token is not accepted");
    } catch (const std::exception& e) {
        state.SkipWithError(e.what());
        for (auto _ : state) {
        }
        return {};
    }
    for (auto _ : state) {
        auto r = parse(token);
        benchmark::DoNotOptimize(r);
    }
    state.counters["bytes"] = static_cast<double>(token.size());
    state.SetItemsProcessed(state.iterations());
    return token;
}

void BM_DecodeToken(benchmark::State& state, captured which) {
    const auto token = time_parsing(state, which, [](const auto& t) { return auth::decode_token(t); });
    if (!token.empty()) state.SetLabel(auth::describe(*auth::decode_token(token)).substr(0, 60));
}
BENCHMARK_CAPTURE(BM_DecodeToken, ntlm_negotiate, captured::ntlm_negotiate);
BENCHMARK_CAPTURE(BM_DecodeToken, ntlm_challenge, captured::ntlm_challenge);
BENCHMARK_CAPTURE(BM_DecodeToken, ntlm_authenticate, captured::ntlm_authenticate);
BENCHMARK_CAPTURE(BM_DecodeToken, spnego_ntlm_authenticate, captured::spnego_ntlm_authenticate);
BENCHMARK_CAPTURE(BM_DecodeToken, spnego_krb5_ap_req, captured::spnego_krb5_ap_req);
BENCHMARK_CAPTURE(BM_DecodeToken, spnego_krb5_ap_rep, captured::spnego_krb5_ap_rep);

void BM_FindNtlmAuthenticate(benchmark::State& state, captured which) {
    time_parsing(state, which, [](const auto& t) { return auth::find_ntlm_authenticate(t); });
}
BENCHMARK_CAPTURE(BM_FindNtlmAuthenticate, raw, captured::ntlm_authenticate);
BENCHMARK_CAPTURE(BM_FindNtlmAuthenticate, spnego, captured::spnego_ntlm_authenticate);

// ---------------------------------------------------------------------------------------------
// BM_RssFlat: RSS before and after many full handshakes through the back-end acceptor, after a
// warm-up. One iteration; the counters carry the result.

void BM_RssFlat(benchmark::State& state) {
    const std::size_t count = env_size("EXSIM_BENCH_RSS_HANDSHAKES", 20000);
    const std::size_t warmup = 2000;
    for (auto _ : state) {
        try {
            auto acc_creds = auth::make_acceptor_credentials(env->acceptor_config(true));
            // NTLM: rotate over users spread through the file (a new one-line key per AUTHENTICATE).
            std::vector<std::shared_ptr<const auth::user_credentials>> ntlm, krb;
            const auto& users = env->topo.users;
            const std::size_t step = std::max<std::size_t>(1, users.size() / 64);
            for (std::size_t k = 0; k < 64 && k * step < users.size(); ++k)
                ntlm.push_back(env->credentials(users[users.size() - 1 - k * step].name, auth::initiator_mode::ntlm));
            for (const auto& u : env->kerberos_users()) krb.push_back(env->credentials(u, auth::initiator_mode::kerberos));
            auto run = [&](const std::vector<std::shared_ptr<const auth::user_credentials>>& set, auth::scheme s,
                           auth::mechanism m, std::size_t n) {
                for (std::size_t i = 0; i < n; ++i)
                    if (auto e = handshake(*set[i % set.size()], *acc_creds, s, m); !e.empty())
                        throw std::runtime_error(e);
            };
            run(ntlm, auth::scheme::ntlm, auth::mechanism::ntlm, warmup / 2);
            run(krb, auth::scheme::negotiate, auth::mechanism::kerberos, warmup / 2);
            const long before = rss_kib();
            const long fds_before = open_fds();
            auto t0 = clock_type::now();
            run(ntlm, auth::scheme::ntlm, auth::mechanism::ntlm, count);
            const double ntlm_s = seconds_since(t0);
            const long after_ntlm = rss_kib();
            t0 = clock_type::now();
            run(krb, auth::scheme::negotiate, auth::mechanism::kerberos, count);
            const double krb_s = seconds_since(t0);
            const long after = rss_kib();
            state.counters["rss_before_kib"] = static_cast<double>(before);
            state.counters["rss_after_ntlm_kib"] = static_cast<double>(after_ntlm);
            state.counters["rss_after_kib"] = static_cast<double>(after);
            state.counters["rss_ratio"] = static_cast<double>(after) / static_cast<double>(before);
            state.counters["fds_before"] = static_cast<double>(fds_before);
            state.counters["fds_after"] = static_cast<double>(open_fds());
            state.counters["ntlm_full_per_s"] = static_cast<double>(count) / ntlm_s;
            state.counters["krb_full_per_s"] = static_cast<double>(count) / krb_s;
            state.SetLabel(fmt::format("{} NTLM + {} Kerberos after {} warm-up", count, count, warmup));
        } catch (const std::exception& e) {
            state.SkipWithError(e.what());
            break;
        }
    }
}
BENCHMARK(BM_RssFlat)->Iterations(1)->UseRealTime()->Unit(benchmark::kSecond);

}  // namespace

int main(int argc, char** argv) {
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;

    bench_env e;
    env = &e;
    int rc = 0;
    try {
        const std::size_t users = env_size("EXSIM_BENCH_USERS", 10000);
        e.topo = common::generated_topology(users);
        if (const char* dir = std::getenv("EXSIM_BENCH_STATE_DIR"); dir && *dir) {
            e.state_dir = dir;
            fs::create_directories(e.state_dir);
        } else {
            std::string templ = (fs::temp_directory_path() / "exsim-bench-XXXXXX").string();
            if (!mkdtemp(templ.data())) throw std::runtime_error("mkdtemp failed");
            e.state_dir = templ;
            e.remove_state = true;
        }
        auto t0 = clock_type::now();
        e.realm.emplace(auth::realm::create(e.topo, e.state_dir));
        const double create_s = seconds_since(t0);
        t0 = clock_type::now();
        e.realm->start_kdc();
        const double kdc_s = seconds_since(t0);
        e.realm->apply_environment();
        e.creds.emplace(e.topo.realm, e.topo.ntlm_domain, 1);  // get() only: its pool stays idle
        e.worst_ntlm_user = e.topo.users.back().name;
        // Read, not assumed: a realm reused from EXSIM_BENCH_STATE_DIR keeps the files it was
        // created with.
        const auto user_file = e.realm->paths().ntlm_user_file("be1");
        e.worst_ntlm_line = line_in_user_file(user_file, e.topo.ntlm_domain, e.worst_ntlm_user);
        if (e.worst_ntlm_line == 0)
            throw std::runtime_error(fmt::format("{} is not in {}", e.worst_ntlm_user, user_file.string()));
        const auto& tm = e.realm->timings();
        const auto summary = fmt::format(
            "realm for {} users in {:.1f} s{} (database {} ms, principals+keytabs {} ms, NTLM files {} ms); "
            "KDC start {:.2f} s; state {}; worst-case NTLM user {} on line {} of be1's user file",
            e.topo.users.size(), create_s, tm.reused ? " (reused)" : "", tm.database.count(), tm.principals.count(),
            tm.ntlm_files.count(), kdc_s, e.state_dir.string(), e.worst_ntlm_user, e.worst_ntlm_line);
        std::fprintf(stderr, "%s\n", summary.c_str());
        benchmark::AddCustomContext("exsim_users", std::to_string(e.topo.users.size()));
        benchmark::AddCustomContext("exsim_realm_create_s", fmt::format("{:.2f}", create_s));
        benchmark::AddCustomContext("exsim_worst_ntlm_user", e.worst_ntlm_user);
        benchmark::AddCustomContext("exsim_worst_ntlm_line", std::to_string(e.worst_ntlm_line));

        // Kerberos credentials: one AS exchange per user, outside every timed region.
        t0 = clock_type::now();
        for (const auto& u : e.kerberos_users()) e.credentials(u, auth::initiator_mode::kerberos);
        std::fprintf(stderr, "Kerberos credentials for %zu users in %.2f s\n", e.kerberos_users().size(),
                     seconds_since(t0));

        benchmark::RunSpecifiedBenchmarks();
    } catch (const std::exception& ex) {
        std::fprintf(stderr, "auth_benchmark: %s\n", ex.what());
        rc = 1;
    }
    benchmark::Shutdown();
    e.creds.reset();  // releases the users' credentials before the KDC and its folder go
    if (e.realm) e.realm->stop_kdc();
    e.realm.reset();
    if (e.remove_state) {
        std::error_code ec;
        fs::remove_all(e.state_dir, ec);
    }
    env = nullptr;
    return rc;
}
