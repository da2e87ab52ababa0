#include "exchange.hpp"

#include <algorithm>
#include <array>
#include <chrono>
#include <optional>
#include <tuple>
#include <utility>

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <fmt/format.h>

#include "exsim/auth/http_auth.hpp"
#include "exsim/common/http_framing.hpp"
#include "forwarding.hpp"
#include "nothrow.hpp"

namespace exsim::proxy {
namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;
using net::awaitable;

namespace {

constexpr std::size_t max_drained_body = 64 * 1024;  // a 401 body we read and drop
// A failure to get credentials is remembered briefly, so that a KDC outage does not cost every
// request a KDC attempt.
constexpr auto credential_failure_lifetime = std::chrono::seconds(10);

using backend_parser = http::response_parser<http::buffer_body>;

// How one attempt at an exchange with the back-end ended.
enum class exchange_end {
    relayed,   // a response reached the client (or the client went away while it did)
    answered,  // the proxy answered the client itself (an error)
    retry,     // the back-end closed before any byte of an answer to the first leg
};

enum class send_result { ok, backend_failed, client_failed, client_malformed, body_too_large, replay_lost };

// Why a handshake could not start; empty error: it started.
struct start_failure {
    std::string error;
    bool kdc_unreachable = false;  // no KDC answered: a passing outage (503), not a back-end fault
};

std::string to_string(const tcp::endpoint& ep) { return fmt::format("{}:{}", ep.address().to_string(), ep.port()); }

// One attempt at a request's exchange with the back-end: a connection from the pool, the legs
// on it until a final response, which it relays, and the connection back to the pool. In the
// order run() calls them: the connection, the handshake's start (credentials included), the
// legs (send, then the answer: final or 401), the relay.
class exchange {
public:
    exchange(server::impl& srv, worker& w, client_side& client, const forward_request& r)
        : srv_(srv), worker_(w), client_(client), r_(r), version_(r.parser.get().version()),
          keep_(r.parser.get().keep_alive()) {}

    awaitable<exchange_end> run();
    // After a retry end: whether to try again on a fresh connection (then counted and logged).
    bool retry_allowed(int attempt);
    // After a retry end that may not be retried: 502, saying why.
    awaitable<bool> answer_not_retried(int attempt);

    bool client_open = true;  // after run(): whether the client connection may carry another request

private:
    // The connection
    awaitable<bool> refuse(const acquire_result& a);
    void release(bool reusable, close_reason why);
    // The handshake's start
    awaitable<std::string> probe_offers();
    awaitable<start_failure> start_handshake();
    awaitable<auth::credential_result> credentials_for(auth::initiator_mode mode);
    void fetch_credentials(auth::credential_cache& cache, const std::string& key, auth::initiator_mode mode);
    awaitable<exchange_end> refuse_handshake(start_failure failure);
    void finish_handshake();
    // The legs
    awaitable<exchange_end> run_legs();
    awaitable<std::optional<exchange_end>> send_leg(backend_parser& rp);
    awaitable<send_result> send(http::request<http::buffer_body>& out, bool bodyless);
    awaitable<send_result> stream_body(http::request_serializer<http::buffer_body>& sr,
                                       http::request<http::buffer_body>& out);
    awaitable<std::optional<exchange_end>> end_after_send(send_result sent);
    awaitable<exchange_end> backend_failed(send_result sent, beast::error_code ec, const backend_parser& rp);
    awaitable<exchange_end> on_final_response(backend_parser& rp, const auth::challenge& ch);
    awaitable<std::optional<exchange_end>> on_unauthorized(backend_parser& rp, const auth::challenge& ch,
                                                           std::optional<auth::scheme> ours);
    awaitable<exchange_end> refuse_anonymous();
    awaitable<bool> drain(backend_parser& rp);
    awaitable<bool> read_body(backend_parser& rp, std::size_t limit, std::string* into);
    // The relay
    awaitable<exchange_end> relay_response(backend_parser& rp, bool client_body_read);
    bool withheld_by_leak_guard(const http::response_header<>& res);
    bool may_open(std::string_view mailbox) const;
    awaitable<bool> relay_body(backend_parser& rp, const std::string& header, bool chunked);
    awaitable<exchange_end> capture_response(backend_parser& rp, bool keep);
    // Answers to the client
    awaitable<exchange_end> fail(http::status status, std::string why, bool count_error = true);
    awaitable<bool> answer(http::status status, bool keep_alive, std::string why, bool basic_challenge = false);

