// The traps of docs/design.md section 3 that silently authenticate the wrong user: acting as bob must be seen as
// bob, never as the first entry of an NTLM user file nor as a default Kerberos ticket.

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>

#include "environment.hpp"
#include "exsim/common/process.hpp"

namespace exsim::testing {
namespace {

using auth::initiator_mode;
using verb = http::verb;

realm_environment& env() { return realm_environment::get(); }

// Puts both traps in this process's environment for the duration of a test: an NTLM user file
// whose first entry is alice, and a default ccache holding alice's TGT.
class AuthTraps : public ::testing::Test {
protected:
    void SetUp() override {
        const auto dir = env().dir();
        const auto user_file = dir / "trap-ntlm-users";
        const auto& domain = env().topology().ntlm_domain;
        std::ofstream(user_file) << domain << ":alice:alice-pw\n" << domain << ":bob:bob-pw\n";
        const auto ccache = "FILE:" + (dir / "trap-alice.cc").string();
        auto kinit = common::find_program("kinit");
        ASSERT_TRUE(kinit) << "kinit (krb5-user) is missing";
        auto res = common::run_program(*kinit, {"alice"},
                                       {{"KRB5_CONFIG", env().realm().paths().krb5_conf().string()}, {"KRB5CCNAME", ccache}},
                                       "alice-pw\n");
        ASSERT_EQ(res.exit_code, 0) << res.output;
        setenv("NTLM_USER_FILE", user_file.c_str(), 1);
        setenv("KRB5CCNAME", ccache.c_str(), 1);
    }
    void TearDown() override { env().realm().apply_environment(); }

    // Authenticates as bob on `port` and returns who the back-end says it served.
    std::string served_as_bob(std::uint16_t port, initiator_mode mode, auth::mechanism expected) {
        auto creds = env().credentials("bob", mode);
        if (!creds) return "no credentials";
        auto ini = creds->make_initiator("be1.exsim.test");
        connection c(port);
        auto res = c.authenticated(*ini, verb::get, "/exchange/");
        EXPECT_EQ(res.result_int(), 200) << res.body();
        EXPECT_EQ(ini->negotiated(), expected);
        return std::string(res["X-Exsim-Identity"]);
    }
};

TEST_F(AuthTraps, KerberosAsBobIsSeenAsBob) {
    EXPECT_EQ(served_as_bob(env().port("be1"), initiator_mode::kerberos, auth::mechanism::kerberos), "bob");
}

TEST_F(AuthTraps, NegotiateAsBobIsSeenAsBob) {
    EXPECT_EQ(served_as_bob(env().port("be1"), initiator_mode::negotiate, auth::mechanism::kerberos), "bob");
}

TEST_F(AuthTraps, NegotiateFallingBackToNtlmAsBobIsSeenAsBob) {
    auto no_key = env().start_backend("be1", /*with_keytab=*/false);
    EXPECT_EQ(served_as_bob(no_key->port(), initiator_mode::negotiate, auth::mechanism::ntlm), "bob");
}

TEST_F(AuthTraps, NtlmAsBobIsSeenAsBob) {
    EXPECT_EQ(served_as_bob(env().port("be1"), initiator_mode::ntlm, auth::mechanism::ntlm), "bob");
}

TEST_F(AuthTraps, BobWithAlicesPasswordIsRefusedNotServedAsAlice) {
    for (auto mode : {initiator_mode::ntlm, initiator_mode::kerberos}) {
        auto r = auth::acquire_user_credentials("bob", "alice-pw", mode, env().topology().realm,
                                                env().topology().ntlm_domain);
        if (!r.credentials) continue;  // Kerberos: the KDC refuses it already
        auto ini = r.credentials->make_initiator("be1.exsim.test");
        connection c(env().port("be1"));
        auto res = c.authenticated(*ini, verb::get, "/exchange/");
        EXPECT_EQ(res.result_int(), 401) << auth::mode_name(mode);
        EXPECT_TRUE(res["X-Exsim-Identity"].empty());
    }
}

}  // namespace
}  // namespace exsim::testing
