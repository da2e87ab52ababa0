#include "exsim/proxy/server.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <thread>
#include <unordered_map>
#include <vector>

#include <boost/algorithm/string/predicate.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <fmt/format.h>

#include "exsim/auth/gss.hpp"
#include "exsim/auth/http_auth.hpp"
#include "exsim/common/accept_loop.hpp"
#include "exsim/common/http_framing.hpp"
#include "exsim/common/log.hpp"
#include "exsim/proxy/admin_server.hpp"
#include "exsim/proxy/owa.hpp"
#include "exsim/proxy/policy.hpp"
#include "exsim/proxy/request_checks.hpp"
#include "exsim/proxy/tls_stream.hpp"
#include "forwarding.hpp"
#include "pool.hpp"

namespace exsim::proxy {
namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;
using net::awaitable;

namespace {

constexpr auto nothrow = net::as_tuple(net::use_awaitable);
// What an idle client connection's read buffer starts with: most request headers fit, and
// 10,000 idle connections do not hold 16 KiB each (a larger header grows it).
constexpr std::size_t header_chunk = 1024;
constexpr std::size_t max_drained_body = 64 * 1024;  // a 401 body we read and drop
// A failure to get credentials is remembered briefly, so that a KDC outage does not cost every
// request a KDC attempt.
constexpr auto credential_failure_lifetime = std::chrono::seconds(10);

// One worker thread's world: its io_context, its part of each back-end's pool, its credentials.
// Only the pools' idle lists are reached by other workers (a takeover, pool.hpp); the rest is
// this thread's alone, so the request path takes no lock but its own idle list's.
struct worker {
    worker_metrics metrics;
    std::unordered_map<std::uint64_t, std::size_t> pins_per_client;
    std::map<std::string, std::unique_ptr<backend_pool>, std::less<>> pools;
    // This worker's copies of the shared cache's credentials (or of its last error), so that the
    // request path takes no lock; by "user\nmode\nhost".
    std::unordered_map<std::string, auth::credential_result> credentials;
    // Keys whose credentials are being acquired, each with the timers of the requests waiting
    // for them (cancelled when they arrive): one acquisition per key however many wait.
    std::unordered_map<std::string, std::vector<net::steady_timer*>> acquiring;
    net::io_context ioc{1};
    std::optional<net::steady_timer> sweep;  // after ioc: destroyed before it
    std::thread thread;
};

}  // namespace

struct server::impl {
    common::topology topology;
    std::optional<common::user_index> users;  // of topology, which does not change once set
    proxy_options options;
    std::unique_ptr<pool_policy> policy;
    std::map<std::string, tcp::endpoint> endpoints;
    // One pool per back-end across the workers: what their parts share. Before `workers`, so
    // that it outlives them.
    std::map<std::string, std::unique_ptr<pool_group>, std::less<>> pools;
    std::optional<ssl::context> tls;
    std::shared_ptr<spdlog::logger> log = common::logger("proxy");
    std::vector<std::unique_ptr<worker>> workers;
    std::optional<auth::credential_cache> credentials;  // shared by the workers; its pool does the KDC work
    // NTLM needs no KDC: its own pool, so that it never waits behind AS exchanges with a slow KDC.
    std::optional<auth::credential_cache> ntlm_credentials;
    auth::credential_cache& cache_for(auth::initiator_mode mode) {
        return mode == auth::initiator_mode::ntlm ? *ntlm_credentials : *credentials;
    }
    net::io_context accept_ioc{1};
    tcp::acceptor acceptor{accept_ioc};
    std::thread accept_thread;
    std::unique_ptr<admin_server> admin;
    std::optional<owa::site> owa;  // the browser view; its sessions are server-wide
    std::atomic<std::uint64_t> next_client{1};
    bool running = false;

    void do_accept();
    void on_accept(worker& w, tcp::socket socket);
};

namespace {

// The outcome of one exchange with the back-end.
enum class exchange_end {
    relayed,        // a response reached the client (or the client went away while it did)
    answered,       // the proxy answered the client itself (an error)
    retry,          // the back-end closed before any byte of an answer to the first leg
};

// One client connection: reads requests one after the other and serves each (HTTP/1.1 has no
// pipelining worth supporting here). Stream is tapped<beast::tcp_stream> or tapped<tls_stream>.
template <class Stream>
class client_session {
    static constexpr bool plain = std::is_base_of_v<beast::tcp_stream, Stream>;

public:
    client_session(Stream stream, worker& w, server::impl& srv, std::uint64_t id)
        : stream_(std::move(stream)), worker_(w), srv_(srv), id_(id) {}

    ~client_session() {
        for (auto& [name, pool] : worker_.pools) pool->client_closed(id_);
        add(worker_.metrics.active_clients, -1);
        if (stream_.tap) stream_.tap.tap->closed(stream_.tap.handle);
    }

    awaitable<void> run() {
        add(worker_.metrics.client_connections);
        add(worker_.metrics.active_clients, 1);
        if constexpr (!plain) {
            stream_.expires_after(limits().tls_handshake_timeout);
            auto [ec] = co_await stream_.async_handshake(nothrow);
            if (ec) {
                srv_.log->debug("client {}: TLS handshake failed: {}", id_, ec.message());
                co_return;
            }
        }
        while (co_await serve_one()) {
        }
        if constexpr (!plain) {
            stream_.expires_after(std::chrono::seconds(1));
            co_await stream_.async_shutdown(nothrow);
        }
        beast::error_code ec;
        stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
        stream_.close();
    }

private:
    using client_parser = http::request_parser<http::buffer_body>;
    using backend_parser = http::response_parser<http::buffer_body>;

    const proxy_limits& limits() const { return srv_.options.limits; }
    const common::frontend_settings& settings() const { return srv_.topology.frontend; }
    worker_metrics& metrics() { return worker_.metrics; }

    // An event of the trace (proxy/trace.hpp) with what every kind carries.
    trace_event trace_start(trace_kind kind, std::uint64_t conn, const backend_pool& pool, const std::string& user) const {
        trace_event e;
        e.kind = kind;
        e.client = id_;
        e.connection = conn;
        e.backend = pool.backend().name;
        e.user = user;
        return e;
    }

    // Tells the trace sink, if there is one, what happened on `conn` for `user`; `fill` sets the
    // event's own fields.
    template <class Fill>
    void trace(trace_kind kind, const backend_connection& conn, const std::string& user, Fill&& fill) {
        if (!srv_.options.trace) return;
        auto e = trace_start(kind, conn.id, conn.owner, user);
        fill(e);
        srv_.options.trace(e);
    }

