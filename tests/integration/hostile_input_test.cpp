// Hostile input (issue 5; docs/design.md section 1: MS02-058 "every byte from the network is hostile",
// MS04-013 "canonicalize before you route or authorize", MS02-011 "authentication is not
// authorization"). One table per category, one row per case: the raw bytes written on a fresh
// connection, then the expected status, a substring of the body, and whether the server closes
// the connection. Each row runs against the front-end and, where it applies, straight against a
// back-end. "{login}" in a row's bytes logs the row's user in: Basic for the proxy; for a
// back-end an NTLM handshake runs first on the same connection (NTLM authenticates the
// connection), so the row's request itself carries no Authorization.
//
// Every row also checks that nothing of alice's mailbox came back, that a connection said to
// stay open still frames a next request, and that one said to close does close.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <sstream>
#include <thread>

#include <boost/algorithm/string/predicate.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/write.hpp>
#include <fmt/format.h>

#include "exsim/auth/gss.hpp"
#include "exsim/auth/token_decoder.hpp"
#include "exsim/common/base64.hpp"
#include "ntlm_bytes.hpp"
#include "proxy_support.hpp"

namespace exsim::testing {
namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
using tcp = net::ip::tcp;
using namespace std::chrono_literals;
using proxy::worker_metrics;
using ::testing::HasSubstr;
using ::testing::Not;
using bytes = std::vector<std::uint8_t>;
using steady = std::chrono::steady_clock;

realm_environment& env() { return realm_environment::get(); }

// ---- a raw client ----------------------------------------------------------------------------

// One TCP connection driven byte by byte. Every operation is asynchronous underneath so that
// beast::tcp_stream's timeouts apply (they do not to synchronous calls).
class raw_client {
public:
    explicit raw_client(std::uint16_t port) : stream_(ioc_) {
        stream_.expires_after(5s);
        beast::error_code ec;
        stream_.async_connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), port),
                              [&](beast::error_code e) { ec = e; });
        run();
        if (ec) throw std::runtime_error("connect: " + ec.message());
    }

    // Writes `data` at once, or one byte at a time with `pause` after each. False once the
    // server has closed (a write fails).
    bool write(std::string_view data, std::chrono::milliseconds pause = 0ms) {
        if (pause == 0ms) return write_some(data);
        for (std::size_t i = 0; i < data.size(); ++i) {
            if (!write_some(data.substr(i, 1))) return false;
            std::this_thread::sleep_for(pause);
        }
        return true;
    }

    // The next response; nullopt when the connection ended (or nothing came within `timeout`).
    std::optional<response> read(std::chrono::milliseconds timeout = 5s) {
        http::response_parser<http::string_body> parser;
        parser.body_limit(boost::none);
        stream_.expires_after(timeout);
        beast::error_code ec;
        http::async_read(stream_, buffer_, parser, [&](beast::error_code e, std::size_t) { ec = e; });
        run();
        error_ = ec;
        ended_ = ended(ec);
        if (ec) return std::nullopt;
        return parser.release();
    }

    std::optional<response> exchange(std::string_view request) {
        if (!write(request)) return std::nullopt;
        return read();
    }

    // Whether the server closed the connection (EOF or reset) within `timeout`, sending nothing
    // more. A timeout closes the socket on this side: call it last.
    bool closed_within(std::chrono::milliseconds timeout) {
        if (buffer_.size() != 0) return false;  // stray bytes after the response
        if (ended_) return true;                // read() saw the end already (epoll will not say it twice)
        char c;
        stream_.expires_after(timeout);
        beast::error_code ec;
        std::size_t n = 0;
        stream_.async_read_some(net::buffer(&c, 1), [&](beast::error_code e, std::size_t got) {
            ec = e;
            n = got;
        });
        run();
        return n == 0 && ended(ec);
    }

    // Logs the connection (to `backend`, by default the user's home) in as `user` with a real
    // NTLM handshake, and returns the final response.
    response ntlm_login(const std::string& user, const std::string& password = "", std::string backend = "") {
        if (backend.empty()) {
            const auto* home = env().topology().find_user(user);
            backend = home ? home->home : "be1";
        }
        const auto* be = env().topology().find_backend(backend);
        auto creds = auth::acquire_user_credentials(user, password.empty() ? user + "-pw" : password,
                                                    auth::initiator_mode::ntlm, env().topology().realm,
                                                    env().topology().ntlm_domain);
        if (!creds.credentials) throw std::runtime_error("NTLM credentials for " + user + ": " + creds.error);
        auto ini = creds.credentials->make_initiator(be->host);
        auto step = ini->step({});
        for (int leg = 0; leg < 4; ++leg) {
            auto res = exchange(fmt::format("GET /exchange/ HTTP/1.1\r\nHost: {}\r\nAuthorization: NTLM {}\r\n\r\n",
                                            be->host, common::base64_encode(step.token.data(), step.token.size())));
            if (!res) throw std::runtime_error("NTLM login of " + user + ": " + error_.message());
            std::optional<std::vector<std::uint8_t>> token;
            for (const auto& challenge : headers(*res, http::field::www_authenticate))
                if (challenge.rfind("NTLM ", 0) == 0) token = common::base64_decode(challenge.substr(5));
            if (res->result() != http::status::unauthorized || !token) return *res;
            step = ini->step(*token);
            if (step.status == auth::step_status::failed) throw std::runtime_error("NTLM: " + step.error);
        }
        throw std::runtime_error("NTLM handshake did not finish");
    }

    const beast::error_code& error() const { return error_; }

private:
    static bool ended(const beast::error_code& ec) {
        return ec == http::error::end_of_stream || ec == http::error::partial_message || ec == net::error::eof ||
               ec == net::error::connection_reset;
    }

    bool write_some(std::string_view data) {
        stream_.expires_after(5s);
        beast::error_code ec;
        net::async_write(stream_, net::buffer(data), [&](beast::error_code e, std::size_t) { ec = e; });
        run();
        return !ec;
    }

    void run() {
        ioc_.restart();
        ioc_.run();
    }

    net::io_context ioc_;
    beast::tcp_stream stream_;
    beast::flat_buffer buffer_;
    beast::error_code error_;
    bool ended_ = false;
};

// ---- NTLM and GSS tokens, byte by byte (MS-NLMP 2.2.1) ----------------------------------------

using ntlm::ascii;
using ntlm::cat;
using ntlm::put32;
using ntlm::utf16le;
using ntlm_message = ntlm::builder;
namespace flag = auth::ntlm_flag;


// A 40-byte NEGOTIATE with Version, as Windows sends.
bytes negotiate() {
    auto m = ntlm_message(1, 40).flags(12, flag::negotiate_unicode | flag::negotiate_oem | flag::request_target |
                                               flag::negotiate_ntlm | flag::negotiate_always_sign |
                                               flag::negotiate_extended_sessionsecurity | flag::negotiate_version |
                                               flag::negotiate_128 | flag::negotiate_56);
    m.msg[32] = 10;
    return m.msg;
}

