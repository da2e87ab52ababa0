// `exsim check-proxy`: pre-flight, then each check as a short seeded workload through the proxy
// (the load generator's pass-through sessions, or a scripted connection where a check needs one
// connection to do something a session does not), judged by the responses and the audit logs.

#include <algorithm>
#include <chrono>
#include <functional>
#include <set>
#include <thread>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>
#include <fmt/format.h>

#include "exsim/auth/gss.hpp"
#include "exsim/auth/http_auth.hpp"
#include "exsim/common/base64.hpp"
#include "exsim/common/audit_record.hpp"
#include "exsim/common/log.hpp"
#include "exsim/lab/check_proxy.hpp"
#include "exsim/loadgen/load.hpp"
#include "exsim/loadgen/oracle.hpp"

namespace exsim::lab {
namespace fs = std::filesystem;
namespace net = boost::asio;
namespace http = boost::beast::http;
using tcp = net::ip::tcp;
using clock_type = std::chrono::steady_clock;

std::string_view verdict_name(check_verdict v) {
    switch (v) {
        case check_verdict::safe: return "safe";
        case check_verdict::leak: return "LEAK";
        case check_verdict::not_forwarded: return "NOT-FORWARDED";
        case check_verdict::broken: return "BROKEN";
        case check_verdict::skipped: return "skipped";
    }
    return "unknown";
}

const std::vector<std::string>& check_names() {
    static const std::vector<std::string> names{
        "separate-connections", "concurrent-mix",   "reauth-on-connection", "kerberos",  "spnego-ntlm",
        "kerberos-persist",     "abandoned-handshake", "post-401-once",     "anonymous-interleaved", "cost"};
    return names;
}

std::vector<std::string> check_report::failed() const {
    std::vector<std::string> out;
    for (const auto& c : checks)
        if (c.verdict != check_verdict::safe && c.verdict != check_verdict::skipped) out.push_back(c.name);
    return out;
}

namespace {

// ---- reading the audit logs around a check ------------------------------------------------

// The back-ends' audit logs, read from where they ended when the watch began.
class audit_watch {
public:
    explicit audit_watch(const check_environment& env) {
        for (const auto& b : env.topology.backends) {
            const auto file = common::audit_log_path(env.state_dir, b.name);
            std::error_code ec;
            const auto size = fs::file_size(file, ec);
            files_.emplace_back(file, ec ? 0 : size);
        }
    }
    std::vector<common::audit_record> records() const {
        std::vector<common::audit_record> all;
        for (const auto& [file, from] : files_) {
            auto since = common::read_audit_log(file, nullptr, from);
            all.insert(all.end(), std::make_move_iterator(since.begin()), std::make_move_iterator(since.end()));
        }
        return all;
    }

private:
    std::vector<std::pair<fs::path, std::uintmax_t>> files_;
};

// ---- one check's tallies ------------------------------------------------------------------

void add(check_result& c, const loadgen::load_result& r) {
    const auto t = r.total();
    c.requests += t.requests;
    c.errors += t.errors;
    c.leaks += t.leaks;
    c.tampers += t.tampers;
    for (const auto& [kind, n] : t.errors_by_kind) c.errors_by_kind[kind] += n;
    if (const auto it = t.errors_by_kind.find("unattributed"); it != t.errors_by_kind.end()) c.unattributed += it->second;
    if (r.first_crossing && !c.first_crossing)
        c.first_crossing = crossing{r.first_crossing->user, r.first_crossing->served_as, "", r.first_crossing->method,
                                    r.first_crossing->target, "response", 0};
}

// What the audit records written during the check say: requests served, crossings (the first as
// evidence), back-end connections, handshakes. Requests of the check are those whose
// X-Exsim-On-Behalf-Of names one of its users.
void add_audit(check_result& c, const std::vector<common::audit_record>& records, const std::set<std::string>& users,
               std::uint64_t& served_ok) {
    std::set<std::pair<std::string, std::uint64_t>> connections;
    for (const auto& r : records) {
        if (!users.count(r.on_behalf_of)) continue;
        ++c.audit_requests;
        if (r.status < 400) ++served_ok;
        connections.emplace(r.backend, r.conn);
        if (r.auth == "request") ++c.handshakes;
        if (!r.cross_user) continue;
        ++c.audit_cross_user;
        if (!c.first_crossing || c.first_crossing->source != "audit")
            c.first_crossing = crossing{r.on_behalf_of, r.identity, r.backend, r.method, r.path, "audit", r.conn};
    }
    c.backend_connections += connections.size();
}

// The verdict, in the order of docs/check-proxy.md: LEAK, NOT-FORWARDED, BROKEN, safe.
void decide(check_result& c, std::uint64_t responses_ok, std::uint64_t served_ok, std::string broken_why = {}) {
    if (c.leaks + c.tampers + c.audit_cross_user > 0) {
        c.verdict = check_verdict::leak;
        if (const auto& x = c.first_crossing)
            c.evidence = x->source == "audit"
                             ? fmt::format("{} was served as {}: {} {} on {} connection {}", x->user, x->served_as, x->method,
                                           x->path, x->backend, x->conn)
                             : fmt::format("{} got a response as {}: {} {}", x->user, x->served_as, x->method, x->path);
        return;
    }
    const std::uint64_t unseen = responses_ok > served_ok ? responses_ok - served_ok : 0;
    if (c.unattributed > 0 || unseen > 0) {
        c.verdict = check_verdict::not_forwarded;
        c.evidence = c.unattributed > 0
                         ? fmt::format("{} successful responses without X-Exsim-Identity/X-Exsim-Mailbox: no exsim "
                                       "back-end produced them", c.unattributed)
                         : fmt::format("{} successful responses that the {} audit log never saw", unseen, c.backend);
        return;
    }
    if (!broken_why.empty() || c.errors > 0 || c.requests == 0) {
        c.verdict = check_verdict::broken;
        std::vector<std::string> kinds;
        for (const auto& [kind, n] : c.errors_by_kind) kinds.push_back(fmt::format("{} {}", kind, n));
        c.evidence = !broken_why.empty() ? broken_why
                     : c.requests == 0   ? std::string("no request completed")
                                         : fmt::format("{} of {} requests failed: {}", c.errors, c.requests, fmt::join(kinds, ", "));
        return;
    }
    c.verdict = check_verdict::safe;
    c.evidence = fmt::format("{} requests, each served as its own user; the audit saw them", c.requests);
}

// ---- a scripted connection (for what a load session does not do) ---------------------------

// One plain-HTTP client connection driven step by step, every step within a timeout.
class scripted_connection {
public:
    scripted_connection(std::string address, std::chrono::milliseconds timeout)
        : address_(std::move(address)), timeout_(timeout) {}