    // Reads and serves one request. Returns whether the client connection stays open.
    awaitable<bool> serve_one() {
        client_parser parser;
        parser.header_limit(static_cast<std::uint32_t>(limits().header_bytes));
        parser.body_limit(limits().body_bytes);
        if (auto ec = co_await read_header_bytes(); ec) co_return false;
        {
            const std::string_view data(static_cast<const char*>(buffer_.data().data()), buffer_.size());
            if (common::request_line_lacks_version(data)) {
                add(metrics().bad_requests);
                co_return co_await answer(http::status::bad_request, 11, false, std::string(common::no_version_reason));
            }
            if (const auto end = common::header_end(data); end != std::string_view::npos && common::has_obs_fold(data.substr(0, end))) {
                add(metrics().bad_requests);
                co_return co_await answer(http::status::bad_request, 11, false,
                                          "obsolete line folding (obs-fold) in the header is refused");
            }
        }
        // The header is buffered whole (or is over the limit): parsed from the buffer, with no
        // second asynchronous read; Beast reads on only where it finds no end where we did.
        beast::error_code ec;
        buffer_.consume(parser.put(buffer_.data(), ec));
        if (ec == http::error::need_more)
            std::tie(ec, std::ignore) = co_await http::async_read_header(stream_, buffer_, parser, nothrow);
        if (ec) {
            if (ec == http::error::header_limit)
                co_await answer(http::status::request_header_fields_too_large, 11, false,
                                fmt::format("the request line and headers exceed {} bytes", limits().header_bytes));
            else if (ec == http::error::body_limit)
                co_await answer(http::status::payload_too_large, 11, false,
                                fmt::format("the request body exceeds {} bytes", limits().body_bytes));
            else if (ec.category() == http::make_error_code(http::error::bad_method).category() &&
                     ec != http::error::end_of_stream && ec != http::error::partial_message) {
                add(metrics().bad_requests);
                co_await answer(http::status::bad_request, 11, false, fmt::format("malformed request: {}", ec.message()));
            }
            co_return false;
        }
        add(metrics().requests);
        auto& req = parser.get();
        // An answer that leaves the client's body unread cannot keep the connection.
        const bool keep = req.keep_alive() && parser.is_done();
        const unsigned version = req.version();
        auto route = route_request(req, parser.chunked(), srv_.topology, *srv_.users);
        using refusal = request_route::refusal;
        switch (route.what) {
            case request_route::outcome::refuse:
                if (route.refused == refusal::framing || route.refused == refusal::bad_target) add(metrics().bad_requests);
                if (route.refused == refusal::bad_login) add(metrics().login_failures);
                co_return co_await answer(route.status, version, keep && !route.closes(), std::move(route.why),
                                          route.refused == refusal::no_login || route.refused == refusal::bad_login);
            case request_route::outcome::browser_view:
                co_return co_await serve_owa(parser, route.canonical, keep);
            case request_route::outcome::forward:
                break;
        }
        const std::string user = route.user ? route.user->name : std::string();
        const std::string password = route.user ? route.user->password : std::string();
        auto& pool = *worker_.pools.find(route.backend->name)->second;

        if (!co_await continue_if_expected(parser)) co_return false;
        co_return co_await forward(parser, route.canonical.target, user, password, pool);
    }

    // Answers `Expect: 100-continue` before a body is read. Returns false when the client is gone.
    awaitable<bool> continue_if_expected(client_parser& parser) {
        if (!boost::iequals(parser.get()[http::field::expect], "100-continue") || parser.is_done()) co_return true;
        http::response<http::empty_body> cont{http::status::continue_, parser.get().version()};
        stream_.expires_after(limits().client_io_timeout);
        auto [ec, n] = co_await http::async_write(stream_, cont, nothrow);
        co_return !ec;
    }

    // Buffers a whole header (or more than the limit: 431; or a first line without a version: 400 at
    // once) so that its raw bytes are checked before Beast unfolds them; once begun it has
    // client_io_timeout in all, not the idle timeout per byte.
    awaitable<beast::error_code> read_header_bytes() {
        stream_.expires_after(buffer_.size() == 0 ? limits().client_idle_timeout : limits().client_io_timeout);
        for (;;) {
            const std::string_view data(static_cast<const char*>(buffer_.data().data()), buffer_.size());
            if (common::header_end(data) != std::string_view::npos || data.size() > limits().header_bytes ||
                common::request_line_lacks_version(data))
                co_return beast::error_code{};
            auto [ec, n] = co_await stream_.async_read_some(buffer_.prepare(header_chunk), nothrow);
            if (ec) co_return ec;
            if (buffer_.size() == 0 && n > 0) stream_.expires_after(limits().client_io_timeout);
            buffer_.commit(n);
        }
    }

    // A short plain-text answer from the proxy itself. Returns whether the connection stays open.
    awaitable<bool> answer(http::status status, unsigned version, bool keep_alive, std::string why,
                           bool basic_challenge = false) {
        if (capture_) {  // a browser-view page asked: its page tells the user
            capture_->status = static_cast<unsigned>(status);
            capture_->proxy_error = std::move(why);
            co_return keep_alive;
        }
        http::response<http::string_body> res{status, version};
        res.set(http::field::server, "exsim-proxy");
        res.set(http::field::content_type, "text/plain; charset=utf-8");
        if (basic_challenge) res.set(http::field::www_authenticate, "Basic realm=\"exsim\", charset=\"UTF-8\"");
        res.body() = fmt::format("{} {}: {}\n", static_cast<unsigned>(status), http::obsolete_reason(status), why);
        res.prepare_payload();
        res.keep_alive(keep_alive);
        mark_tls_only(res);
        count_response(static_cast<unsigned>(status));
        stream_.expires_after(limits().client_io_timeout);
        auto [ec, n] = co_await http::async_write(stream_, res, nothrow);
        co_return !ec && keep_alive;
    }

    // RFC 6797: every response over TLS tells the browser to come back over TLS only, for two years
    // (Mozilla's value); never one over plain HTTP, where anyone on the path could add or strip it.
    // The header is the proxy's: a back-end's own is replaced, or dropped.
    template <class Header>
    static void mark_tls_only(Header& h) {
        if constexpr (plain)
            h.erase(http::field::strict_transport_security);
        else
            h.set(http::field::strict_transport_security, "max-age=63072000");
    }

    void count_response(unsigned status) {
        const auto cls = std::clamp<unsigned>(status / 100, 1, 5) - 1;
        add(metrics().responses[cls]);
    }

