// The policy table (proxy/src/policy.cpp), row by row: one parameterised test over the five
// policies, each case the row as a reader of the table would state it.

#include <gtest/gtest.h>

#include "exsim/common/topology.hpp"
#include "exsim/proxy/policy.hpp"

namespace exsim::proxy {
namespace {

using auth::mechanism;

const connection_view fresh{mechanism::none, ""};
const connection_view alice_ntlm{mechanism::ntlm, "alice"};
const connection_view alice_kerberos{mechanism::kerberos, "alice"};

// What one policy must decide. "reuse_X_as_Y": must a re-used connection X carry a new handshake
// for user Y's request?
struct expected_row {
    std::string name;
    lookup look;
    bool reuse_alice_ntlm_as_bob;
    bool reuse_alice_ntlm_as_alice;
    bool reuse_alice_kerberos_as_bob;
    bool reuse_alice_kerberos_as_alice;
    outcome ntlm_after;
    outcome kerberos_after;
};

constexpr outcome pooled{disposal::pool, close_reason::error};
constexpr outcome pinned{disposal::pin, close_reason::error};

const expected_row policy_rows[] = {
    // The MS04-002 bug, kept faithfully: an authenticated connection serves the next user as is.
    {"legacy", lookup::shared, false, false, false, false, pooled, pooled},
    {"ms04-002", lookup::shared, true, true, true, true, {disposal::close, close_reason::ntlm_not_pooled}, pooled},
    {"no-reuse", lookup::none, true, true, true, true, {disposal::close, close_reason::no_reuse},
     {disposal::close, close_reason::no_reuse}},
    {"pinned", lookup::pin_then_shared, true, false, true, true, pinned, pooled},
    {"per-user", lookup::user_partition, true, false, true, true, pooled, pooled},
};

class PolicyTable : public ::testing::TestWithParam<expected_row> {
protected:
    std::unique_ptr<pool_policy> policy = make_policy(GetParam().name);
};

TEST_P(PolicyTable, KnowsItsNameAndWhereToLook) {
    EXPECT_EQ(policy->name(), GetParam().name);
    EXPECT_EQ(policy->look(), GetParam().look);
}

TEST_P(PolicyTable, DecidesReauthenticationOnReuse) {
    const auto& row = GetParam();
    EXPECT_EQ(policy->must_authenticate(alice_ntlm, "bob", true), row.reuse_alice_ntlm_as_bob);
    EXPECT_EQ(policy->must_authenticate(alice_ntlm, "alice", true), row.reuse_alice_ntlm_as_alice);
    EXPECT_EQ(policy->must_authenticate(alice_kerberos, "bob", true), row.reuse_alice_kerberos_as_bob);
    EXPECT_EQ(policy->must_authenticate(alice_kerberos, "alice", true), row.reuse_alice_kerberos_as_alice);
    EXPECT_TRUE(policy->must_authenticate(fresh, "bob", true)) << "a connection no handshake ran on";
}

TEST_P(PolicyTable, AuthenticatesEveryNewConnectionAndAfterA401) {
    EXPECT_TRUE(policy->must_authenticate(fresh, "bob", false));
    EXPECT_TRUE(policy->authenticate_after_401("bob"));
}

TEST_P(PolicyTable, NeverAuthenticatesAnAnonymousRequest) {
    EXPECT_FALSE(policy->must_authenticate(fresh, "", false));
    EXPECT_FALSE(policy->must_authenticate(alice_ntlm, "", true));
    EXPECT_FALSE(policy->authenticate_after_401(""));
}

TEST_P(PolicyTable, DecidesWhatBecomesOfAConnectionAfterItsResponse) {
    const auto& row = GetParam();
    auto same = [](outcome a, outcome b) {
        return a.kept == b.kept && (a.kept != disposal::close || a.closed == b.closed);
    };
    EXPECT_TRUE(same(policy->after_response(alice_ntlm), row.ntlm_after));
    EXPECT_TRUE(same(policy->after_response(alice_kerberos), row.kerberos_after));
    EXPECT_TRUE(same(policy->after_response(fresh), row.kerberos_after)) << "a never-authenticated one is not NTLM";
    // A pin over its caps is never kept: it is closed as an NTLM connection under ms04-002.
    EXPECT_EQ(policy->row().over_pin_cap.kept, disposal::close);
    EXPECT_EQ(policy->row().over_pin_cap.closed, close_reason::ntlm_not_pooled);
}

INSTANTIATE_TEST_SUITE_P(Policy, PolicyTable, ::testing::ValuesIn(policy_rows),
                         [](const ::testing::TestParamInfo<expected_row>& row) {
                             std::string name = row.param.name;
                             for (auto& c : name)
                                 if (c == '-') c = '_';
                             return name;
                         });

TEST(Policy, TheTableHasARowForEveryNameOfTheConfiguration) {
    ASSERT_EQ(common::policy_names().size(), std::size(policy_rows));
    for (std::size_t i = 0; i < std::size(policy_rows); ++i) {
        EXPECT_EQ(common::policy_names()[i], policy_rows[i].name);
        EXPECT_EQ(make_policy(policy_rows[i].name)->row().kind, static_cast<common::policy_kind>(i));
    }
}

TEST(Policy, FactoryRefusesAnUnknownNameListingTheKnownOnes) {
    try {
        make_policy("legacyy");
        FAIL() << "no error";
    } catch (const common::config_error& e) {
        EXPECT_NE(std::string(e.what()).find("'legacyy'"), std::string::npos);
        EXPECT_NE(std::string(e.what()).find("ms04-002"), std::string::npos);
    }
}

}  // namespace
}  // namespace exsim::proxy
