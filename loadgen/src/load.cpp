#include "exsim/loadgen/load.hpp"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <map>
#include <cmath>
#include <cstdio>
#include <memory>
#include <mutex>
#include <random>
#include <thread>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/json.hpp>
#include <boost/url/parse.hpp>
#include <fmt/format.h>

#include "exsim/auth/gss.hpp"
#include "exsim/auth/http_auth.hpp"
#include "exsim/common/audit_record.hpp"
#include "exsim/common/base64.hpp"
#include "exsim/common/http_framing.hpp"
#include "exsim/common/log.hpp"
#include "exsim/loadgen/oracle.hpp"
#include "client_stream.hpp"

namespace exsim::loadgen {
namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = net::ssl;
namespace json = boost::json;
using tcp = net::ip::tcp;
using net::awaitable;
using clock_type = std::chrono::steady_clock;

namespace {

constexpr auto nothrow = net::as_tuple(net::use_awaitable);
constexpr std::size_t max_handshake_legs = 6;
constexpr std::size_t max_response_body = 8 * 1024 * 1024;

struct target {
    bool tls = false;
    std::string host;          // for Host, SNI and the HTTP@host service
    std::string connect_host;  // where to connect
    std::string port;
};

target parse_target(const load_options& o) {
    auto u = boost::urls::parse_uri(o.url);
    if (!u) throw common::config_error(fmt::format("--url: '{}' is not a URL ({})", o.url, u.error().message()));
    target t;
    const auto scheme = u->scheme();
    if (scheme != "http" && scheme != "https")
        throw common::config_error(fmt::format("--url: scheme '{}' is not http or https", scheme));
    t.tls = scheme == "https";
    t.host = u->host();
    if (t.host.empty()) throw common::config_error(fmt::format("--url: '{}' has no host", o.url));
    t.port = u->has_port() ? std::string(u->port()) : (t.tls ? "443" : "80");
    t.connect_host = t.host;
    if (!o.connect_to.empty()) {
        const auto colon = o.connect_to.rfind(':');
        if (colon == std::string::npos || colon == 0 || colon + 1 == o.connect_to.size())
            throw common::config_error(fmt::format("--connect-to: '{}' is not ADDRESS:PORT", o.connect_to));
        t.connect_host = o.connect_to.substr(0, colon);
        t.port = o.connect_to.substr(colon + 1);
    }
    boost::system::error_code not_ip;
    net::ip::make_address(t.host, not_ip);
    if (o.mode == entry::passthrough && !not_ip)
        common::logger("load")->warn("--url names {} by address: Kerberos needs the service's host name "
                                     "(HTTP@host); give the name and --connect-to ADDRESS:PORT", t.host);
    if (o.mode == entry::frontend && !t.tls && o.url.find("127.0.0.1") == std::string::npos)
        common::logger("load")->warn("sending Basic passwords over plain HTTP to {}", o.url);
    return t;
}

// The users that take part, in an order that alternates back-ends (sessions are dealt in it).
std::vector<const common::user_entry*> pick_users(const load_options& o, const target& t) {
    const auto& d = o.directory;
    std::vector<const common::user_entry*> chosen;
    for (const auto& name : o.users) {
        const auto* u = d.find_user(name);
        if (!u) throw common::config_error(fmt::format("--users: no user '{}' in the directory", name));
        chosen.push_back(u);
    }
    if (chosen.empty()) {
        // Straight at a back-end, only its own users have a mailbox there.
        const common::backend_config* only = nullptr;
        if (o.mode == entry::passthrough)
            for (const auto& b : d.backends)
                if (b.host == t.host) only = &b;
        for (const auto& u : d.users)
            if (!only || u.home == only->name) chosen.push_back(&u);
    }
    if (chosen.empty()) throw common::config_error("--users: no user to run");
    // Rank = how many users of the same back-end come before; sorting by it deals back-ends in turn.
    std::map<std::string, std::size_t> seen;
    std::vector<std::pair<std::size_t, const common::user_entry*>> ranked;
    for (auto* u : chosen) ranked.emplace_back(seen[u->home]++, u);
    std::stable_sort(ranked.begin(), ranked.end(), [](auto& a, auto& b) { return a.first < b.first; });
    for (std::size_t i = 0; i < ranked.size(); ++i) chosen[i] = ranked[i].second;
    return chosen;
}

std::vector<std::string> mailboxes_open_to(const common::topology& d, const std::string& user) {
    std::vector<std::string> out{user};
    for (const auto& u : d.users)
        if (std::find(u.delegates.begin(), u.delegates.end(), user) != u.delegates.end()) out.push_back(u.name);
    return out;
}

// State shared by every thread of a run.
struct run_state {
    run_state(const load_options& o, target t) : options(o), where(std::move(t)) {}
    const load_options& options;
    target where;
    clock_type::time_point start;
    clock_type::time_point deadline = clock_type::time_point::max();  // set when the run starts
    std::atomic<std::uint64_t> issued{0};
    std::atomic<std::uint64_t> completed{0}, errors{0}, leaks{0};
    std::unique_ptr<auth::credential_cache> credentials;  // pass-through only