    // Acquires a connection, runs the exchange, releases the connection; retries once on a
    // fresh connection when a re-used one failed before answering and the request is
    // idempotent (a send is never sent twice). `body`: the whole body of a request the proxy
    // made itself (a browser-view page's, its parser already done); it goes out as a replay.
    awaitable<bool> forward(client_parser& parser, const std::string& target, const std::string& user,
                            const std::string& password, backend_pool& pool, std::string_view body = {}) {
        const auto& req = parser.get();
        const bool keep = req.keep_alive();
        for (int attempt = 0;; ++attempt) {
            auto acquired = co_await pool.acquire(user, id_);
            if (!acquired.conn) co_return co_await refuse(acquired, pool, req.version(), keep && parser.is_done());
            exchange ex;
            ex.conn = std::move(acquired.conn);
            ex.must_authenticate = acquired.must_authenticate;
            ex.reused = acquired.decision != reuse_decision::new_connection;
            ex.replay = body;
            ex.body_from_client = body.size();
            trace(trace_kind::connection, *ex.conn, user, [&](trace_event& e) {
                e.decision = acquired.decision;
                e.held_as = ex.conn->user;
                e.held_mechanism = ex.conn->mechanism;
                e.must_authenticate = ex.must_authenticate;
            });
            auto end = co_await run_exchange(ex, parser, target, user, password, pool);
            if (end == exchange_end::retry) {
                release(pool, std::move(ex.conn), false, close_reason::backend_closed, user);
                const bool replayable = parser.is_done() && ex.body_from_client == 0;
                if (attempt == 0 && common::is_idempotent(req.method()) && replayable) {
                    add(metrics().idempotent_retries);
                    srv_.log->info("client {}: back-end {} closed a {} connection before answering; retrying {} once",
                                   id_, pool.backend().name, ex.reused ? "re-used" : "new", req.method_string());
                    continue;
                }
                add(metrics().backend_errors);
                // Built before the co_await: GCC 12 mis-destroys string temporaries of a ?: inside one.
                std::string why = !common::is_idempotent(req.method())
                                      ? "it is not idempotent, and it may or may not have been acted on"
                                      : attempt > 0 ? "it was already retried once"
                                                    : "its body was streamed and is gone";
                co_return co_await answer(http::status::bad_gateway, req.version(), false,
                                          fmt::format("back-end {} closed the connection before answering; {} is not "
                                                      "retried: {}",
                                                      pool.backend().name, req.method_string(), why));
            }
            release(pool, std::move(ex.conn), ex.reusable, ex.close_why, user);
            co_return end == exchange_end::relayed ? ex.client_open : ex.client_open && keep;
        }
    }

    // pool.release, told to the trace with what the pool did.
    void release(backend_pool& pool, conn_ptr conn, bool reusable, close_reason why, const std::string& user) {
        if (!srv_.options.trace) return void(pool.release(std::move(conn), reusable, id_, why));
        auto e = trace_start(trace_kind::released, conn->id, pool, user);
        const auto done = pool.release(std::move(conn), reusable, id_, why);
        e.kept = done.kept;
        e.closed = done.closed;
        srv_.options.trace(e);
    }

    awaitable<bool> refuse(const acquire_result& a, const backend_pool& pool, unsigned version, bool keep) {
        switch (a.failure) {
            case acquire_failure::queue_full:
                co_return co_await answer(http::status::service_unavailable, version, keep,
                                          fmt::format("back-end {}: all {} connections are busy and {} requests are "
                                                      "already waiting (queue_limit)",
                                                      pool.backend().name, settings().pool.max_connections,
                                                      settings().pool.queue_limit));
            case acquire_failure::queue_timeout:
                co_return co_await answer(http::status::service_unavailable, version, keep,
                                          fmt::format("back-end {}: no connection became free within {} ms "
                                                      "(queue_timeout_ms)",
                                                      pool.backend().name, settings().pool.queue_timeout_ms));
            case acquire_failure::connect_timeout:
                add(metrics().backend_errors);
                co_return co_await answer(http::status::gateway_timeout, version, keep,
                                          fmt::format("back-end {} ({}) did not accept a connection within {} ms",
                                                      pool.backend().name, to_string(pool.endpoint()),
                                                      limits().connect_timeout.count()));
            case acquire_failure::connect_failed:
                add(metrics().backend_errors);
                co_return co_await answer(http::status::bad_gateway, version, keep,
                                          fmt::format("back-end {} ({}) is unreachable: {}", pool.backend().name,
                                                      to_string(pool.endpoint()), a.error));
            default:
                co_return co_await answer(http::status::service_unavailable, version, false, "the proxy is stopping");
        }
    }

    static std::string to_string(const tcp::endpoint& ep) {
        return fmt::format("{}:{}", ep.address().to_string(), ep.port());
    }

    // The state of one request's exchange with the back-end, over handshake legs.
    struct exchange {
        conn_ptr conn;
        bool must_authenticate = true;
        bool reused = false;
        std::unique_ptr<auth::initiator> initiator;
        auth::step_result step;
        std::size_t legs = 0;
        std::size_t body_from_client = 0;  // bytes relayed from the client so far
        std::string replay;                // those bytes, while they fit in replay_bytes
        bool replay_complete = true;
        bool reusable = false;             // the back-end connection may be kept
        close_reason close_why = close_reason::error;
        bool client_open = true;
        bool unfinished = false;           // a final response arrived before the handshake completed
        beast::error_code client_error;    // why the client's body could not be parsed
    };

    // Starts a handshake as `user` on the connection: credentials (from the blocking pool on
    // first use), a fresh initiator, its first token. Returns an error text on failure.
    // Why a handshake could not start; empty error: it started.
    struct start_failure {
        std::string error;
        bool kdc_unreachable = false;  // no KDC answered: a passing outage (503), not a back-end fault
    };

    awaitable<start_failure> start_handshake(exchange& ex, backend_pool& pool, const std::string& user,
                                           const std::string& password) {
        auto mode = auth::mode_for(pool.offers, settings().require_kerberos);
        if (!mode) {
            add(metrics().kerberos_required_refusals);
            co_return start_failure{fmt::format("back-end {} offers only NTLM and require_kerberos is set: "
                                                "refusing to fall back from Kerberos to NTLM",
                                                pool.backend().name)};
        }
        auto creds = co_await credentials(user, password, *mode, pool.backend().host);
        if (!creds.credentials && *mode == auth::initiator_mode::negotiate) {
            srv_.log->warn("back-end {}: no Kerberos credentials for {} ({}); falling back to NTLM",
                           pool.backend().name, user, creds.error);
            creds = co_await credentials(user, password, auth::initiator_mode::ntlm, pool.backend().host);
        }
        if (!creds.credentials)
            co_return start_failure{fmt::format("cannot authenticate {} to back-end {}: {}", user, pool.backend().name, creds.error),
                                    creds.kdc_unreachable};
        // The back-end forgets who the connection was once a new handshake starts on it.
        ex.conn->mechanism = auth::mechanism::none;
        ex.conn->user.clear();
        ex.initiator = creds.credentials->make_initiator(pool.backend().host);
        ex.step = ex.initiator->step({});
        if (ex.step.status == auth::step_status::failed)
            co_return start_failure{
                fmt::format("cannot authenticate {} to back-end {}: {}", user, pool.backend().name, ex.step.error),
                ex.step.kdc_unreachable};
        co_return start_failure{};
    }

    awaitable<auth::credential_result> credentials(const std::string& user, const std::string& password,
                                                   auth::initiator_mode mode, const std::string& host) {
        // By host too: a copy is known to hold the service ticket of the host it was warmed for.
        const auto key = fmt::format("{}\n{}\n{}", user, auth::mode_name(mode), host);
        auto& cache = srv_.cache_for(mode);
        if (auto it = worker_.credentials.find(key); it != worker_.credentials.end()) {
            if (it->second.fresh_until > std::chrono::steady_clock::now()) co_return it->second;
            // Credentials that worked serve on while their successor is acquired in the
            // background: a slow or stopped KDC then delays no user it had already served.
            if (it->second.credentials) {
                acquire(cache, key, user, password, mode, host);
                co_return it->second;
            }
        }
        // Waits for the acquisition at most credential_timeout: libkrb5 gives up on a KDC that
        // accepts but never answers only after about 27 s. The answer arriving later is kept.
        acquire(cache, key, user, password, mode, host);
        if (auto waiting = worker_.acquiring.find(key); waiting != worker_.acquiring.end()) {
            net::steady_timer wake(worker_.ioc, limits().credential_timeout);
            waiting->second.push_back(&wake);
            co_await wake.async_wait(net::as_tuple(net::use_awaitable));
            if (auto still = worker_.acquiring.find(key); still != worker_.acquiring.end()) {
                std::erase(still->second, &wake);
                auth::credential_result late;
                late.error = fmt::format("the KDC did not answer within {} ms (credential_timeout)",
                                         limits().credential_timeout.count());
                late.kdc_unreachable = true;
                co_return late;
            }
        }
        co_return worker_.credentials[key];
    }