    std::string connect() {
        const auto colon = address_.rfind(':');
        tcp::resolver resolver(io_);
        boost::system::error_code ec;
        const auto endpoints = resolver.resolve(address_.substr(0, colon), address_.substr(colon + 1), ec);
        if (ec) return fmt::format("cannot resolve {}: {}", address_, ec.message());
        wait([&](auto done) { net::async_connect(socket_, endpoints, [done](auto e, auto) { done(e); }); }, ec);
        return ec ? fmt::format("connect to {}: {}", address_, ec.message()) : std::string();
    }

    // Writes `text` and reads up to the end of the response's header (or `limit` bytes).
    boost::system::error_code exchange(const std::string& text, std::string& reply, std::size_t limit = 64 * 1024) {
        boost::system::error_code ec;
        wait([&](auto done) { net::async_write(socket_, net::buffer(text), [done](auto e, auto) { done(e); }); }, ec);
        if (ec) return ec;
        net::streambuf buf(limit);
        wait([&](auto done) { net::async_read_until(socket_, buf, "\r\n\r\n", [done](auto e, auto) { done(e); }); }, ec);
        reply.assign(net::buffers_begin(buf.data()), net::buffers_end(buf.data()));
        return ec;
    }

    // One HTTP request and its whole response, on this connection.
    boost::system::error_code request(const http::request<http::string_body>& req, http::response<http::string_body>& res) {
        boost::system::error_code ec;
        wait([&](auto done) { http::async_write(socket_, req, [done](auto e, auto) { done(e); }); }, ec);
        if (ec) return ec;
        res = {};
        wait([&](auto done) { http::async_read(socket_, buffer_, res, [done](auto e, auto) { done(e); }); }, ec);
        return ec;
    }