    // Asked to stop, or past the end of a run by duration.
    bool stopping() const {
        return (options.stop && options.stop->load(std::memory_order_relaxed)) ||
               (!options.requests && clock_type::now() >= deadline);
    }
    bool take_one() {
        if (stopping()) return false;
        return !options.requests || issued.fetch_add(1, std::memory_order_relaxed) < options.requests;
    }
};

// One event-loop thread: its sessions and what they measured.
struct worker {
    net::io_context io{1};
    std::optional<ssl::context> tls;
    std::array<op_stats, 4> ops;
    std::vector<time_slice> timeline;
    std::uint64_t connections = 0, handshakes_kerberos = 0, handshakes_ntlm = 0;
    std::uint64_t unsent = 0;                 // open model: due before the end, never sent
    std::vector<send_record> sends;           // load_options::record_sends
    std::uint64_t judged_ok = 0;              // successful responses the oracle judged (measured)
    std::optional<crossing_seen> first_crossing;
    clock_type::time_point last_completion{};
    std::thread thread;

    void record(run_state& rs, op o, clock_type::time_point due, const std::string& error, verdict v) {
        const auto now = clock_type::now();
        last_completion = std::max(last_completion, now);
        const auto micros = std::chrono::duration_cast<std::chrono::microseconds>(now - due).count();
        const auto slot = static_cast<std::size_t>(std::max<std::int64_t>(
            0, std::chrono::duration_cast<std::chrono::seconds>(now - rs.start).count()));
        if (timeline.size() <= slot) timeline.resize(slot + 1);
        auto& s = ops[static_cast<std::size_t>(o)];
        auto& t = timeline[slot];
        const auto us = static_cast<std::uint64_t>(std::max<std::int64_t>(micros, 0));
        ++s.requests, ++t.requests;
        s.latency.record(us);
        t.latency.record(us);
        if (!error.empty()) {
            ++s.errors, ++t.errors;
            ++s.errors_by_kind[error];
            rs.errors.fetch_add(1, std::memory_order_relaxed);
        }
        if (v == verdict::leak) ++s.leaks, ++t.leaks;
        if (v == verdict::tamper) ++s.tampers, ++t.tampers;
        if (v != verdict::own) rs.leaks.fetch_add(1, std::memory_order_relaxed);
        rs.completed.fetch_add(1, std::memory_order_relaxed);
    }
};

// A 401 whose WWW-Authenticate offers Basic (which read_challenge does not list).
bool asks_for_basic(const http::response<http::string_body>& res) {
    for (const auto& f : res) {
        const auto v = f.value();
        if (f.name() == http::field::www_authenticate && v.size() >= 5 && beast::iequals(v.substr(0, 5), "Basic"))
            return true;
    }
    return false;
}

bool offers_mode(auth::initiator_mode mode, const std::vector<std::string>& offers) {
    return mode == auth::initiator_mode::ntlm ? std::find(offers.begin(), offers.end(), "NTLM") != offers.end()
                                              : auth::offers_negotiate(offers);
}

// The outcome of one request, all legs of a handshake included.
struct outcome {
    std::string error;  // "" or a kind: "connect", "tls", "timeout", "closed", "auth", "http_404", ...
    unsigned status = 0;
    std::string identity, mailbox, body;
};

std::string transport_error(const boost::system::error_code& ec) {
    if (ec == beast::error::timeout) return "timeout";
    if (ec == http::error::end_of_stream || ec == net::error::eof || ec == net::error::connection_reset ||
        ec == net::error::broken_pipe)
        return "closed";
    return "io";
}

// A virtual user: one keep-alive connection at a time, a PRNG for its choices, and the
// message ids it saw last (it clicks on what it was shown, as a browser user does).
struct virtual_user_base {
    virtual ~virtual_user_base() = default;
    virtual awaitable<void> warm_up(std::size_t requests) = 0;  // unmeasured Inbox lists
    virtual awaitable<void> run(clock_type::time_point first, clock_type::duration interval) = 0;
    virtual awaitable<std::string> probe() = 0;  // why the target cannot be used; "" when it can
};

class virtual_user final : public virtual_user_base {
public:
    // Sessions of the same user share its messages: this one reads and deletes only those whose
    // id hashes to `slot` of `share`, so that two of them never race for one message.
    virtual_user(run_state& rs, worker& w, const common::user_entry& user, std::size_t index, std::uint64_t seed,
            std::size_t slot, std::size_t share)
        : rs_(rs), w_(w), user_(user), index_(index), slot_(slot), share_(share), rng_(seed),
          mix_(rs.options.mix.begin(), rs.options.mix.end()),
          may_open_(mailboxes_open_to(rs.options.directory, user.name)) {
        if (rs.options.mode == entry::frontend) basic_ = basic_credentials();
    }

