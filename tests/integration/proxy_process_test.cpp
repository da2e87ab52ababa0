// The real `exsim proxy` binary in its own process, for the behaviours that have brought the
// front-end down: when it dies, this is one failed test (with its log), not the end of the
// test program. Only anonymous /exchweb/ requests, so it needs no Kerberos of its own.

#include <gtest/gtest.h>

#include <atomic>
#include <fstream>
#include <regex>
#include <sstream>
#include <thread>

#include <fmt/format.h>

#include "exsim/common/process.hpp"
#include "proxy_support.hpp"

namespace exsim::testing {
namespace {

using verb = http::verb;
using namespace std::chrono_literals;

class proxy_process {
public:
    // be1 and be2: "127.0.0.1:PORT" of the default topology's two back-ends.
    proxy_process(const std::string& be1, const std::string& be2) {
        static std::atomic<int> next{0};
        dir_ = realm_environment::get().dir() / fmt::format("proxy-process-{}", next++);
        std::filesystem::create_directories(dir_);
        process_ = common::child_process::start(
            EXSIM_BINARY,
            // The test realm's state folder: exsim proxy only reads its client files.
            {"proxy", "--state-dir", realm_environment::get().dir().string(), "--workers", "1", "--allow-insecure-http", "--backend",
             "be1=" + be1, "--backend", "be2=" + be2, "--log-level", "warn"},
            {}, dir_ / "proxy.log");
        static const std::regex url("export EXSIM_PROXY_URL=http://127\\.0\\.0\\.1:([0-9]+)");
        for (int i = 0; i < 300 && port_ == 0 && process_.running(); ++i) {
            std::smatch m;
            const auto text = log();
            if (std::regex_search(text, m, url)) port_ = static_cast<std::uint16_t>(std::stoi(m[1]));
            else std::this_thread::sleep_for(100ms);
        }
    }
    ~proxy_process() { process_.stop(); }

    std::uint16_t port() const { return port_; }
    bool running() { return process_.running(); }
    std::string log() const {
        std::ifstream in(dir_ / "proxy.log");
        std::stringstream s;
        s << in.rdbuf();
        return s.str();
    }
    // How it ended, for a failure message.
    std::string status() {
        if (process_.running()) return "the proxy is still running";
        return fmt::format("the proxy process died (exit {}); its log:\n{}", process_.exit_code().value_or(-1), log());
    }

private:
    std::filesystem::path dir_;
    common::child_process process_;
    std::uint16_t port_ = 0;
};

std::string backend_address(const std::string& name) {
    return fmt::format("127.0.0.1:{}", realm_environment::get().port(name));
}

// One request on its own connection; nullopt when no response came (refused, reset, closed).
std::optional<response> try_request(std::uint16_t port, verb method, const std::string& target, bool head = false) {
    try {
        connection c(port);
        if (!head) return c.request(method, target);
        c.write_raw(fmt::format("HEAD {} HTTP/1.1\r\nHost: proxy\r\n\r\n", target));
        return c.read_response(/*to_head=*/true);
    } catch (const std::exception&) {
        return std::nullopt;
    }
}

TEST(ProxyProcess, Answers502AndStaysUpWhenABackendClosesAFreshConnectionWithoutAnAnswer) {
    scripted_backend fake([](const auto&, std::size_t) { return scripted_backend::action::drop; });
    proxy_process proxy(fake.address(), backend_address("be2"));
    ASSERT_NE(proxy.port(), 0) << "exsim proxy did not start; " << proxy.status();
    for (int i = 0; i < 2; ++i) {
        auto res = try_request(proxy.port(), verb::get, "/exchweb/version.json");
        ASSERT_TRUE(res) << "request " << i << " got no response; " << proxy.status();
        EXPECT_EQ(res->result_int(), 502) << res->body();
        EXPECT_NE(res->body().find("be1"), std::string::npos) << res->body();
    }
    EXPECT_EQ(fake.requests().size(), 2u) << "a fresh connection is not retried";
    EXPECT_TRUE(proxy.running()) << proxy.status();
}

// A back-end that answers HEAD with a body (as Beast writes a whole message). The proxy reads
// the header and finds the body bytes left in its buffer: it must close that connection
// (pool.cpp release()), or they would be read as the start of the next response on it.
TEST(ProxyProcess, AnswersHeadAndNeverReusesABackendConnectionWithBytesLeftAfterIt) {
    scripted_backend fake([](const auto&, std::size_t) { return scripted_backend::action::answer; });
    proxy_process proxy(fake.address(), backend_address("be2"));
    ASSERT_NE(proxy.port(), 0) << "exsim proxy did not start; " << proxy.status();
    auto head = try_request(proxy.port(), verb::head, "/exchweb/version.json", /*head=*/true);
    ASSERT_TRUE(head) << proxy.status();
    EXPECT_EQ(head->result_int(), 200);
    EXPECT_TRUE(head->body().empty());

    auto res = try_request(proxy.port(), verb::get, "/exchweb/version.json");
    ASSERT_TRUE(res) << "GET after HEAD got no response; " << proxy.status();
    EXPECT_EQ(res->result_int(), 200) << res->body();
    EXPECT_EQ(res->body(), "scripted\n");

    const auto requests = fake.requests();
    ASSERT_EQ(requests.size(), 2u) << "the GET was sent once";
    EXPECT_EQ(requests[0].method(), verb::head);
    EXPECT_EQ(requests[1].method(), verb::get);
    EXPECT_EQ(fake.connections(), 2u) << "the connection the HEAD left bytes on was re-used";
    EXPECT_TRUE(proxy.running()) << proxy.status();
}

}  // namespace
}  // namespace exsim::testing