    // The AS exchange, and for Kerberos the TGS exchange for the back-end's service ticket (kept
    // in the credential's own cache), run on the shared cache's blocking pool, never on this
    // loop; the result comes back to this worker's copies. One acquisition per key at a time; a
    // failure keeps the credentials that worked, and waits credential_failure_lifetime before
    // the next attempt.
    void acquire(auth::credential_cache& cache, const std::string& key, const std::string& user,
                 const std::string& password, auth::initiator_mode mode, const std::string& host) {
        if (!worker_.acquiring.try_emplace(key).second) return;
        cache.async_get(user, password, mode, worker_.ioc.get_executor(),
                        [w = &worker_, key](auth::credential_result result) {
                            auto& copy = w->credentials[key];
                            const bool failed = !result.credentials;
                            if (!failed || !copy.credentials) copy = std::move(result);
                            if (failed) copy.fresh_until = std::chrono::steady_clock::now() + credential_failure_lifetime;
                            auto waiting = w->acquiring.extract(key);
                            for (auto* timer : waiting.mapped()) timer->cancel();
                        },
                        host);
    }

    // Runs the legs of one request on ex.conn until a final response, which it relays.
    awaitable<exchange_end> run_exchange(exchange& ex, client_parser& parser, const std::string& target,
                                         const std::string& user, const std::string& password, backend_pool& pool) {
        const auto& req = parser.get();
        const unsigned version = req.version();
        const bool keep = req.keep_alive();
        auto fail = [&](http::status status, std::string why, bool count_error = true) -> awaitable<exchange_end> {
            if (count_error) add(metrics().backend_errors);
            ex.client_open = co_await answer(status, version, keep && parser.is_done(), why);
            co_return exchange_end::answered;
        };
        if (ex.must_authenticate && pool.offers.empty() && !parser.is_done() && !ex.reused) {
            // What the back-end offers is not known yet and the request has a body that a
            // refused first leg could consume beyond the replay copy: ask with a HEAD first.
            if (auto error = co_await probe_offers(ex, req, target, user, pool); !error.empty())
                co_return co_await fail(http::status::bad_gateway, std::move(error));
        }
        if (ex.must_authenticate) {
            if (auto failure = co_await start_handshake(ex, pool, user, password); !failure.error.empty())
                co_return co_await refuse_handshake(fail, std::move(failure));
        }
        bool restarted = false;
        for (;;) {
            if (++ex.legs > limits().max_handshake_legs)
                co_return co_await fail(http::status::bad_gateway,
                                        fmt::format("back-end {}: the handshake did not finish in {} legs",
                                                    pool.backend().name, limits().max_handshake_legs));
            auto out = backend_request(req, target, user,
                                       fmt::format("{}:{}", pool.backend().host, pool.endpoint().port()));
            if (ex.initiator) out.set(http::field::authorization, auth::token_header(ex.initiator->http_scheme(), ex.step.token));
            // A raw NTLM NEGOTIATE can never be the last leg: it carries no body (as browsers do).
            const bool bodyless = ex.initiator && ex.initiator->http_scheme() == auth::scheme::ntlm &&
                                  ex.step.status == auth::step_status::continue_needed;
            if (bodyless && !(parser.is_done() && ex.body_from_client == 0)) out.content_length(0);
            if (bodyless) out.body().more = false;
            trace(trace_kind::leg, *ex.conn, user, [&](trace_event& e) {
                e.method = out.method_string();
                e.target = out.target();
                if (ex.initiator) e.scheme = auth::scheme_name(ex.initiator->http_scheme());
                if (ex.initiator) e.token = ex.step.token;
            });
            add(metrics().backend_requests);
            auto sent = co_await send(ex, parser, out, bodyless);
            if (sent == send_result::client_failed) {
                ex.client_open = false;
                co_return exchange_end::answered;
            }
            if (sent == send_result::client_malformed) {  // a bad chunk: answered, not just dropped
                ex.client_open = false;
                add(metrics().bad_requests);
                co_await answer(http::status::bad_request, version, false,
                                fmt::format("malformed request body: {}", ex.client_error.message()));
                co_return exchange_end::answered;
            }
            if (sent == send_result::body_too_large) {
                ex.client_open = false;
                co_await answer(http::status::payload_too_large, version, false,
                                fmt::format("the request body exceeds {} bytes", limits().body_bytes));
                co_return exchange_end::answered;
            }
            if (sent == send_result::replay_lost)
                co_return co_await fail(http::status::bad_gateway,
                                        fmt::format("back-end {} asked for authentication after the request body "
                                                    "was sent, and the body ({} bytes) is larger than the {} bytes "
                                                    "kept to send it again",
                                                    pool.backend().name, ex.body_from_client, limits().replay_bytes));
            backend_parser rp;
            if (req.method() == http::verb::head) rp.skip(true);
            rp.body_limit(boost::none);
            ex.conn->stream.expires_after(limits().backend_timeout);
            beast::error_code ec;
            if (sent == send_result::ok) std::tie(ec, std::ignore) = co_await http::async_read_header(ex.conn->stream, ex.conn->io->read, rp, nothrow);
            if (sent == send_result::backend_failed || ec) {
                // A connection the back-end closed before any byte of an answer to the first leg
                // may be retried (forward() decides): a pooled one it closed while idle, or a new
                // one whose idle timeout ran out before a slow handshake start sent the request.
                // After a timeout, never: the request may still be acted on.
                const bool closed = sent == send_result::backend_failed || ec == http::error::end_of_stream ||
                                    ec == net::error::eof || ec == net::error::connection_reset ||
                                    ec == net::error::broken_pipe;
                if (ex.legs == 1 && !rp.got_some() && closed) co_return exchange_end::retry;
                // Built before the co_await: GCC 12 mis-destroys string temporaries of a ?: inside one.
                const auto status = ec == beast::error::timeout ? http::status::gateway_timeout : http::status::bad_gateway;
                std::string reason = ec == beast::error::timeout
                                         ? fmt::format("no answer within {} ms; the request may have been acted on",
                                                       limits().backend_timeout.count())
                                         : ec ? fmt::format("{}; the request was sent and may have been acted on",
                                                            ec.message())
                                              : std::string("the request could not be sent");
                std::string why = fmt::format("back-end {}: {}", pool.backend().name, reason);
                co_return co_await fail(status, std::move(why));
            }
            auto& res = rp.get();
            std::optional<auth::scheme> ours;
            if (ex.initiator) ours = ex.initiator->http_scheme();
            auto ch = auth::read_challenge(res, ours);
            trace(trace_kind::answer, *ex.conn, user, [&](trace_event& e) {
                e.status = res.result_int();
                e.offers = ch.offers;
                if (ours && ch.token) e.scheme = auth::scheme_name(*ours);
                if (ch.token) e.token = *ch.token;
                e.mailbox = std::string(res["X-Exsim-Mailbox"]);
            });

            if (res.result() != http::status::unauthorized) {
                if (ex.initiator) {
                    if (ch.token) ex.step = ex.initiator->step(*ch.token);  // mutual authentication
                    if (ex.step.status == auth::step_status::failed) {
                        add(metrics().handshake_failures);
                        co_return co_await fail(http::status::bad_gateway,
                                                fmt::format("back-end {}: mutual authentication failed: {}",
                                                            pool.backend().name, ex.step.error));
                    }
                    // A final answer to an unfinished handshake (an error to a NEGOTIATE leg): who
                    // the back-end holds the connection as is unknown, so it is not used again.
                    if (ex.step.status == auth::step_status::complete) finish_handshake(ex, pool, user);
                    else ex.unfinished = true;
                }
                co_return co_await relay_response(ex, rp, user, version, keep, parser.is_done(), pool);
            }

            // 401: the back-end wants (more of) a handshake.
            if (!ch.offers.empty()) pool.offers = ch.offers;
            if (!co_await drain(ex, rp))
                co_return co_await fail(http::status::bad_gateway,
                                        fmt::format("back-end {}: unreadable 401 response", pool.backend().name));
            if (ex.initiator && ch.token && ex.step.status == auth::step_status::continue_needed) {
                ex.step = ex.initiator->step(*ch.token);
                if (ex.step.status != auth::step_status::failed) continue;
                add(metrics().handshake_failures);
                co_return co_await fail(http::status::bad_gateway,
                                        fmt::format("back-end {}: the handshake as {} failed: {}", pool.backend().name,
                                                    user, ex.step.error));
            }
            const bool scheme_refused = ex.initiator && std::find(ch.offers.begin(), ch.offers.end(),
                                                                  auth::scheme_name(*ours)) == ch.offers.end();
            if (ex.initiator && !(scheme_refused && !restarted)) {
                add(metrics().handshake_failures);
                co_return co_await fail(http::status::bad_gateway,
                                        fmt::format("back-end {} refused the logon of {} ({})", pool.backend().name,
                                                    user, auth::scheme_name(*ours)));
            }
            if (!srv_.policy->authenticate_after_401(user))
                co_return co_await relay_response_after_drain(ex, version, keep, pool);
            // Not authenticated yet (a re-used connection the back-end does not hold for this
            // request, or a scheme it does not offer): start (again) with what it offers.
            restarted = restarted || ex.initiator != nullptr;
            if (auto failure = co_await start_handshake(ex, pool, user, password); !failure.error.empty())
                co_return co_await refuse_handshake(fail, std::move(failure));
        }
    }

