// The realm's life cycle on its own folder: a KDC that is stopped leaves no zombie, a taken port
// gets a clear error.

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <fmt/format.h>
#include <sys/stat.h>

#include "exsim/auth/realm.hpp"
#include "exsim/common/net.hpp"

namespace exsim::testing {
namespace {
namespace fs = std::filesystem;

class RealmLifeCycle : public ::testing::Test {
protected:
    void SetUp() override {
        dir_ = fs::temp_directory_path() / fmt::format("exsim-realm-{}", getpid());
        fs::remove_all(dir_);
        t_ = common::default_topology();
        t_.users.resize(1);
    }
    void TearDown() override { fs::remove_all(dir_); }
    fs::path dir_;
    common::topology t_;
};

TEST_F(RealmLifeCycle, StoppedKdcLeavesNoZombie) {
    auto r = auth::realm::create(t_, dir_);
    r.start_kdc();
    const pid_t pid = r.kdc_pid();
    ASSERT_GT(pid, 0);
    EXPECT_TRUE(common::tcp_port_open(r.kdc_port()));
    r.stop_kdc();
    struct stat st;
    EXPECT_NE(stat(fmt::format("/proc/{}", pid).c_str(), &st), 0) << "krb5kdc was not reaped";
}

TEST_F(RealmLifeCycle, TakenPortIsAClearError) {
    boost::asio::io_context ioc;
    boost::asio::ip::tcp::acceptor taken(ioc, {boost::asio::ip::make_address("127.0.0.1"), 0});
    auto r = auth::realm::create(t_, dir_);
    try {
        r.start_kdc(taken.local_endpoint().port());
        FAIL() << "started on a taken port";
    } catch (const auth::realm_error& e) {
        EXPECT_NE(std::string(e.what()).find("already taken"), std::string::npos) << e.what();
    }
}

TEST_F(RealmLifeCycle, SameDirectoryIsReusedAndAChangedOneIsRecreated) {
    auto first = auth::realm::create(t_, dir_);
    EXPECT_FALSE(first.timings().reused);
    EXPECT_TRUE(auth::realm::create(t_, dir_).timings().reused);
    t_.users.push_back({"zoe", "zoe-pw", "be1", {}});
    EXPECT_FALSE(auth::realm::create(t_, dir_).timings().reused);
}

TEST_F(RealmLifeCycle, SettingsOutsideTheRealmDoNotRecreateIt) {
    auth::realm::create(t_, dir_);
    t_.frontend.policy = "legacy";
    t_.frontend.pool.max_connections = 3;
    t_.backends[0].auth_providers = {"NTLM"};
    t_.users[0].home = "be2";  // where a mailbox lives is not part of the realm either
    EXPECT_TRUE(auth::realm::create(t_, dir_).timings().reused);
}

TEST_F(RealmLifeCycle, OpenNeedsARealmMadeBeforeAndNamesWhatIsMissing) {
    try {
        auth::realm::open(t_, dir_);
        FAIL() << "opened a realm that does not exist";
    } catch (const auth::realm_error& e) {
        EXPECT_NE(std::string(e.what()).find("krb5.conf is missing"), std::string::npos) << e.what();
    }
    auth::realm::create(t_, dir_);
    EXPECT_NO_THROW(auth::realm::open(t_, dir_));
}

TEST_F(RealmLifeCycle, CreateWritesTheKerberosConfigurationKeytabNtlmUserFileAndMechFile) {
    auto r = auth::realm::create(t_, dir_);
    for (const auto& p : {r.paths().krb5_conf(), r.paths().kdc_conf(), r.paths().keytab("be1"),
                          r.paths().ntlm_user_file("be1"), r.paths().mech_file()})
        EXPECT_TRUE(fs::exists(p)) << p;
}

}  // namespace
}  // namespace exsim::testing