// An AUTHENTICATE with an NTLMv2-shaped response; the names in UTF-16LE, or as given (OEM)
// when `oem_names`.
bytes authenticate(const bytes& domain, const bytes& user, bool oem_names = false) {
    bytes nt_response(72);
    for (std::size_t i = 0; i < nt_response.size(); ++i) nt_response[i] = static_cast<std::uint8_t>(i * 7);
    const std::uint32_t f = (oem_names ? flag::negotiate_oem : flag::negotiate_unicode) | flag::request_target |
                            flag::negotiate_ntlm | flag::negotiate_always_sign |
                            flag::negotiate_extended_sessionsecurity | flag::negotiate_target_info |
                            flag::negotiate_version | flag::negotiate_128 | flag::negotiate_key_exch | flag::negotiate_56;
    return ntlm_message(3, 88)
        .flags(60, f)
        .field(12, bytes(24, 0))
        .field(20, nt_response)
        .field(28, domain)
        .field(36, user)
        .field(44, utf16le(u"WS1"))
        .field(52, bytes(16, 0x5A))
        .msg;
}

bytes truncated(bytes b, std::size_t n) {
    b.resize(n);
    return b;
}

// DER tag, definite length, content.
bytes der(std::uint8_t tag, const bytes& content) {
    bytes out{tag};
    const std::size_t n = content.size();
    if (n < 0x80) out.push_back(static_cast<std::uint8_t>(n));
    else if (n < 0x100) out.insert(out.end(), {0x81, static_cast<std::uint8_t>(n)});
    else out.insert(out.end(), {0x82, static_cast<std::uint8_t>(n >> 8), static_cast<std::uint8_t>(n)});
    return cat({out, content});
}

const bytes oid_spnego{0x06, 0x06, 0x2B, 0x06, 0x01, 0x05, 0x05, 0x02};
const bytes oid_krb5{0x06, 0x09, 0x2A, 0x86, 0x48, 0x86, 0xF7, 0x12, 0x01, 0x02, 0x02};
const bytes oid_ntlmssp{0x06, 0x0A, 0x2B, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37, 0x02, 0x02, 0x0A};

// A SPNEGO NegTokenInit offering NTLMSSP with `inner` (a NEGOTIATE) inside, as Negotiate carries.
bytes spnego_with_ntlm(const bytes& inner = negotiate()) {
    return der(0x60, cat({oid_spnego, der(0xA0, der(0x30, cat({der(0xA0, der(0x30, oid_ntlmssp)),
                                                               der(0xA2, der(0x04, inner))})))}));
}

// A GSS-wrapped Kerberos token: krb5 OID, TOK_ID AP-REQ, then an (empty) AP-REQ.
bytes kerberos_token() { return der(0x60, cat({oid_krb5, {0x01, 0x00}, der(0x6E, der(0x30, {}))})); }

std::string b64(const bytes& b) { return common::base64_encode(b.data(), b.size()); }
std::string b64(std::string_view s) { return common::base64_encode(s); }

// ---- the table and its runner ----------------------------------------------------------------

struct outcome {
    int status;
    std::string says;  // a substring of the response body
    bool closes;       // the server closes the connection after answering
};

outcome keeps(int status, std::string says) { return {status, std::move(says), false}; }
outcome closes(int status, std::string says) { return {status, std::move(says), true}; }
const std::optional<outcome> not_applicable;

struct row {
    std::string name;
    std::string bytes;              // "{login}" is replaced (see the top of the file)
    std::optional<outcome> proxy;   // through the front-end
    std::optional<outcome> backend; // straight to a back-end
    std::string user{};             // who "{login}" logs in
    std::string backend_name{};     // default: the user's home, else be1
};

std::string home_of(const row& r) {
    if (!r.backend_name.empty()) return r.backend_name;
    const auto* u = env().topology().find_user(r.user);
    return u ? u->home : "be1";
}

std::string with_login(std::string request, const std::string& login) {
    if (auto at = request.find("{login}"); at != std::string::npos) request.replace(at, 7, login);
    return request;
}

// What every response must not be, whatever the row: anything served from alice's mailbox.
void expect_nothing_of_alice(const response& res) {
    EXPECT_THAT(res.body(), Not(HasSubstr("\"alice."))) << "one of alice's message ids came back";
    if (res.result_int() < 400) {
        EXPECT_NE(res["X-Exsim-Mailbox"], "alice");
        EXPECT_NE(res["X-Exsim-Identity"], "alice");
    }
}

std::string describe(const std::optional<response>& res) {
    if (!res) return "no response";
    return fmt::format("{} {}", res->result_int(), res->body().substr(0, 300));
}

void check(raw_client& c, const std::optional<response>& res, const outcome& want) {
    ASSERT_TRUE(res) << "no response: " << c.error().message();
    EXPECT_EQ(res->result_int(), want.status) << res->body();
    EXPECT_THAT(res->body(), HasSubstr(want.says));
    expect_nothing_of_alice(*res);
    if (want.closes) {
        EXPECT_FALSE(res->keep_alive()) << "the response does not say Connection: close";
        EXPECT_TRUE(c.closed_within(2s)) << "the connection stayed open";
    } else {
        EXPECT_TRUE(res->keep_alive()) << "closed a connection whose framing is intact";
        // The framing is intact: a next request on the same connection gets its own answer.
        auto next = c.exchange("GET /exchweb/version.json HTTP/1.1\r\nHost: exsim\r\n\r\n");
        ASSERT_TRUE(next) << "no answer to the next request: " << c.error().message();
        EXPECT_EQ(next->result_int(), 200) << next->body();
    }
}

using port_of = std::function<std::uint16_t(const std::string& backend)>;

void run_on_proxy(const row& r, std::uint16_t port) {
    SCOPED_TRACE(r.name + " (proxy)");
    raw_client c(port);
    c.write(with_login(r.bytes, r.user.empty() ? "" : fmt::format("Authorization: {}\r\n", basic(r.user))));
    auto res = c.read();
    check(c, res, *r.proxy);
}

void run_on_backend(const row& r, const port_of& backend_port) {
    const auto name = home_of(r);
    SCOPED_TRACE(r.name + " (" + name + ")");
    raw_client c(backend_port(name));
    if (!r.user.empty()) {
        ASSERT_EQ(c.ntlm_login(r.user, "", name).result_int(), 200) << "the NTLM login of " << r.user;
    }
    c.write(with_login(r.bytes, ""));
    auto res = c.read();
    check(c, res, *r.backend);
}

port_of environment_ports() {
    return [](const std::string& name) { return env().port(name); };
}

void run_rows(const std::vector<row>& rows, const proxy::server& p, const port_of& backend_port = environment_ports()) {
    for (const auto& r : rows) {
        if (r.proxy) run_on_proxy(r, p.port());
        if (r.backend) run_on_backend(r, backend_port);
    }
}

// The proxy survived every row and still serves an honest request.
void expect_still_serves_bob(const proxy::server& p) {
    auto bob = as_user(p, "bob");
    EXPECT_EQ(bob.result_int(), 200) << bob.body();
    EXPECT_EQ(bob["X-Exsim-Mailbox"], "bob");
}

std::string get(const std::string& target, const std::string& more_headers = "") {
    return fmt::format("GET {} HTTP/1.1\r\nHost: exsim\r\n{{login}}{}\r\n", target, more_headers);
}

std::string with_authorization(const std::string& value) {
    return fmt::format("GET /exchange/ HTTP/1.1\r\nHost: exsim\r\nAuthorization: {}\r\n\r\n", value);
}