    // A handshake that could not start: 503 when the KDC cannot be reached (the back-end is fine
    // and it will pass: issue 5 asks a clear 503 naming the cause, not a back-end error), else 502.
    template <class Fail>
    awaitable<exchange_end> refuse_handshake(Fail& fail, start_failure failure) {
        if (failure.kdc_unreachable)
            co_return co_await fail(http::status::service_unavailable, std::move(failure.error), false);
        co_return co_await fail(http::status::bad_gateway, std::move(failure.error));
    }

    // An unauthenticated HEAD of the target on a fresh connection: the back-end's 401 lists
    // its schemes. HEAD is safe, so nothing is done even by a back-end that answers it.
    awaitable<std::string> probe_offers(exchange& ex, const http::request<http::buffer_body>& req,
                                        const std::string& target, const std::string& user, backend_pool& pool) {
        http::request<http::empty_body> head{http::verb::head, target, 11};
        head.set(http::field::host, fmt::format("{}:{}", pool.backend().host, pool.endpoint().port()));
        head.set("X-Exsim-On-Behalf-Of", user);
        head.keep_alive(true);
        trace(trace_kind::leg, *ex.conn, user, [&](trace_event& e) {
            e.method = "HEAD";
            e.target = target;
        });
        add(metrics().backend_requests);
        ex.conn->stream.expires_after(limits().backend_timeout);
        auto [wec, wn] = co_await http::async_write(ex.conn->stream, head, nothrow);
        backend_parser rp;
        rp.skip(true);
        beast::error_code ec = wec;
        if (!ec) std::tie(ec, std::ignore) = co_await http::async_read_header(ex.conn->stream, ex.conn->io->read, rp, nothrow);
        if (ec) co_return fmt::format("back-end {}: {}", pool.backend().name, ec.message());
        auto ch = auth::read_challenge(rp.get(), std::nullopt);
        trace(trace_kind::answer, *ex.conn, user, [&](trace_event& e) {
            e.status = rp.get().result_int();
            e.offers = ch.offers;
        });
        if (!ch.offers.empty()) pool.offers = ch.offers;
        if (!rp.get().keep_alive() || ex.conn->io->read.size() != 0)
            co_return fmt::format("back-end {}: closed the connection after an unauthenticated HEAD", pool.backend().name);
        co_return std::string();
    }

    void finish_handshake(exchange& ex, backend_pool& pool, const std::string& user) {
        const auto mech = ex.initiator->negotiated();
        ex.conn->mechanism = mech;
        ex.conn->user = user;
        trace(trace_kind::authenticated, *ex.conn, user, [&](trace_event& e) { e.mechanism = mech; });
        if (mech == auth::mechanism::kerberos) add(metrics().handshakes[static_cast<std::size_t>(handshake_mechanism::kerberos)]);
        if (mech == auth::mechanism::ntlm) {
            add(metrics().handshakes[static_cast<std::size_t>(handshake_mechanism::ntlm)]);
            add(metrics().ntlm_fallbacks);
            srv_.log->warn("back-end {}: {} authenticated with NTLM, not Kerberos: the connection, not the request, "
                           "is authenticated (conn {})",
                           pool.backend().name, user, ex.conn->id);
        }
    }

    // An anonymous request the back-end refused with 401: tell the client (it cannot log in to
    // the back-end through the proxy without logging in to the proxy).
    awaitable<exchange_end> relay_response_after_drain(exchange& ex, unsigned version, bool keep, backend_pool& pool) {
        ex.reusable = true;
        ex.client_open = co_await answer(http::status::unauthorized, version, keep,
                                         fmt::format("back-end {} requires authentication", pool.backend().name), true);
        co_return exchange_end::answered;
    }

    enum class send_result { ok, backend_failed, client_failed, client_malformed, body_too_large, replay_lost };

