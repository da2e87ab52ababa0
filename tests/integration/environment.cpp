#include "environment.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <thread>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/json.hpp>
#include <fmt/format.h>

#include "exsim/common/base64.hpp"
#include "exsim/common/log.hpp"

namespace exsim::testing {
namespace fs = std::filesystem;
namespace beast = boost::beast;
using tcp = boost::asio::ip::tcp;

common::topology test_topology() {
    auto t = common::default_topology();
    t.backends.push_back({"be3", "be3.exsim.test", {"Negotiate", "NTLM"}, true});
    t.users.push_back({"erin", "erin-pw", "be1", {}});
    t.users.push_back({"frank", "frank-pw", "be3", {}});
    t.users.push_back({"gina", "gina-pw", "be3", {}});
    for (auto& u : t.users)
        if (u.name == "alice") u.delegates = {"erin"};
    return t;
}

realm_environment& realm_environment::get() {
    static realm_environment env;
    return env;
}

void realm_environment::set_up() {
    common::set_log_level("warn");
    topology_ = test_topology();
    dir_ = fs::temp_directory_path() / fmt::format("exsim-it-{}", getpid());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    realm_ = std::make_unique<auth::realm>(auth::realm::create(topology_, dir_));
    realm_->apply_environment();
    realm_->start_kdc();
    for (const auto& b : topology_.backends) {
        auto s = start_backend(b.name);
        servers_[b.name] = std::move(s);
    }
}

void realm_environment::tear_down() {
    servers_.clear();
    if (realm_) realm_->stop_kdc();
    realm_.reset();
    fs::remove_all(dir_);
}

std::unique_ptr<backend::server> realm_environment::start_backend(const std::string& name, bool with_keytab,
                                                                  backend::server_limits limits) {
    backend::server_options o;
    o.backend = name;
    o.threads = 2;
    o.state_dir = dir_;
    o.limits = limits;
    o.acceptor.keytab = with_keytab ? realm_->paths().keytab(name) : dir_ / "no-such.keytab";
    o.acceptor.ntlm_user_file = realm_->paths().ntlm_user_file(name);
    o.acceptor.realm = topology_.realm;
    o.acceptor.ntlm_domain = topology_.ntlm_domain;
    auto s = std::make_unique<backend::server>(topology_, o);
    s->start();
    return s;
}

std::shared_ptr<const auth::user_credentials> realm_environment::credentials(const std::string& user,
                                                                             auth::initiator_mode mode,
                                                                             const std::string& password) {
    auto r = auth::acquire_user_credentials(user, password.empty() ? user + "-pw" : password, mode, topology_.realm,
                                            topology_.ntlm_domain);
    EXPECT_TRUE(r.credentials) << r.error;
    return r.credentials;
}

connection::connection(std::uint16_t port) : stream_(ioc_) {
    stream_.expires_after(std::chrono::seconds(10));
    stream_.connect(tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), port));
}

response connection::request(http::verb method, const std::string& target,
                             const std::map<std::string, std::string>& headers, const std::string& body) {
    http::request<http::string_body> req{method, target, 11};
    req.set(http::field::host, "backend.exsim.test");
    for (const auto& [k, v] : headers) req.set(k, v);
    if (!body.empty() || method == http::verb::post) {
        req.body() = body;
        req.prepare_payload();
    }
    stream_.expires_after(std::chrono::seconds(10));
    http::write(stream_, req);
    response res;
    http::read(stream_, buffer_, res);
    return res;
}

response connection::authenticated(auth::initiator& ini, http::verb method, const std::string& target,
                                   const std::string& body, const std::map<std::string, std::string>& extra) {
    auto step = ini.step({});
    const std::string scheme(auth::scheme_name(ini.http_scheme()));
    for (int leg = 0; leg < 8; ++leg) {
        if (step.status == auth::step_status::failed) throw std::runtime_error("initiator failed: " + step.error);
        auto h = extra;
        h["Authorization"] = scheme + " " + common::base64_encode(step.token.data(), step.token.size());
        auto res = request(method, target, h, body);
        std::optional<std::vector<std::uint8_t>> token;
        for (const auto& challenge : headers(res, http::field::www_authenticate))
            if (challenge.rfind(scheme + " ", 0) == 0) token = common::base64_decode(challenge.substr(scheme.size() + 1));
        if (res.result() != http::status::unauthorized) {
            if (token) step = ini.step(*token);  // the final (mutual authentication) token
            if (step.status == auth::step_status::failed) throw std::runtime_error("mutual auth: " + step.error);
            return res;
        }
        if (!token) return res;
        step = ini.step(*token);
    }
    throw std::runtime_error("handshake did not finish");
}

