// The decision table of DESIGN.md section 5, row by row (proxy/src/policy.cpp).

#include <gtest/gtest.h>

#include "exsim/common/topology.hpp"
#include "exsim/proxy/policy.hpp"

namespace exsim::proxy {
namespace {

using auth::mechanism;

const connection_view fresh{mechanism::none, ""};
const connection_view alice_ntlm{mechanism::ntlm, "alice"};
const connection_view alice_kerberos{mechanism::kerberos, "alice"};

TEST(Policy, FactoryKnowsEveryNameOfTheConfiguration) {
    for (const auto& name : common::policy_names()) EXPECT_EQ(make_policy(name)->name(), name);
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

TEST(Policy, LegacyReusesAnAuthenticatedConnectionForAnotherUserWithoutReauthenticating) {
    auto p = make_policy("legacy");
    EXPECT_FALSE(p->must_authenticate(alice_ntlm, "bob"));  // the MS04-002 bug, kept faithfully
    EXPECT_FALSE(p->must_authenticate(alice_kerberos, "bob"));
    EXPECT_TRUE(p->must_authenticate(fresh, "bob"));
    EXPECT_EQ(p->after_response(alice_ntlm), disposal::pool);
    EXPECT_EQ(p->scope(), idle_scope::shared);
}

TEST(Policy, Ms04002NeverPoolsNtlmConnections) {
    auto p = make_policy("ms04-002");
    EXPECT_EQ(p->after_response(alice_ntlm), disposal::close);
    EXPECT_EQ(p->after_response(alice_kerberos), disposal::pool);
}

TEST(Policy, Ms04002ReauthenticatesEveryReuseEvenForTheSameUser) {
    auto p = make_policy("ms04-002");
    EXPECT_TRUE(p->must_authenticate(alice_kerberos, "alice"));
    EXPECT_TRUE(p->must_authenticate(alice_kerberos, "bob"));
}

TEST(Policy, NoReuseClosesEveryConnectionAndNeverLooksForAnIdleOne) {
    auto p = make_policy("no-reuse");
    EXPECT_EQ(p->scope(), idle_scope::none);
    EXPECT_EQ(p->after_response(alice_kerberos), disposal::close);
    EXPECT_EQ(p->after_response(alice_ntlm), disposal::close);
}

TEST(Policy, PinnedBindsNtlmToTheClientAndTreatsKerberosAsMs04002) {
    auto p = make_policy("pinned");
    EXPECT_EQ(p->after_response(alice_ntlm), disposal::pin);
    EXPECT_EQ(p->after_response(alice_kerberos), disposal::pool);
    EXPECT_FALSE(p->must_authenticate(alice_ntlm, "alice"));
    EXPECT_TRUE(p->must_authenticate(alice_ntlm, "bob"));
    EXPECT_TRUE(p->must_authenticate(alice_kerberos, "alice"));
}

TEST(Policy, PerUserKeepsConnectionsInTheUsersPartition) {
    auto p = make_policy("per-user");
    EXPECT_EQ(p->scope(), idle_scope::per_user);
    EXPECT_EQ(p->after_response(alice_ntlm), disposal::pool);
    EXPECT_FALSE(p->must_authenticate(alice_ntlm, "alice"));
    EXPECT_TRUE(p->must_authenticate(alice_ntlm, "bob"));
    EXPECT_TRUE(p->must_authenticate(alice_kerberos, "alice"));
}

TEST(Policy, AnonymousRequestsNeverAuthenticate) {
    for (const auto& name : common::policy_names()) EXPECT_FALSE(make_policy(name)->must_authenticate(fresh, ""));
}

}  // namespace
}  // namespace exsim::proxy
