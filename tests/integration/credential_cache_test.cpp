// Initiator credentials are acquired from the password once per user and mode, and acquisition
// (which may reach the KDC) runs on the cache's blocking pool, never on the caller's event loop.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <optional>
#include <stdexcept>
#include <thread>

#include <boost/asio/io_context.hpp>

#include "environment.hpp"

namespace exsim::testing {
namespace {

using auth::initiator_mode;
using ::testing::HasSubstr;

realm_environment& env() { return realm_environment::get(); }

auth::credential_cache make_cache(std::chrono::seconds max_age = std::chrono::hours(1)) {
    return auth::credential_cache(env().topology().realm, env().topology().ntlm_domain, 2, max_age);
}

TEST(CredentialCache, AcquiresOncePerUserAndMode) {
    auto cache = make_cache();
    auto first = cache.get("alice", "alice-pw", initiator_mode::kerberos);
    ASSERT_TRUE(first.credentials) << first.error;
    auto again = cache.get("alice", "alice-pw", initiator_mode::kerberos);
    EXPECT_EQ(first.credentials.get(), again.credentials.get());
    auto ntlm = cache.get("alice", "alice-pw", initiator_mode::ntlm);
    ASSERT_TRUE(ntlm.credentials) << ntlm.error;
    EXPECT_NE(first.credentials.get(), ntlm.credentials.get());
    EXPECT_EQ(cache.size(), 2u);
}

TEST(CredentialCache, ADifferentPasswordIsNotServedFromTheCache) {
    auto cache = make_cache();
    ASSERT_TRUE(cache.get("bob", "bob-pw", initiator_mode::kerberos).credentials);
    auto wrong = cache.get("bob", "guess", initiator_mode::kerberos);
    EXPECT_FALSE(wrong.credentials);
    EXPECT_THAT(wrong.error, HasSubstr("Preauthentication failed"));
}

TEST(CredentialCache, AcquiresAgainOnceMaxAgeHasPassed) {
    auto cache = make_cache(std::chrono::seconds(0));
    auto first = cache.get("alice", "alice-pw", initiator_mode::kerberos);
    ASSERT_TRUE(first.credentials) << first.error;
    auto second = cache.get("alice", "alice-pw", initiator_mode::kerberos);
    ASSERT_TRUE(second.credentials) << second.error;
    EXPECT_NE(first.credentials.get(), second.credentials.get()) << "max_age 0: every get acquires anew";
    EXPECT_EQ(cache.size(), 1u) << "the new credentials replace the old";
}

TEST(CredentialCache, AsyncGetRunsOffTheEventLoopAndPostsBack) {
    auto cache = make_cache();
    boost::asio::io_context ioc;
    const auto loop_thread = std::this_thread::get_id();
    bool done = false;
    cache.async_get("erin", "erin-pw", initiator_mode::kerberos, ioc.get_executor(), [&](auth::credential_result r) {
        EXPECT_TRUE(r.credentials) << r.error;
        EXPECT_EQ(std::this_thread::get_id(), loop_thread) << "the handler runs on the caller's executor";
        done = true;
    });
    // The loop has not run yet: whatever was acquired by now was acquired elsewhere.
    cache.join();
    EXPECT_EQ(cache.size(), 1u) << "the acquisition waited for the event loop";
    EXPECT_FALSE(done) << "the handler ran without the event loop";
    ioc.run_for(std::chrono::seconds(10));
    EXPECT_TRUE(done);
}

// Runs async_get to completion on a loop of its own.
auth::credential_result async_get(auth::credential_cache& cache, const std::string& user, initiator_mode mode,
                                  const std::string& service_host) {
    boost::asio::io_context ioc;
    std::optional<auth::credential_result> result;
    cache.async_get(user, user + "-pw", mode, ioc.get_executor(), [&](auth::credential_result r) { result = std::move(r); },
                    service_host);
    ioc.run_for(std::chrono::seconds(10));
    if (!result) throw std::runtime_error("async_get did not call back within 10 s");
    return *result;
}

TEST(CredentialCache, AsyncGetWithAServiceHostGetsItsTicket) {
    auto cache = make_cache();
    auto r = async_get(cache, "bob", initiator_mode::kerberos, "be1.exsim.test");
    EXPECT_TRUE(r.credentials) << r.error;
    EXPECT_TRUE(r.error.empty()) << r.error;
}

TEST(CredentialCache, AsyncGetWithAnUnknownServiceHostFailsNamingIt) {
    auto cache = make_cache();
    auto r = async_get(cache, "bob", initiator_mode::kerberos, "nosuch.exsim.test");
    EXPECT_FALSE(r.credentials);
    EXPECT_THAT(r.error, HasSubstr("nosuch.exsim.test"));
}

}  // namespace
}  // namespace exsim::testing