    const proxy_limits& limits() const { return srv_.options.limits; }
    const common::frontend_settings& settings() const { return srv_.topology.frontend; }
    worker_metrics& metrics() { return worker_.metrics; }
    const http::request<http::buffer_body>& request() const { return r_.parser.get(); }
    backend_pool& pool() const { return r_.pool; }
    const std::string& user() const { return r_.user; }
    const std::string& backend_name() const { return r_.pool.backend().name; }

    // An event of the trace (proxy/trace_event.hpp) with what every kind carries.
    trace_event trace_start(trace_kind kind) const {
        trace_event e;
        e.kind = kind;
        e.client = client_.id();
        e.connection = conn_->id;
        e.backend = backend_name();
        e.user = user();
        return e;
    }

    // Tells the trace sink, if there is one, what happened on the connection; `fill` sets the
    // event's own fields.
    template <class Fill>
    void trace(trace_kind kind, Fill&& fill) {
        if (!srv_.options.trace) return;
        auto e = trace_start(kind);
        fill(e);
        srv_.options.trace(e);
    }

    server::impl& srv_;
    worker& worker_;
    client_side& client_;
    const forward_request& r_;
    const unsigned version_;  // the client's HTTP version
    const bool keep_;         // whether the client asked to keep its connection

    conn_ptr conn_;
    bool must_authenticate_ = true;
    bool reused_ = false;
    std::unique_ptr<auth::initiator> initiator_;
    auth::step_result step_;
    std::size_t legs_ = 0;
    bool restarted_ = false;             // a handshake started again after the back-end refused its scheme
    std::size_t body_from_client_ = 0;   // bytes relayed from the client so far
    std::string replay_;                 // those bytes, while they fit in replay_bytes
    bool replay_complete_ = true;
    bool reusable_ = false;              // the back-end connection may be kept
    close_reason close_why_ = close_reason::error;
    bool unfinished_ = false;            // a final response arrived before the handshake completed
    beast::error_code client_error_;     // why the client's body could not be parsed
};

// ---- the connection ---------------------------------------------------------------------------

awaitable<exchange_end> exchange::run() {
    auto acquired = co_await pool().connection_for(user(), client_.id());
    if (!acquired.conn) {
        client_open = co_await refuse(acquired);
        co_return exchange_end::answered;
    }
    conn_ = std::move(acquired.conn);
    must_authenticate_ = acquired.must_authenticate;
    reused_ = acquired.decision != reuse_decision::new_connection;
    replay_ = r_.body;
    body_from_client_ = r_.body.size();
    trace(trace_kind::connection, [&](trace_event& e) {
        e.decision = acquired.decision;
        e.held_as = conn_->user;
        e.held_mechanism = conn_->mechanism;
        e.must_authenticate = must_authenticate_;
    });
    const auto end = co_await run_legs();
    if (end == exchange_end::retry)
        release(false, close_reason::backend_closed);
    else
        release(reusable_, close_why_);
    co_return end;
}

bool exchange::retry_allowed(int attempt) {
    const bool replayable = r_.parser.is_done() && body_from_client_ == 0;
    if (attempt != 0 || !common::is_idempotent(request().method()) || !replayable) return false;
    add(metrics().idempotent_retries);
    srv_.log->info("client {}: back-end {} closed a {} connection before answering; retrying {} once", client_.id(),
                   backend_name(), reused_ ? "re-used" : "new", request().method_string());
    return true;
}

awaitable<bool> exchange::answer_not_retried(int attempt) {
    add(metrics().backend_errors);
    // Built before the co_await: GCC 12 mis-destroys string temporaries of a ?: inside one.
    std::string why = !common::is_idempotent(request().method())
                          ? "it is not idempotent, and it may or may not have been acted on"
                          : attempt > 0 ? "it was already retried once"
                                        : "its body was streamed and is gone";
    co_return co_await answer(http::status::bad_gateway, false,
                              fmt::format("back-end {} closed the connection before answering; {} is not "
                                          "retried: {}",
                                          backend_name(), request().method_string(), why));
}

// No connection could be had: the client is told why.
awaitable<bool> exchange::refuse(const acquire_result& a) {
    const bool keep = keep_ && r_.parser.is_done();
    switch (a.failure) {
        case acquire_failure::queue_full:
            co_return co_await answer(http::status::service_unavailable, keep,
                                      fmt::format("back-end {}: all {} connections are busy and {} requests are "
                                                  "already waiting (queue_limit)",
                                                  backend_name(), settings().pool.max_connections,
                                                  settings().pool.queue_limit));
        case acquire_failure::queue_timeout:
            co_return co_await answer(http::status::service_unavailable, keep,
                                      fmt::format("back-end {}: no connection became free within {} ms "
                                                  "(queue_timeout_ms)",
                                                  backend_name(), settings().pool.queue_timeout_ms));
        case acquire_failure::connect_timeout:
            add(metrics().backend_errors);
            co_return co_await answer(http::status::gateway_timeout, keep,
                                      fmt::format("back-end {} ({}) did not accept a connection within {} ms",
                                                  backend_name(), to_string(pool().endpoint()),
                                                  limits().connect_timeout.count()));
        case acquire_failure::connect_failed:
            add(metrics().backend_errors);
            co_return co_await answer(http::status::bad_gateway, keep,
                                      fmt::format("back-end {} ({}) is unreachable: {}", backend_name(),
                                                  to_string(pool().endpoint()), a.error));
        default:
            co_return co_await answer(http::status::service_unavailable, false, "the proxy is stopping");
    }
}

// The connection back to the pool, told to the trace with what the pool did.
void exchange::release(bool reusable, close_reason why) {
    if (!srv_.options.trace) return void(pool().release(std::move(conn_), reusable, client_.id(), why));
    auto e = trace_start(trace_kind::released);
    const auto done = pool().release(std::move(conn_), reusable, client_.id(), why);
    e.kept = done.kept;
    e.closed = done.closed;
    srv_.options.trace(e);
}

// ---- the handshake's start --------------------------------------------------------------------

// An unauthenticated HEAD of the target on a fresh connection: the back-end's 401 lists
// its schemes. HEAD is safe, so nothing is done even by a back-end that answers it.
awaitable<std::string> exchange::probe_offers() {
    http::request<http::empty_body> head{http::verb::head, r_.target, 11};
    head.set(http::field::host, fmt::format("{}:{}", pool().backend().host, pool().endpoint().port()));
    head.set("X-Exsim-On-Behalf-Of", user());
    head.keep_alive(true);
    trace(trace_kind::leg, [&](trace_event& e) {
        e.method = "HEAD";
        e.target = r_.target;
    });
    add(metrics().backend_requests);
    conn_->stream.expires_after(limits().backend_timeout);
    auto [wec, wn] = co_await http::async_write(conn_->stream, head, nothrow);
    backend_parser rp;
    rp.skip(true);
    beast::error_code ec = wec;
    if (!ec) std::tie(ec, std::ignore) = co_await http::async_read_header(conn_->stream, conn_->io->read, rp, nothrow);
    if (ec) co_return fmt::format("back-end {}: {}", backend_name(), ec.message());
    auto ch = auth::read_challenge(rp.get(), std::nullopt);
    trace(trace_kind::answer, [&](trace_event& e) {
        e.status = rp.get().result_int();
        e.offers = ch.offers;
    });
    if (!ch.offers.empty()) pool().offers = ch.offers;
    if (!rp.get().keep_alive() || conn_->io->read.size() != 0)
        co_return fmt::format("back-end {}: closed the connection after an unauthenticated HEAD", backend_name());
    co_return std::string();
}

// Starts a handshake as the user on the connection: credentials (from the blocking pool on
// first use), a fresh initiator, its first token.
awaitable<start_failure> exchange::start_handshake() {
    auto mode = auth::mode_for(pool().offers, settings().require_kerberos);
    if (!mode) {
        add(metrics().kerberos_required_refusals);
        co_return start_failure{fmt::format("back-end {} offers only NTLM and require_kerberos is set: "
                                            "refusing to fall back from Kerberos to NTLM",
                                            backend_name())};
    }
    auto creds = co_await credentials_for(*mode);
    if (!creds.credentials && *mode == auth::initiator_mode::negotiate) {
        srv_.log->warn("back-end {}: no Kerberos credentials for {} ({}); falling back to NTLM", backend_name(), user(),
                       creds.error);
        creds = co_await credentials_for(auth::initiator_mode::ntlm);
    }
    if (!creds.credentials)
        co_return start_failure{fmt::format("cannot authenticate {} to back-end {}: {}", user(), backend_name(), creds.error),
                                creds.kdc_unreachable};
    // The back-end forgets who the connection was once a new handshake starts on it.
    conn_->mechanism = auth::mechanism::none;
    conn_->user.clear();
    initiator_ = creds.credentials->make_initiator(pool().backend().host);
    step_ = initiator_->step({});
    if (step_.status == auth::step_status::failed)
        co_return start_failure{fmt::format("cannot authenticate {} to back-end {}: {}", user(), backend_name(), step_.error),
                                step_.kdc_unreachable};
    co_return start_failure{};
}

// The user's credentials for the back-end's host in `mode`: this worker's copy, else fetched.
awaitable<auth::credential_result> exchange::credentials_for(auth::initiator_mode mode) {
    // By host too: a copy is known to hold the service ticket of the host it was warmed for.
    const auto key = fmt::format("{}\n{}\n{}", user(), auth::mode_name(mode), pool().backend().host);
    auto& cache = srv_.cache_for(mode);
    if (auto it = worker_.credentials.find(key); it != worker_.credentials.end()) {
        if (it->second.fresh_until > std::chrono::steady_clock::now()) co_return it->second;
        // Credentials that worked serve on while their successor is fetched in the
        // background: a slow or stopped KDC then delays no user it had already served.
        if (it->second.credentials) {
            fetch_credentials(cache, key, mode);
            co_return it->second;
        }
    }
    // Waits for the fetch at most credential_timeout: libkrb5 gives up on a KDC that accepts
    // but never answers only after about 27 s. The answer arriving later is kept.
    fetch_credentials(cache, key, mode);
    if (auto waiting = worker_.fetching.find(key); waiting != worker_.fetching.end()) {
        net::steady_timer wake(worker_.ioc, limits().credential_timeout);
        waiting->second.push_back(&wake);
        co_await wake.async_wait(nothrow);
        if (auto still = worker_.fetching.find(key); still != worker_.fetching.end()) {
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
// loop; the result comes back to this worker's copies. One fetch per key at a time; a
// failure keeps the credentials that worked, and waits credential_failure_lifetime before
// the next attempt.
void exchange::fetch_credentials(auth::credential_cache& cache, const std::string& key, auth::initiator_mode mode) {
    if (!worker_.fetching.try_emplace(key).second) return;
    cache.async_get(user(), r_.password, mode, worker_.ioc.get_executor(),
                    [w = &worker_, key](auth::credential_result result) {
                        auto& copy = w->credentials[key];
                        const bool failed = !result.credentials;
                        if (!failed || !copy.credentials) copy = std::move(result);
                        if (failed) copy.fresh_until = std::chrono::steady_clock::now() + credential_failure_lifetime;
                        auto waiting = w->fetching.extract(key);
                        for (auto* timer : waiting.mapped()) timer->cancel();
                    },
                    pool().backend().host);
}

// A handshake that could not start: 503 when the KDC cannot be reached (the back-end is fine
// and it will pass: issue 5 asks a clear 503 naming the cause, not a back-end error), else 502.
awaitable<exchange_end> exchange::refuse_handshake(start_failure failure) {
    if (failure.kdc_unreachable)
        co_return co_await fail(http::status::service_unavailable, std::move(failure.error), false);
    co_return co_await fail(http::status::bad_gateway, std::move(failure.error));
}

void exchange::finish_handshake() {
    const auto mech = initiator_->negotiated();
    conn_->mechanism = mech;
    conn_->user = user();
    trace(trace_kind::authenticated, [&](trace_event& e) { e.mechanism = mech; });
    if (mech == auth::mechanism::kerberos) add(metrics().handshakes[static_cast<std::size_t>(handshake_mechanism::kerberos)]);
    if (mech == auth::mechanism::ntlm) {
        add(metrics().handshakes[static_cast<std::size_t>(handshake_mechanism::ntlm)]);
        add(metrics().ntlm_fallbacks);
        srv_.log->warn("back-end {}: {} authenticated with NTLM, not Kerberos: the connection, not the request, "
                       "is authenticated (conn {})",
                       backend_name(), user(), conn_->id);
    }
}

// ---- the legs ---------------------------------------------------------------------------------

// Authenticates as the user when the policy said so at acquire (or when the back-end answers a
// token-less request with 401 and the policy says to), then runs the legs on the connection
// until a final response, which it relays.
awaitable<exchange_end> exchange::run_legs() {
    if (must_authenticate_ && pool().offers.empty() && !r_.parser.is_done() && !reused_) {
        // What the back-end offers is not known yet and the request has a body that a
        // refused first leg could consume beyond the replay copy: ask with a HEAD first.
        if (auto error = co_await probe_offers(); !error.empty())
            co_return co_await fail(http::status::bad_gateway, std::move(error));
    }
    if (must_authenticate_) {
        if (auto failure = co_await start_handshake(); !failure.error.empty())
            co_return co_await refuse_handshake(std::move(failure));
    }
    for (;;) {
        if (++legs_ > limits().max_handshake_legs)
            co_return co_await fail(http::status::bad_gateway,
                                    fmt::format("back-end {}: the handshake did not finish in {} legs", backend_name(),
                                                limits().max_handshake_legs));
        backend_parser rp;
        if (auto end = co_await send_leg(rp)) co_return *end;
        auto& res = rp.get();
        std::optional<auth::scheme> ours;
        if (initiator_) ours = initiator_->http_scheme();
        auto ch = auth::read_challenge(res, ours);
        trace(trace_kind::answer, [&](trace_event& e) {
            e.status = res.result_int();
            e.offers = ch.offers;
            if (ours && ch.token) e.scheme = auth::scheme_name(*ours);
            if (ch.token) e.token = *ch.token;
            e.mailbox = std::string(res["X-Exsim-Mailbox"]);
        });
        if (res.result() != http::status::unauthorized) co_return co_await on_final_response(rp, ch);
        if (auto end = co_await on_unauthorized(rp, ch, ours)) co_return *end;
    }
}

// Sends one leg (the request, with the handshake's current token) and reads the header of the
// answer into `rp`. An end when the leg failed: answered, or to be retried.
awaitable<std::optional<exchange_end>> exchange::send_leg(backend_parser& rp) {
    const auto& req = request();
    auto out = backend_request(req, r_.target, user(), fmt::format("{}:{}", pool().backend().host, pool().endpoint().port()));
    if (initiator_) out.set(http::field::authorization, auth::token_header(initiator_->http_scheme(), step_.token));
    // A raw NTLM NEGOTIATE can never be the last leg: it carries no body (as browsers do).
    const bool bodyless = initiator_ && initiator_->http_scheme() == auth::scheme::ntlm &&
                          step_.status == auth::step_status::continue_needed;
    if (bodyless && !(r_.parser.is_done() && body_from_client_ == 0)) out.content_length(0);
    if (bodyless) out.body().more = false;
    trace(trace_kind::leg, [&](trace_event& e) {
        e.method = out.method_string();
        e.target = out.target();
        if (initiator_) e.scheme = auth::scheme_name(initiator_->http_scheme());
        if (initiator_) e.token = step_.token;
    });
    add(metrics().backend_requests);
    const auto sent = co_await send(out, bodyless);
    if (auto end = co_await end_after_send(sent)) co_return end;
    if (req.method() == http::verb::head) rp.skip(true);
    rp.body_limit(boost::none);
    conn_->stream.expires_after(limits().backend_timeout);
    beast::error_code ec;
    if (sent == send_result::ok)
        std::tie(ec, std::ignore) = co_await http::async_read_header(conn_->stream, conn_->io->read, rp, nothrow);
    if (sent == send_result::backend_failed || ec) co_return co_await backend_failed(sent, ec, rp);
    co_return std::nullopt;
}

// Writes one leg: the headers, then the body (none, from the client, or replayed).
awaitable<send_result> exchange::send(http::request<http::buffer_body>& out, bool bodyless) {
    auto& s = conn_->stream;
    http::request_serializer<http::buffer_body> sr{out};
    s.expires_after(limits().backend_timeout);
    if (bodyless || (r_.parser.is_done() && body_from_client_ == 0)) {
        const auto header = header_bytes(out);
        auto [ec, n] = co_await net::async_write(s, net::buffer(header), nothrow);
        co_return ec ? send_result::backend_failed : send_result::ok;
    }
    if (r_.parser.is_done()) {  // the body went once already: send it again from the replay copy
        if (!replay_complete_) co_return send_result::replay_lost;
        out.body().data = replay_.data();
        out.body().size = replay_.size();
        out.body().more = false;
        auto [ec, n] = co_await http::async_write(s, sr, nothrow);
        co_return ec ? send_result::backend_failed : send_result::ok;
    }
    co_return co_await stream_body(sr, out);
}

// Streams the client's body through a small buffer, keeping a copy while it is small.
awaitable<send_result> exchange::stream_body(http::request_serializer<http::buffer_body>& sr,
                                             http::request<http::buffer_body>& out) {
    auto& s = conn_->stream;
    auto [hec, hn] = co_await http::async_write_header(s, sr, nothrow);
    if (hec) co_return send_result::backend_failed;
    char* const buf = conn_->io->relay.data();
    while (!r_.parser.is_done()) {
        auto& body = r_.parser.get().body();
        body.data = buf;
        body.size = relay_chunk;
        auto ec = co_await client_.read_body(r_.parser);
        if (ec == http::error::need_buffer) ec = {};
        if (ec == http::error::body_limit) co_return send_result::body_too_large;
        if (ec.category() == http::make_error_code(http::error::bad_chunk).category() &&
            ec != http::error::partial_message && ec != http::error::end_of_stream) {
            client_error_ = ec;
            co_return send_result::client_malformed;
        }
        if (ec) co_return send_result::client_failed;
        const std::size_t got = relay_chunk - body.size;
        body_from_client_ += got;
        if (replay_complete_ && replay_.size() + got <= limits().replay_bytes) {
            replay_.append(buf, got);
        } else {
            replay_complete_ = false;
            replay_.clear();
        }
        out.body().data = buf;
        out.body().size = got;
        out.body().more = !r_.parser.is_done();
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

// The end of a leg that failed on the client's side (or lost the body it must send again);
// none when it went out or the back-end failed.
awaitable<std::optional<exchange_end>> exchange::end_after_send(send_result sent) {
    switch (sent) {
        case send_result::ok:
        case send_result::backend_failed:
            co_return std::nullopt;
        case send_result::client_failed:
            client_open = false;
            co_return exchange_end::answered;
        case send_result::client_malformed:  // a bad chunk: answered, not just dropped
            client_open = false;
            add(metrics().bad_requests);
            co_await answer(http::status::bad_request, false,
                            fmt::format("malformed request body: {}", client_error_.message()));
            co_return exchange_end::answered;
        case send_result::body_too_large:
            client_open = false;
            co_await answer(http::status::payload_too_large, false,
                            fmt::format("the request body exceeds {} bytes", limits().body_bytes));
            co_return exchange_end::answered;
        case send_result::replay_lost:
            co_return co_await fail(http::status::bad_gateway,
                                    fmt::format("back-end {} asked for authentication after the request body "
                                                "was sent, and the body ({} bytes) is larger than the {} bytes "
                                                "kept to send it again",
                                                backend_name(), body_from_client_, limits().replay_bytes));
    }
    co_return std::nullopt;
}

// The back-end failed to take the leg or to answer it.
awaitable<exchange_end> exchange::backend_failed(send_result sent, beast::error_code ec, const backend_parser& rp) {
    // A connection the back-end closed before any byte of an answer to the first leg may be
    // retried (forward() decides): a pooled one it closed while idle, or a new one whose idle
    // timeout ran out before a slow handshake start sent the request. After a timeout, never:
    // the request may still be acted on.
    const bool closed = sent == send_result::backend_failed || ec == http::error::end_of_stream ||
                        ec == net::error::eof || ec == net::error::connection_reset || ec == net::error::broken_pipe;
    if (legs_ == 1 && !rp.got_some() && closed) co_return exchange_end::retry;
    // Built before the co_await: GCC 12 mis-destroys string temporaries of a ?: inside one.
    const auto status = ec == beast::error::timeout ? http::status::gateway_timeout : http::status::bad_gateway;
    std::string reason = ec == beast::error::timeout
                             ? fmt::format("no answer within {} ms; the request may have been acted on",
                                           limits().backend_timeout.count())
                             : ec ? fmt::format("{}; the request was sent and may have been acted on", ec.message())
                                  : std::string("the request could not be sent");
    std::string why = fmt::format("back-end {}: {}", backend_name(), reason);
    co_return co_await fail(status, std::move(why));
}

// A final answer: the handshake's last token checked (mutual authentication), then relayed.
awaitable<exchange_end> exchange::on_final_response(backend_parser& rp, const auth::challenge& ch) {
    if (initiator_) {
        if (ch.token) step_ = initiator_->step(*ch.token);  // mutual authentication
        if (step_.status == auth::step_status::failed) {
            add(metrics().handshake_failures);
            co_return co_await fail(http::status::bad_gateway,
                                    fmt::format("back-end {}: mutual authentication failed: {}", backend_name(),
                                                step_.error));
        }
        // A final answer to an unfinished handshake (an error to a NEGOTIATE leg): who the
        // back-end holds the connection as is unknown, so it is not used again.
        if (step_.status == auth::step_status::complete)
            finish_handshake();
        else
            unfinished_ = true;
    }
    co_return co_await relay_response(rp, r_.parser.is_done());
}

// A 401: the back-end wants (more of) a handshake. None: send the next leg.
awaitable<std::optional<exchange_end>> exchange::on_unauthorized(backend_parser& rp, const auth::challenge& ch,
                                                                 std::optional<auth::scheme> ours) {
    if (!ch.offers.empty()) pool().offers = ch.offers;
    if (!co_await drain(rp))
        co_return co_await fail(http::status::bad_gateway,
                                fmt::format("back-end {}: unreadable 401 response", backend_name()));
    if (initiator_ && ch.token && step_.status == auth::step_status::continue_needed) {
        step_ = initiator_->step(*ch.token);
        if (step_.status != auth::step_status::failed) co_return std::nullopt;
        add(metrics().handshake_failures);
        co_return co_await fail(http::status::bad_gateway, fmt::format("back-end {}: the handshake as {} failed: {}",
                                                                       backend_name(), user(), step_.error));
    }
    const bool scheme_refused =
        initiator_ && std::find(ch.offers.begin(), ch.offers.end(), auth::scheme_name(*ours)) == ch.offers.end();
    if (initiator_ && !(scheme_refused && !restarted_)) {
        add(metrics().handshake_failures);
        co_return co_await fail(http::status::bad_gateway, fmt::format("back-end {} refused the logon of {} ({})",
                                                                       backend_name(), user(), auth::scheme_name(*ours)));
    }
    if (!srv_.policy->authenticate_after_401(user())) co_return co_await refuse_anonymous();
    // Not authenticated yet (a re-used connection the back-end does not hold for this
    // request, or a scheme it does not offer): start (again) with what it offers.
    restarted_ = restarted_ || initiator_ != nullptr;
    if (auto failure = co_await start_handshake(); !failure.error.empty())
        co_return co_await refuse_handshake(std::move(failure));
    co_return std::nullopt;
}

// An anonymous request the back-end refused with 401: tell the client (it cannot log in to
// the back-end through the proxy without logging in to the proxy).
awaitable<exchange_end> exchange::refuse_anonymous() {
    reusable_ = true;
    client_open = co_await answer(http::status::unauthorized, keep_,
                                  fmt::format("back-end {} requires authentication", backend_name()), true);
    co_return exchange_end::answered;
}

// Reads and drops a (small) body so that the connection can carry the next leg.
awaitable<bool> exchange::drain(backend_parser& rp) {
    co_return co_await read_body(rp, max_drained_body, nullptr) && rp.get().keep_alive();
}

// Reads a whole body of at most `limit` bytes, appending it to `into` unless null. False on
// an error or a larger body (the connection is then unusable).
awaitable<bool> exchange::read_body(backend_parser& rp, std::size_t limit, std::string* into) {
    char buf[4096];
    std::size_t total = 0;
    while (!rp.is_done()) {
        rp.get().body().data = buf;
        rp.get().body().size = sizeof buf;
        conn_->stream.expires_after(limits().backend_timeout);
        auto [ec, n] = co_await http::async_read(conn_->stream, conn_->io->read, rp, nothrow);
        if (ec == http::error::need_buffer) ec = {};
        if (ec) co_return false;
        const std::size_t got = sizeof buf - rp.get().body().size;
        total += got;
        if (total > limit) co_return false;
        if (into) into->append(buf, got);
    }
    co_return true;
}

// ---- the relay --------------------------------------------------------------------------------

// Streams the back-end's final response to the client: its headers minus hop-by-hop ones
// and the back-end's WWW-Authenticate (the proxy's own business), then the body.
awaitable<exchange_end> exchange::relay_response(backend_parser& rp, bool client_body_read) {
    auto& res = rp.get();
    ++conn_->requests;
    if (withheld_by_leak_guard(res)) {
        reusable_ = false;  // its identity is wrong: never use it again
        close_why_ = close_reason::error;
        client_open = co_await answer(http::status::bad_gateway, keep_,
                                      "leak guard: the back-end answered from another user's mailbox; "
                                      "the response was withheld");
        co_return exchange_end::answered;
    }
    if (r_.capture) co_return co_await capture_response(rp, keep_ && client_body_read);
    // The client's HTTP version: an HTTP/1.0 client (ApacheBench) keeps its connection only
    // when told so, and cannot read chunks: a chunked body then ends with the connection.
    bool keep = keep_;
    auto out = client_response(res, version_);
    if (version_ < 11 && out.chunked()) {
        out.chunked(false);
        keep = false;
    }
    out.keep_alive(keep);
    mark_tls_only(out, client_.tls());
    count_response(metrics(), res.result_int());
    const auto header = header_bytes(out);
    if (!co_await relay_body(rp, header, out.chunked())) {
        client_open = false;
        co_return exchange_end::relayed;
    }
    reusable_ = rp.is_done() && res.keep_alive() && !unfinished_;
    close_why_ = res.keep_alive() ? close_reason::error : close_reason::backend_closed;
    client_open = keep && client_body_read;  // an unread request body cannot frame the next request
    co_return exchange_end::relayed;
}

// Whether the response must not reach the client: leak_guard is on and it served a mailbox
// the user may not open, or as someone else. Counts a foreign mailbox either way.
bool exchange::withheld_by_leak_guard(const http::response_header<>& res) {
    // A refusal (403, 404) served nothing: like the audit's cross_user, only status < 400 leaks.
    const std::string_view identity = res["X-Exsim-Identity"];
    const std::string_view mailbox = res["X-Exsim-Mailbox"];
    const bool served = !user().empty() && res.result_int() < 400;
    const bool foreign_mailbox = served && !mailbox.empty() && !may_open(mailbox);
    if (foreign_mailbox) add(metrics().cross_user_responses);
    if (!settings().leak_guard || !served) return false;
    if ((identity.empty() || identity == user()) && !foreign_mailbox) return false;
    add(metrics().leak_guard_hits);
    srv_.log->error("leak guard: back-end {} served mailbox '{}' as '{}' to {} on conn {}; response replaced",
                    backend_name(), mailbox, identity, user(), conn_->id);
    return true;
}

bool exchange::may_open(std::string_view mailbox) const {
    if (mailbox == user()) return true;
    const auto* owner = srv_.users->find(mailbox);
    return owner && std::find(owner->delegates.begin(), owner->delegates.end(), user()) != owner->delegates.end();
}

// The header goes out with the body's first bytes, in one write: a small response is one
// write and one packet, not two (a back-end sends its header with the body's start, so the
// client's header waits for nothing in practice). Each read relays what has arrived, at
// most relay_chunk, rather than waiting for a full chunk of a slow body. A chunked body is
// framed as Beast's serializer frames it: each piece a chunk, then the last chunk. False when
// the back-end failed mid-body or the client went away: the client connection then closes.
awaitable<bool> exchange::relay_body(backend_parser& rp, const std::string& header, bool chunked) {
    char* const buf = conn_->io->relay.data();
    for (bool first = true;; first = false) {
        std::size_t got = 0;
        while (!rp.is_done() && got == 0) {  // a read may bring framing only (a chunk's size line)
            rp.get().body().data = buf;
            rp.get().body().size = relay_chunk;
            conn_->stream.expires_after(limits().backend_timeout);
            auto [ec, n] = co_await http::async_read_some(conn_->stream, conn_->io->read, rp, nothrow);
            if (ec == http::error::need_buffer) ec = {};
            if (ec) {  // the back-end failed mid-body: the client cannot get a whole response
                add(metrics().backend_errors);
                co_return false;
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
        if (co_await client_.write(pieces)) co_return false;
        if (rp.is_done()) co_return true;
    }
}

// A browser-view page's back-end response: kept for the page instead of relayed.
awaitable<exchange_end> exchange::capture_response(backend_parser& rp, bool keep) {
    auto& res = rp.get();
    r_.capture->status = res.result_int();
    r_.capture->mailbox = res["X-Exsim-Mailbox"];
    r_.capture->identity = res["X-Exsim-Identity"];
    const bool whole = co_await read_body(rp, owa::max_reply_bytes, &r_.capture->body);
    r_.capture->truncated = !whole;
    reusable_ = whole && res.keep_alive() && !unfinished_;
    close_why_ = res.keep_alive() ? close_reason::error : close_reason::backend_closed;
    client_open = keep;
    co_return exchange_end::relayed;
}

// ---- answers to the client --------------------------------------------------------------------

// The proxy answers the client itself, keeping its connection when the body was read: the
// exchange ends.
awaitable<exchange_end> exchange::fail(http::status status, std::string why, bool count_error) {
    if (count_error) add(metrics().backend_errors);
    client_open = co_await answer(status, keep_ && r_.parser.is_done(), std::move(why));
    co_return exchange_end::answered;
}

// The proxy's own answer: to the client, or for a browser-view page, to its page (which tells
// the user). Returns whether the client connection stays open.
awaitable<bool> exchange::answer(http::status status, bool keep_alive, std::string why, bool basic_challenge) {
    if (r_.capture) {
        r_.capture->status = static_cast<unsigned>(status);
        r_.capture->proxy_error = std::move(why);
        co_return keep_alive;
    }
    co_return co_await client_.answer(status, version_, keep_alive, std::move(why), basic_challenge);
}

}  // namespace

awaitable<bool> forward(server::impl& srv, worker& w, client_side& client, const forward_request& r) {
    const bool keep = r.parser.get().keep_alive();
    for (int attempt = 0;; ++attempt) {
        exchange ex(srv, w, client, r);
        switch (co_await ex.run()) {
            case exchange_end::relayed:
                co_return ex.client_open;
            case exchange_end::answered:
                co_return ex.client_open && keep;
            case exchange_end::retry:
                if (ex.retry_allowed(attempt)) continue;
                co_return co_await ex.answer_not_retried(attempt);
        }
    }
}

}  // namespace exsim::proxy