    awaitable<void> warm_up(std::size_t requests) override {
        for (std::size_t i = 0; i < requests && !(rs_.options.stop && rs_.options.stop->load()); ++i)
            co_await one(clock_type::now(), op::list, false);
    }

    awaitable<void> run(clock_type::time_point first, clock_type::duration interval) override {
        const auto& o = rs_.options;
        net::steady_timer timer(co_await net::this_coro::executor);
        std::uniform_real_distribution<double> jitter(0.5, 1.5);
        auto due = first;
        bool running = co_await sleep_until(timer, first);
        while (running) {
            if (o.rate > 0) {  // open model: the request is due at `due` whether or not we are late
                if (!co_await sleep_until(timer, due)) break;
            } else {
                due = clock_type::now();
            }
            if (!rs_.take_one()) break;
            co_await one(due, pick(), true);
            if (o.rate > 0) {
                due += interval;
            } else if (o.think.count() > 0) {
                const auto think = std::chrono::duration_cast<clock_type::duration>(o.think * jitter(rng_));
                running = co_await sleep_until(timer, clock_type::now() + think);
            }
        }
        // What the schedule asked for and the target (or this machine) could not take in time.
        if (o.rate > 0 && !o.requests && due < rs_.deadline && !(o.stop && o.stop->load()))
            w_.unsent += static_cast<std::uint64_t>((rs_.deadline - due) / interval) + 1;
        close();
    }

    awaitable<std::string> probe() override {
        std::string why;
        if (auto kind = co_await connect(); !kind.empty()) {
            why = fmt::format("{} failed: {}", kind, detail_);
        } else if (rs_.options.mode == entry::passthrough && rs_.options.mechanism) {
            http::request<http::string_body> req{http::verb::get, "/exchange/", 11};
            req.set(http::field::host, rs_.where.host);
            http::response<http::string_body> res;
            bool stale = false;
            stream_->tcp().expires_after(rs_.options.timeout);
            if (auto ec = co_await round_trip(req, res, stale)) {
                why = fmt::format("no answer to GET /exchange/: {}", ec.message());
            } else if (const auto offers = auth::read_challenge(res, std::nullopt).offers;
                       res.result() == http::status::unauthorized && !offers_mode(*rs_.options.mechanism, offers) &&
                       !asks_for_basic(res)) {
                why = fmt::format("--mechanism {}: the server offers only {}", auth::mode_name(*rs_.options.mechanism),
                                  fmt::join(offers, ", "));
            }
        }
        close();
        co_return why;
    }

private:
    // Waits until `t` or the end of the run, waking for a stop request; false when the run is over.
    awaitable<bool> sleep_until(net::steady_timer& timer, clock_type::time_point t) {
        for (;;) {
            if (rs_.stopping()) co_return false;
            const auto now = clock_type::now();
            if (t <= now) co_return true;
            timer.expires_at(std::min(t, now + std::chrono::milliseconds(100)));
            co_await timer.async_wait(nothrow);
        }
    }

    op pick() {
        if (!rs_.options.path.empty()) return op::list;
        const op o = all_ops[mix_(rng_)];
        // Nothing known to read or delete yet: the user looks at the Inbox first.
        return (o == op::read || o == op::del) && known_.empty() ? op::list : o;
    }

    awaitable<void> one(clock_type::time_point due, op o, bool measured) {
        const bool fixed = !rs_.options.path.empty();  // --path: the same GET every time, no oracle
        http::request<http::string_body> req{http::verb::get, "/exchange/Inbox/", 11};
        std::string id, subject, recipient;
        if (fixed) {
            req.target(rs_.options.path);
        } else if (o == op::read || o == op::del) {
            id = known_[std::uniform_int_distribution<std::size_t>(0, known_.size() - 1)(rng_)];
            req.target("/exchange/Inbox/" + id);
            if (o == op::del) req.method(http::verb::delete_);
        } else if (o == op::send) {
            req.method(http::verb::post);
            req.target("/exchange/Outbox/");
            const auto& users = rs_.options.directory.users;
            const auto& to = users[std::uniform_int_distribution<std::size_t>(0, users.size() - 1)(rng_)].name;
            req.set(http::field::content_type, "application/json");
            subject = fmt::format("load test {} from session {}{}", ++sent_, index_, rs_.options.subject_tag);
            recipient = to;
            req.body() = json::serialize(json::object{{"to", to}, {"subject", subject}, {"body", "exsim load generator"}});
        }
        req.set(http::field::host, rs_.where.host);
        req.set(http::field::accept, "application/json");
        req.set(http::field::user_agent, "exsim-load");
        // Pass-through: say who this request is for, so that the back-end's audit log can tell
        // when a proxy in between served it on a connection authenticated as someone else.
        if (!basic_.empty()) req.set(http::field::authorization, basic_);
        if (rs_.options.mode == entry::passthrough && !fixed) req.set("X-Exsim-On-Behalf-Of", user_.name);
        req.prepare_payload();

        outcome r = co_await exchange(req);
        judged j;
        if (r.error.empty()) {
            if (!fixed) j = judge(o, user_.name, may_open_, r.status, r.identity, r.mailbox, r.body);
            if (r.status >= 400) r.error = fmt::format("http_{}", r.status);
            // A success no exsim back-end vouched for (a cache, an error page, a virtual host that
            // is not forwarded) is not a clean success: the oracle could judge nothing in it.
            else if (!fixed && j.v == verdict::own && r.identity.empty() && r.mailbox.empty()) r.error = "unattributed";
        }
        if (measured && !fixed && r.error.empty()) ++w_.judged_ok;
        if (measured && j.v != verdict::own && !w_.first_crossing)
            w_.first_crossing = crossing_seen{user_.name, j.served_as, std::string(req.method_string()), std::string(req.target())};
        if (o == op::list && r.status == 200) {
            known_.clear();
            for (auto& m : j.ids)
                if (share_ == 1 || std::hash<std::string>{}(m) % share_ == slot_) known_.push_back(std::move(m));
        }
        if ((o == op::del && r.status == 200) || r.status == 404) std::erase(known_, id);
        if (measured) w_.record(rs_, o, due, r.error, j.v);
        if (measured && o == op::send && rs_.options.record_sends)
            w_.sends.push_back({user_.name, std::move(recipient), std::move(subject), r.status, r.error});
        if (r.error == "connect") {  // not a tight loop against a target that is gone
            net::steady_timer pause(co_await net::this_coro::executor, std::chrono::milliseconds(100));
            co_await pause.async_wait(nothrow);
        }
    }

