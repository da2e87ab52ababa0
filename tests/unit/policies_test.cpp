// The policy facts (common/policies.hpp): the one place that names the pool policies and says what
// each does, for the trace, the reports, the command line's help and the topology's validation.

#include <set>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "exsim/common/policies.hpp"
#include "exsim/common/topology.hpp"

namespace exsim::common {
namespace {

TEST(PolicyFacts, EveryPolicyHasItsNameConnectionLineAndExplanation) {
    ASSERT_EQ(policies().size(), static_cast<std::size_t>(policy_kind::count));
    for (std::size_t i = 0; i < policies().size(); ++i) {
        const auto& p = policies()[i];
        EXPECT_EQ(p.kind, static_cast<policy_kind>(i)) << "rows in policy_kind's order";
        EXPECT_FALSE(p.name.empty()) << "row " << i;
        EXPECT_FALSE(p.connection.empty()) << p.name << ": what it does to a connection";
        EXPECT_FALSE(p.explanation.empty()) << p.name << ": the explanation for trainers";
        EXPECT_EQ(p.connection.find('\n'), std::string_view::npos) << p.name << ": one line";
        EXPECT_EQ(p.explanation.find('\n'), std::string_view::npos) << p.name << ": one line";
    }
}

TEST(PolicyFacts, NamesAreUniqueAndFoundByName) {
    std::set<std::string_view> seen;
    for (const auto& p : policies()) {
        EXPECT_TRUE(seen.insert(p.name).second) << p.name;
        EXPECT_EQ(find_policy(p.name), p.kind);
        EXPECT_EQ(policy_name(p.kind), p.name);
    }
    EXPECT_EQ(policy_names().size(), policies().size());
    EXPECT_FALSE(find_policy("legacyy"));
}

TEST(PolicyFacts, OneIsTheFlawAndAnotherTheFixTheFrontEndStartsWith) {
    EXPECT_EQ(vulnerable_policy().kind, policy_kind::legacy);
    EXPECT_EQ(default_policy().kind, policy_kind::ms04_002);
    EXPECT_EQ(frontend_settings{}.policy, default_policy().name);
}

TEST(PolicyFacts, AnUnknownNameIsToldEveryKnownOne) {
    const auto message = unknown_policy("legacyy");
    EXPECT_THAT(message, ::testing::HasSubstr("'legacyy'"));
    for (const auto& name : policy_names()) EXPECT_THAT(message, ::testing::HasSubstr(name));
}

TEST(PolicyFacts, TheChoicesMarkTheDefault) {
    EXPECT_EQ(policy_choices(), "legacy | ms04-002 (default) | no-reuse | pinned | per-user");
}

}  // namespace
}  // namespace exsim::common
