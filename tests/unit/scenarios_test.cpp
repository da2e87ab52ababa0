#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "exsim/common/scenarios.hpp"

namespace exsim::common {
namespace {

TEST(Scenarios, EveryOneParses) {
    for (const auto& s : scenarios()) EXPECT_NO_THROW(load_scenario(s.name)) << s.name;
}

// A file in configs/ without an entry in the list (or the reverse) is a scenario nobody can find.
TEST(Scenarios, NamesMatchTheFilesInConfigs) {
    std::set<std::string> files, listed;
    for (const auto& entry : std::filesystem::directory_iterator(EXSIM_SOURCE_DIR "/configs"))
        if (entry.path().extension() == ".json") files.insert(entry.path().stem().string());
    for (const auto& s : scenarios()) {
        EXPECT_TRUE(listed.insert(std::string(s.name)).second) << "listed twice: " << s.name;
        EXPECT_FALSE(s.summary.empty()) << s.name;
    }
    EXPECT_EQ(files, listed);
}

// `exsim scenarios` ends with "docs/scenarios/NAME.md explains it".
TEST(Scenarios, EveryOneHasItsPage) {
    for (const auto& s : scenarios())
        EXPECT_TRUE(std::filesystem::is_regular_file(std::string(EXSIM_SOURCE_DIR "/docs/scenarios/") + std::string(s.name) + ".md"))
            << s.name;
}

TEST(Scenarios, TheEmbeddedTextIsTheFileAsBuilt) {
    for (const auto& s : scenarios()) {
        std::ifstream in(std::string(EXSIM_SOURCE_DIR "/configs/") + std::string(s.name) + ".json");
        std::ostringstream text;
        text << in.rdbuf();
        EXPECT_EQ(scenario_json(s.name), text.str()) << s.name << ": rebuild to embed the edited file";
    }
}

TEST(Scenarios, UnknownNameIsAConfigErrorListingTheKnownOnes) {
    try {
        load_scenario("ms04-002-vulnerabel");
        FAIL() << "accepted";
    } catch (const config_error& e) {
        const std::string what = e.what();
        EXPECT_NE(what.find("unknown scenario 'ms04-002-vulnerabel'"), std::string::npos) << what;
        for (const auto& s : scenarios()) EXPECT_NE(what.find(s.name), std::string::npos) << what;
    }
}

// What each scenario's page (docs/scenarios/NAME.md) says it is.
struct expected_scenario {
    const char* name;
    const char* policy;
    std::vector<std::string> be1, be2;  // auth providers
    bool persist_kerberos;
    bool require_kerberos;
    std::size_t workers;  // 0: one per core (the pool spans the workers: the outcome does not need 1)
};

class ScenarioSemantics : public ::testing::TestWithParam<expected_scenario> {};

TEST_P(ScenarioSemantics, AreWhatItsPageSays) {
    const auto& e = GetParam();
    const auto t = load_scenario(e.name);
    EXPECT_EQ(t.frontend.policy, e.policy);
    ASSERT_EQ(t.backends.size(), 2u);
    EXPECT_EQ(t.backends[0].auth_providers, e.be1);
    EXPECT_EQ(t.backends[1].auth_providers, e.be2);
    for (const auto& b : t.backends) EXPECT_EQ(b.persist_kerberos, e.persist_kerberos) << b.name;
    EXPECT_EQ(t.frontend.require_kerberos, e.require_kerberos);
    EXPECT_FALSE(t.frontend.leak_guard) << "the guard would hide what the scenario shows";
    EXPECT_EQ(t.frontend.workers, e.workers);
    // alice and bob share be1, carol and dave be2: the pairs a leak needs.
    EXPECT_EQ(t.find_user("alice")->home, t.find_user("bob")->home);
    EXPECT_EQ(t.find_user("carol")->home, t.find_user("dave")->home);
}

const std::vector<std::string> ntlm{"NTLM"}, negotiate{"Negotiate", "NTLM"};

INSTANTIATE_TEST_SUITE_P(
    Rows, ScenarioSemantics,
    ::testing::Values(expected_scenario{"ms04-002-vulnerable", "legacy", ntlm, ntlm, false, false, 0},
                      expected_scenario{"ms04-002-fixed", "ms04-002", ntlm, ntlm, false, false, 0},
                      expected_scenario{"kb832749-workaround", "no-reuse", ntlm, ntlm, false, false, 0},
                      expected_scenario{"kerberos-default", "legacy", negotiate, negotiate, false, false, 0},
                      expected_scenario{"kerberos-persist", "legacy", negotiate, negotiate, true, false, 0},
                      expected_scenario{"wss-misconfig", "ms04-002", negotiate, ntlm, false, false, 0},
                      expected_scenario{"wss-misconfig-require-kerberos", "ms04-002", negotiate, ntlm, false, true, 0},
                      expected_scenario{"modern-pinned", "pinned", ntlm, ntlm, false, false, 0}),
    [](const auto& row) {
        std::string n = row.param.name;
        std::replace(n.begin(), n.end(), '-', '_');
        return n;
    });

TEST(Scenarios, DefaultIsTheEmbeddedDefaultTopology) {
    EXPECT_EQ(to_json(load_scenario("default")), to_json(default_topology()));
}

}  // namespace
}  // namespace exsim::common