bool connection::open() {
    // A closed peer shows as EOF on a short read attempt.
    stream_.expires_after(std::chrono::milliseconds(500));
    beast::error_code ec;
    char c;
    stream_.socket().non_blocking(true);
    stream_.socket().receive(boost::asio::buffer(&c, 1), tcp::socket::message_peek, ec);
    stream_.socket().non_blocking(false);
    return ec == boost::asio::error::would_block;
}

void connection::write_raw(const std::string& bytes) {
    stream_.expires_after(std::chrono::seconds(10));
    boost::asio::write(stream_, boost::asio::buffer(bytes));
}

std::optional<response> connection::read_response(bool to_head) {
    stream_.expires_after(std::chrono::seconds(10));
    http::response_parser<http::string_body> parser;
    parser.skip(to_head);
    beast::error_code ec;
    http::read(stream_, buffer_, parser, ec);
    if (ec) return std::nullopt;
    return parser.release();
}

std::string header(const response& res, http::field f) {
    auto it = res.find(f);
    return it == res.end() ? std::string() : std::string(it->value());
}

std::string basic(const std::string& user, const std::string& password) {
    return "Basic " + common::base64_encode(user + ":" + (password.empty() ? user + "-pw" : password));
}

std::vector<std::string> headers(const response& res, http::field f) {
    std::vector<std::string> out;
    auto range = res.equal_range(f);
    for (auto it = range.first; it != range.second; ++it) out.emplace_back(it->value());
    return out;
}

std::vector<std::string> message_ids(const response& res) {
    std::vector<std::string> ids;
    boost::system::error_code ec;
    const auto v = boost::json::parse(res.body(), ec);
    const auto* list = !ec && v.is_object() ? v.as_object().if_contains("messages") : nullptr;
    if (!list || !list->is_array()) {
        ADD_FAILURE() << "not a message list (" << res.result_int() << "): " << res.body().substr(0, 300);
        return ids;
    }
    for (const auto& m : list->as_array()) {
        const auto* id = m.is_object() ? m.as_object().if_contains("id") : nullptr;
        if (!id || !id->is_string()) {
            ADD_FAILURE() << "a message without an id: " << boost::json::serialize(m);
            continue;
        }
        ids.emplace_back(id->as_string());
    }
    return ids;
}

audit_since audit_since::of_file(std::filesystem::path file) {
    audit_since a;
    a.file_ = std::move(file);
    a.start_ = backend::read_audit_log(a.file_).size();
    return a;
}

audit_since::audit_since(const std::string& backend) : audit_since(of_file(realm_environment::get().server(backend).audit_log_file())) {}

std::vector<backend::audit_record> audit_since::records() const {
    auto all = backend::read_audit_log(file_);
    if (all.size() <= start_) return {};
    return {all.begin() + static_cast<std::ptrdiff_t>(start_), all.end()};
}

bool eventually(const std::function<bool()>& condition, std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!condition()) {
        if (std::chrono::steady_clock::now() >= deadline) return condition();
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return true;
}

std::chrono::milliseconds time_of(const std::function<void()>& work) {
    const auto start = std::chrono::steady_clock::now();
    work();
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start);
}

std::chrono::milliseconds bound(std::chrono::milliseconds promised, std::chrono::milliseconds baseline, int factor,
                                std::chrono::milliseconds floor) {
    return promised + std::max(floor, factor * baseline);
}

}  // namespace exsim::testing

namespace {
class global_environment : public ::testing::Environment {
public:
    void SetUp() override { exsim::testing::realm_environment::get().set_up(); }
    void TearDown() override { exsim::testing::realm_environment::get().tear_down(); }
};
}  // namespace

int main(int argc, char** argv) {
    ::testing::InitGoogleTest(&argc, argv);
    ::testing::AddGlobalTestEnvironment(new global_environment);
    const int status = RUN_ALL_TESTS();
    // ctest runs this program with --gtest_filter (tests/CMakeLists.txt): a filter that no longer
    // names any test (a suite renamed) would otherwise pass having run nothing.
    if (::testing::UnitTest::GetInstance()->test_to_run_count() == 0) {
        std::fprintf(stderr, "exsim_integration_tests: --gtest_filter selected no test\n");
        return 1;
    }
    return status;
}
