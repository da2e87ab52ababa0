// exsim trace's --steps: what a trainer types, and the clear errors for what it cannot run.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "exsim/common/topology.hpp"
#include "exsim/lab/trace.hpp"

namespace exsim::lab {
namespace {
using ::testing::AllOf;
using ::testing::HasSubstr;

TEST(TraceSteps, UsersAloneReadTheInboxOfWhoeverTheBackEndAuthenticated) {
    const auto steps = parse_trace_steps("alice,bob,alice", common::default_topology());
    ASSERT_EQ(steps.size(), 3u);
    EXPECT_EQ(steps[1].user, "bob");
    EXPECT_EQ(steps[1].method, "GET");
    EXPECT_EQ(steps[1].path, "/exchange/");
}

TEST(TraceSteps, AMethodAndPathFollowTheUserAfterAColon) {
    const auto steps = parse_trace_steps("alice:GET /exchange/alice/Inbox/,bob:HEAD /exchange/", common::default_topology());
    ASSERT_EQ(steps.size(), 2u);
    EXPECT_EQ(steps[0].path, "/exchange/alice/Inbox/");
    EXPECT_EQ(steps[1].method, "HEAD");
}

struct bad_steps {
    const char* name;
    const char* text;
    const char* says;
};

class TraceStepsRefused : public ::testing::TestWithParam<bad_steps> {};

TEST_P(TraceStepsRefused, WithAMessageNamingTheOptionAndTheProblem) {
    try {
        parse_trace_steps(GetParam().text, common::default_topology());
        FAIL() << "accepted " << GetParam().text;
    } catch (const common::config_error& e) {
        EXPECT_THAT(e.what(), AllOf(HasSubstr("--steps"), HasSubstr(GetParam().says)));
    }
}

INSTANTIATE_TEST_SUITE_P(
    Rows, TraceStepsRefused,
    ::testing::Values(bad_steps{"unknown_user", "alice,mallory", "no user 'mallory'"},
                      bad_steps{"empty", "", "no user ''"},
                      bad_steps{"trailing_comma", "alice,", "no user ''"},
                      bad_steps{"no_path", "alice:GET", "is not USER or USER:METHOD PATH"},
                      bad_steps{"a_send", "alice:POST /exchange/alice/Outbox/", "only GET and HEAD"},
                      bad_steps{"relative_path", "alice:GET exchange/", "must start with /"}),
    [](const auto& row) { return std::string(row.param.name); });

}  // namespace
}  // namespace exsim::lab