    void close() {
        boost::system::error_code ignored;
        socket_.shutdown(tcp::socket::shutdown_both, ignored);
        socket_.close(ignored);
    }

private:
    // Starts an asynchronous operation and runs the loop until it completes or the timeout passes.
    template <class Start>
    void wait(Start start, boost::system::error_code& ec) {
        bool finished = false;
        start([&](boost::system::error_code e) {
            ec = e;
            finished = true;
        });
        io_.restart();
        io_.run_for(timeout_);
        if (!finished) {
            close();
            io_.restart();
            io_.run();
            ec = net::error::timed_out;
        }
    }

    std::string address_;
    std::chrono::milliseconds timeout_;
    net::io_context io_;
    tcp::socket socket_{io_};
    boost::beast::flat_buffer buffer_;
};

// ---- the checks --------------------------------------------------------------------------

struct check_context {
    const check_options& o;
    std::string subject_tag;  // makes this run's sends unique in the stores

    // The proxy address that forwards to `backend`; "" when none was given for it.
    std::string proxy_for(const std::string& backend) const {
        if (auto it = o.proxy.find(backend); it != o.proxy.end()) return it->second;
        if (auto it = o.proxy.find(""); it != o.proxy.end()) return it->second;
        return {};
    }
    const common::backend_config& backend(const std::string& name) const { return *o.env.topology.find_backend(name); }
    std::vector<std::string> users_of(const std::string& backend) const {
        std::vector<std::string> out;
        for (const auto& u : o.env.topology.users)
            if (u.home == backend) out.push_back(u.name);
        return out;
    }

    // A pass-through load run at `backend` through the proxy (or, with `direct`, at the back-end).
    loadgen::load_options load(const std::string& backend_name, std::vector<std::string> users, bool direct = false) const {
        loadgen::load_options l;
        l.mode = loadgen::entry::passthrough;
        const auto& b = backend(backend_name);
        l.url = fmt::format("http://{}", b.host);
        l.connect_to = direct ? o.env.backends.at(backend_name) : proxy_for(backend_name);
        l.directory = o.env.topology;
        l.users = std::move(users);
        l.seed = o.seed;
        l.timeout = std::chrono::milliseconds(10'000);
        l.subject_tag = subject_tag;
        l.stop = o.stop;
        return l;
    }
};

struct check_run {
    check_result result;
    std::uint64_t responses_ok = 0;  // successful responses the clients got (mailbox requests)
    std::set<std::string> users;
    std::string broken_why;
    std::string mechanism;  // the mechanism every audited request must show ("" any)
};

void add_load(check_run& run, const loadgen::load_result& r) {
    add(run.result, r);
    const auto t = r.total();
    run.responses_ok += t.requests - t.errors;
}

loadgen::load_result run_load_quietly(const loadgen::load_options& l) {
    try {
        return loadgen::run_load(l);
    } catch (const common::config_error&) {
        throw;  // a check built wrong options: a bug to see, not a verdict on the proxy
    } catch (const std::runtime_error& e) {
        // The target could not be used at all (the probe's connection failed): counted as one
        // failed request of its own kind, so that the check says BROKEN with the reason.
        loadgen::load_result r;
        auto& s = r.ops[0];
        ++s.requests, ++s.errors;
        ++s.errors_by_kind["unreachable"];
        common::logger("check-proxy")->warn("{}", e.what());
        return r;
    }
}

// The first two users of `backend` in turn, each request on a new client connection, ten rounds:
// what a proxy that re-uses back-end connections across clients gets wrong whatever the timing.
void alternate_on_new_connections(const check_context& ctx, check_run& run, const std::string& backend,
                                  std::optional<auth::initiator_mode> mode) {
    const auto users = ctx.users_of(backend);
    for (int round = 0; round < 10 && !(ctx.o.stop && ctx.o.stop->load()); ++round) {
        for (const auto& u : {users[0], users[1]}) {
            auto l = ctx.load(backend, {u});
            l.mechanism = mode;
            l.requests = 1;
            l.mix = {1, 0, 0, 0};
            l.seed = ctx.o.seed + static_cast<std::uint64_t>(round);
            add_load(run, run_load_quietly(l));
            run.users.insert(u);
        }
    }
}

// 1. alice, then bob, each on a new client connection, alternately.
void separate_connections(const check_context& ctx, check_run& run) {
    alternate_on_new_connections(ctx, run, "be1", std::nullopt);
}

// 2. six users, two kept-alive connections each, the mixed workload.
void concurrent_mix(const check_context& ctx, check_run& run) {
    const auto users = ctx.users_of("be1");
    auto l = ctx.load("be1", users);
    l.sessions = users.size() * 2;
    l.requests = 600;
    add_load(run, run_load_quietly(l));
    run.users.insert(users.begin(), users.end());
}

// One user's turn on the re-authenticating connection: a handshake (NTLM, or Basic when the
// proxy asks for it), then requests riding on the connection's authentication.
struct reauth_turn {
    check_run& run;
    scripted_connection& c;
    const common::user_entry& user;
    const common::backend_config& b;

