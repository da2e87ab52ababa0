// `exsim check-proxy` as a user runs it: `--serve` starts the back-ends in one process, a proxy
// is put in front of them, and `--proxy` judges it. The proxies under test here are exsim's own
// front-end (a reverse proxy that authenticates users with Basic and the back-ends itself) under
// a leaking and a safe policy, and a stand-in that answers 200 by itself. The real nginx, HAProxy,
// Squid and Apache run in the `proxies` suite.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <functional>
#include <fstream>
#include <regex>
#include <thread>

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>
#include <fmt/format.h>

#include "exsim/common/net.hpp"
#include "exsim/common/process.hpp"

namespace exsim::testing {
namespace {
namespace fs = std::filesystem;
namespace json = boost::json;
using ::testing::HasSubstr;

std::string slurp(const fs::path& file) {
    std::ifstream in(file);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::map<std::string, std::string> read_env_file(const fs::path& file) {
    std::map<std::string, std::string> out;
    std::ifstream in(file);
    static const std::regex re("^export ([A-Z0-9_]+)=(.*)$");
    std::smatch m;
    for (std::string line; std::getline(in, line);)
        if (std::regex_match(line, m, re)) out[m[1]] = m[2];
    return out;
}

// Waits until `file` holds `marker` (or the process ends, or 60 s pass).
bool wait_for(const fs::path& file, const std::string& marker, common::child_process& p) {
    for (int i = 0; i < 600; ++i) {
        if (slurp(file).find(marker) != std::string::npos) return true;
        if (!p.running()) return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return false;
}

namespace http = boost::beast::http;
using request_t = http::request<http::string_body>;
using response_t = http::response<http::string_body>;

// A small HTTP/1.1 server on loopback, one thread per client connection kept alive, answering
// each request with `handle`: the proxies below that are not exsim's.
class test_server {
public:
    explicit test_server(std::function<response_t(const request_t&)> handle)
        : handle_(std::move(handle)), acceptor_(io_, {boost::asio::ip::make_address("127.0.0.1"), 0}) {
        thread_ = std::thread([this] {
            for (;;) {
                boost::asio::ip::tcp::socket s(io_);
                boost::system::error_code ec;
                acceptor_.accept(s, ec);
                if (ec || stopping_) return;
                std::thread([this, s = std::move(s)]() mutable { serve(std::move(s)); }).detach();
            }
        });
    }
    ~test_server() {
        stopping_ = true;
        boost::system::error_code ec;
        boost::asio::ip::tcp::socket wake(io_);
        wake.connect(acceptor_.local_endpoint(), ec);  // unblocks accept()
        thread_.join();
    }
    std::string address() const { return fmt::format("127.0.0.1:{}", acceptor_.local_endpoint().port()); }

private:
    void serve(boost::asio::ip::tcp::socket s) {
        boost::beast::flat_buffer buffer;
        for (;;) {
            request_t req;
            boost::system::error_code ec;
            http::read(s, buffer, req, ec);
            if (ec) return;
            auto res = handle_(req);
            res.keep_alive(req.keep_alive());
            res.prepare_payload();
            http::write(s, res, ec);
            if (ec || !req.keep_alive()) return;
        }
    }

    std::function<response_t(const request_t&)> handle_;
    boost::asio::io_context io_;
    boost::asio::ip::tcp::acceptor acceptor_;
    std::atomic<bool> stopping_{false};
    std::thread thread_;
};

// A stand-in that answers every request with `status` and a JSON body by itself, as a proxy's
// virtual-host mismatch, cache or error page does: no exsim back-end ever sees the requests.
std::function<response_t(const request_t&)> answers_by_itself(unsigned status) {
    return [status](const request_t&) {
        response_t res{static_cast<http::status>(status), 11};
        res.set(http::field::content_type, "application/json");
        res.body() = R"({"messages":[]})";
        return res;
    };
}

// A proxy that forwards each request on a new back-end connection and closes it after the
// response (by Host, to the back-end's address): correct for request-bound Kerberos, fatal to
// NTLM, whose handshake legs must share one connection.
std::function<response_t(const request_t&)> new_connection_per_request(std::map<std::string, std::string> by_host) {
    return [by_host = std::move(by_host)](const request_t& req) {
        response_t res{http::status::bad_gateway, 11};
        const auto it = by_host.find(std::string(req[http::field::host]));
        if (it == by_host.end()) return res;
        boost::asio::io_context io;
        boost::asio::ip::tcp::socket up(io);
        boost::system::error_code ec;
        const auto colon = it->second.rfind(':');
        up.connect({boost::asio::ip::make_address(it->second.substr(0, colon)),
                    static_cast<unsigned short>(std::stoi(it->second.substr(colon + 1)))}, ec);
        auto forwarded = req;
        forwarded.keep_alive(false);
        if (!ec) http::write(up, forwarded, ec);
        boost::beast::flat_buffer buffer;
        response_t answer;
        if (!ec) http::read(up, buffer, answer, ec);
        return ec ? res : answer;
    };
}

struct exsim_run {
    int exit_code = -1;
    std::string output;
    json::value report;  // the --json file, when written
};

class CheckProxy : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        dir_ = fs::temp_directory_path() / fmt::format("exsim-check-proxy-{}", getpid());
        fs::remove_all(dir_);
        fs::create_directories(dir_);
        backends_ = std::make_unique<common::child_process>(common::child_process::start(
            EXSIM_BINARY, {"check-proxy", "--serve", "--state-dir", (dir_ / "state").string()}, {}, dir_ / "serve.log"));
        wait_for(dir_ / "state" / "endpoints.env", "EXSIM_CHECK_PROXY=1", *backends_);
        env_ = read_env_file(dir_ / "state" / "endpoints.env");
    }
    static void TearDownTestSuite() {
        if (backends_) backends_->stop();
        backends_.reset();
        fs::remove_all(dir_);
    }
    void SetUp() override {
        ASSERT_TRUE(env_.count("EXSIM_BACKEND_BE4_ADDR")) << "check-proxy --serve wrote no endpoints.env; log:\n"
                                                         << slurp(dir_ / "serve.log");
    }

    // exsim's own front-end over plain HTTP in front of the four back-ends, under `policy`;
    // returns its address ("" when it did not start).
    std::string start_frontend(const std::string& policy, bool tls = false) {
        const auto log = dir_ / fmt::format("frontend-{}-{}.log", policy, tls);
        std::vector<std::string> args{"proxy", "--config", (dir_ / "state" / "directory.json").string(),
                                      "--state-dir", (dir_ / "state").string(), "--policy", policy};
        if (!tls) args.push_back("--allow-insecure-http");
        for (int i = 1; i <= 4; ++i)
            args.push_back(fmt::format("--backend=be{}={}", i, env_.at(fmt::format("EXSIM_BACKEND_BE{}_ADDR", i))));
        frontend_ = std::make_unique<common::child_process>(common::child_process::start(EXSIM_BINARY, args, {}, log));
        if (!wait_for(log, "EXSIM_METRICS_URL", *frontend_)) return {};
        const auto url = read_env_file(log).at("EXSIM_PROXY_URL");
        return url.substr(url.find("//") + 2);
    }

    static exsim_run run_exsim(std::vector<std::string> args, const std::string& json_name = {}) {
        exsim_run r;
        if (!json_name.empty()) args.insert(args.end(), {"--json", (dir_ / json_name).string()});
        const auto result = common::run_program(EXSIM_BINARY, args, {});
        r.exit_code = result.exit_code;
        r.output = result.output;
        if (!json_name.empty() && fs::exists(dir_ / json_name)) r.report = json::parse(slurp(dir_ / json_name));
        return r;
    }

    static exsim_run check(const std::string& proxy, const std::string& checks, const std::string& json_name) {
        std::vector<std::string> args{"check-proxy", "--proxy", proxy, "--state-dir", (dir_ / "state").string(),
                                      "--cost-seconds", "1"};
        if (!checks.empty()) args.insert(args.end(), {"--checks", checks});
        return run_exsim(args, json_name);
    }

    static std::map<std::string, std::string> verdicts(const exsim_run& r) {
        std::map<std::string, std::string> out;
        if (!r.report.is_object()) return out;
        for (const auto& c : r.report.at("checks").as_array())
            out[std::string(c.at("name").as_string())] = std::string(c.at("verdict").as_string());
        return out;
    }

    static const json::object& check_of(const exsim_run& r, const std::string& name) {
        for (const auto& c : r.report.at("checks").as_array())
            if (c.at("name").as_string() == name) return c.as_object();
        throw std::runtime_error("no check " + name);
    }

    static inline fs::path dir_;
    static inline std::unique_ptr<common::child_process> backends_;
    static inline std::map<std::string, std::string> env_;
    std::unique_ptr<common::child_process> frontend_;
};

// Every check runs; those whose outcome under legacy depends on what the pool holds from the
// checks before (abandoned-handshake, post-401-once, anonymous-interleaved, cost) are not asserted.
TEST_F(CheckProxy, ExsimFrontEndUnderLegacyLeaksOnTheConnectionBoundChecks) {
    const auto proxy = start_frontend("legacy");
    ASSERT_FALSE(proxy.empty());
    const auto r = check(proxy, "", "legacy.json");
    const auto v = verdicts(r);
    EXPECT_EQ(r.exit_code, 99) << r.output;
    ASSERT_EQ(v.size(), 10u) << r.output;
    for (const char* name : {"separate-connections", "concurrent-mix", "reauth-on-connection", "spnego-ntlm", "kerberos-persist"})
        EXPECT_EQ(v.at(name), "LEAK") << name << "\n" << r.output;
    EXPECT_EQ(v.at("kerberos"), "safe") << "Kerberos authenticates each request, even when legacy pools it\n" << r.output;
    const auto& first = check_of(r, "separate-connections");
    EXPECT_GT(first.at("audit_cross_user").as_int64(), 0);
    ASSERT_TRUE(first.contains("first_crossing")) << r.output;
    const auto& x = first.at("first_crossing").as_object();
    EXPECT_EQ(x.at("backend").as_string(), "be1");
    EXPECT_NE(x.at("user").as_string(), x.at("served_as").as_string());
    EXPECT_THAT(r.output, HasSubstr("check failed: separate-connections: LEAK"));
}

TEST_F(CheckProxy, ExsimFrontEndUnderMs04002IsSafeOnEveryCheck) {
    const auto proxy = start_frontend("ms04-002");
    ASSERT_FALSE(proxy.empty());
    const auto r = check(proxy, "", "ms04-002.json");
    for (const auto& [name, verdict] : verdicts(r)) EXPECT_EQ(verdict, "safe") << name << "\n" << r.output;
    EXPECT_EQ(verdicts(r).size(), 10u) << r.output;
    EXPECT_EQ(r.exit_code, 0) << r.output;
    // The cost: the same NTLM workload through the front-end and straight at be1.
    ASSERT_TRUE(r.report.at("cost").is_object()) << r.output;
    for (const char* side : {"through_proxy", "direct"}) {
        const auto& c = r.report.at("cost").at(side).as_object();
        EXPECT_GT(c.at("requests").as_int64(), 0) << side;
        EXPECT_EQ(c.at("errors").as_int64(), 0) << side;
        EXPECT_GT(c.at("p99_ms").as_double(), 0) << side;
    }
}

TEST_F(CheckProxy, AStandInThatAnswers200ByItselfIsNotForwardedNeverSafe) {
    test_server stand_in(answers_by_itself(200));
    const auto r = check(stand_in.address(), "separate-connections,concurrent-mix,kerberos", "stand-in.json");
    EXPECT_EQ(r.exit_code, 99) << r.output;
    const auto v = verdicts(r);
    ASSERT_EQ(v.size(), 3u) << r.output;
    for (const auto& [name, verdict] : v) EXPECT_EQ(verdict, "NOT-FORWARDED") << name << "\n" << r.output;
    EXPECT_THAT(r.output, HasSubstr("be1's audit log saw none of the probe's requests"));
}

TEST_F(CheckProxy, ExsimLoadAgainstTheStandInReportsUnattributedErrorsNotACleanRun) {
    test_server stand_in(answers_by_itself(200));
    const auto r = run_exsim({"load", "--passthrough", "--url", "http://be1.exsim.test", "--connect-to", stand_in.address(),
                              "--config", (dir_ / "state" / "directory.json").string(), "--state-dir",
                              (dir_ / "state").string(), "--requests", "20", "--mix", "list=1"},
                             "load-stand-in.json");
    EXPECT_EQ(r.exit_code, 99) << r.output;
    EXPECT_THAT(r.output, HasSubstr("unattributed"));
    ASSERT_TRUE(r.report.is_object()) << r.output;
    const auto& total = r.report.at("total").as_object();
    EXPECT_EQ(total.at("errors").as_int64(), 20) << r.output;
    EXPECT_EQ(total.at("errors_by_kind").at("unattributed").as_int64(), 20) << r.output;
}

TEST_F(CheckProxy, AProxyThatDropsTheBackendConnectionBetweenHandshakeLegsBreaksNtlmNotKerberos) {
    std::map<std::string, std::string> by_host;
    for (int i = 1; i <= 4; ++i) by_host[fmt::format("be{}.exsim.test", i)] = env_.at(fmt::format("EXSIM_BACKEND_BE{}_ADDR", i));
    test_server proxy(new_connection_per_request(by_host));
    const auto r = check(proxy.address(), "separate-connections,kerberos", "per-request.json");
    const auto v = verdicts(r);
    EXPECT_EQ(r.exit_code, 99) << r.output;
    EXPECT_EQ(v.at("separate-connections"), "BROKEN") << r.output;
    EXPECT_EQ(v.at("kerberos"), "safe") << r.output;
}

TEST_F(CheckProxy, NothingListeningIsOneClearErrorBeforeAnyLoad) {
    const auto r = check(fmt::format("127.0.0.1:{}", common::pick_free_port()), "", "");
    EXPECT_EQ(r.exit_code, 1) << r.output;
    EXPECT_THAT(r.output, HasSubstr("nothing listening on 127.0.0.1:"));
}

TEST_F(CheckProxy, TlsWherePlainHttpWasExpectedIsOneClearError) {
    const auto proxy = start_frontend("ms04-002", true);
    ASSERT_FALSE(proxy.empty());
    const auto r = check(proxy, "", "");
    EXPECT_EQ(r.exit_code, 1) << r.output;
    EXPECT_THAT(r.output, HasSubstr("TLS where plain HTTP was expected"));
}

TEST_F(CheckProxy, AProxyThatReachesNoBackendIsOneClearErrorNamingTheAddress) {
    test_server bad_gateway(answers_by_itself(502));
    const auto r = check(bad_gateway.address(), "", "");
    EXPECT_EQ(r.exit_code, 1) << r.output;
    EXPECT_THAT(r.output, HasSubstr(fmt::format("be1's audit log saw none of the probe's requests: does the proxy "
                                                "forward Host be1.exsim.test to {}?", env_.at("EXSIM_BACKEND_BE1_ADDR"))));
}

TEST_F(CheckProxy, AnUnknownCheckExitsWith2NamingIt) {
    const auto r = check("127.0.0.1:1", "separate-connection", "");
    EXPECT_EQ(r.exit_code, 2) << r.output;
    EXPECT_THAT(r.output, HasSubstr("--checks: unknown check 'separate-connection'"));
}

}  // namespace
}  // namespace exsim::testing