    awaitable<std::string> connect() {
        const auto& where = rs_.where;
        const auto executor = co_await net::this_coro::executor;
        if (where.tls) stream_.emplace(executor, *w_.tls);
        else stream_.emplace(executor);
        stream_->tcp().expires_after(rs_.options.timeout);  // connect and TLS handshake too
        tcp::resolver resolver(co_await net::this_coro::executor);
        auto [rec, endpoints] = co_await resolver.async_resolve(where.connect_host, where.port, nothrow);
        if (rec) {
            detail_ = fmt::format("cannot resolve {}: {}", where.connect_host, rec.message());
            co_return "connect";
        }
        auto [ec, ep] = co_await stream_->tcp().async_connect(endpoints, nothrow);
        if (ec) {
            detail_ = fmt::format("connect to {}:{}: {}", where.connect_host, where.port, ec.message());
            co_return ec == beast::error::timeout ? "timeout" : "connect";
        }
        boost::system::error_code ignored;
        stream_->tcp().socket().set_option(tcp::no_delay(true), ignored);
        ++w_.connections;
        auto tls_error = co_await stream_->secure(where.host, detail_);
        co_return tls_error;
    }

    void close() {
        if (!stream_) return;
        boost::system::error_code ignored;
        stream_->tcp().socket().shutdown(tcp::socket::shutdown_both, ignored);
        stream_->tcp().close();
        stream_.reset();
    }

    // Writes `req` and reads the response; `stale` is set when the server closed the connection
    // before a byte of the response (on a re-used connection: it had closed it while idle).
    awaitable<boost::system::error_code> round_trip(http::request<http::string_body>& req,
                                                   http::response<http::string_body>& res, bool& stale) {
        auto [wec, wn] = co_await http::async_write(*stream_, req, nothrow);
        if (wec) {
            stale = wec != beast::error::timeout;
            co_return wec;
        }
        beast::flat_buffer buffer;
        http::response_parser<http::string_body> parser;
        parser.body_limit(max_response_body);
        auto [rec, rn] = co_await http::async_read(*stream_, buffer, parser, nothrow);
        stale = rn == 0 && transport_error(rec) == "closed";  // a timeout is not a stale connection
        if (!rec) res = parser.release();
        co_return rec;
    }

    awaitable<outcome> exchange(http::request<http::string_body>& req) {
        outcome r;
        http::response<http::string_body> res;
        for (int attempt = 0;; ++attempt) {
            const bool reused = stream_.has_value();
            if (!reused) {
                if (r.error = co_await connect(); !r.error.empty()) {
                    close();
                    co_return r;
                }
            }
            stream_->tcp().expires_after(rs_.options.timeout);
            bool stale = false;
            auto ec = co_await round_trip(req, res, stale);
            if (!ec) break;
            close();
            // An idle connection the server closed: once more on a new one, unless the request
            // may have been acted on (a POST is never sent twice).
            if (reused && stale && attempt == 0 && common::is_idempotent(req.method())) continue;
            r.error = transport_error(ec);
            co_return r;
        }
        if (res.result() == http::status::unauthorized && rs_.options.mode == entry::passthrough) {
            if (r.error = co_await authenticate(req, res); !r.error.empty()) {
                close();
                co_return r;
            }
        }
        r.status = res.result_int();
        r.identity = std::string(res["X-Exsim-Identity"]);
        r.mailbox = std::string(res["X-Exsim-Mailbox"]);
        r.body = std::move(res.body());
        if (!res.keep_alive()) close();
        co_return r;
    }