// A front-end with these limits in front of the environment's back-ends (or `addresses`).
std::unique_ptr<proxy::server> start_limited_proxy(const proxy::proxy_limits& limits,
                                                   const std::map<std::string, std::string>& addresses = {}) {
    static std::atomic<int> next{0};
    proxy::proxy_options o;
    for (const auto& b : env().topology().backends) o.backends[b.name] = fmt::format("127.0.0.1:{}", env().port(b.name));
    for (const auto& [name, address] : addresses) o.backends[name] = address;
    o.allow_insecure_http = true;
    o.workers = 1;
    o.limits = limits;
    o.state_dir = env().dir() / fmt::format("hostile-proxy-{}", next++);
    std::filesystem::create_directories(o.state_dir);
    auto p = std::make_unique<proxy::server>(env().topology(), o);
    p->start();
    return p;
}

// ---- authorization headers and tokens ---------------------------------------------------------

TEST(HostileAuthorization, RefusesBadBase64TruncatedOversizedAndForeignTokens) {
    const auto log_in = keeps(401, "log in with Basic authentication");  // the proxy takes Basic only
    const auto logon_failed = keeps(401, "logon failed");
    const auto bad_base64 = keeps(400, "not valid base64");
    auto past_end = ntlm_message(1, 32).flags(12, flag::negotiate_oem | flag::negotiate_ntlm | flag::negotiate_oem_domain_supplied |
                                                              flag::negotiate_oem_workstation_supplied);
    past_end.claim(16, 0xFFFF, 0x7FFFFFF0).claim(24, 64, 32);
    const std::vector<row> rows{
        {"Basic, invalid base64", with_authorization("Basic !!not*base64"), log_in,
         keeps(401, "the scheme 'Basic' is not offered here")},
        {"Basic, base64 with a space inside", with_authorization("Basic " + b64("alice:alice-pw").insert(4, " ")),
         log_in, not_applicable},
        {"Basic, base64 without padding", with_authorization("Basic YWxpY2U6YWxpY2UtcHc"), log_in, not_applicable},
        {"Basic, no colon", with_authorization("Basic " + b64("alice")), log_in, not_applicable},
        {"Basic, empty user", with_authorization("Basic " + b64(":alice-pw")), log_in, not_applicable},
        {"Basic, nothing after the scheme", with_authorization("Basic"), log_in, not_applicable},
        {"Basic, header over 1 KiB", with_authorization("Basic " + b64("alice:" + std::string(1200, 'p'))), log_in,
         not_applicable},
        {"Negotiate, invalid base64", with_authorization("Negotiate YII%%%%"), log_in, bad_base64},
        {"NTLM, invalid base64", with_authorization("NTLM TlRMTVNTUAAB*=="), log_in, bad_base64, "", "be2"},
        {"NTLM, empty token", with_authorization("NTLM "), log_in, keeps(400, "token is missing"), "", "be2"},
        {"NTLM, signature only", with_authorization("NTLM " + b64(ascii(std::string_view("NTLMSSP\0", 8)))), log_in,
         logon_failed, "", "be2"},
        {"NTLM, truncated NEGOTIATE", with_authorization("NTLM " + b64(truncated(negotiate(), 20))), log_in,
         logon_failed, "", "be2"},
        {"NTLM, truncated AUTHENTICATE", with_authorization("NTLM " + b64(truncated(authenticate(utf16le(u"EXSIM"), utf16le(u"carol")), 60))),
         log_in, logon_failed, "", "be2"},
        {"NTLM, AUTHENTICATE with a 6000-character user name",
         with_authorization("NTLM " + b64(authenticate(utf16le(u"EXSIM"), utf16le(std::u16string(6000, u'c'))))), log_in,
         logon_failed, "", "be2"},
        {"NTLM, token larger than the header limit", with_authorization("NTLM " + b64(bytes(13 * 1024, 'N'))),
         closes(431, "exceed 16384 bytes"), closes(431, "exceed 16384 bytes"), "", "be2"},
        {"NTLM, NEGOTIATE claiming a domain and workstation past its end", with_authorization("NTLM " + b64(past_end.msg)),
         log_in, logon_failed, "", "be2"},
        {"Negotiate, SPNEGO around a NEGOTIATE claiming fields past its end",
         with_authorization("Negotiate " + b64(spnego_with_ntlm(past_end.msg))), log_in, logon_failed},
        {"NTLM scheme carrying a SPNEGO token", with_authorization("NTLM " + b64(spnego_with_ntlm())), log_in,
         logon_failed, "", "be2"},
        {"NTLM scheme carrying a Kerberos token", with_authorization("NTLM " + b64(kerberos_token())), log_in,
         logon_failed, "", "be2"},
        {"Negotiate to an NTLM-only back-end", with_authorization("Negotiate " + b64(spnego_with_ntlm())), log_in,
         keeps(401, "the scheme 'Negotiate' is not offered here"), "", "be2"},
        {"Negotiate carrying a malformed Kerberos token", with_authorization("Negotiate " + b64(kerberos_token())),
         log_in, logon_failed},
        {"Negotiate carrying garbage", with_authorization("Negotiate " + b64("hello world")), log_in, logon_failed},
        {"an unknown scheme", with_authorization("Kerberos " + b64(kerberos_token())), log_in,
         keeps(401, "the scheme 'Kerberos' is not offered here")},
    };
    auto p = start_proxy();
    audit_since be1("be1"), be2("be2");
    run_rows(rows, *p);
    EXPECT_EQ(metric(*p, &worker_metrics::login_failures), 0) << "none of these is a user's failed login";
    EXPECT_TRUE(be1.records().empty()) << "a hostile token was served";
    EXPECT_TRUE(be2.records().empty()) << "a hostile token was served";
    expect_still_serves_bob(*p);
}

// ---- unknown user and wrong password: one answer for both -------------------------------------

// The serialized header and body: byte-identical answers say nothing about which part was wrong.
std::string whole(const response& res) {
    std::ostringstream out;
    out << res.base() << res.body();
    return out.str();
}

TEST(HostileLogin, AnswersUnknownUsersAndWrongPasswordsWithTheSameBytes) {
    struct login {
        std::string name, user, password;
    };
    const std::vector<login> proxy_rows{
        {"wrong password", "alice", "not-alice-pw"},
        {"unknown user", "mallory", "mallory-pw"},
        {"unknown user with alice's password", "mallory", "alice-pw"},
        {"the password plus one character", "alice", "alice-pwX"},
        {"the password less one character", "alice", "alice-p"},
        {"empty password", "alice", ""},
        {"user name in capitals", "ALICE", "alice-pw"},
        {"user name with a trailing space", "alice ", "alice-pw"},
        {"user name with a non-UTF-8 byte", "alice\xff", "alice-pw"},
    };
    auto p = start_proxy();
    std::optional<std::string> first;
    for (const auto& l : proxy_rows) {
        SCOPED_TRACE(l.name + " (proxy)");
        raw_client c(p->port());
        const auto credentials = "Basic " + b64(l.user + ":" + l.password);
        auto res = c.exchange(fmt::format("GET /exchange/ HTTP/1.1\r\nHost: exsim\r\nAuthorization: {}\r\n\r\n", credentials));
        ASSERT_TRUE(res);
        EXPECT_EQ(res->result_int(), 401);
        EXPECT_THAT(res->body(), HasSubstr("unknown user or wrong password"));
        if (!first) first = whole(*res);
        EXPECT_EQ(whole(*res), *first) << "the answer differs from the first row's";
    }
    EXPECT_EQ(metric(*p, &worker_metrics::login_failures), static_cast<std::int64_t>(proxy_rows.size()));
    EXPECT_EQ(metric(*p, &worker_metrics::connections_opened), 0) << "nothing reaches a back-end";

    // The back-ends, with real NTLM handshakes (Kerberos refuses both at the KDC, before any
    // back-end sees a token).
    const std::vector<std::pair<std::string, login>> backend_rows{
        {"be2", {"wrong password", "carol", "not-carol-pw"}},
        {"be2", {"unknown user", "mallory", "mallory-pw"}},
        {"be2", {"a user of another back-end", "alice", "wrong"}},
        {"be1", {"wrong password", "bob", "not-bob-pw"}},
        {"be1", {"unknown user", "mallory", "mallory-pw"}},
        {"be1", {"unknown user with bob's password", "mallory", "bob-pw"}},
    };
    std::map<std::string, std::string> first_by_backend;
    for (const auto& [backend, l] : backend_rows) {
        SCOPED_TRACE(l.name + " (" + backend + ")");
        raw_client c(env().port(backend));
        response res;
        ASSERT_NO_THROW(res = c.ntlm_login(l.user, l.password, backend));
        EXPECT_EQ(res.result_int(), 401);
        EXPECT_THAT(res.body(), HasSubstr("logon failed"));
        auto [it, inserted] = first_by_backend.emplace(backend, whole(res));
        EXPECT_EQ(whole(res), it->second) << "the answer differs from the first row's on " << backend;
    }
}

