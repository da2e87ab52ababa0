// Initiator credentials are acquired from the password once per user and mode, and acquisition
// (which may reach the KDC) runs on the cache's blocking pool, never on the caller's event loop.

#include <gtest/gtest.h>

#include <thread>

#include <boost/asio/io_context.hpp>

#include "environment.hpp"

namespace exsim::testing {
namespace {

using auth::initiator_mode;

TEST(CredentialCache, AcquiresOncePerUserAndMode) {
    auth::credential_cache cache("EXSIM.TEST", "EXSIM");
    auto first = cache.get("alice", "alice-pw", initiator_mode::kerberos);
    ASSERT_TRUE(first.credentials) << first.error;
    auto again = cache.get("alice", "alice-pw", initiator_mode::kerberos);
    EXPECT_EQ(first.credentials.get(), again.credentials.get());
    auto ntlm = cache.get("alice", "alice-pw", initiator_mode::ntlm);
    EXPECT_NE(first.credentials.get(), ntlm.credentials.get());
    EXPECT_EQ(cache.size(), 2u);
}

TEST(CredentialCache, ADifferentPasswordIsNotServedFromTheCache) {
    auth::credential_cache cache("EXSIM.TEST", "EXSIM");
    ASSERT_TRUE(cache.get("bob", "bob-pw", initiator_mode::kerberos).credentials);
    auto wrong = cache.get("bob", "guess", initiator_mode::kerberos);
    EXPECT_FALSE(wrong.credentials);
    EXPECT_NE(wrong.error.find("Preauthentication failed"), std::string::npos) << wrong.error;
}

TEST(CredentialCache, AsyncGetRunsOffTheEventLoopAndPostsBack) {
    auth::credential_cache cache("EXSIM.TEST", "EXSIM");
    boost::asio::io_context ioc;
    const auto loop_thread = std::this_thread::get_id();
    bool done = false;
    cache.async_get("erin", "erin-pw", initiator_mode::kerberos, ioc.get_executor(), [&](auth::credential_result r) {
        EXPECT_TRUE(r.credentials) << r.error;
        EXPECT_EQ(std::this_thread::get_id(), loop_thread) << "the handler runs on the caller's executor";
        done = true;
    });
    EXPECT_FALSE(done) << "nothing ran inline";
    ioc.run_for(std::chrono::seconds(10));
    EXPECT_TRUE(done);
}

}  // namespace
}  // namespace exsim::testing