    // The browser's answer to a 401: a handshake on this connection, the request repeated with
    // each token, until the server answers something other than 401 with a token.
    awaitable<std::string> authenticate(http::request<http::string_body>& req, http::response<http::string_body>& res) {
        const auto& o = rs_.options;
        const auto offered = auth::read_challenge(res, std::nullopt).offers;
        if (offered.empty() && asks_for_basic(res)) co_return co_await answer_basic(req, res);
        if (offered.empty()) co_return std::string();  // a plain 401: reported as such
        auth::initiator_mode mode = o.mechanism ? *o.mechanism
                                    : auth::offers_negotiate(offered) ? auth::initiator_mode::negotiate
                                                                      : auth::initiator_mode::ntlm;
        if (!offers_mode(mode, offered)) co_return "mechanism_not_offered";  // --mechanism asks for it
        auto creds = co_await auth::async_credentials(*rs_.credentials, user_.name, user_.password, mode,
                                                      rs_.where.host);
        if (!creds.credentials) {
            common::logger("load")->warn("{}: no credentials: {}", user_.name, creds.error);
            co_return "credentials";
        }
        std::unique_ptr<auth::initiator> initiator;
        try {
            initiator = creds.credentials->make_initiator(rs_.where.host);
        } catch (const std::exception& e) {
            common::logger("load")->warn("{}: {}", user_.name, e.what());
            co_return "auth";
        }
        auto step = initiator->step({});
        for (std::size_t leg = 0; leg < max_handshake_legs; ++leg) {
            if (step.status == auth::step_status::failed) {
                common::logger("load")->warn("{}: handshake failed: {}", user_.name, step.error);
                co_return "auth";
            }
            req.set(http::field::authorization, auth::token_header(initiator->http_scheme(), step.token));
            stream_->tcp().expires_after(o.timeout);
            bool stale = false;
            if (auto ec = co_await round_trip(req, res, stale)) co_return transport_error(ec);
            auto ch = auth::read_challenge(res, initiator->http_scheme());
            if (res.result() != http::status::unauthorized || !ch.token) {
                req.erase(http::field::authorization);
                if (res.result() == http::status::unauthorized) co_return std::string();  // refused: "http_401"
                // SPNEGO's last token (the server's mutual authentication) completes the context
                // and names the mechanism; a server that cannot prove who it is fails here.
                if (step.status == auth::step_status::continue_needed) {
                    if (!ch.token) {
                        common::logger("load")->warn("{}: the server answered without completing the handshake", user_.name);
                        co_return "auth";
                    }
                    step = initiator->step(*ch.token);
                    if (step.status == auth::step_status::failed) {
                        common::logger("load")->warn("{}: the server's last token failed: {}", user_.name, step.error);
                        co_return "auth";
                    }
                }
                const auto m = initiator->negotiated();
                const bool kerberos = m == auth::mechanism::kerberos ||
                                      (m == auth::mechanism::none && mode != auth::initiator_mode::ntlm);
                ++(kerberos ? w_.handshakes_kerberos : w_.handshakes_ntlm);
                co_return std::string();
            }
            step = initiator->step(*ch.token);
        }
        co_return "auth";
    }

    std::string basic_credentials() const {
        return "Basic " + common::base64_encode(user_.name + ":" + user_.password);
    }

    // A proxy that authenticates users itself (exsim's front-end) asks for Basic: answered as a
    // browser does, and sent with every later request of the session.
    awaitable<std::string> answer_basic(http::request<http::string_body>& req, http::response<http::string_body>& res) {
        basic_ = basic_credentials();
        req.set(http::field::authorization, basic_);
        // A 401 to a request with a body may close the connection (the body was not read): the
        // request was refused, not acted on, so it goes again on a new one, as a browser sends it.
        if (!res.keep_alive()) {
            close();
            if (auto kind = co_await connect(); !kind.empty()) co_return kind;
        }
        stream_->tcp().expires_after(rs_.options.timeout);
        bool stale = false;
        if (auto ec = co_await round_trip(req, res, stale)) co_return transport_error(ec);
        co_return std::string();  // a 401 again is reported as "http_401"
    }