// ---- limits -----------------------------------------------------------------------------------

TEST(HostileLimits, Answers431And413AndCloses) {
    constexpr std::size_t body_limit = 8 * 1024;
    auto be = env().start_backend("be1", true, backend::server_limits{.body_bytes = body_limit});
    auto p = start_limited_proxy({.body_bytes = body_limit}, {{"be1", fmt::format("127.0.0.1:{}", be->port())}});
    const port_of ports = [&](const std::string& name) { return name == "be1" ? be->port() : env().port(name); };
    auto audit = audit_since::of_file(be->audit_log_file());

    const auto fields = [](int n) {
        std::string out;
        for (int i = 0; i < n; ++i) out += fmt::format("X-H{}: {}\r\n", i, i);
        return out;
    };
    std::string large_headers;
    for (int i = 0; i < 40; ++i) large_headers += fmt::format("X-Large-{}: {}\r\n", i, std::string(500, 'x'));
    const auto post = [](const std::string& framing, const std::string& body) {
        return fmt::format("POST /exchange/Outbox/ HTTP/1.1\r\nHost: exsim\r\n{{login}}Content-Type: application/json\r\n{}\r\n{}",
                           framing, body);
    };
    std::string chunked_body;
    for (int i = 0; i < 12; ++i) chunked_body += fmt::format("400\r\n{}\r\n", std::string(1024, 'x'));
    chunked_body += "0\r\n\r\n";
    const auto too_large_header = closes(431, "exceed 16384 bytes");
    const auto too_large_body = closes(413, "exceeds 8192 bytes");
    const std::vector<row> rows{
        {"one header of 17 KiB", get("/exchange/", "X-Filler: " + std::string(17 * 1024, 'x') + "\r\n"),
         too_large_header, too_large_header, "bob"},
        {"40 headers of 500 bytes", get("/exchange/", large_headers), too_large_header, too_large_header, "bob"},
        {"a request line of 17 KiB", get("/exchange/" + std::string(17 * 1024, 'a')), too_large_header,
         too_large_header, "bob"},
        // With Host and Authorization: 100 fields in all, which the back-end takes with the
        // proxy's own added; then 101; then 200 (the back-end takes 128).
        {"100 header fields", get("/exchange/", fields(98)), keeps(200, "\"messages\""), keeps(200, "\"messages\""),
         "bob"},
        {"101 header fields", get("/exchange/", fields(99)), closes(431, "more than 100 header fields"),
         keeps(200, "\"messages\""), "bob"},
        {"200 header fields", get("/exchange/", fields(198)), closes(431, "more than 100 header fields"),
         closes(431, "more than 128 header fields"), "bob"},
        {"a target over 8 KiB", get("/exchange/" + std::string(9 * 1024, 'a') + "/"),
         keeps(400, "request target longer than 8 KiB"), not_applicable, "bob"},
        {"a declared body over the limit", post("Content-Length: 9000\r\n", "{"), too_large_body, too_large_body,
         "bob"},
        {"a declared body of 2^64-1 bytes", post("Content-Length: 18446744073709551615\r\n", "{"), too_large_body,
         too_large_body, "bob"},
        {"a Content-Length past 2^64", post("Content-Length: 18446744073709551616\r\n", "{"),
         closes(400, "malformed request"), closes(400, "malformed request"), "bob"},
        {"a chunked body over the limit", post("Transfer-Encoding: chunked\r\n", chunked_body), too_large_body,
         too_large_body, "bob"},
        {"a chunk size past 2^64", post("Transfer-Encoding: chunked\r\n", "1ffffffffffffffff\r\nx\r\n0\r\n\r\n"),
         closes(400, "malformed request"), closes(400, "malformed request"), "bob"},
    };
    run_rows(rows, *p, ports);
    for (const auto& r : audit.records()) EXPECT_NE(r.op, "send") << "an oversized request was acted on";
    expect_still_serves_bob(*p);
}

// ---- request smuggling: 400, and the connection closes ------------------------------------------

TEST(HostileSmuggling, AnswersAmbiguousFramingWith400AndCloses) {
    const auto post = [](const std::string& headers, const std::string& body) {
        return fmt::format("POST /exchange/Outbox/ HTTP/1.1\r\nHost: exsim\r\n{{login}}{}\r\n{}", headers, body);
    };
    const std::string smuggled = "GET /exchange/alice/ HTTP/1.1\r\nHost: exsim\r\n\r\n";
    const auto chunk = fmt::format("{:x}\r\n{}\r\n0\r\n\r\n", smuggled.size(), smuggled);
    const auto refused = closes(400, "malformed request");
    const auto te_refused = closes(400, "Transfer-Encoding");
    const auto fold_refused = closes(400, "obs-fold");
    std::vector<row> rows{
        {"Content-Length then Transfer-Encoding",
         post("Content-Length: 4\r\nTransfer-Encoding: chunked\r\n", "0\r\n\r\n" + smuggled), refused, refused},
        {"Transfer-Encoding then Content-Length",
         post("Transfer-Encoding: chunked\r\nContent-Length: 4\r\n", "0\r\n\r\n" + smuggled), refused, refused},
        {"two different Content-Lengths", post("Content-Length: 0\r\nContent-Length: 47\r\n", smuggled), refused,
         refused},
        {"a Content-Length list of two values", post("Content-Length: 0, 47\r\n", smuggled), refused, refused},
        {"a signed Content-Length", post("Content-Length: +47\r\n", smuggled), refused, refused},
        {"a space before the colon", post("Content-Length : 47\r\n", smuggled), refused, refused},
        {"Transfer-Encoding twice", post("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n", chunk), refused,
         refused},
        {"Transfer-Encoding not ending in chunked", post("Transfer-Encoding: chunked, identity\r\n", chunk),
         te_refused, te_refused},
        {"an unknown Transfer-Encoding", post("Transfer-Encoding: xchunked\r\n", chunk), te_refused, te_refused},
        {"an obs-folded header", post("Content-Length: 0\r\nX-Folded: a\r\n b\r\n", ""), fold_refused, fold_refused},
        {"obs-fold hiding Transfer-Encoding", post("Content-Length: 0\r\nX-Folded: a\r\n Transfer-Encoding: chunked\r\n", chunk),
         fold_refused, fold_refused},
        {"obs-fold with a tab", post("Content-Length: 0\r\nX-Folded: a\r\n\tb\r\n", ""), fold_refused, fold_refused},
        {"whitespace before the first header",
         "POST /exchange/Outbox/ HTTP/1.1\r\n Content-Length: 47\r\nHost: exsim\r\n{login}\r\n" + smuggled, fold_refused,
         fold_refused},
        {"two Host headers", "GET /exchange/ HTTP/1.1\r\nHost: exsim\r\nHost: be2.exsim.test\r\n{login}\r\n",
         closes(400, "Host"), closes(400, "Host")},
        {"bare LF line endings", "GET /exchange/ HTTP/1.1\nHost: exsim\nContent-Length: 47\n\n" + smuggled, refused,
         refused},
        {"a NUL in a header value", post(std::string("Content-Length: 0\r\nX-Nul: a\0b\r\n", 31), ""), refused,
         refused},
        {"a malformed chunk size", post("Transfer-Encoding: chunked\r\n", "zz\r\n" + smuggled), refused, refused},
    };
    for (auto& r : rows) r.user = "bob";  // logged in: the proxy would forward what it accepted
    auto p = start_proxy();
    audit_since be1("be1");
    run_rows(rows, *p);
    for (const auto& r : be1.records()) {  // only the back-end rows' own NTLM logins
        EXPECT_EQ(r.path, "/exchange/") << "a smuggled request reached a mailbox";
        EXPECT_EQ(r.identity, "bob");
        EXPECT_EQ(r.op, "list");
    }
    expect_still_serves_bob(*p);
}