    // Writes one leg: the headers, then the body (none, from the client, or replayed).
    awaitable<send_result> send(exchange& ex, client_parser& parser, http::request<http::buffer_body>& out, bool bodyless) {
        auto& s = ex.conn->stream;
        http::request_serializer<http::buffer_body> sr{out};
        s.expires_after(limits().backend_timeout);
        if (bodyless || (parser.is_done() && ex.body_from_client == 0)) {
            const auto header = header_bytes(out);
            auto [ec, n] = co_await net::async_write(s, net::buffer(header), nothrow);
            co_return ec ? send_result::backend_failed : send_result::ok;
        }
        if (parser.is_done()) {  // the body went once already: send it again from the replay copy
            if (!ex.replay_complete) co_return send_result::replay_lost;
            out.body().data = ex.replay.data();
            out.body().size = ex.replay.size();
            out.body().more = false;
            auto [ec, n] = co_await http::async_write(s, sr, nothrow);
            co_return ec ? send_result::backend_failed : send_result::ok;
        }
        // Stream the client's body through a small buffer, keeping a copy while it is small.
        auto [hec, hn] = co_await http::async_write_header(s, sr, nothrow);
        if (hec) co_return send_result::backend_failed;
        char* const buf = ex.conn->io->relay.data();
        while (!parser.is_done()) {
            auto& body = parser.get().body();
            body.data = buf;
            body.size = relay_chunk;
            stream_.expires_after(limits().client_io_timeout);
            auto [ec, n] = co_await http::async_read(stream_, buffer_, parser, nothrow);
            if (ec == http::error::need_buffer) ec = {};
            if (ec == http::error::body_limit) co_return send_result::body_too_large;
            if (ec.category() == http::make_error_code(http::error::bad_chunk).category() &&
                ec != http::error::partial_message && ec != http::error::end_of_stream) {
                ex.client_error = ec;
                co_return send_result::client_malformed;
            }
            if (ec) co_return send_result::client_failed;
            const std::size_t got = relay_chunk - body.size;
            ex.body_from_client += got;
            if (ex.replay_complete && ex.replay.size() + got <= limits().replay_bytes) ex.replay.append(buf, got);
            else {
                ex.replay_complete = false;
                ex.replay.clear();
            }
            out.body().data = buf;
            out.body().size = got;
            out.body().more = !parser.is_done();
            s.expires_after(limits().backend_timeout);
            auto [wec, wn] = co_await http::async_write(s, sr, nothrow);
            if (wec == http::error::need_buffer) wec = {};
            if (wec) co_return send_result::backend_failed;
        }
        if (!sr.is_done()) {
            out.body().data = nullptr;
            out.body().size = 0;
            out.body().more = false;
            auto [ec, n] = co_await http::async_write(s, sr, nothrow);
            if (ec) co_return send_result::backend_failed;
        }
        co_return send_result::ok;
    }

    // Reads and drops a (small) body so that the connection can carry the next leg.
    awaitable<bool> drain(exchange& ex, backend_parser& rp) {
        co_return co_await read_body(ex, rp, max_drained_body, nullptr) && rp.get().keep_alive();
    }

    // Reads a whole body of at most `limit` bytes, appending it to `into` unless null. False on
    // an error or a larger body (the connection is then unusable).
    awaitable<bool> read_body(exchange& ex, backend_parser& rp, std::size_t limit, std::string* into) {
        char buf[4096];
        std::size_t total = 0;
        while (!rp.is_done()) {
            rp.get().body().data = buf;
            rp.get().body().size = sizeof buf;
            ex.conn->stream.expires_after(limits().backend_timeout);
            auto [ec, n] = co_await http::async_read(ex.conn->stream, ex.conn->io->read, rp, nothrow);
            if (ec == http::error::need_buffer) ec = {};
            if (ec) co_return false;
            const std::size_t got = sizeof buf - rp.get().body().size;
            total += got;
            if (total > limit) co_return false;
            if (into) into->append(buf, got);
        }
        co_return true;
    }

    bool may_open(const std::string& user, std::string_view mailbox) const {
        if (mailbox == user) return true;
        const auto* owner = srv_.users->find(mailbox);
        return owner && std::find(owner->delegates.begin(), owner->delegates.end(), user) != owner->delegates.end();
    }

    // Streams the back-end's final response to the client: its headers minus hop-by-hop ones
    // and the back-end's WWW-Authenticate (the proxy's own business), then the body.
    awaitable<exchange_end> relay_response(exchange& ex, backend_parser& rp, const std::string& user, unsigned version,
                                           bool keep, bool client_body_read, backend_pool& pool) {
        auto& res = rp.get();
        ++ex.conn->requests;
        // A refusal (403, 404) served nothing: like the audit's cross_user, only status < 400 leaks.
        const std::string_view identity = res["X-Exsim-Identity"];
        const std::string_view mailbox = res["X-Exsim-Mailbox"];
        const bool served = !user.empty() && res.result_int() < 400;
        const bool foreign_mailbox = served && !mailbox.empty() && !may_open(user, mailbox);
        if (foreign_mailbox) add(metrics().cross_user_responses);
        if (settings().leak_guard && served) {
            if ((!identity.empty() && identity != user) || foreign_mailbox) {
                add(metrics().leak_guard_hits);
                srv_.log->error("leak guard: back-end {} served mailbox '{}' as '{}' to {} on conn {}; response replaced",
                                pool.backend().name, mailbox, identity, user, ex.conn->id);
                ex.reusable = false;  // its identity is wrong: never use it again
                ex.close_why = close_reason::error;
                ex.client_open = co_await answer(http::status::bad_gateway, version, keep,
                                                 "leak guard: the back-end answered from another user's mailbox; "
                                                 "the response was withheld");
                co_return exchange_end::answered;
            }
        }
        if (capture_) co_return co_await capture_response(ex, rp, keep && client_body_read);
        // The client's HTTP version: an HTTP/1.0 client (ApacheBench) keeps its connection only
        // when told so, and cannot read chunks: a chunked body then ends with the connection.
        auto out = client_response(res, version);
        if (version < 11 && out.chunked()) {
            out.chunked(false);
            keep = false;
        }
        out.keep_alive(keep);
        mark_tls_only(out);
        count_response(res.result_int());
        // The header goes out with the body's first bytes, in one write: a small response is one
        // write and one packet, not two (a back-end sends its header with the body's start, so the
        // client's header waits for nothing in practice). Each read relays what has arrived, at
        // most relay_chunk, rather than waiting for a full chunk of a slow body. A chunked body is
        // framed as Beast's serializer frames it: each piece a chunk, then the last chunk.
        const auto header = header_bytes(out);
        const bool chunked = out.chunked();
        char* const buf = ex.conn->io->relay.data();
        for (bool first = true;; first = false) {
            std::size_t got = 0;
            while (!rp.is_done() && got == 0) {  // a read may bring framing only (a chunk's size line)
                rp.get().body().data = buf;
                rp.get().body().size = relay_chunk;
                ex.conn->stream.expires_after(limits().backend_timeout);
                auto [ec, n] = co_await http::async_read_some(ex.conn->stream, ex.conn->io->read, rp, nothrow);
                if (ec == http::error::need_buffer) ec = {};
                if (ec) {  // the back-end failed mid-body: the client cannot get a whole response
                    add(metrics().backend_errors);
                    ex.client_open = false;
                    co_return exchange_end::relayed;
                }
                got = relay_chunk - rp.get().body().size;
            }
            char size_line[24];
            const auto size_end = fmt::format_to(size_line, "{:x}\r\n", got);
            const bool framed = chunked && got > 0;
            const std::array<net::const_buffer, 5> pieces{
                first ? net::buffer(header) : net::const_buffer{},
                framed ? net::buffer(size_line, static_cast<std::size_t>(size_end - size_line)) : net::const_buffer{},
                net::buffer(buf, got),
                framed ? net::buffer("\r\n", 2) : net::const_buffer{},
                chunked && rp.is_done() ? net::buffer("0\r\n\r\n", 5) : net::const_buffer{}};
            stream_.expires_after(limits().client_io_timeout);
            auto [wec, wn] = co_await net::async_write(stream_, pieces, nothrow);
            if (wec) {
                ex.client_open = false;
                co_return exchange_end::relayed;
            }
            if (rp.is_done()) break;
        }
        ex.reusable = rp.is_done() && res.keep_alive() && !ex.unfinished;
        ex.close_why = res.keep_alive() ? close_reason::error : close_reason::backend_closed;
        ex.client_open = keep && client_body_read;  // an unread request body cannot frame the next request
        co_return exchange_end::relayed;
    }