    run_state& rs_;
    worker& w_;
    const common::user_entry& user_;
    std::size_t index_, slot_, share_;
    std::mt19937_64 rng_;
    std::discrete_distribution<std::size_t> mix_;
    std::vector<std::string> may_open_;
    std::string basic_;
    std::optional<client_stream> stream_;
    std::string detail_;  // why the last connect failed
    std::vector<std::string> known_;
    std::uint64_t sent_ = 0;
};

// A session that throws ends; say so rather than lose it silently.
void log_exception(std::exception_ptr e) {
    if (!e) return;
    try {
        std::rethrow_exception(e);
    } catch (const std::exception& x) {
        common::logger("load")->error("a session stopped: {}", x.what());
    }
}

// GET of a plain-HTTP URL (the front-end's metrics), within 5 s; "" when it cannot be read.
std::string http_get(const std::string& url) {
    auto u = boost::urls::parse_uri(url);
    if (!u || u->scheme() != "http") return {};
    const std::string host = u->host(), port = u->has_port() ? std::string(u->port()) : "80";
    const std::string target = u->encoded_target().empty() ? "/" : std::string(u->encoded_target());
    net::io_context io;
    std::string body, failure;
    auto get = [&]() -> awaitable<void> {
        beast::tcp_stream s(io);
        s.expires_after(std::chrono::seconds(5));
        tcp::resolver resolver(io);
        auto [rec, endpoints] = co_await resolver.async_resolve(host, port, nothrow);
        boost::system::error_code ec = rec;
        if (!ec) std::tie(ec, std::ignore) = co_await s.async_connect(endpoints, nothrow);
        http::request<http::empty_body> req{http::verb::get, target, 11};
        req.set(http::field::host, host);
        if (!ec) std::tie(ec, std::ignore) = co_await http::async_write(s, req, nothrow);
        beast::flat_buffer buffer;
        http::response<http::string_body> res;
        if (!ec) std::tie(ec, std::ignore) = co_await http::async_read(s, buffer, res, nothrow);
        if (ec) failure = ec.message();
        else if (res.result() != http::status::ok) failure = fmt::format("HTTP {}", res.result_int());
        else body = std::move(res.body());
    };
    net::co_spawn(io, get(), log_exception);
    io.run();
    if (!failure.empty()) common::logger("load")->warn("cannot read {}: {}", url, failure);
    return body;
}

struct metrics_snapshot {
    double connections = 0, kerberos = 0, ntlm = 0;
};

std::optional<metrics_snapshot> read_metrics(const std::string& url) {
    if (url.empty()) return std::nullopt;
    const auto text = http_get(url);
    if (text.empty()) return std::nullopt;
    return metrics_snapshot{prometheus_sum(text, "exsim_proxy_backend_connections_opened_total"),
                            prometheus_sum(text, "exsim_proxy_backend_handshakes_total", "mechanism=\"kerberos\""),
                            prometheus_sum(text, "exsim_proxy_backend_handshakes_total", "mechanism=\"ntlm\"")};
}

std::vector<std::uintmax_t> file_sizes(const std::vector<std::filesystem::path>& files) {
    std::vector<std::uintmax_t> sizes;
    for (const auto& f : files) {
        std::error_code ec;
        const auto n = std::filesystem::file_size(f, ec);
        sizes.push_back(ec ? 0 : n);
    }
    return sizes;
}


void progress_line(const run_state& rs, bool final) {
    const double secs = std::chrono::duration<double>(clock_type::now() - rs.start).count();
    const auto n = rs.completed.load(std::memory_order_relaxed);
    std::fprintf(stderr, "\r  %6.1fs  %8llu requests  %8.0f req/s  %6llu errors  %6llu leaks+tampers%s", secs,
                 static_cast<unsigned long long>(n), secs > 0 ? static_cast<double>(n) / secs : 0.0,
                 static_cast<unsigned long long>(rs.errors.load(std::memory_order_relaxed)),
                 static_cast<unsigned long long>(rs.leaks.load(std::memory_order_relaxed)), final ? "\n" : "");
    std::fflush(stderr);
}

void check(const load_options& o) {
    if (o.threads == 0) throw common::config_error("--threads: must be at least 1");
    if (o.rate < 0 || !std::isfinite(o.rate)) throw common::config_error("--rate: must be a positive number");
    if (!o.requests && o.duration.count() <= 0) throw common::config_error("--duration: must be positive");
    if (o.timeout.count() <= 0) throw common::config_error("--timeout-ms: must be positive");
    if (std::all_of(o.mix.begin(), o.mix.end(), [](unsigned w) { return w == 0; }))
        throw common::config_error("--mix: every weight is 0");
    if (o.directory.users.empty()) throw common::config_error("directory: no users");
    if (!o.path.empty() && (o.path.front() != '/' || o.path.find_first_of(" \r\n") != std::string::npos))
        throw common::config_error(fmt::format("--path: '{}' is not an origin-form target such as /exchweb/", o.path));
    if (!o.requests && o.ramp_up >= o.duration)
        throw common::config_error("--ramp-up: must be shorter than --duration (it is part of it)");
}

}  // namespace

op_mix parse_mix(std::string_view text) {
    op_mix mix{};
    std::size_t pos = 0;
    while (pos <= text.size()) {
        const auto comma = std::min(text.find(',', pos), text.size());
        const auto part = text.substr(pos, comma - pos);
        const auto eq = part.find('=');
        const auto name = part.substr(0, eq);
        const auto it = std::find_if(all_ops.begin(), all_ops.end(), [&](op o) { return op_name(o) == name; });
        if (eq == std::string_view::npos || it == all_ops.end())
            throw common::config_error(
                fmt::format("--mix: '{}' is not OP=WEIGHT with OP one of list, read, send, delete", part));
        unsigned w = 0;
        const auto value = part.substr(eq + 1);
        auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), w);
        if (ec != std::errc() || end != value.data() + value.size() || w > 1'000'000)
            throw common::config_error(fmt::format("--mix: weight '{}' of {} is not a number 0..1000000", value, name));
        mix[static_cast<std::size_t>(it - all_ops.begin())] = w;
        pos = comma + 1;
    }
    if (std::all_of(mix.begin(), mix.end(), [](unsigned w) { return w == 0; }))
        throw common::config_error("--mix: every weight is 0");
    return mix;
}