// ---- canonicalize before you route or authorize (MS04-013) -------------------------------------

TEST(HostileTargets, NeverLetPercentEncodingOrDotSegmentsOpenAnotherMailbox) {
    // bob and alice share be1, so only the back-end's authorization check stands between them.
    const auto denied = keeps(403, "bob may not open the mailbox of alice");
    const auto not_canonical = keeps(400, "request path is not canonical");
    const auto refused = [](const std::string& why) { return keeps(400, "request target refused: " + why); };
    const std::vector<row> rows{
        {"/exchange/bob/../alice/", get("/exchange/bob/../alice/"), denied, not_canonical, "bob"},
        {"/exchange/alice/../bob/ as dave", get("/exchange/alice/../bob/"),
         keeps(404, "mailbox not on this back-end"), not_canonical, "dave"},
        {"/exchange/bob/../../exchange/alice/", get("/exchange/bob/../../exchange/alice/"), denied, not_canonical,
         "bob"},
        {"/exchange/../../etc/passwd", get("/exchange/../../etc/passwd"), refused("dot segment above the root"),
         not_canonical, "bob"},
        {"%2e%2e", get("/exchange/bob/%2e%2e/alice/"), denied, not_canonical, "bob"},
        {"%2E%2E%2F", get("/exchange/bob/%2E%2E%2Falice/"), refused("percent-encoded slash"), not_canonical, "bob"},
        {"%2F between segments", get("/exchange%2Falice/"), refused("percent-encoded slash"), not_canonical, "bob"},
        {"..%2f", get("/exchange/bob/..%2falice/"), refused("percent-encoded slash"), not_canonical, "bob"},
        {"%5C", get("/exchange%5Calice/"), refused("percent-encoded backslash"), not_canonical, "bob"},
        {"raw backslash", get("/exchange\\alice/"), refused("backslash in the request target"), not_canonical,
         "bob"},
        {"%00 after the name", get("/exchange/alice%00/"), refused("percent-encoded NUL"), not_canonical, "bob"},
        {"%00 inside the name", get("/exchange/al%00ice/"), refused("percent-encoded NUL"), not_canonical, "bob"},
        {"%2500 (encoded twice)", get("/exchange/alice%2500/"), not_canonical, not_canonical, "bob"},
        {"%252F (encoded twice)", get("/exchange/bob%252F..%252Falice/"), not_canonical, not_canonical, "bob"},
        {"%61 for a", get("/exchange/%61lice/"), denied, not_canonical, "bob"},
        {"..;/", get("/exchange/bob/..;/alice/"), not_canonical, not_canonical, "bob"},
        {"duplicate slashes", get("//exchange//alice/"), denied, not_canonical, "bob"},
        {"a dot segment", get("/exchange/./alice/"), denied, not_canonical, "bob"},
        {"a fragment", get("/exchange/bob/#/../alice/"), refused("fragment in the request target"), not_canonical,
         "bob"},
        {"absolute-form naming another back-end", get("http://be1.exsim.test/exchange/alice/"),
         refused("request target not in origin-form"), not_canonical, "bob"},
        {"capital letters", get("/exchange/ALICE/"), keeps(404, "no such mailbox"), keeps(404, "no such mailbox"),
         "bob"},
        {"a raw NUL in the target", get(std::string("/exchange/al\0ice/", 17)), closes(400, "malformed request"),
         closes(400, "malformed request"), "bob"},
        {"raw non-UTF-8 bytes in the target", get("/exchange/\xff\xfe/"), refused("malformed request target"),
         not_canonical, "bob"},
        {"percent-encoded invalid UTF-8", get("/exchange/%C3%28/"), not_canonical, not_canonical, "bob"},
        {"percent-encoded overlong slash", get("/exchange/bob%C0%AF..%C0%AFalice/"), not_canonical, not_canonical,
         "bob"},
        {"a control character in the query", get("/exchange/?a=%0d%0aX-Exsim-On-Behalf-Of:%20alice"),
         refused("percent-encoded control character in the query"), keeps(200, "\"messages\""), "bob"},
    };
    auto p = start_proxy();
    audit_since be1("be1");
    run_rows(rows, *p);
    for (const auto& r : be1.records()) {
        EXPECT_FALSE(r.mailbox == "alice" && r.status < 400) << r.path;
        EXPECT_NE(r.identity, "alice") << r.path;
    }
    expect_still_serves_bob(*p);
}

// ---- NUL and non-UTF-8 bytes in user names ------------------------------------------------------

