// The front-end's pool and its policies, alone: no back-end protocol, no authentication.
//
//   BM_PoolAcquireRelease/<policy>/<mechanism>  one connection_for() and one release() of a worker's
//       pool, as a request does, with the connection marked as the handshake would leave it
//       (Kerberos or NTLM, as the user). Real loopback TCP connections to a listener in the
//       same io_context: where a policy closes the connection (ms04-002 with NTLM, no-reuse)
//       each iteration pays a connect() and a close(); counters: conns_per_op (connections
//       opened per acquire), reauth_per_op (acquires that must authenticate again).
//   BM_PolicyDecision/<policy>  must_authenticate() and after_response() over a mix of
//       connections (never authenticated, Kerberos, NTLM as this user or another one).

#include <benchmark/benchmark.h>

#include <array>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "exsim/common/topology.hpp"
#include "exsim/proxy/policy.hpp"
#include "pool.hpp"

namespace {

namespace net = boost::asio;
namespace auth = exsim::auth;
namespace proxy = exsim::proxy;
using tcp = net::ip::tcp;
constexpr auto nothrow = net::as_tuple(net::use_awaitable);

// A back-end that accepts and holds connections, and lets go of the oldest once many piled up
// (only the policies that close every connection get there; those are long closed by then).
net::awaitable<void> hold_connections(tcp::acceptor& acceptor, std::deque<tcp::socket>& held) {
    for (;;) {
        auto [ec, s] = co_await acceptor.async_accept(nothrow);
        if (ec) co_return;
        held.push_back(std::move(s));
        if (held.size() > 1024) held.pop_front();
    }
}

void BM_PoolAcquireRelease(benchmark::State& state, std::string_view policy_name, auth::mechanism mech) {
    net::io_context io{1};
    tcp::acceptor acceptor(io, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0));
    std::deque<tcp::socket> held;
    net::co_spawn(io, hold_connections(acceptor, held), net::detached);

    const auto topology = exsim::common::default_topology();
    exsim::common::pool_settings settings;
    settings.max_idle = 64;  // room for every user's connection under per-user
    settings.max_requests = 1u << 30;
    settings.max_lifetime_ms = 3'600'000;
    const auto policy = proxy::make_policy(policy_name);
    proxy::worker_metrics metrics;
    std::unordered_map<std::uint64_t, std::size_t> pins_per_client;
    proxy::pool_group group(settings);  // one worker: its part is the whole pool
    auto pool = std::make_unique<proxy::backend_pool>(topology.backends.front(), acceptor.local_endpoint(), settings,
                                                      *policy, metrics, io.get_executor(),
                                                      std::chrono::milliseconds(5000), pins_per_client, group);
    group.members.push_back(pool.get());
    // Sixteen users, each on its own client connection (what pinning binds to), in turn.
    std::vector<std::string> users;
    for (int i = 0; i < 16; ++i) users.push_back("user" + std::to_string(i));

    std::string error;
    std::uint64_t reauth = 0;
    auto one = [&](std::size_t i) -> net::awaitable<bool> {
        const auto& user = users[i % users.size()];
        const std::uint64_t client = 1 + i % users.size();
        auto r = co_await pool->connection_for(user, client);
        if (!r.conn) {
            error = "acquire failed: " + r.error;
            co_return false;
        }
        reauth += r.must_authenticate ? 1 : 0;
        if (r.must_authenticate) {  // as finish_handshake() leaves it
            r.conn->mechanism = mech;
            r.conn->user = user;
        }
        ++r.conn->requests;
        pool->release(std::move(r.conn), true, client);
        co_return true;
    };
    auto run = [&]() -> net::awaitable<void> {
        for (std::size_t i = 0; i < users.size(); ++i)  // warm: every user's connection exists
            if (!co_await one(i)) co_return;
        const auto opened_before = metrics.connections_opened.load();
        reauth = 0;
        std::size_t i = 0;
        for (auto _ : state)
            if (!co_await one(i++)) break;
        const double n = static_cast<double>(std::max<benchmark::IterationCount>(state.iterations(), 1));
        state.counters["conns_per_op"] = static_cast<double>(metrics.connections_opened.load() - opened_before) / n;
        state.counters["reauth_per_op"] = static_cast<double>(reauth) / n;
        pool.reset();
        acceptor.close();
    };
    net::co_spawn(io, run(), net::detached);
    io.run();
    if (!error.empty()) state.SkipWithError(error.c_str());
    state.SetItemsProcessed(state.iterations());
}

BENCHMARK_CAPTURE(BM_PoolAcquireRelease, legacy/ntlm, "legacy", auth::mechanism::ntlm);
BENCHMARK_CAPTURE(BM_PoolAcquireRelease, ms04-002/kerberos, "ms04-002", auth::mechanism::kerberos);
BENCHMARK_CAPTURE(BM_PoolAcquireRelease, ms04-002/ntlm, "ms04-002", auth::mechanism::ntlm);
BENCHMARK_CAPTURE(BM_PoolAcquireRelease, no-reuse/kerberos, "no-reuse", auth::mechanism::kerberos);
BENCHMARK_CAPTURE(BM_PoolAcquireRelease, pinned/ntlm, "pinned", auth::mechanism::ntlm);
BENCHMARK_CAPTURE(BM_PoolAcquireRelease, per-user/ntlm, "per-user", auth::mechanism::ntlm);

void BM_PolicyDecision(benchmark::State& state, std::string_view policy_name) {
    const auto policy = proxy::make_policy(policy_name);
    const std::array<proxy::connection_view, 6> views{{{auth::mechanism::none, ""},
                                                       {auth::mechanism::kerberos, "alice"},
                                                       {auth::mechanism::ntlm, "alice"},
                                                       {auth::mechanism::ntlm, "bob"},
                                                       {auth::mechanism::kerberos, "bob"},
                                                       {auth::mechanism::ntlm, "carol"}}};
    const std::array<std::string_view, 4> users{"alice", "bob", "", "carol"};  // "": an anonymous /exchweb/ request
    std::size_t i = 0;
    for (auto _ : state) {
        const auto& view = views[i % views.size()];
        const auto user = users[i % users.size()];
        ++i;
        benchmark::DoNotOptimize(policy->must_authenticate(view, user, true));
        benchmark::DoNotOptimize(policy->after_response(view));
    }
    state.SetItemsProcessed(state.iterations());
}

BENCHMARK_CAPTURE(BM_PolicyDecision, legacy, "legacy");
BENCHMARK_CAPTURE(BM_PolicyDecision, ms04-002, "ms04-002");
BENCHMARK_CAPTURE(BM_PolicyDecision, no-reuse, "no-reuse");
BENCHMARK_CAPTURE(BM_PolicyDecision, pinned, "pinned");
BENCHMARK_CAPTURE(BM_PolicyDecision, per-user, "per-user");

}  // namespace

BENCHMARK_MAIN();