    // Sends GET /exchange/Inbox/ with `authorization` ("" for none); judges and counts the answer.
    void request(const std::string& authorization, http::response<http::string_body>& res, bool count = true) {
        http::request<http::string_body> req{http::verb::get, "/exchange/Inbox/", 11};
        req.set(http::field::host, b.host);
        req.set("X-Exsim-On-Behalf-Of", user.name);
        if (!authorization.empty()) req.set(http::field::authorization, authorization);
        const auto ec = c.request(req, res);
        if (!count) return;
        auto& r = run.result;
        ++r.requests;
        std::string error = ec ? "closed" : res.result_int() >= 400 ? fmt::format("http_{}", res.result_int()) : "";
        if (error.empty()) {
            const auto j = loadgen::judge(loadgen::op::list, user.name, {user.name}, res.result_int(), res["X-Exsim-Identity"],
                                          res["X-Exsim-Mailbox"], res.body());
            if (j.v == loadgen::verdict::leak && !r.first_crossing)
                r.first_crossing = crossing{user.name, j.served_as, "", "GET", "/exchange/Inbox/", "response", 0};
            r.leaks += j.v == loadgen::verdict::leak ? 1 : 0;
            if (j.v == loadgen::verdict::own && res["X-Exsim-Identity"].empty() && res["X-Exsim-Mailbox"].empty())
                error = "unattributed", ++r.unattributed;
            else ++run.responses_ok;
        }
        if (!error.empty()) ++r.errors, ++r.errors_by_kind[error];
    }