TEST(HostileNames, RefuseNulAndNonUtf8BytesInUserNames) {
    const auto log_in = keeps(401, "log in with Basic authentication");
    const auto unknown = keeps(401, "unknown user or wrong password");
    const auto logon_failed = keeps(401, "logon failed");
    const auto basic_of = [](std::string_view user_and_password) {
        return with_authorization("Basic " + b64(user_and_password));
    };
    const auto ntlm_as = [](const bytes& user, bool oem_names = false) {
        return with_authorization("NTLM " + b64(authenticate(oem_names ? ascii("EXSIM") : utf16le(u"EXSIM"), user, oem_names)));
    };
    const std::u16string unpaired{u'c', u'a', static_cast<char16_t>(0xD800), u'r', u'o', u'l'};
    const std::vector<row> rows{
        {"Basic: NUL inside the name", basic_of(std::string_view("al\0ice:alice-pw", 15)), log_in, not_applicable},
        {"Basic: NUL after the name", basic_of(std::string_view("alice\0:alice-pw", 15)), log_in, not_applicable},
        {"Basic: NUL in the password", basic_of(std::string_view("alice:alice-pw\0", 15)), log_in, not_applicable},
        {"Basic: a tab in the name", basic_of("al\tice:alice-pw"), log_in, not_applicable},
        {"Basic: DEL in the name", basic_of("alice\x7f:alice-pw"), log_in, not_applicable},
        {"Basic: a byte that is not UTF-8", basic_of("al\xffice:alice-pw"), unknown, not_applicable},
        {"Basic: an overlong UTF-8 NUL", basic_of("alice\xc0\x80:alice-pw"), unknown, not_applicable},
        {"Basic: a UTF-8 look-alike (Cyrillic a)", basic_of("\xd0\xb0lice:alice-pw"), unknown, not_applicable},
        {"NTLM: NUL inside the name", ntlm_as(utf16le(std::u16string(u"car\0ol", 6))), log_in, logon_failed, "",
         "be2"},
        {"NTLM: NUL after the name", ntlm_as(utf16le(std::u16string(u"carol\0", 6))), log_in, logon_failed, "", "be2"},
        {"NTLM: an unpaired UTF-16 surrogate", ntlm_as(utf16le(unpaired)), log_in, logon_failed, "", "be2"},
        {"NTLM: OEM name with a byte that is not UTF-8", ntlm_as(ascii("carol\xff"), true), log_in, logon_failed, "",
         "be2"},
        {"NTLM: a control character", ntlm_as(utf16le(u"car\x1bol")), log_in, logon_failed, "", "be2"},
        {"NTLM: an empty (anonymous) name", ntlm_as({}), log_in, logon_failed, "", "be2"},
        {"NTLM: a name with a path", ntlm_as(utf16le(u"../carol")), log_in, logon_failed, "", "be2"},
    };
    auto p = start_proxy();
    audit_since be2("be2");
    run_rows(rows, *p);
    EXPECT_TRUE(be2.records().empty()) << "a hostile name was served";
    expect_still_serves_bob(*p);
}

// ---- slow clients -------------------------------------------------------------------------------

TEST(HostileSlowClients, AreTimedOut) {
    // Short timeouts instead of the defaults (120 s idle, 30 s for a started message). A started
    // header is a started message: it has client_io_timeout, not the longer idle timeout, and
    // then a 408 from the proxy as from the back-end (the proxy used to close without a word).
    const proxy::proxy_limits limits{.client_idle_timeout = 1500ms, .client_io_timeout = 250ms};
    auto p = start_limited_proxy(limits);
    auto be = env().start_backend("be1", true, backend::server_limits{.idle_timeout = 250ms, .read_timeout = 250ms});
    // The baseline of the closing times' bounds (bound()): bob's first request through this proxy
    // and his first login on be, on this machine, now. It also warms bob's credentials, so that
    // no row's timeout runs while the proxy acquires them.
    const auto baseline = std::max(time_of([&] { ASSERT_EQ(as_user(*p, "bob").result_int(), 200); }),
                                   time_of([&] { ASSERT_EQ(raw_client(be->port()).ntlm_login("bob").result_int(), 200); }));
    auto proxy_audit = audit_since("be1");
    auto backend_audit = audit_since::of_file(be->audit_log_file());

    struct slow_row {
        std::string name;
        std::string at_once;   // written first ("{login}" as in the other tables)
        std::string trickled;  // then one byte every 25 ms
        // The timeout that closes it, on the proxy and on the back-end; the assertion allows
        // bound(timeout, baseline) (at least 2.5 s more), far below the 30 s and 120 s a missing
        // timeout would take.
        std::chrono::milliseconds proxy_timeout, backend_timeout;
        std::chrono::milliseconds proxy_not_before{0};
        int status = 0;  // what the proxy and the back-end answer before closing; 0: nothing
    };
    const std::string post = "POST /exchange/Outbox/ HTTP/1.1\r\nHost: exsim\r\n{login}Content-Type: application/json\r\n"
                             "Content-Length: 300\r\n\r\n";
    const std::vector<slow_row> rows{
        {"a header trickled and never finished", "",
         "GET /exchange/ HTTP/1.1\r\nHost: exsim\r\nX-Slow: " + std::string(40, 'a'), 250ms, 250ms, 0ms, 408},
        {"a body trickled", post, mail_json("alice", "trickled").substr(0, 40), 250ms, 250ms},
        {"nothing sent after connecting", "", "", 1500ms, 250ms, 1200ms},
    };
    for (const auto& r : rows) {
        for (const bool through_proxy : {true, false}) {
            SCOPED_TRACE(r.name + (through_proxy ? " (proxy)" : " (be1)"));
            raw_client c(through_proxy ? p->port() : be->port());
            if (!through_proxy) {
                ASSERT_EQ(c.ntlm_login("bob").result_int(), 200);
            }
            const auto start = steady::now();
            c.write(with_login(r.at_once, through_proxy ? fmt::format("Authorization: {}\r\n", basic("bob")) : ""));
            c.write(r.trickled, 25ms);
            auto res = c.read();
            if (r.status == 0) {
                EXPECT_FALSE(res) << "expected no answer, got " << describe(res);
            } else {
                ASSERT_TRUE(res) << "no answer: " << c.error().message();
                EXPECT_EQ(res->result_int(), r.status) << res->body();
                EXPECT_FALSE(res->keep_alive());
            }
            const auto took = steady::now() - start;
            EXPECT_TRUE(c.closed_within(1s)) << "read: " << c.error().message();
            EXPECT_LT(took, bound(through_proxy ? r.proxy_timeout : r.backend_timeout, baseline, 20, 2500ms))
                << std::chrono::duration_cast<std::chrono::milliseconds>(took).count() << " ms";
            if (through_proxy) {
                EXPECT_GE(took, r.proxy_not_before) << "closed before the idle timeout";
            }
        }
    }
    EXPECT_TRUE(eventually([&] { return metric(*p, &worker_metrics::active_clients) == 0; }));
    EXPECT_EQ(as_user(*p, "bob").result_int(), 200) << "the proxy serves the next client";
    for (const auto& r : proxy_audit.records()) EXPECT_NE(r.op, "send") << "a trickled send was acted on";
    for (const auto& r : backend_audit.records()) EXPECT_NE(r.op, "send") << "a trickled send was acted on";
}

// A header trickled a byte at a time, each byte well inside the idle timeout: the back-end gives
// the whole header read_timeout from its first byte, then answers 408 and closes. (It had the
// idle timeout in all, 120 s by default, and closed without a word.)
TEST(HostileSlowClients, ABackendAnswersAHeaderNotWholeWithinReadTimeoutWith408) {
    const auto idle = 6000ms, read = 600ms;
    auto be = env().start_backend("be1", true, backend::server_limits{.idle_timeout = idle, .read_timeout = read});
    // The bound's baseline: a login on this back-end, on this machine, now.
    const auto baseline = time_of([&] { ASSERT_EQ(raw_client(be->port()).ntlm_login("bob").result_int(), 200); });
    raw_client c(be->port());
    const auto start = steady::now();
    // 60 bytes at 100 ms: 6 s of trickle, never a whole header.
    const bool all_written = c.write("GET /exchweb/version.json HTTP/1.1\r\nHost: exsim\r\nX-Slow: " + std::string(20, 'a'),
                                     100ms);
    auto res = c.read();
    const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(steady::now() - start);
    EXPECT_FALSE(all_written) << "the back-end still read the header after " << took.count() << " ms";
    ASSERT_TRUE(res) << "no answer after " << took.count() << " ms: " << c.error().message();
    EXPECT_EQ(res->result_int(), 408) << res->body();
    EXPECT_THAT(res->body(), HasSubstr("within 600 ms (read_timeout)"));
    EXPECT_FALSE(res->keep_alive());
    EXPECT_TRUE(c.closed_within(1s));
    EXPECT_GE(took, read);
    EXPECT_LT(took, bound(read, baseline, 20, 2400ms)) << "not closed at read_timeout (600 ms) but later";
}

