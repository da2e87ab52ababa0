// The real `exsim proxy` binary in its own process, for the behaviours that have brought the
// front-end down: when it dies, this is one failed test (with its log), not the end of the
// test program. Only anonymous /exchweb/ requests, so it needs no Kerberos of its own.

#include <gtest/gtest.h>

#include <fmt/format.h>

#include "proxy_support.hpp"

namespace exsim::testing {
namespace {

using verb = http::verb;
using namespace std::chrono_literals;

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

// Each GET is retried once, on another new connection (a fresh connection can be closed by a
// back-end whose idle timeout ran out first), never more; then 502.
TEST(ProxyProcess, Answers502AndStaysUpWhenABackendClosesAFreshConnectionWithoutAnAnswer) {
    scripted_backend fake([](const auto&, std::size_t) { return scripted_backend::action::drop; });
    proxy_process proxy({{"be1", fake.address()}, {"be2", backend_address("be2")}});
    ASSERT_NE(proxy.port(), 0) << "exsim proxy did not start; " << proxy.status();
    for (int i = 0; i < 2; ++i) {
        auto res = try_request(proxy.port(), verb::get, "/exchweb/version.json");
        ASSERT_TRUE(res) << "request " << i << " got no response; " << proxy.status();
        EXPECT_EQ(res->result_int(), 502) << res->body();
        EXPECT_NE(res->body().find("be1"), std::string::npos) << res->body();
    }
    EXPECT_EQ(fake.requests().size(), 4u) << "each GET is sent twice: once, and one retry";
    EXPECT_EQ(fake.connections(), 4u);
    EXPECT_TRUE(proxy.running()) << proxy.status();
}

// A back-end that answers HEAD with a body (as Beast writes a whole message). The proxy reads
// the header and finds the body bytes left in its buffer: it must close that connection
// (pool.cpp release()), or they would be read as the start of the next response on it.
TEST(ProxyProcess, AnswersHeadAndNeverReusesABackendConnectionWithBytesLeftAfterIt) {
    scripted_backend fake([](const auto&, std::size_t) { return scripted_backend::action::answer; });
    proxy_process proxy({{"be1", fake.address()}, {"be2", backend_address("be2")}});
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
