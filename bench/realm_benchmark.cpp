// BM_RealmCreate/users:N: auth::realm::create for the default directory plus N generated users,
// in a fresh temporary folder each iteration (deleted afterwards): the Kerberos database, one
// principal per user, the back-ends' service principals and keytabs, and the NTLM user files.
// Counters: s_per_1000_users (the figure to compare across sizes: flat when creation is linear),
// and the realm's own timings of its steps in ms. Needs krb5-kdc and krb5-admin-server's tools
// (kdb5_util, kadmin.local), as `exsim realm` does.

#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "exsim/auth/realm.hpp"
#include "exsim/common/topology.hpp"

namespace {

namespace fs = std::filesystem;

void BM_RealmCreate(benchmark::State& state) {
    const auto extra = static_cast<std::size_t>(state.range(0));
    const auto topology = exsim::common::generated_topology(extra);
    double database_ms = 0, principals_ms = 0, ntlm_ms = 0;
    for (auto _ : state) {
        std::string dir = (fs::temp_directory_path() / "exsim-realm-bench-XXXXXX").string();
        if (!mkdtemp(dir.data())) {
            state.SkipWithError("mkdtemp failed");
            break;
        }
        try {
            auto realm = exsim::auth::realm::create(topology, dir);
            const auto& t = realm.timings();
            database_ms += static_cast<double>(t.database.count());
            principals_ms += static_cast<double>(t.principals.count());
            ntlm_ms += static_cast<double>(t.ntlm_files.count());
        } catch (const std::exception& e) {
            state.SkipWithError(e.what());
        }
        state.PauseTiming();
        std::error_code ec;
        fs::remove_all(dir, ec);
        state.ResumeTiming();
    }
    const double n = static_cast<double>(std::max<benchmark::IterationCount>(state.iterations(), 1));
    state.counters["database_ms"] = database_ms / n;
    state.counters["principals_keytabs_ms"] = principals_ms / n;
    state.counters["ntlm_files_ms"] = ntlm_ms / n;
    // Time per iteration / (users / 1000), reported as a rate inverted: seconds per 1,000 users.
    state.counters["s_per_1000_users"] = benchmark::Counter(static_cast<double>(topology.users.size()) / 1000.0,
                                                            benchmark::Counter::kIsIterationInvariantRate |
                                                                benchmark::Counter::kInvert);
}
BENCHMARK(BM_RealmCreate)->ArgName("users")->Arg(1000)->Iterations(1)->UseRealTime()->Unit(benchmark::kSecond);

}  // namespace

BENCHMARK_MAIN();