// ---- request lines -----------------------------------------------------------------------------

// An HTTP/0.9-style request line has no version and its client sends no header: a server that
// waits for the blank line ending a header waits as long as the client does. Answered 400 (RFC
// 9112 3: an invalid request-line) as soon as the line ends, and closed.
TEST(HostileRequestLines, WithoutAVersionAre400AtOnceAndClosed) {
    const auto refused = closes(400, "no HTTP version");
    const std::vector<row> rows{
        {"GET / (HTTP/0.9)", "GET /\r\n", refused, refused},
        {"GET /exchange/ with a bare LF", "GET /exchange/\n", refused, refused},
        {"a space where the version should be", "GET /exchange/ \r\n", refused, refused},
        {"a version without its minor digit", "GET /exchange/ HTTP/1\r\n", refused, refused},
        {"a version in lower case", "GET /exchange/ http/1.1\r\n", refused, refused},
        {"an empty line first", "\r\n", refused, refused},
    };
    auto p = start_proxy();
    run_rows(rows, *p);
    EXPECT_EQ(metric(*p, &worker_metrics::bad_requests), static_cast<std::int64_t>(rows.size()));
    expect_still_serves_bob(*p);
}

// ---- methods -------------------------------------------------------------------------------------

// RFC 9110 9.1: a method the mailbox API implements on no resource is 501 once the request is
// authenticated (an anonymous one is challenged first); 405 with Allow stays for a method it
// implements elsewhere. The front-end forwards every method, extension ones too: the back-end
// answers for them.
TEST(HostileMethods, OnesTheMailboxApiDoesNotImplementAre501OnceAuthenticated) {
    const auto request = [](std::string_view method, std::string_view target) {
        return fmt::format("{} {} HTTP/1.1\r\nHost: exsim\r\n{{login}}Content-Length: 0\r\n\r\n", method, target);
    };
    const auto not_implemented = [](std::string_view method) {
        return keeps(501, fmt::format("method {} is not implemented here; the mailbox API implements GET, HEAD, POST, DELETE",
                                      method));
    };
    std::vector<row> rows{
        {"an extension method", request("BREW", "/exchange/"), not_implemented("BREW"), not_implemented("BREW")},
        {"PUT", request("PUT", "/exchange/Inbox/"), not_implemented("PUT"), not_implemented("PUT")},
        {"PROPFIND (WebDAV, Exchange 2003's own)", request("PROPFIND", "/exchange/bob/"), not_implemented("PROPFIND"),
         not_implemented("PROPFIND")},
        {"PATCH on the anonymous static path", request("PATCH", "/exchweb/version.json"), not_implemented("PATCH"),
         not_implemented("PATCH")},
        {"POST to a folder: implemented elsewhere, so 405", request("POST", "/exchange/Inbox/"),
         keeps(405, "method not allowed on this resource"), keeps(405, "method not allowed on this resource")},
    };
    for (auto& r : rows) r.user = "bob";
    rows.push_back({"an extension method, not logged in", request("BREW", "/exchange/"),
                    keeps(401, "log in with Basic authentication"), keeps(401, "this resource needs authentication")});
    auto p = start_proxy();
    audit_since be1("be1");
    run_rows(rows, *p);
    std::size_t not_implemented_lines = 0;
    for (const auto& r : be1.records()) not_implemented_lines += r.op == "not_implemented";
    EXPECT_EQ(not_implemented_lines, 6u) << "three audited 501s, once through the proxy and once straight";
    expect_still_serves_bob(*p);
}

// ---- clients that disconnect mid-body ----------------------------------------------------------

struct hang_up_row {
    std::string name;
    std::string bytes;  // then the client closes
};

std::vector<hang_up_row> hang_up_rows(const std::string& login) {
    const auto body = mail_json("alice", "never sent", std::string(2000, 'x'));
    const auto head = fmt::format("POST /exchange/Outbox/ HTTP/1.1\r\nHost: exsim\r\n{}Content-Type: application/json\r\n",
                                  login);
    return {
        {"half of a Content-Length body", fmt::format("{}Content-Length: {}\r\n\r\n{}", head, body.size(),
                                                      body.substr(0, body.size() / 2))},
        {"all but the last byte", fmt::format("{}Content-Length: {}\r\n\r\n{}", head, body.size(),
                                              body.substr(0, body.size() - 1))},
        {"mid-chunk", fmt::format("{}Transfer-Encoding: chunked\r\n\r\n{:x}\r\n{}", head, body.size(),
                                  body.substr(0, body.size() / 2))},
        {"before the last chunk", fmt::format("{}Transfer-Encoding: chunked\r\n\r\n{:x}\r\n{}\r\n", head,
                                              body.size(), body)},
        {"after the headers", fmt::format("{}Content-Length: {}\r\n\r\n", head, body.size())},
    };
}

TEST(HostileDisconnects, AClientGoneMidBodySendsNothingAndTheProxyServesTheNext) {
    audit_since be1("be1");
    auto p = start_proxy();
    scripted_backend fake([](const auto&, std::size_t) { return scripted_backend::action::answer; });
    auto to_fake = start_proxy({.addresses = {{"be1", fake.address()}}});
    for (auto* proxy : {p.get(), to_fake.get()}) {
        for (const auto& r : hang_up_rows(fmt::format("Authorization: {}\r\n", basic("bob")))) {
            SCOPED_TRACE(r.name + (proxy == p.get() ? " (proxy)" : " (proxy to a scripted back-end)"));
            {
                raw_client c(proxy->port());
                c.write(r.bytes);
            }  // the client hangs up
            EXPECT_TRUE(eventually([&] { return metric(*proxy, &worker_metrics::active_clients) == 0; }));
            auto next = as_user(*proxy, "bob");
            EXPECT_EQ(next.result_int(), 200) << "the proxy serves the next client: " << next.body();
        }
    }
    for (const auto& r : be1.records()) EXPECT_NE(r.op, "send") << "a send reached the store without its body";
    for (const auto& req : fake.requests())
        EXPECT_NE(req.method(), http::verb::post) << "a complete POST reached the back-end: " << req.body().size()
                                                  << " bytes";
}

TEST(HostileDisconnects, ABackendGivenHalfABodyActsOnNothing) {
    auto audit = audit_since("be1");
    for (const auto& r : hang_up_rows("")) {
        SCOPED_TRACE(r.name + " (be1)");
        {
            raw_client c(env().port("be1"));
            ASSERT_EQ(c.ntlm_login("bob").result_int(), 200);
            c.write(r.bytes);
        }
        raw_client next(env().port("be1"));
        auto res = next.exchange("GET /exchweb/version.json HTTP/1.1\r\nHost: exsim\r\n\r\n");
        ASSERT_TRUE(res);
        EXPECT_EQ(res->result_int(), 200);
    }
    for (const auto& r : audit.records()) EXPECT_NE(r.op, "send") << "a send was acted on without its body";
}

// ---- spoofing -----------------------------------------------------------------------------------