    // A browser-view page's back-end response: kept for the page instead of relayed.
    awaitable<exchange_end> capture_response(exchange& ex, backend_parser& rp, bool keep) {
        auto& res = rp.get();
        capture_->status = res.result_int();
        capture_->mailbox = res["X-Exsim-Mailbox"];
        capture_->identity = res["X-Exsim-Identity"];
        const bool whole = co_await read_body(ex, rp, owa::max_reply_bytes, &capture_->body);
        capture_->truncated = !whole;
        ex.reusable = whole && res.keep_alive() && !ex.unfinished;
        ex.close_why = res.keep_alive() ? close_reason::error : close_reason::backend_closed;
        ex.client_open = keep;
        co_return exchange_end::relayed;
    }

    // The browser view (owa.hpp). Its form body is read whole (max_form_bytes: 413); the pages
    // that show mailbox data come back through fetch_for_owa.
    awaitable<bool> serve_owa(client_parser& parser, const canonical_target& canonical, bool keep) {
        auto& req = parser.get();
        const unsigned version = req.version();
        std::string body;
        if (!parser.is_done()) {
            if (parser.content_length() && *parser.content_length() > owa::max_form_bytes)
                co_return co_await answer(http::status::payload_too_large, version, false,
                                          fmt::format("a form may not exceed {} bytes", owa::max_form_bytes));
            parser.body_limit(owa::max_form_bytes);
            if (!co_await continue_if_expected(parser)) co_return false;
            char buf[4096];
            while (!parser.is_done()) {
                req.body().data = buf;
                req.body().size = sizeof buf;
                stream_.expires_after(limits().client_io_timeout);
                auto [ec, n] = co_await http::async_read(stream_, buffer_, parser, nothrow);
                if (ec == http::error::need_buffer) ec = {};
                if (ec == http::error::body_limit)
                    co_return co_await answer(http::status::payload_too_large, version, false,
                                              fmt::format("a form may not exceed {} bytes", owa::max_form_bytes));
                if (ec) co_return false;
                body.append(buf, sizeof buf - req.body().size);
            }
            keep = req.keep_alive();  // the body is read: the connection may carry the next request
        }
        const auto qmark = canonical.target.find('?');
        owa::request r{req.method(),
                       canonical.path,
                       qmark == std::string::npos ? std::string_view{} : std::string_view(canonical.target).substr(qmark + 1),
                       req[http::field::cookie],
                       req["Origin"],
                       req[http::field::host],
                       body};
        auto page = co_await srv_.owa->handle(r, [this](owa::backend_call c) { return fetch_for_owa(std::move(c)); });
        page.version(version);
        page.keep_alive(keep);
        if (req.method() == http::verb::head) page.body().clear();
        page.prepare_payload();
        mark_tls_only(page);
        count_response(page.result_int());
        stream_.expires_after(limits().client_io_timeout);
        auto [ec, n] = co_await http::async_write(stream_, page, nothrow);
        co_return !ec && keep;
    }

    // One back-end request for a browser-view page, as its user, through forward(): the same
    // pool, policy, handshakes, retries and leak guard as any request; only the response is
    // captured instead of relayed.
    awaitable<owa::backend_reply> fetch_for_owa(owa::backend_call call) {
        const auto* entry = srv_.users->find(call.user);
        auto& pool = *worker_.pools.find(entry->home)->second;
        std::string raw = fmt::format("{} {} HTTP/1.1\r\nHost: exsim\r\nAccept: application/json\r\n",
                                      http::to_string(call.method), call.target);
        if (!call.body.empty())
            raw += fmt::format("Content-Type: application/json\r\nContent-Length: {}\r\n", call.body.size());
        raw += "\r\n";
        raw += call.body;
        client_parser parser;
        parser.eager(true);
        std::string scratch(call.body.size(), '\0');  // the parser's copy of the body, unused: it goes as a replay
        parser.get().body().data = scratch.data();
        parser.get().body().size = scratch.size();
        beast::error_code ec;
        parser.put(net::buffer(raw), ec);
        owa::backend_reply reply;
        reply.backend = pool.backend().name;
        if (ec || !parser.is_done()) {
            reply.proxy_error = fmt::format("could not build the back-end request: {}", ec.message());
            co_return reply;
        }
        capture_ = &reply;
        co_await forward(parser, call.target, call.user, call.password, pool, call.body);
        capture_ = nullptr;
        co_return reply;
    }