    // The handshake on the open connection; `basic` is set when the proxy asks for Basic instead.
    void authenticate(const auth::user_credentials& creds, std::string& basic) {
        http::response<http::string_body> res;
        auto initiator = creds.make_initiator(b.host);
        auto step = initiator->step({});
        for (int leg = 0; leg < 6; ++leg) {
            const bool last = step.status != auth::step_status::continue_needed;
            if (last && step.token.empty()) break;
            request(auth::token_header(auth::scheme::ntlm, step.token), res, false);
            const auto ch = auth::read_challenge(res, auth::scheme::ntlm);
            if (res.result() != http::status::unauthorized || !ch.token) break;
            step = initiator->step(*ch.token);
        }
        if (res.result() == http::status::unauthorized && res[http::field::www_authenticate].starts_with("Basic"))
            basic = "Basic " + common::base64_encode(user.name + ":" + user.password);
    }
};

// 3. One client connection: alice authenticates and reads, then bob re-authenticates on the same
// connection and reads, in turn; the requests after each handshake carry no credentials (NTLM)
// or the user's Basic (a proxy that asks for it).
void reauth_on_connection(const check_context& ctx, check_run& run) {
    const auto users = ctx.users_of("be1");
    const auto& t = ctx.o.env.topology;
    scripted_connection c(ctx.proxy_for("be1"), std::chrono::milliseconds(10'000));
    if (auto why = c.connect(); !why.empty()) {
        run.broken_why = why;
        return;
    }
    for (int round = 0; round < 4 && !(ctx.o.stop && ctx.o.stop->load()); ++round) {
        const auto* user = t.find_user(users[round % 2]);
        const auto creds = auth::acquire_user_credentials(user->name, user->password, auth::initiator_mode::ntlm, t.realm,
                                                          t.ntlm_domain);
        if (!creds.credentials) {
            run.broken_why = creds.error;
            return;
        }
        reauth_turn turn{run, c, *user, ctx.backend("be1")};
        std::string basic;
        turn.authenticate(*creds.credentials, basic);
        http::response<http::string_body> res;
        for (int i = 0; i < 3; ++i) turn.request(basic, res);
        run.users.insert(user->name);
    }
    c.close();
}

// 4, 5, 6: a Negotiate workload at a back-end (`mode` narrows the client's SPNEGO): the two users
// in turn on new connections, then every user on two kept-alive connections at once.
void negotiate_workload(const check_context& ctx, check_run& run, const std::string& backend, auth::initiator_mode mode,
                        const char* mechanism) {
    run.mechanism = mechanism;
    alternate_on_new_connections(ctx, run, backend, mode);
    const auto users = ctx.users_of(backend);
    auto l = ctx.load(backend, users);
    l.mechanism = mode;
    l.sessions = users.size() * 2;
    l.requests = 200;
    add_load(run, run_load_quietly(l));
    run.users.insert(users.begin(), users.end());
}

// 7. alice sends an NTLM NEGOTIATE and goes away; then bob, on a new connection, without
// credentials at first (as a browser starts), then through his own handshake.
void abandoned_handshake(const check_context& ctx, check_run& run) {
    const auto users = ctx.users_of("be1");
    const auto& b = ctx.backend("be1");
    const auto* alice = ctx.o.env.topology.find_user(users[0]);
    const auto creds = auth::acquire_user_credentials(alice->name, alice->password, auth::initiator_mode::ntlm,
                                                      ctx.o.env.topology.realm, ctx.o.env.topology.ntlm_domain);
    if (!creds.credentials) {
        run.broken_why = creds.error;
        return;
    }
    for (int round = 0; round < 5 && !(ctx.o.stop && ctx.o.stop->load()); ++round) {
        auto initiator = creds.credentials->make_initiator(b.host);
        const auto negotiate = initiator->step({});
        scripted_connection c(ctx.proxy_for("be1"), std::chrono::milliseconds(10'000));
        std::string reply;
        if (auto why = c.connect(); !why.empty()) {
            run.broken_why = why;
            return;
        }
        c.exchange(fmt::format("GET /exchange/Inbox/ HTTP/1.1\r\nHost: {}\r\nX-Exsim-On-Behalf-Of: {}\r\n"
                               "Authorization: {}\r\n\r\n",
                               b.host, alice->name, auth::token_header(auth::scheme::ntlm, negotiate.token)),
                   reply);
        c.close();  // half-way: the CHALLENGE (if any) is never answered
        auto l = ctx.load("be1", {users[1]});
        l.requests = 2;
        l.mix = {1, 0, 0, 0};
        add_load(run, run_load_quietly(l));
    }
    run.users.insert({users[0], users[1]});
}

// The subjects in `user`'s Sent Items on `backend_name`, read as any client would: straight to
// the back-end (not through the proxy being judged), an NTLM handshake as the user, then the
// mailbox API's folder list, newest first (500, its largest page: enough for this run's
// sends, the newest). "" or why they could not be read.
std::string read_sent_subjects(const check_context& ctx, const std::string& backend_name, const std::string& user,
                               std::vector<std::string>& subjects) {
    const auto& t = ctx.o.env.topology;
    const auto* u = t.find_user(user);
    if (u == nullptr) return "no such user";
    const auto creds = auth::acquire_user_credentials(u->name, u->password, auth::initiator_mode::ntlm, t.realm,
                                                      t.ntlm_domain);
    if (!creds.credentials) return creds.error;
    scripted_connection c(ctx.o.env.backends.at(backend_name), std::chrono::milliseconds(10'000));
    if (auto why = c.connect(); !why.empty()) return why;
    check_run scratch;  // the handshake's requests are not the check's
    reauth_turn turn{scratch, c, *u, ctx.backend(backend_name)};
    std::string basic;
    turn.authenticate(*creds.credentials, basic);
    // NTLM authenticates the connection: the list rides on it without credentials.
    http::request<http::string_body> req{http::verb::get, "/exchange/Sent/?limit=500", 11};
    req.set(http::field::host, ctx.backend(backend_name).host);
    req.set(http::field::accept, "application/json");
    http::response<http::string_body> res;
    const auto ec = c.request(req, res);
    c.close();
    if (ec) return ec.message();
    if (res.result() != http::status::ok) return fmt::format("HTTP {}", res.result_int());
    boost::system::error_code jec;
    const auto v = boost::json::parse(res.body(), jec);
    const auto* o = jec ? nullptr : v.if_object();
    const auto* messages = o ? o->if_contains("messages") : nullptr;
    if (messages == nullptr || !messages->is_array()) return "not a folder listing";
    subjects.clear();
    for (const auto& m : messages->get_array()) {
        const auto* subject = m.is_object() ? m.get_object().if_contains("subject") : nullptr;
        if (subject != nullptr && subject->is_string()) subjects.emplace_back(subject->get_string());
    }
    return {};
}

// 8. POSTs that are each the first request of a new connection: answered 401, re-sent through
// the handshake, and then stored exactly once (the audit, and the senders' Sent folders).
void post_401_once(const check_context& ctx, check_run& run) {
    const auto users = ctx.users_of("be1");
    auto l = ctx.load("be1", users);
    l.mix = {0, 0, 1, 0};
    l.sessions = users.size();
    l.requests = users.size();
    l.record_sends = true;
    l.subject_tag += " post-401-once";  // other checks' sends have the same counters and sessions
    const audit_watch audit(ctx.o.env);
    const auto r = run_load_quietly(l);
    add_load(run, r);
    run.users.insert(users.begin(), users.end());

    const auto records = audit.records();
    std::vector<std::string> wrong;
    for (const auto& s : r.sends) {
        std::vector<std::string> sent;
        if (const auto why = read_sent_subjects(ctx, "be1", s.user, sent); !why.empty()) {
            wrong.push_back(fmt::format("cannot read {}'s Sent Items: {}", s.user, why));
            continue;
        }
        const auto copies = std::count(sent.begin(), sent.end(), s.subject);
        const auto audited = std::count_if(records.begin(), records.end(), [&](const auto& a) {
            return a.on_behalf_of == s.user && a.method == "POST" && a.status < 400;
        });
        const bool ok = s.status >= 200 && s.status < 300;
        if ((ok && (copies != 1 || audited != 1)) || (!ok && (copies > 1 || audited > 1)))
            wrong.push_back(fmt::format("{}'s send answered {} is stored {} times, audited {} times", s.user, s.status,
                                        copies, audited));
    }
    if (!wrong.empty()) run.broken_why = fmt::format("{}", fmt::join(wrong, "; "));
}

// 9. anonymous /exchweb/ sessions and authenticated ones at the same time through the proxy.
void anonymous_interleaved(const check_context& ctx, check_run& run) {
    const auto users = ctx.users_of("be1");
    auto anonymous = ctx.load("be1", {users[0]});
    anonymous.path = "/exchweb/version.json";
    anonymous.sessions = 4;
    anonymous.requests = 200;
    loadgen::load_result anon;
    std::thread t([&] { anon = run_load_quietly(anonymous); });
    auto l = ctx.load("be1", users);
    l.sessions = users.size();
    l.requests = 300;
    add_load(run, run_load_quietly(l));
    t.join();
    const auto a = anon.total();
    run.result.requests += a.requests;
    run.result.errors += a.errors;
    for (const auto& [kind, n] : a.errors_by_kind) run.result.errors_by_kind["anonymous " + kind] += n;
    run.users.insert(users.begin(), users.end());
}

cost_side cost_of(const loadgen::load_result& r) {
    const auto t = r.total();
    return {t.requests, t.errors, r.rps(), static_cast<double>(t.latency.percentile(50)) / 1000.0,
            static_cast<double>(t.latency.percentile(99)) / 1000.0};
}

// 10. NTLM through the proxy, then direct to be1, the same closed workload for the same time.
// The direct side runs as the other half of be1's users, so that the check's audit columns
// count only the requests that went through the proxy.
void cost(const check_context& ctx, check_run& run, cost_result& out) {
    const auto all = ctx.users_of("be1");
    const std::vector<std::string> users(all.begin(), all.begin() + static_cast<std::ptrdiff_t>(all.size() / 2));
    const std::vector<std::string> others(all.begin() + static_cast<std::ptrdiff_t>(all.size() / 2), all.end());
    auto l = ctx.load("be1", users);
    l.mechanism = auth::initiator_mode::ntlm;
    l.sessions = 4;
    l.mix = {1, 0, 0, 0};
    l.duration = std::chrono::milliseconds(static_cast<std::int64_t>(ctx.o.cost_seconds * 1000));
    const auto proxied = run_load_quietly(l);
    add_load(run, proxied);
    run.users.insert(users.begin(), users.end());
    auto d = ctx.load("be1", others, true);
    d.mechanism = auth::initiator_mode::ntlm;
    d.sessions = 4;
    d.mix = {1, 0, 0, 0};
    d.duration = l.duration;
    d.audit_logs.clear();
    out = {cost_of(proxied), cost_of(run_load_quietly(d))};
}

struct check_spec {
    std::string name, backend, title;
    std::function<void(const check_context&, check_run&)> run;
};

std::vector<check_spec> specs(cost_result& cost_out) {
    using auth::initiator_mode;
    return {
        {"separate-connections", "be1", "alice, then bob, each on a new client connection", separate_connections},
        {"concurrent-mix", "be1", "six users, two kept-alive connections each, list/read/send/delete", concurrent_mix},
        {"reauth-on-connection", "be1", "one client connection re-authenticating as another user", reauth_on_connection},
        {"kerberos", "be2", "Negotiate with Kerberos, request-bound; mutual authentication reaches the client",
         [](const check_context& c, check_run& r) { negotiate_workload(c, r, "be2", initiator_mode::kerberos, "kerberos"); }},
        {"spnego-ntlm", "be4", "Negotiate falling back to NTLM inside SPNEGO",
         [](const check_context& c, check_run& r) { negotiate_workload(c, r, "be4", initiator_mode::negotiate, "ntlm"); }},
        {"kerberos-persist", "be3", "Kerberos persisted on the back-end connection",
         [](const check_context& c, check_run& r) { negotiate_workload(c, r, "be3", initiator_mode::kerberos, "kerberos"); }},
        {"abandoned-handshake", "be1", "a NEGOTIATE sent and abandoned; the next user must not inherit it",
         abandoned_handshake},
        {"post-401-once", "be1", "a POST answered 401, re-sent through the handshake, stored once", post_401_once},
        {"anonymous-interleaved", "be1", "anonymous /exchweb/ requests alongside authenticated ones",
         anonymous_interleaved},
        {"cost", "be1", "NTLM req/s and p99 through the proxy and direct",
         [&cost_out](const check_context& c, check_run& r) { cost(c, r, cost_out); }},
    };
}

check_result run_one(const check_context& ctx, const check_spec& spec) {
    check_run run;
    run.result.name = spec.name;
    run.result.backend = spec.backend;
    run.result.title = spec.title;
    if (ctx.proxy_for(spec.backend).empty()) {
        run.result.verdict = check_verdict::skipped;
        run.result.evidence = fmt::format("no --proxy address for {}", spec.backend);
        return run.result;
    }
    const auto started = clock_type::now();
    const audit_watch audit(ctx.o.env);
    spec.run(ctx, run);
    std::uint64_t served_ok = 0;
    const auto records = audit.records();
    add_audit(run.result, records, run.users, served_ok);
    // The check must test what it says: Kerberos where it says Kerberos, NTLM inside SPNEGO where
    // it says so (an exsim front-end in between chooses its own, and may differ).
    for (const auto& r : records)
        if (!run.mechanism.empty() && run.users.count(r.on_behalf_of) && r.mechanism != run.mechanism &&
            run.broken_why.empty())
            run.broken_why = fmt::format("{} authenticated {} with {}, not {}", r.backend, r.on_behalf_of,
                                         r.mechanism.empty() ? "nothing" : r.mechanism, run.mechanism);
    run.result.seconds = std::chrono::duration<double>(clock_type::now() - started).count();
    decide(run.result, run.responses_ok, served_ok, run.broken_why);
    return run.result;
}

// ---- pre-flight -----------------------------------------------------------------------------

// Something listens at `address` and answers plain HTTP; else one sentence saying what is wrong.
std::string plain_http_answers(const std::string& address, const std::string& host) {
    scripted_connection c(address, std::chrono::milliseconds(5000));
    if (auto why = c.connect(); !why.empty()) return fmt::format("nothing listening on {}? {}", address, why);
    std::string reply;
    const auto ec = c.exchange(fmt::format("GET /exchweb/version.json HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n", host),
                               reply);
    c.close();
    if (!reply.empty() && (reply[0] == '\x15' || reply[0] == '\x16'))
        return fmt::format("{} answered with TLS where plain HTTP was expected (check-proxy speaks plain HTTP to the proxy)",
                           address);
    if (reply.starts_with("HTTP/1.")) return {};
    if (reply.empty())
        return fmt::format("{} closed the connection without an HTTP response ({}): TLS where plain HTTP was expected?",
                           address, ec ? ec.message() : "no bytes");
    return fmt::format("{} does not answer HTTP (its first bytes: {:?})", address, reply.substr(0, 16));
}

// Each back-end's audit log must see a probe request sent through the proxy for it. Returns, per
// back-end, "" when it did, else why not; `unattributed` counts successes no back-end made.
std::map<std::string, std::string> probe_backends(const check_context& ctx, std::uint64_t& unattributed) {
    std::map<std::string, std::string> out;
    for (const auto& b : ctx.o.env.topology.backends) {
        if (ctx.proxy_for(b.name).empty()) continue;
        const auto user = ctx.users_of(b.name).front();
        const audit_watch audit(ctx.o.env);
        auto l = ctx.load(b.name, {user});
        l.requests = 2;
        l.mix = {1, 0, 0, 0};
        const auto r = run_load_quietly(l);
        const auto t = r.total();
        if (auto it = t.errors_by_kind.find("unattributed"); it != t.errors_by_kind.end()) unattributed += it->second;
        const auto records = audit.records();
        const bool seen = std::any_of(records.begin(), records.end(), [&](const auto& a) {
            return a.backend == b.name && a.on_behalf_of == user;
        });
        out[b.name] = seen ? std::string()
                           : fmt::format("{}'s audit log saw none of the probe's requests: does the proxy forward "
                                         "Host {} to {}?", b.name, b.host, ctx.o.env.backends.at(b.name));
    }
    return out;
}

}  // namespace

check_report run_check_proxy(const check_options& o) {
    for (const auto& n : o.checks)
        if (std::find(check_names().begin(), check_names().end(), n) == check_names().end())
            throw common::config_error(
                fmt::format("--checks: unknown check '{}' (expected one of {})", n, fmt::join(check_names(), ", ")));
    if (o.proxy.empty()) throw common::config_error("--proxy: give the address the proxy listens on");
    check_report report;
    report.started = common::iso8601_utc_now();
    for (const auto& [backend, address] : o.proxy)
        report.proxy += (report.proxy.empty() ? "" : ",") + (backend.empty() ? address : backend + "=" + address);
    for (const auto& [name, address] : o.env.backends) report.backends.emplace_back(name, address);
    const auto started = clock_type::now();

    check_context ctx{o, fmt::format(" [check-proxy {}]", report.started)};
    std::set<std::string> addresses;
    for (const auto& [backend, address] : o.proxy) addresses.insert(address);
    for (const auto& address : addresses)
        if (auto why = plain_http_answers(address, o.env.topology.backends.front().host); !why.empty())
            throw std::runtime_error(why);
    std::uint64_t unattributed = 0;
    const auto probed = probe_backends(ctx, unattributed);
    const bool none_reached =
        std::all_of(probed.begin(), probed.end(), [](const auto& p) { return !p.second.empty(); });
    if (none_reached && unattributed == 0) throw std::runtime_error(probed.begin()->second);

    cost_result cost_out;
    bool cost_ran = false;
    for (const auto& spec : specs(cost_out)) {
        if (!o.checks.empty() && std::find(o.checks.begin(), o.checks.end(), spec.name) == o.checks.end()) continue;
        if (o.stop && o.stop->load()) break;
        check_result c;
        c.name = spec.name, c.backend = spec.backend, c.title = spec.title;
        if (none_reached) {
            // Successes that no back-end made: every check would only measure the stand-in.
            c.verdict = check_verdict::not_forwarded;
            c.unattributed = unattributed;
            c.evidence = fmt::format("the probe got {} successful responses without X-Exsim-Identity/X-Exsim-Mailbox, "
                                     "and {}", unattributed, probed.begin()->second);
        } else {
            c = run_one(ctx, spec);
            cost_ran = cost_ran || spec.name == "cost";
        }
        if (o.progress)
            std::fprintf(stderr, "  %-22s %-14s %6.1f s  %s\n", c.name.c_str(), std::string(verdict_name(c.verdict)).c_str(),
                         c.seconds, c.evidence.c_str());
        report.checks.push_back(std::move(c));
    }
    if (cost_ran) report.cost = cost_out;
    report.seconds = std::chrono::duration<double>(clock_type::now() - started).count();
    return report;
}

}  // namespace exsim::lab
