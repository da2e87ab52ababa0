#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "exsim/common/topology.hpp"

namespace exsim::common {
namespace {

TEST(Topology, DefaultIsTheOneDesignDescribes) {
    auto t = default_topology();
    EXPECT_EQ(t.realm, "EXSIM.TEST");
    EXPECT_EQ(t.ntlm_domain, "EXSIM");
    ASSERT_EQ(t.backends.size(), 2u);
    EXPECT_EQ(t.backends[0].host, "be1.exsim.test");
    EXPECT_EQ(t.backends[0].auth_providers, (std::vector<std::string>{"Negotiate", "NTLM"}));
    EXPECT_EQ(t.backends[1].auth_providers, std::vector<std::string>{"NTLM"});
    EXPECT_EQ(t.find_user("bob")->home, "be1");
    EXPECT_EQ(t.find_user("dave")->home, "be2");
    EXPECT_EQ(t.find_user("carol")->password, "carol-pw");
}

TEST(Topology, ConfigsDefaultJsonMatchesTheEmbeddedDefault) {
    auto file = load_topology(EXSIM_SOURCE_DIR "/configs/default.json");
    EXPECT_EQ(to_json(file), to_json(default_topology()));
}

TEST(Topology, RoundTripsThroughJson) {
    auto t = generated_topology(10);
    t.users[0].delegates = {"bob"};
    EXPECT_EQ(to_json(parse_topology(to_json(t), "x")), to_json(t));
}

struct bad_config {
    const char* name;
    const char* json;
    const char* expected;  // substring of the message
};

class TopologyErrors : public ::testing::TestWithParam<bad_config> {};

TEST_P(TopologyErrors, NameTheFieldAndTheProblem) {
    try {
        parse_topology(GetParam().json, "cfg.json");
        FAIL() << "accepted";
    } catch (const config_error& e) {
        EXPECT_NE(std::string(e.what()).find(GetParam().expected), std::string::npos) << e.what();
        EXPECT_EQ(std::string(e.what()).rfind("cfg.json: ", 0), 0u) << e.what();
    }
}

#define BE R"({"name":"be1","host":"be1.exsim.test"})"
INSTANTIATE_TEST_SUITE_P(
    Rows, TopologyErrors,
    ::testing::Values(
        bad_config{"not_json", "{", "not valid JSON"},
        bad_config{"not_object", "[]", "(top level): must be an object"},
        bad_config{"missing_backends", R"({"users":[]})", "backends: missing required field"},
        bad_config{"unknown_top_key", R"({"backends":[)" BE R"(],"users":[],"polcy":"x"})", "polcy: unknown key"},
        bad_config{"unknown_backend_key", R"({"backends":[{"name":"be1","host":"h","auth_provider":[]}],"users":[]})",
                   "backends[0].auth_provider: unknown key"},
        bad_config{"wrong_type", R"({"backends":[{"name":"be1","host":"h","persist_kerberos":"yes"}],"users":[]})",
                   "backends[0].persist_kerberos: must be true or false, got a string"},
        bad_config{"bad_provider", R"({"backends":[{"name":"be1","host":"h","auth_providers":["Basic"]}],"users":[]})",
                   "unknown provider 'Basic'"},
        bad_config{"no_backends", R"({"backends":[],"users":[]})", "at least one back-end"},
        bad_config{"dup_backend", R"({"backends":[)" BE "," BE R"(],"users":[]})", "duplicate back-end"},
        bad_config{"bad_user_name", R"({"backends":[)" BE R"(],"users":[{"name":"Al ice","password":"p","home":"be1"}]})",
                   "users[0].name"},
        bad_config{"unknown_home", R"({"backends":[)" BE R"(],"users":[{"name":"al","password":"p","home":"be9"}]})",
                   "users[0].home: unknown back-end 'be9'"},
        bad_config{"missing_password", R"({"backends":[)" BE R"(],"users":[{"name":"al","home":"be1"}]})",
                   "users[0].password: missing required field"},
        bad_config{"quote_in_password", R"({"backends":[)" BE R"(],"users":[{"name":"al","password":"a\"b","home":"be1"}]})",
                   "users[0].password"},
        bad_config{"unknown_delegate", R"({"backends":[)" BE R"(],"users":[{"name":"al","password":"p","home":"be1","delegates":["zz"]}]})",
                   "users[0].delegates: unknown user 'zz'"},
        bad_config{"lower_realm", R"({"realm":"exsim.test","backends":[)" BE R"(],"users":[]})", "realm"},
        bad_config{"negative_seed", R"({"seed_messages":-1,"backends":[)" BE R"(],"users":[]})", "seed_messages"},
        bad_config{"unknown_policy", R"({"frontend":{"policy":"legacyy"},"backends":[)" BE R"(],"users":[]})",
                   "frontend.policy: unknown policy 'legacyy'"},
        bad_config{"pool_typo", R"({"frontend":{"pool":{"max_conections":4}},"backends":[)" BE R"(],"users":[]})",
                   "frontend.pool.max_conections: unknown key"},
        bad_config{"zero_connections", R"({"frontend":{"pool":{"max_connections":0}},"backends":[)" BE R"(],"users":[]})",
                   "frontend.pool.max_connections: must be at least 1"},
        bad_config{"workers_type", R"({"frontend":{"workers":"one"},"backends":[)" BE R"(],"users":[]})",
                   "frontend.workers: must be an integer from 0 to 256"},
        bad_config{"too_many_workers", R"({"frontend":{"workers":257},"backends":[)" BE R"(],"users":[]})",
                   "frontend.workers: must be an integer from 0 to 256"},
        bad_config{"guard_type", R"({"frontend":{"leak_guard":"yes"},"backends":[)" BE R"(],"users":[]})",
                   "frontend.leak_guard: must be true or false"},
        // Found by fuzzing (tests/fuzz/topology): a NUL in a key ended the message after the file name.
        bad_config{"nul_in_key", R"({"backends":[)" BE R"(],"users":[],"\u0000x":1})",
                   "cfg.json: \\u0000x: unknown key (check the spelling)"},
        bad_config{"newline_in_name", R"({"backends":[{"name":"b\ne","host":"h"}],"users":[]})",
                   "backends[0].name: 'b\\u000ae' must match"}),
    [](const auto& row) { return std::string(row.param.name); });
#undef BE

TEST(Topology, MissingFileIsAClearError) {
    EXPECT_THROW(load_topology("/nonexistent/exsim.json"), config_error);
}

TEST(Topology, BackendAuthOverride) {
    auto t = default_topology();
    override_backend_auth(t, "ntlm");
    for (const auto& b : t.backends) EXPECT_EQ(b.auth_providers, std::vector<std::string>{"NTLM"});
    EXPECT_THROW(override_backend_auth(t, "kerberos-only"), config_error);
}

}  // namespace
}  // namespace exsim::common

namespace exsim::common {
namespace {

// Every scenario shipped in configs/ loads (a typo there would greet a trainer with exit 2).
TEST(Topology, EveryShippedScenarioLoads) {
    std::size_t n = 0;
    for (const auto& entry : std::filesystem::directory_iterator(EXSIM_SOURCE_DIR "/configs")) {
        if (entry.path().extension() != ".json") continue;
        EXPECT_NO_THROW(load_topology(entry.path())) << entry.path();
        ++n;
    }
    EXPECT_GE(n, 6u);
    EXPECT_EQ(load_topology(EXSIM_SOURCE_DIR "/configs/ms04-002-vulnerable.json").frontend.policy, "legacy");
}

}  // namespace
}  // namespace exsim::common
