// `exsim trace` as a trainer runs it (a process with its own realm, back-ends and front-end):
// the JSON steps say which connection carried each request, how it was obtained, the mechanism,
// the identity and the mailbox; legacy with NTLM crosses users on a pooled connection, and the
// fix and the modern pools over the same steps do not.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>

#include <boost/json.hpp>

#include <fmt/format.h>
#include <unistd.h>

#include "exsim/common/process.hpp"

namespace exsim::testing {
namespace {
namespace fs = std::filesystem;
namespace json = boost::json;
using ::testing::HasSubstr;
using ::testing::Not;

struct traced {
    int exit_code;
    std::string output;
    json::value doc;
};

traced run_trace(std::vector<std::string> args) {
    const auto state = fs::temp_directory_path() / fmt::format("exsim-trace-test-{}", ::getpid());
    fs::remove_all(state);
    args.insert(args.begin(), "trace");
    args.insert(args.end(), {"--state-dir", state.string()});
    auto r = common::run_program(EXSIM_BINARY, args, {});
    fs::remove_all(state);
    traced t{r.exit_code, r.output, {}};
    if (const auto brace = r.output.find('{'); brace != std::string::npos && r.exit_code == 0) {
        boost::system::error_code ec;
        t.doc = json::parse(r.output.substr(brace), ec);
    }
    return t;
}

const json::array& steps(const traced& t) { return t.doc.at("steps").as_array(); }
std::string str(const json::value& step, const char* key) { return std::string(step.at(key).as_string()); }

TEST(Trace, LegacyWithNtlmHandsAlicesConnectionToBobWhoIsServedHerMailbox) {
    const auto t = run_trace({"--json", "--policy", "legacy", "--backend-auth", "ntlm"});
    ASSERT_EQ(t.exit_code, 0) << t.output;
    const auto& s = steps(t);
    ASSERT_EQ(s.size(), 4u) << t.output;
    EXPECT_EQ(str(s[0], "user"), "alice");
    EXPECT_EQ(str(s[0], "obtained"), "new");
    EXPECT_EQ(str(s[0], "mechanism"), "ntlm");
    EXPECT_EQ(str(s[0], "mailbox"), "alice");
    EXPECT_FALSE(s[0].at("cross_user").as_bool());
    EXPECT_EQ(str(s[1], "user"), "bob");
    EXPECT_EQ(str(s[1], "obtained"), "pooled");
    EXPECT_EQ(s[1].at("connection"), s[0].at("connection"));
    EXPECT_FALSE(s[1].at("handshake").as_bool());
    EXPECT_EQ(str(s[1], "identity"), "alice");
    EXPECT_EQ(str(s[1], "mailbox"), "alice");
    EXPECT_TRUE(s[1].at("cross_user").as_bool());
    EXPECT_THAT(t.doc.at("explanation").as_string().c_str(), HasSubstr("MS04-002 bug"));
}

TEST(Trace, Ms04002WithNtlmClosesEveryNtlmConnectionAndNothingCrosses) {
    const auto t = run_trace({"--json", "--policy", "ms04-002", "--backend-auth", "ntlm"});
    ASSERT_EQ(t.exit_code, 0) << t.output;
    ASSERT_EQ(steps(t).size(), 4u) << t.output;
    for (const auto& step : steps(t)) {
        EXPECT_EQ(str(step, "obtained"), "new");
        EXPECT_EQ(str(step, "mechanism"), "ntlm");
        EXPECT_EQ(str(step, "mailbox"), str(step, "user"));
        EXPECT_FALSE(step.at("cross_user").as_bool());
    }
    EXPECT_EQ(t.doc.at("cross_user_responses").as_int64(), 0);
}

TEST(Trace, PinnedKeepsEachNtlmConnectionForTheClientThatAuthenticatedIt) {
    const auto t = run_trace({"--json", "--policy", "pinned", "--backend-auth", "ntlm"});
    ASSERT_EQ(t.exit_code, 0) << t.output;
    const auto& s = steps(t);
    ASSERT_EQ(s.size(), 4u) << t.output;
    EXPECT_EQ(str(s[2], "obtained"), "pinned");
    EXPECT_EQ(s[2].at("connection"), s[0].at("connection"));
    EXPECT_EQ(str(s[3], "obtained"), "pinned");
    EXPECT_EQ(s[3].at("connection"), s[1].at("connection"));
    for (const auto& step : s) EXPECT_FALSE(step.at("cross_user").as_bool()) << json::serialize(step);
}

TEST(Trace, LegacyWithKerberosAuthenticatesEveryRequestAndNothingCrosses) {
    const auto t = run_trace({"--json", "--policy", "legacy", "--backend-auth", "negotiate"});
    ASSERT_EQ(t.exit_code, 0) << t.output;
    for (const auto& step : steps(t)) {
        EXPECT_EQ(str(step, "mechanism"), "kerberos");
        EXPECT_TRUE(step.at("handshake").as_bool());
        EXPECT_FALSE(step.at("cross_user").as_bool());
    }
}

TEST(Trace, NarrationDecodesTheNtlmMessagesAndMarksTheCrossedResponse) {
    const auto t = run_trace({"--color", "never", "--policy", "legacy", "--backend-auth", "ntlm"});
    ASSERT_EQ(t.exit_code, 0) << t.output;
    EXPECT_THAT(t.output, HasSubstr("NTLM NEGOTIATE"));
    EXPECT_THAT(t.output, HasSubstr("NTLM CHALLENGE"));
    EXPECT_THAT(t.output, HasSubstr("user=EXSIM\\alice"));
    EXPECT_THAT(t.output, HasSubstr("WWW-Authenticate: NTLM"));
    EXPECT_THAT(t.output, HasSubstr("CROSS-USER: bob was served alice's mailbox"));
    EXPECT_THAT(t.output, HasSubstr("why: "));
    EXPECT_THAT(t.output, Not(HasSubstr("\x1b[")));
}

TEST(Trace, AnUnknownUserInStepsExitsWith2NamingTheOption) {
    const auto t = run_trace({"--steps", "alice,mallory"});
    EXPECT_EQ(t.exit_code, 2) << t.output;
    EXPECT_THAT(t.output, HasSubstr("--steps"));
    EXPECT_THAT(t.output, HasSubstr("mallory"));
}

}  // namespace
}  // namespace exsim::testing
