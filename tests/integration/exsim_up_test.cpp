// `exsim up` on the default topology, driven by real clients: curl --ntlm, and kinit + curl
// --negotiate, with only what endpoints.env says.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <csignal>
#include <fstream>
#include <regex>
#include <sstream>
#include <thread>

#include <fmt/format.h>
#include <sys/stat.h>

#include "exsim/common/process.hpp"
#include "tshark.hpp"

namespace exsim::testing {
namespace {
namespace fs = std::filesystem;
using ::testing::EndsWith;
using ::testing::HasSubstr;
using ::testing::Not;

std::map<std::string, std::string> read_env_file(const fs::path& file) {
    std::map<std::string, std::string> out;
    std::ifstream in(file);
    std::string line;
    static const std::regex re("^export ([A-Z0-9_]+)=(.*)$");
    std::smatch m;
    while (std::getline(in, line))
        if (std::regex_match(line, m, re)) out[m[1]] = m[2];
    return out;
}

std::string port_of(const std::string& addr) { return addr.substr(addr.rfind(':') + 1); }

// Starts `exsim up --state-dir DIR/state EXTRA...` in a new temporary DIR and waits for its
// endpoints.env to be complete (its last line, EXSIM_POLICY, is there); returns what it exports
// (empty or partial if it never finished the file).
std::map<std::string, std::string> bring_up(const std::string& prefix, const std::vector<std::string>& extra,
                                            fs::path& dir, std::unique_ptr<common::child_process>& process) {
    dir = fs::temp_directory_path() / fmt::format("{}-{}", prefix, getpid());
    fs::remove_all(dir);
    fs::create_directories(dir);
    std::vector<std::string> args{"up", "--state-dir", (dir / "state").string()};
    args.insert(args.end(), extra.begin(), extra.end());
    process = std::make_unique<common::child_process>(
        common::child_process::start(EXSIM_BINARY, args, {}, dir / "exsim-up.log"));
    const auto env_file = dir / "state" / "endpoints.env";
    auto complete = [&] {
        std::ifstream in(env_file);
        const std::string text{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
        return text.find("export EXSIM_POLICY=") != std::string::npos && text.ends_with("\n");
    };
    for (int i = 0; i < 600 && !complete() && process->running(); ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    return read_env_file(env_file);
}

// curl -k -u USER:USER-pw URL through the front-end, with the response headers in the output.
common::run_result curl_as(const std::string& user, const std::string& url) {
    auto program = common::find_program("curl");
    EXPECT_TRUE(program);
    return common::run_program(*program, {"-s", "-S", "-k", "-D", "-", "-u", user + ":" + user + "-pw", url}, {});
}

// Waits (2 s at most) until the front-end's metrics say one back-end connection is idle: the
// one the last request used is back in the pool (it goes back just after the response's last
// byte, which a fast client on a loaded machine can beat).
bool one_idle_backend_connection(const std::string& metrics_url, const std::string& policy) {
    const auto series = "exsim_proxy_backend_connections_idle{policy=\"" + policy + "\"} 1\n";
    for (int i = 0; i < 100; ++i) {
        auto m = common::run_program(*common::find_program("curl"), {"-s", metrics_url}, {});
        if (m.output.find(series) != std::string::npos) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return false;
}

class ExsimUp : public ::testing::Test {
protected:
    static void SetUpTestSuite() { env_ = bring_up("exsim-up", {}, dir_, process_); }
    static void TearDownTestSuite() {
        if (process_) process_->stop();
        process_.reset();
        fs::remove_all(dir_);
    }

    void SetUp() override {
        ASSERT_TRUE(env_.count("EXSIM_BACKEND_BE1_URL")) << "exsim up did not write endpoints.env; log:\n"
                                                         << std::ifstream(dir_ / "exsim-up.log").rdbuf();
    }

    // Runs curl as a client of the topology; NTLM_USER_FILE must never be in a client's environment.
    common::run_result curl(std::vector<std::string> args, const std::string& backend,
                            std::map<std::string, std::string> extra_env = {}) {
        const auto upper = backend == "be1" ? std::string("BE1") : std::string("BE2");
        const auto url = env_.at("EXSIM_BACKEND_" + upper + "_URL");
        const auto host = url.substr(7, url.rfind(':') - 7);
        args.insert(args.begin(), {"-s", "-D", "-", "--resolve",
                                   fmt::format("{}:{}:127.0.0.1", host, port_of(env_.at("EXSIM_BACKEND_" + upper + "_ADDR")))});
        args.push_back(url + "/exchange/");
        extra_env["KRB5_CONFIG"] = env_.at("KRB5_CONFIG");
        extra_env["NTLM_USER_FILE"] = "/nonexistent";  // overrides any inherited one
        auto program = common::find_program("curl");
        EXPECT_TRUE(program);
        return common::run_program(*program, args, extra_env);
    }

    static inline fs::path dir_;
    static inline std::unique_ptr<common::child_process> process_;
    static inline std::map<std::string, std::string> env_;
};

TEST_F(ExsimUp, WritesEveryEndpoint) {
    for (const char* k : {"KRB5_CONFIG", "EXSIM_REALM", "EXSIM_NTLM_DOMAIN", "EXSIM_DIRECTORY", "EXSIM_BACKEND_BE1_URL",
                          "EXSIM_BACKEND_BE1_ADDR", "EXSIM_BACKEND_BE2_URL", "EXSIM_BACKEND_BE2_ADDR"})
        EXPECT_TRUE(env_.count(k)) << k;
    EXPECT_EQ(env_["EXSIM_REALM"], "EXSIM.TEST");
    EXPECT_EQ(env_["EXSIM_NTLM_DOMAIN"], "EXSIM");
    EXPECT_EQ(env_["EXSIM_BACKEND_BE1_URL"].rfind("http://be1.exsim.test:", 0), 0u);
}

TEST_F(ExsimUp, CurlNtlmGetsAlicesInboxFromBe1) {
    auto r = curl({"--ntlm", "-u", "EXSIM\\alice:alice-pw"}, "be1");
    EXPECT_THAT(r.output, HasSubstr("HTTP/1.1 200"));
    EXPECT_THAT(r.output, HasSubstr("X-Exsim-Mailbox: alice"));
    EXPECT_THAT(r.output, HasSubstr("X-Exsim-Identity: alice"));
}

TEST_F(ExsimUp, CurlNtlmGetsCarolsInboxFromBe2) {
    auto r = curl({"--ntlm", "-u", "EXSIM\\carol:carol-pw"}, "be2");
    EXPECT_THAT(r.output, HasSubstr("X-Exsim-Mailbox: carol"));
}

// The output holds the headers of every response (the first NTLM leg is a 401 anyway), then
// -w's final status.
TEST_F(ExsimUp, CurlNtlmWithAWrongPasswordGets401) {
    auto r = curl({"--ntlm", "-u", "EXSIM\\alice:wrong", "-o", "/dev/null", "-w", "%{http_code}"}, "be1");
    EXPECT_THAT(r.output, EndsWith("\r\n401"));
    EXPECT_THAT(r.output, Not(HasSubstr("X-Exsim-Mailbox")));
}

TEST_F(ExsimUp, CurlNegotiateWithATicketFromKinitGetsAlicesInbox) {
    const auto ccache = "FILE:" + (dir_ / "alice.cc").string();
    auto kinit = common::find_program("kinit");
    ASSERT_TRUE(kinit);
    auto k = common::run_program(*kinit, {"alice"}, {{"KRB5_CONFIG", env_.at("KRB5_CONFIG")}, {"KRB5CCNAME", ccache}},
                                 "alice-pw\n");
    ASSERT_EQ(k.exit_code, 0) << k.output;
    auto r = curl({"--negotiate", "-u", ":"}, "be1", {{"KRB5CCNAME", ccache}});
    EXPECT_THAT(r.output, HasSubstr("HTTP/1.1 200"));
    EXPECT_THAT(r.output, HasSubstr("X-Exsim-Mailbox: alice"));
    EXPECT_THAT(r.output, HasSubstr("WWW-Authenticate: Negotiate ")) << "mutual authentication token";
}

TEST_F(ExsimUp, CurlNegotiateWithoutATicketIsRefused) {
    auto r = curl({"--negotiate", "-u", ":", "-o", "/dev/null", "-w", "%{http_code}"}, "be1",
                  {{"KRB5CCNAME", "FILE:" + (dir_ / "empty.cc").string()}});
    EXPECT_THAT(r.output, EndsWith("\r\n401"));
    EXPECT_THAT(r.output, Not(HasSubstr("X-Exsim-Mailbox")));
}

TEST_F(ExsimUp, WritesTheProxyAndMetricsUrls) {
    ASSERT_TRUE(env_.count("EXSIM_PROXY_URL"));
    ASSERT_TRUE(env_.count("EXSIM_METRICS_URL"));
    EXPECT_EQ(env_["EXSIM_PROXY_URL"].rfind("https://127.0.0.1:", 0), 0u) << env_["EXSIM_PROXY_URL"];
    EXPECT_EQ(env_["EXSIM_METRICS_URL"].rfind("http://127.0.0.1:", 0), 0u) << env_["EXSIM_METRICS_URL"];
}

TEST_F(ExsimUp, CurlThroughTheProxyGetsBobsInboxUnderTheDefaultPolicy) {
    auto r = curl_as("bob", env_.at("EXSIM_PROXY_URL") + "/exchange/");
    EXPECT_EQ(r.exit_code, 0) << r.output;
    EXPECT_THAT(r.output, HasSubstr("HTTP/1.1 200"));
    EXPECT_THAT(r.output, HasSubstr("X-Exsim-Mailbox: bob"));
    EXPECT_THAT(r.output, HasSubstr("\"id\":\"bob."));
}

TEST_F(ExsimUp, MetricsUrlServesTheProxysCounters) {
    auto program = common::find_program("curl");
    ASSERT_TRUE(program);
    auto r = common::run_program(*program, {"-s", "-S", env_.at("EXSIM_METRICS_URL")}, {});
    EXPECT_EQ(r.exit_code, 0) << r.output;
    EXPECT_THAT(r.output, HasSubstr("exsim_proxy_"));
    EXPECT_THAT(r.output, HasSubstr("policy=\"ms04-002\""));
}

TEST_F(ExsimUp, StopsCleanlyOnSigtermWithItsKdc) {
    std::ifstream pidfile(dir_ / "state" / "realm" / "krb5kdc.pid");
    pid_t kdc = 0;
    pidfile >> kdc;
    ASSERT_GT(kdc, 0);
    kill(process_->pid(), SIGTERM);
    for (int i = 0; i < 100 && process_->running(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    EXPECT_FALSE(process_->running());
    EXPECT_EQ(process_->exit_code().value_or(-1), 0);
    struct stat st;
    EXPECT_NE(stat(fmt::format("/proc/{}", kdc).c_str(), &st), 0) << "krb5kdc still exists";
}

// The bug, end to end with real clients only: `exsim up` under legacy with NTLM-only back-ends
// at the default worker count (one per core); alice logs in, then bob is served alice's inbox,
// whichever workers their curl connections land on (one pool across the workers).
class ExsimUpLegacyNtlm : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        env_ = bring_up("exsim-up-legacy", {"--policy", "legacy", "--backend-auth", "ntlm"}, dir_, process_);
    }
    static void TearDownTestSuite() {
        if (process_) process_->stop();
        process_.reset();
        fs::remove_all(dir_);
    }
    void SetUp() override {
        ASSERT_TRUE(env_.count("EXSIM_PROXY_URL")) << "exsim up did not write endpoints.env; log:\n"
                                                   << std::ifstream(dir_ / "exsim-up.log").rdbuf();
    }

    static inline fs::path dir_;
    static inline std::unique_ptr<common::child_process> process_;
    static inline std::map<std::string, std::string> env_;
};

TEST_F(ExsimUpLegacyNtlm, CurlAsBobAfterAliceGetsAlicesInbox) {
    EXPECT_EQ(env_["EXSIM_POLICY"], "legacy");
    // Three alternations, each curl on a connection of its own (dealt to the workers in turn),
    // bob's once alice's back-end connection is idle again, as for a person typing them.
    auto idle_again = [&] { return one_idle_backend_connection(env_.at("EXSIM_METRICS_URL"), "legacy"); };
    int bob_as_alice = 0;
    for (int round = 0; round < 3; ++round) {
        auto alice = curl_as("alice", env_.at("EXSIM_PROXY_URL") + "/exchange/");
        EXPECT_EQ(alice.exit_code, 0) << alice.output;
        ASSERT_THAT(alice.output, HasSubstr("X-Exsim-Mailbox: alice"));
        ASSERT_TRUE(idle_again()) << "alice's back-end connection never went back to the pool";
        auto bob = curl_as("bob", env_.at("EXSIM_PROXY_URL") + "/exchange/");
        EXPECT_EQ(bob.exit_code, 0) << bob.output;
        EXPECT_THAT(bob.output, HasSubstr("HTTP/1.1 200"));
        ASSERT_TRUE(idle_again());
        if (bob.output.find("X-Exsim-Mailbox: alice") == std::string::npos) continue;
        ++bob_as_alice;
        EXPECT_THAT(bob.output, HasSubstr("\"id\":\"alice."));
    }
    EXPECT_EQ(bob_as_alice, 3) << "the MS04-002 bug did not show every time at the default worker count";
    std::ifstream log(dir_ / "exsim-up.log");
    const std::string text{std::istreambuf_iterator<char>(log), std::istreambuf_iterator<char>()};
    EXPECT_THAT(text, HasSubstr(fmt::format("({} workers", std::max(1u, std::thread::hardware_concurrency()))));
}

// The same, from the built-in scenario alone: it brings its policy and NTLM-only back-ends, and
// the default worker count. It shares the base's static members: GoogleTest runs one suite after
// the other, each starting and stopping its own.
class ExsimUpVulnerableScenario : public ExsimUpLegacyNtlm {
protected:
    static void SetUpTestSuite() { env_ = bring_up("exsim-up-scenario", {"--scenario", "ms04-002-vulnerable"}, dir_, process_); }
};

TEST_F(ExsimUpVulnerableScenario, CurlAsBobAfterAliceGetsAlicesInbox) {
    EXPECT_EQ(env_["EXSIM_POLICY"], "legacy");
    auto alice = curl_as("alice", env_.at("EXSIM_PROXY_URL") + "/exchange/");
    ASSERT_THAT(alice.output, HasSubstr("X-Exsim-Mailbox: alice"));
    ASSERT_TRUE(one_idle_backend_connection(env_.at("EXSIM_METRICS_URL"), "legacy"));
    auto bob = curl_as("bob", env_.at("EXSIM_PROXY_URL") + "/exchange/");
    EXPECT_THAT(bob.output, HasSubstr("X-Exsim-Mailbox: alice")) << "the MS04-002 bug did not show";
}

// The same under `exsim up --capture`: the file, read while exsim still runs (it is flushed
// twice a second), shows the crossing to tshark: bob's request with no Authorization on the
// stream alice's NTLM AUTHENTICATE opened, answered with her mailbox, and the comment that says so.
class ExsimUpCapture : public ExsimUpLegacyNtlm {
protected:
    static fs::path file() { return fs::temp_directory_path() / fmt::format("exsim-up-capture-{}.pcapng", getpid()); }
    static void SetUpTestSuite() {
        fs::remove(file());
        env_ = bring_up("exsim-up-capture", {"--scenario", "ms04-002-vulnerable", "--capture", file().string()}, dir_,
                        process_);
    }
    static void TearDownTestSuite() {
        ExsimUpLegacyNtlm::TearDownTestSuite();
        fs::remove(file());
    }
};

TEST_F(ExsimUpCapture, TsharkSeesBobServedAliceOnTheStreamOfHerLoginWhileExsimRuns) {
    EXPECT_EQ(env_["EXSIM_CAPTURE"], file().string());
    auto alice = curl_as("alice", env_.at("EXSIM_PROXY_URL") + "/exchange/");
    ASSERT_THAT(alice.output, HasSubstr("X-Exsim-Mailbox: alice"));
    ASSERT_TRUE(one_idle_backend_connection(env_.at("EXSIM_METRICS_URL"), "legacy"));
    auto bob = curl_as("bob", env_.at("EXSIM_PROXY_URL") + "/exchange/");
    ASSERT_THAT(bob.output, HasSubstr("X-Exsim-Mailbox: alice"));

    const std::string bobs = "http.request && !http.authorization && http.request.line contains \"On-Behalf-Of: bob\"";
    std::vector<std::vector<std::string>> requests;
    for (int i = 0; i < 50 && requests.empty(); ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        requests = tshark_rows(file(), bobs, {"tcp.stream", "frame.number"});
    }
    ASSERT_EQ(requests.size(), 1u) << "bob's request never reached the capture";
    const auto stream = requests[0][0], frame = requests[0][1];
    const auto logins = tshark_rows(file(), "ntlmssp.messagetype == 3 && tcp.stream == " + stream, {"ntlmssp.auth.username"});
    ASSERT_EQ(logins.size(), 1u);
    EXPECT_EQ(logins[0][0], "alice");
    const auto answer = tshark_rows(file(), "http.response && http.request_in == " + frame, {"http.response.line", "frame.comment"}, {}, 'a');
    ASSERT_EQ(answer.size(), 1u);
    EXPECT_THAT(answer[0][0], HasSubstr("X-Exsim-Mailbox: alice"));
    EXPECT_THAT(answer[0][1], HasSubstr("CROSS-USER: served alice's mailbox to bob"));
}

TEST(ExsimCli, UnknownScenarioExitsWith2ListingTheKnownOnes) {
    const auto dir = fs::temp_directory_path() / fmt::format("exsim-scn-{}", getpid());
    auto r = common::run_program(EXSIM_BINARY, {"up", "--scenario", "ms04-002-vulnerabel", "--state-dir", (dir / "state").string()}, {});
    EXPECT_EQ(r.exit_code, 2) << r.output;
    EXPECT_THAT(r.output, HasSubstr("unknown scenario 'ms04-002-vulnerabel'"));
    EXPECT_THAT(r.output, HasSubstr("ms04-002-vulnerable"));
    EXPECT_THAT(r.output, HasSubstr("wss-misconfig-require-kerberos"));
    EXPECT_FALSE(fs::exists(dir / "state")) << "nothing may be started";
    auto trace = common::run_program(EXSIM_BINARY, {"trace", "--scenario", "nope"}, {});
    EXPECT_EQ(trace.exit_code, 2) << trace.output;
    EXPECT_THAT(trace.output, HasSubstr("unknown scenario 'nope'"));
}

TEST(ExsimCli, ScenarioAndConfigTogetherIsAUsageError) {
    const auto dir = fs::temp_directory_path() / fmt::format("exsim-scn2-{}", getpid());
    auto r = common::run_program(EXSIM_BINARY, {"up", "--scenario", "ms04-002-fixed", "--config", "x.json",
                                                "--state-dir", (dir / "state").string()}, {});
    EXPECT_EQ(r.exit_code, 2) << r.output;
    EXPECT_THAT(r.output, HasSubstr("--scenario and --config"));
    EXPECT_FALSE(fs::exists(dir / "state"));
}

TEST(ExsimCli, ScenariosListsEachWithItsSummary) {
    auto r = common::run_program(EXSIM_BINARY, {"scenarios"}, {});
    EXPECT_EQ(r.exit_code, 0) << r.output;
    for (const char* name : {"ms04-002-vulnerable", "ms04-002-fixed", "kb832749-workaround", "kerberos-default",
                             "kerberos-persist", "wss-misconfig", "wss-misconfig-require-kerberos", "modern-pinned"})
        EXPECT_THAT(r.output, HasSubstr(name));
    EXPECT_THAT(r.output, HasSubstr("KB 832749"));
}

TEST(ExsimCli, ConfigurationTypoExitsWith2NamingFileAndField) {
    const auto dir = fs::temp_directory_path() / fmt::format("exsim-cfg-{}", getpid());
    fs::create_directories(dir);
    const auto cfg = dir / "typo.json";
    std::ofstream(cfg) << R"({"backends":[{"name":"be1","host":"be1.exsim.test","auth_provider":["NTLM"]}],"users":[]})";
    auto r = common::run_program(EXSIM_BINARY, {"up", "--config", cfg.string(), "--state-dir", (dir / "state").string()}, {});
    EXPECT_EQ(r.exit_code, 2) << r.output;
    EXPECT_THAT(r.output, HasSubstr("typo.json"));
    EXPECT_THAT(r.output, HasSubstr("backends[0].auth_provider"));
    EXPECT_THAT(r.output, HasSubstr("unknown key"));
    EXPECT_FALSE(fs::exists(dir / "state")) << "nothing may be started";
    fs::remove_all(dir);
}

}  // namespace
}  // namespace exsim::testing