// What a client sends to look like someone else never reaches a back-end: the scripted back-end
// records exactly what the proxy forwarded.
TEST(HostileSpoofing, ClientIdentityHeadersNeverReachABackend) {
    struct spoof_row {
        std::string name;
        std::string headers;  // after Host, before the end of the header
        int status;           // what the client gets
    };
    const auto bob = fmt::format("Authorization: {}\r\n", basic("bob"));
    const auto alice_ntlm = "Authorization: NTLM " + b64(authenticate(utf16le(u"EXSIM"), utf16le(u"alice"))) + "\r\n";
    const std::vector<spoof_row> rows{
        {"X-Exsim-On-Behalf-Of", bob + "X-Exsim-On-Behalf-Of: alice\r\n", 200},
        {"x-exsim-on-behalf-of in lower case", bob + "x-exsim-on-behalf-of: alice\r\n", 200},
        {"X-Exsim-On-Behalf-Of twice", bob + "X-Exsim-On-Behalf-Of: alice\r\nX-Exsim-On-Behalf-Of: alice\r\n", 200},
        {"X-Exsim-On-Behalf-Of before the login", "X-Exsim-On-Behalf-Of: alice\r\n" + bob, 200},
        {"X-Exsim-Mailbox", bob + "X-Exsim-Mailbox: alice\r\n", 200},
        {"X-Exsim-Identity", bob + "X-Exsim-Identity: alice\r\n", 200},
        {"an NTLM Authorization after the Basic one", bob + alice_ntlm, 200},
        {"an NTLM Authorization before the Basic one", alice_ntlm + bob, 401},
        {"Proxy-Authorization", bob + "Proxy-Authorization: Basic " + b64("alice:alice-pw") + "\r\n", 200},
        {"Connection naming the identity header", bob + "Connection: keep-alive, X-Exsim-On-Behalf-Of\r\n"
                                                        "X-Exsim-On-Behalf-Of: alice\r\n", 200},
        {"anonymous static content with X-Exsim-On-Behalf-Of", "X-Exsim-On-Behalf-Of: alice\r\n", 200},
    };
    scripted_backend fake([](const auto&, std::size_t) { return scripted_backend::action::answer; });
    auto p = start_proxy({.addresses = {{"be1", fake.address()}}});
    for (std::size_t i = 0; i < rows.size(); ++i) {
        const auto& r = rows[i];
        SCOPED_TRACE(r.name);
        const bool anonymous = r.headers.find("Basic") == std::string::npos;
        raw_client c(p->port());
        auto res = c.exchange(fmt::format("GET {} HTTP/1.1\r\nHost: exsim\r\nX-Row: {}\r\n{}\r\n",
                                          anonymous ? "/exchweb/version.json" : "/exchange/", i, r.headers));
        ASSERT_TRUE(res);
        EXPECT_EQ(res->result_int(), r.status) << res->body();
    }
    const auto forwarded = fake.requests();
    std::set<std::string> rows_seen;
    for (const auto& req : forwarded) {
        const std::string row_id(req["X-Row"]);
        SCOPED_TRACE("the forwarded request of row " + row_id);
        rows_seen.insert(row_id);
        const bool anonymous = boost::starts_with(req.target(), "/exchweb/");
        EXPECT_EQ(req.count("X-Exsim-On-Behalf-Of"), anonymous ? 0u : 1u);
        if (!anonymous) {
            EXPECT_EQ(req["X-Exsim-On-Behalf-Of"], "bob");
        }
        EXPECT_EQ(req.count("X-Exsim-Mailbox"), 0u);
        EXPECT_EQ(req.count("X-Exsim-Identity"), 0u);
        EXPECT_EQ(req.count(http::field::proxy_authorization), 0u);
        EXPECT_LE(req.count(http::field::authorization), 1u);
        const std::string authorization(req[http::field::authorization]);
        if (anonymous) {
            EXPECT_TRUE(authorization.empty()) << authorization;
        } else {
            EXPECT_TRUE(boost::starts_with(authorization, "Negotiate ")) << "not the proxy's own token: " << authorization;
        }
        EXPECT_THAT(authorization, Not(HasSubstr(basic("bob").substr(6))));
        EXPECT_THAT(authorization, Not(HasSubstr(alice_ntlm.substr(20, 40))));
    }
    // Every row but the refused one reached the back-end exactly as checked above.
    EXPECT_EQ(rows_seen.size(), rows.size() - 1);
}

// A client cannot pick another user's back-end or mailbox: routing follows the login, and the
// back-end authorizes the mailbox (dave's home is be2, alice's be1; bob shares be1 with alice).
TEST(HostileSpoofing, ClientsCannotPickAnotherUsersBackendOrMailbox) {
    const auto elsewhere = keeps(404, "mailbox not on this back-end");
    const auto denied = keeps(403, "bob may not open the mailbox of alice");
    const std::string mail = mail_json("bob", "as alice");
    const auto send_as_alice = fmt::format("POST /exchange/alice/Outbox/ HTTP/1.1\r\nHost: exsim\r\n{{login}}"
                                           "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{}",
                                           mail.size(), mail);
    const std::vector<row> rows{
        {"dave lists alice's Inbox", get("/exchange/alice/"), elsewhere, elsewhere, "dave"},
        {"dave reads alice's message", get("/exchange/alice/Inbox/alice.1"), elsewhere, elsewhere, "dave"},
        {"dave deletes alice's message", "DELETE /exchange/alice/Inbox/alice.1 HTTP/1.1\r\nHost: exsim\r\n{login}\r\n",
         elsewhere, elsewhere, "dave"},
        {"dave sends as alice", send_as_alice, elsewhere, elsewhere, "dave"},
        {"dave names alice's back-end in Host",
         "GET /exchange/alice/ HTTP/1.1\r\nHost: be1.exsim.test\r\n{login}\r\n", elsewhere, elsewhere, "dave"},
        {"dave claims to act for alice", get("/exchange/alice/", "X-Exsim-On-Behalf-Of: alice\r\n"), elsewhere,
         elsewhere, "dave"},
        {"dave asks for alice's message in his own mailbox", get("/exchange/Inbox/alice.1"),
         keeps(404, "no such message in this mailbox"), keeps(404, "no such message in this mailbox"), "dave"},
        {"bob lists alice's Inbox", get("/exchange/alice/"), denied, denied, "bob"},
        {"bob reads alice's message", get("/exchange/alice/Inbox/alice.1"), denied, denied, "bob"},
        {"bob sends as alice", send_as_alice, denied, denied, "bob"},
        {"bob asks for alice's message in his own mailbox", get("/exchange/Inbox/alice.1"),
         keeps(404, "no such message in this mailbox"), keeps(404, "no such message in this mailbox"), "bob"},
        {"bob claims to act for alice", get("/exchange/", "X-Exsim-On-Behalf-Of: alice\r\n"),
         keeps(200, "\"messages\""), keeps(200, "\"messages\""), "bob"},
    };
    auto p = start_proxy();
    audit_since be1("be1"), be2("be2");
    run_rows(rows, *p);
    for (const auto& r : be1.records()) {
        EXPECT_NE(r.identity, "dave") << "dave's request reached alice's back-end: " << r.path;
        EXPECT_FALSE(r.mailbox == "alice" && r.status < 400) << r.identity << " " << r.path;
        EXPECT_NE(r.op, "send");
        EXPECT_NE(r.op, "delete");
    }
    for (const auto& r : be2.records()) EXPECT_FALSE(r.status < 400 && r.mailbox == "alice") << r.path;
    expect_still_serves_bob(*p);
}

}  // namespace
}  // namespace exsim::testing