    Stream stream_;
    beast::flat_buffer buffer_;
    worker& worker_;
    server::impl& srv_;
    std::uint64_t id_;
    owa::backend_reply* capture_ = nullptr;  // set while a browser-view page's request runs
};

// The client connection's place in the wire tap, if there is one: its decrypted HTTP, on the
// addresses and ports it has.
tap_point client_tap(common::wire_tap* tap, const tcp::socket& socket, std::uint64_t id) {
    if (!tap) return {};
    beast::error_code ec;
    const auto client = socket.remote_endpoint(ec);
    const auto local = ec ? tcp::endpoint() : socket.local_endpoint(ec);
    if (ec) return {};
    return {tap, tap->opened("client#" + std::to_string(id), client, local), false};
}

template <class Stream>
awaitable<void> serve(std::unique_ptr<client_session<tapped<Stream>>> session) {
    co_await session->run();
}

}  // namespace

void server::impl::on_accept(worker& w, tcp::socket socket) {
    socket.set_option(tcp::no_delay(true));
    const auto id = next_client++;
    auto report = [log = log, id](std::exception_ptr e) {
        if (!e) return;
        try {
            std::rethrow_exception(e);
        } catch (const std::exception& x) {
            log->error("client {}: {}", id, x.what());
        }
    };
    const auto tap = client_tap(options.tap, socket, id);
    if (tls) {
        try {
            tapped<tls_stream> stream(tls_stream(std::move(socket), *tls));
            stream.tap = tap;
            auto s = std::make_unique<client_session<tapped<tls_stream>>>(std::move(stream), w, *this, id);
            net::co_spawn(w.ioc, serve(std::move(s)), report);
        } catch (const std::exception& e) {
            log->error("client {}: {}", id, e.what());
            if (tap) tap.tap->closed(tap.handle);
        }
    } else {
        tapped<beast::tcp_stream> stream(beast::tcp_stream(std::move(socket)));
        stream.tap = tap;
        auto s = std::make_unique<client_session<tapped<beast::tcp_stream>>>(std::move(stream), w, *this, id);
        net::co_spawn(w.ioc, serve(std::move(s)), report);
    }
}

void server::impl::do_accept() {
    common::accept_loop(acceptor, workers, [this](worker& w, tcp::socket socket) { on_accept(w, std::move(socket)); },
                        log);
}

namespace {

tcp::endpoint parse_endpoint(const std::string& backend, const std::string& text) {
    const auto colon = text.rfind(':');
    beast::error_code ec;
    if (colon != std::string::npos) {
        auto address = net::ip::make_address(text.substr(0, colon), ec);
        unsigned long port = 0;
        try {
            port = std::stoul(text.substr(colon + 1));
        } catch (const std::exception&) {
            port = 0;
        }
        if (!ec && port > 0 && port < 65536) return {address, static_cast<std::uint16_t>(port)};
    }
    throw common::config_error(
        fmt::format("backends.{}: '{}' is not an address such as 127.0.0.1:8081", backend, text));
}

}  // namespace

server::server(const common::topology& topology, proxy_options options)
    : impl_(std::make_unique<impl>()) {
    auto& s = *impl_;
    s.topology = topology;
    s.users.emplace(s.topology);
    s.options = std::move(options);
    s.policy = make_policy(s.topology.frontend.policy);
    s.credentials.emplace(s.topology.realm, s.topology.ntlm_domain);
    s.ntlm_credentials.emplace(s.topology.realm, s.topology.ntlm_domain, 1);
    for (const auto& b : s.topology.backends) {
        auto it = s.options.backends.find(b.name);
        if (it == s.options.backends.end())
            throw common::config_error(fmt::format("backends.{}: no address given for this back-end", b.name));
        s.endpoints[b.name] = parse_endpoint(b.name, it->second);
    }
    for (const auto& [name, address] : s.options.backends)
        if (!s.topology.find_backend(name))
            throw common::config_error(fmt::format("backends.{}: not a back-end of the directory", name));
    if (s.options.workers == 0) s.options.workers = s.topology.frontend.workers;
    if (s.options.workers == 0) s.options.workers = std::max(1u, std::thread::hardware_concurrency());
    if (!s.options.allow_insecure_http) {
        auto files = s.options.tls ? *s.options.tls
                                   : ensure_self_signed(s.options.state_dir / "tls", {"localhost", "127.0.0.1", s.options.address});
        s.tls.emplace(make_server_context(files));
    }
    for (const auto& b : s.topology.backends)
        s.pools.emplace(b.name, std::make_unique<pool_group>(s.topology.frontend.pool));
    for (std::size_t i = 0; i < s.options.workers; ++i) {
        auto w = std::make_unique<worker>();
        for (const auto& b : s.topology.backends) {
            auto& group = *s.pools.find(b.name)->second;
            auto part = std::make_unique<backend_pool>(b, s.endpoints[b.name], s.topology.frontend.pool, *s.policy,
                                                       w->metrics, w->ioc.get_executor(),
                                                       s.options.limits.connect_timeout, w->pins_per_client, group);
            group.members.push_back(part.get());
            part->tap = s.options.tap;
            w->pools.emplace(b.name, std::move(part));
        }
        s.workers.push_back(std::move(w));
    }

    s.owa.emplace(s.topology, *s.users, [this] { return metrics(); });
    common::listen_on(s.acceptor, s.options.address, s.options.port, "proxy");
    s.admin = std::make_unique<admin_server>(s.options.admin_address, s.options.admin_port,
                                             [this] { return metrics_text(); });
}

void server::start() {
    auto& s = *impl_;
    if (s.running) return;
    if (s.workers.empty()) throw std::runtime_error("a stopped proxy cannot be started again");
    s.running = true;
    for (auto& w : s.workers) {
        w->sweep.emplace(w->ioc);
        auto* wp = w.get();
        w->thread = std::thread([wp] {
            auto guard = net::make_work_guard(wp->ioc);
            std::function<void(beast::error_code)> tick = [wp, &tick](beast::error_code ec) {
                if (ec) return;
                for (auto& [name, pool] : wp->pools) pool->sweep();
                wp->sweep->expires_after(std::chrono::seconds(1));
                wp->sweep->async_wait(tick);
            };
            wp->sweep->expires_after(std::chrono::seconds(1));
            wp->sweep->async_wait(tick);
            wp->ioc.run();
        });
    }
    s.admin->start();
    s.do_accept();
    s.accept_thread = std::thread([&s] { s.accept_ioc.run(); });
    if (!s.tls)
        s.log->warn("serving plain HTTP on {}:{} (--allow-insecure-http): users' passwords cross the network in clear "
                    "text",
                    s.options.address, port());
    s.log->info("front-end listening on {} with policy {} ({} workers{}{}), metrics on {}", url(), s.policy->name(),
                s.workers.size(), s.topology.frontend.require_kerberos ? ", require_kerberos" : "",
                s.topology.frontend.leak_guard ? ", leak_guard" : "", metrics_url());
}

void server::stop() {
    auto& s = *impl_;
    if (!s.running) return;
    s.running = false;
    common::stop_accepting(s.accept_ioc, s.acceptor, s.accept_thread);
    s.admin->stop();
    // Each worker closes its pools on its own thread, then stops.
    for (auto& w : s.workers) {
        net::post(w->ioc, [wp = w.get()] {
            for (auto& [name, pool] : wp->pools) pool->shut_down();
            if (wp->sweep) wp->sweep->cancel();
            wp->ioc.stop();
        });
    }
    for (auto& w : s.workers)
        if (w->thread.joinable()) w->thread.join();
    s.credentials->join();  // credential work in flight posts into stopped (still alive) loops
    s.ntlm_credentials->join();
    s.workers.clear();  // destroys the sessions: every client and back-end connection closes
}

server::~server() { stop(); }

std::uint16_t server::port() const { return impl_->acceptor.local_endpoint().port(); }
std::uint16_t server::admin_port() const { return impl_->admin->port(); }
bool server::tls() const { return impl_->tls.has_value(); }
std::string server::url() const {
    return fmt::format("{}://{}:{}", tls() ? "https" : "http", impl_->options.address, port());
}
std::string server::metrics_url() const {
    return fmt::format("http://{}:{}/metrics", impl_->options.admin_address, admin_port());
}
const std::string& server::policy() const { return impl_->topology.frontend.policy; }

std::vector<const worker_metrics*> server::metrics() const {
    std::vector<const worker_metrics*> m;
    for (const auto& w : impl_->workers) m.push_back(&w->metrics);
    return m;
}

std::string server::metrics_text() const { return render_prometheus(policy(), metrics()); }

}  // namespace exsim::proxy