namespace {

using worker_list = std::vector<std::unique_ptr<worker>>;
using user_list = std::vector<std::shared_ptr<virtual_user_base>>;

// One worker (an io_context and its thread) per --threads, each with its own TLS client context.
worker_list make_workers(const load_options& o, bool tls) {
    worker_list workers;
    for (std::size_t i = 0; i < o.threads; ++i) {
        workers.push_back(std::make_unique<worker>());
        if (!tls) continue;
        auto& ctx = workers.back()->tls.emplace(ssl::context::tls_client);
        ctx.set_options(ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
        if (o.insecure) {
            ctx.set_verify_mode(ssl::verify_none);
            continue;
        }
        ctx.set_verify_mode(ssl::verify_peer);
        boost::system::error_code ec;
        if (o.ca_file.empty()) ctx.set_default_verify_paths(ec);
        else ctx.load_verify_file(o.ca_file.string(), ec);
        if (ec)
            throw common::config_error(fmt::format("--ca-file: cannot load '{}': {}", o.ca_file.string(), ec.message()));
    }
    return workers;
}

// Runs every worker's io_context on its own thread until all run out of work.
void run_threads(worker_list& workers) {
    for (auto& w : workers) w->thread = std::thread([&io = w->io] { io.run(); });
    for (auto& w : workers) {
        w->thread.join();
        w->io.restart();
    }
}

// One connection first (and, pass-through with --mechanism, one 401): a target that cannot
// be used at all is one clear error, not a run of thousands of failed requests.
void probe_target(const load_options& o, worker_list& workers, const user_list& vus) {
    std::string unusable;
    net::co_spawn(workers[0]->io, vus[0]->probe(), [&](std::exception_ptr e, std::string why) {
        log_exception(e);
        unusable = std::move(why);
    });
    run_threads(workers);
    if (!unusable.empty()) throw std::runtime_error(fmt::format("cannot load {}: {}", o.url, unusable));
}

// Session k starts at start + ramp_up * k / sessions; in the open model each session carries
// rate / sessions, offset so that the total is evenly spaced.
void start_sessions(const load_options& o, const run_state& rs, worker_list& workers, const user_list& vus) {
    const std::size_t sessions = vus.size();
    const double per_session = o.rate > 0 ? o.rate / static_cast<double>(sessions) : 0;
    const auto interval = per_session > 0 ? std::chrono::duration_cast<clock_type::duration>(
                                                std::chrono::duration<double>(1.0 / per_session))
                                          : clock_type::duration::zero();
    for (std::size_t k = 0; k < sessions; ++k) {
        auto first = rs.start + o.ramp_up * k / sessions;
        if (o.rate > 0) first += std::chrono::duration_cast<clock_type::duration>(
                             std::chrono::duration<double>(static_cast<double>(k) / o.rate));
        net::co_spawn(workers[k % workers.size()]->io, vus[k]->run(first, interval), log_exception);
    }
}

// run_threads, with a progress line on a terminal every 250 ms.
void run_with_progress(const load_options& o, const run_state& rs, worker_list& workers) {
    const bool tty = o.progress && isatty(STDERR_FILENO);
    std::atomic<bool> done{false};
    std::thread ticker;
    if (tty) ticker = std::thread([&] {
        while (!done.load()) {
            std::this_thread::sleep_for(std::chrono::milliseconds(250));
            if (!done.load()) progress_line(rs, false);
        }
    });
    run_threads(workers);
    done = true;
    if (ticker.joinable()) {
        ticker.join();
        progress_line(rs, true);
    }
}

// Each worker's counts, latencies and timeline into r; r.seconds runs until the last response,
// not the last think time.
void merge_workers(load_result& r, worker_list& workers, clock_type::time_point start) {
    auto last = start;
    for (auto& w : workers) {
        last = std::max(last, w->last_completion);
        r.unsent += w->unsent;
        r.sends.insert(r.sends.end(), std::make_move_iterator(w->sends.begin()), std::make_move_iterator(w->sends.end()));
        if (!r.first_crossing) r.first_crossing = std::move(w->first_crossing);
        for (std::size_t i = 0; i < r.ops.size(); ++i) r.ops[i].merge(w->ops[i]);
        if (r.timeline.size() < w->timeline.size()) r.timeline.resize(w->timeline.size());
        for (std::size_t s = 0; s < w->timeline.size(); ++s) {
            auto& t = r.timeline[s];
            const auto& x = w->timeline[s];
            t.requests += x.requests, t.errors += x.errors, t.leaks += x.leaks, t.tampers += x.tampers;
            t.latency.merge(x.latency);
        }
    }
    r.seconds = std::chrono::duration<double>(last - start).count();
}

// Back-end connections and handshakes of the run: the front-end's metrics when readable before
// and after, else (pass-through) the load generator's own counts.
void count_backend_work(load_result& r, const load_options& o, const worker_list& workers,
                        const std::optional<metrics_snapshot>& before) {
    const auto after = read_metrics(o.metrics_url);
    if (before && after) {
        r.backend.source = "front-end metrics";
        // A front-end restarted during the run counts from 0 again: no negative differences.
        auto grew = [](double a, double b) { return static_cast<std::uint64_t>(std::max(a - b, 0.0)); };
        r.backend.connections = grew(after->connections, before->connections);
        r.backend.handshakes_kerberos = grew(after->kerberos, before->kerberos);
        r.backend.handshakes_ntlm = grew(after->ntlm, before->ntlm);
    } else if (o.mode == entry::passthrough) {
        r.backend.source = "load generator";
        for (auto& w : workers) {
            r.backend.connections += w->connections;
            r.backend.handshakes_kerberos += w->handshakes_kerberos;
            r.backend.handshakes_ntlm += w->handshakes_ntlm;
        }
    }
}

// What the back-ends' audit logs recorded since `before_audit` (their sizes at the start).
void read_audits(load_result& r, const load_options& o, const worker_list& workers,
                 const std::vector<std::uintmax_t>& before_audit) {
    if (o.audit_logs.empty()) return;
    std::vector<common::audit_record> records;
    for (std::size_t i = 0; i < o.audit_logs.size(); ++i) {
        auto since = common::read_audit_log(o.audit_logs[i], nullptr, before_audit[i]);
        records.insert(records.end(), std::make_move_iterator(since.begin()), std::make_move_iterator(since.end()));
    }
    const auto a = summarize_audit(records);
    r.audit_cross_user = a.cross_user;
    std::uint64_t judged_ok = 0;
    for (auto& w : workers) judged_ok += w->judged_ok;
    r.unaudited = judged_ok > a.served ? judged_ok - a.served : 0;
    for (std::size_t i = 0; i < r.ops.size(); ++i) {
        r.ops[i].backend_connections = a.connections[i];
        r.ops[i].handshakes = a.handshakes[i];
    }
}

}  // namespace

load_result run_load(const load_options& o) {
    check(o);
    run_state rs(o, parse_target(o));
    const auto users = pick_users(o, rs.where);
    const std::size_t sessions = o.sessions ? o.sessions : users.size();
    if (o.mode == entry::passthrough)
        rs.credentials = std::make_unique<auth::credential_cache>(o.directory.realm, o.directory.ntlm_domain);

    auto workers = make_workers(o, rs.where.tls);
    user_list vus;
    for (std::size_t k = 0; k < sessions; ++k) {
        auto& w = *workers[k % workers.size()];
        const std::size_t u = k % users.size();
        const std::size_t share = (sessions - u + users.size() - 1) / users.size();  // sessions of this user
        vus.push_back(std::make_shared<virtual_user>(rs, w, *users[u], k, o.seed + k, k / users.size(), share));
    }
    probe_target(o, workers, vus);
    if (o.warmup) {
        for (std::size_t k = 0; k < sessions; ++k) net::co_spawn(workers[k % workers.size()]->io, vus[k]->warm_up(o.warmup), log_exception);
        run_threads(workers);
    }
    for (auto& w : workers) w->connections = w->handshakes_kerberos = w->handshakes_ntlm = 0;  // the run's own

    const auto before_metrics = read_metrics(o.metrics_url);
    const auto before_audit = file_sizes(o.audit_logs);
    rs.start = clock_type::now() + std::chrono::milliseconds(50);
    rs.deadline = rs.start + o.duration;
    start_sessions(o, rs, workers, vus);
    run_with_progress(o, rs, workers);
    if (rs.credentials) rs.credentials->join();

    load_result r;
    r.mode = o.mode == entry::frontend ? "frontend" : "passthrough";
    r.url = o.url;
    r.policy = o.policy;
    r.backend_auth = o.backend_auth;
    r.model = o.rate > 0 ? "open" : "closed";
    r.rate = o.rate;
    r.sessions = sessions;
    r.users = std::min(sessions, users.size());
    merge_workers(r, workers, rs.start);
    count_backend_work(r, o, workers, before_metrics);
    read_audits(r, o, workers, before_audit);
    return r;
}

}  // namespace exsim::loadgen
