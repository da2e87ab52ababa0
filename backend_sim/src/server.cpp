#include "exsim/backend_sim/server.hpp"

#include <atomic>
#include <optional>
#include <thread>
#include <vector>

#include <boost/algorithm/string/predicate.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <fmt/format.h>

#include "exsim/auth/http_auth.hpp"
#include "exsim/auth/token_decoder.hpp"
#include "exsim/backend_sim/audit_log.hpp"
#include "exsim/backend_sim/mailbox_api.hpp"
#include "exsim/backend_sim/mailbox_store.hpp"
#include "exsim/common/accept_loop.hpp"
#include "exsim/common/base64.hpp"
#include "exsim/common/http_framing.hpp"
#include "exsim/common/log.hpp"

namespace exsim::backend {
namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;
using request = http::request<http::string_body>;
using response = http::response<http::string_body>;

namespace {

// Everything one worker thread owns. The io_context is declared last so that it is destroyed
// first, with the sessions its handlers hold, before what those sessions refer to.
struct worker {
    std::unique_ptr<auth::acceptor_credentials> credentials;
    mailbox_store store;
    std::unique_ptr<mailbox_api> api;
    net::io_context ioc{1};
    std::thread thread;

    explicit worker(mailbox_store s) : store(std::move(s)) {}
};

// A token that opens a handshake (NTLM NEGOTIATE, SPNEGO NegTokenInit, a bare Kerberos AP-REQ),
// as opposed to one that continues the handshake in progress on the connection.
bool opens_handshake(const auth::decoded_token& t) {
    if (t.ntlm && t.spnego_kind.empty()) return t.ntlm->type == 1;
    return t.spnego_kind != "negTokenResp";
}

// Beast limits a header's bytes, not its fields: the front-end's 100 plus the few it adds itself.
constexpr std::size_t max_header_fields = 128;

}  // namespace

struct server::impl {
    common::topology topology;
    server_options options;
    common::backend_config backend;
    std::shared_ptr<spdlog::logger> log = common::logger("backend");
    audit_log audit;
    std::vector<std::unique_ptr<worker>> workers;
    net::io_context accept_ioc{1};
    tcp::acceptor acceptor{accept_ioc};
    std::thread accept_thread;
    std::atomic<std::uint64_t> next_connection{1};
    bool running = false;

    impl(const common::topology& t, server_options o)
        : topology(t), options(std::move(o)), audit(audit_log_path(options.state_dir, options.backend)) {}

    void do_accept();
};

namespace {

class mailbox_session : public std::enable_shared_from_this<mailbox_session> {
public:
    mailbox_session(tcp::socket socket, worker& w, server::impl& srv, std::uint64_t id)
        : socket_(std::move(socket)), deadline_(socket_.get_executor()), worker_(w), srv_(srv), id_(id) {}

    void run() {
        net::dispatch(socket_.get_executor(), [self = shared_from_this()] {
            self->watch_deadline();
            self->do_read();
        });
    }

private:
    using clock = net::steady_timer::clock_type;

    const server_limits& limits() const { return srv_.options.limits; }

    // One timer per connection, as in Beast's http_server_fast example: each phase (waiting for a
    // request, reading it, writing the answer) moves one deadline, and no read or write arms a
    // timer of its own. Moving it wakes this wait, which waits again for the new deadline.
    void set_deadline(std::chrono::milliseconds d) {
        timed_out_ = false;
        deadline_.expires_after(d);
    }

    // When the deadline passes, the pending read or write is cancelled (not the socket closed:
    // a 408 may still go out) and every completion from then on sees timed_out_, including one
    // that had completed already but not yet run. Holds the session weakly: it lives while an
    // operation does.
    void watch_deadline() {
        deadline_.async_wait([weak = weak_from_this()](beast::error_code) {
            const auto self = weak.lock();
            if (!self || !self->socket_.is_open()) return;
            if (self->deadline_.expiry() <= clock::now()) {
                self->timed_out_ = true;
                beast::error_code ignored;
                self->socket_.cancel(ignored);
                self->deadline_.expires_at(clock::time_point::max());
            }
            self->watch_deadline();
        });
    }

    // Waiting for a request: idle_timeout. Its first byte starts one deadline, read_timeout, for
    // the whole request, header and body: a header trickled a byte at a time gets 408 then.
    void do_read() {
        parser_.emplace();
        parser_->header_limit(static_cast<std::uint32_t>(limits().header_bytes));
        parser_->body_limit(limits().body_bytes);
        set_deadline(buffer_.size() == 0 ? limits().idle_timeout : limits().read_timeout);
        read_header_bytes();
    }

    // Buffers a whole header (or more than the limit: 431) so that obs-fold is seen before Beast
    // unfolds it, and a request line without a version is answered as soon as it ends.
    void read_header_bytes() {
        const std::string_view data(static_cast<const char*>(buffer_.data().data()), buffer_.size());
        if (common::request_line_lacks_version(data))
            return send_error(http::status::bad_request, std::string(common::no_version_reason));
        if (const auto end = common::header_end(data); end != std::string_view::npos || data.size() > limits().header_bytes) {
            if (end != std::string_view::npos && common::has_obs_fold(data.substr(0, end)))
                return send_error(http::status::bad_request, "obsolete line folding (obs-fold) in the header is refused");
            return http::async_read_header(socket_, buffer_, *parser_,
                                           beast::bind_front_handler(&mailbox_session::on_read_header, shared_from_this()));
        }
        socket_.async_read_some(buffer_.prepare(4096), [self = shared_from_this()](beast::error_code ec, std::size_t n) {
            if (self->timed_out_) return self->on_timeout();
            if (ec) return self->on_read_error(ec);
            if (self->buffer_.size() == 0 && n > 0) self->set_deadline(self->limits().read_timeout);
            self->buffer_.commit(n);
            self->read_header_bytes();
        });
    }

    void on_read_header(beast::error_code ec, std::size_t) {
        if (timed_out_) return on_timeout();
        if (ec) return on_read_error(ec);
        const auto& req = parser_->get();
        // RFC 9112 6.3, 3.2: framing a proxy in front may read otherwise; closed, as where it ends is unknown.
        if (req.count(http::field::transfer_encoding) != 0 && !parser_->chunked())
            return send_error(http::status::bad_request,
                              "a Transfer-Encoding that does not end in chunked leaves the body's length unknown");
        if (req.count(http::field::host) > 1) return send_error(http::status::bad_request, "more than one Host header");
        if (static_cast<std::size_t>(std::distance(req.begin(), req.end())) > max_header_fields)
            return send_error(http::status::request_header_fields_too_large,
                              fmt::format("more than {} header fields", max_header_fields));
        http::async_read(socket_, buffer_, *parser_, beast::bind_front_handler(&mailbox_session::on_read, shared_from_this()));
    }

    void on_read(beast::error_code ec, std::size_t) {
        if (timed_out_) return on_timeout();
        if (ec) return on_read_error(ec);
        request req = parser_->release();
        response res = respond(req);
        res.keep_alive(req.keep_alive());
        if (req.method() == http::verb::head) res.body().clear();  // Content-Length stays, no body (RFC 9110)
        send(std::move(res));
    }

    // The deadline passed while reading. A header begun and not finished gets 408 (RFC 9110
    // 15.5.9) and the connection closes; an idle connection or a body cut short just closes.
    void on_timeout() {
        if (!parser_->is_header_done() && buffer_.size() > 0)
            return send_error(http::status::request_timeout,
                              fmt::format("the request header did not arrive whole within {} ms (read_timeout)",
                                          limits().read_timeout.count()));
        do_close();
    }

    // A read that failed: a normal close, or a request we refuse with a status and then close
    // (its remaining bytes cannot be trusted to frame the next one).
    void on_read_error(beast::error_code ec) {
        if (ec == http::error::end_of_stream || ec == net::error::eof || ec == net::error::connection_reset ||
            ec == net::error::operation_aborted)
            return do_close();
        if (ec == http::error::header_limit)
            return send_error(http::status::request_header_fields_too_large,
                              fmt::format("the request line and headers exceed {} bytes", limits().header_bytes));
        if (ec == http::error::body_limit)
            return send_error(http::status::payload_too_large,
                              fmt::format("the request body exceeds {} bytes", limits().body_bytes));
        if (ec.category() == http::make_error_code(http::error::bad_method).category())  // any other parse error
            return send_error(http::status::bad_request, fmt::format("malformed request: {}", ec.message()));
        srv_.log->debug("conn {}: read failed: {}", id_, ec.message());
        do_close();
    }

    // A short plain-text answer, as IIS gives for its own errors: "<code> <reason>: <why>".
    static response plain(http::status status, unsigned version, const std::string& why) {
        response res{status, version};
        res.set(http::field::server, "Microsoft-IIS/6.0");
        res.set(http::field::content_type, "text/plain; charset=utf-8");
        res.body() = fmt::format("{} {}: {}\n", static_cast<unsigned>(status), http::obsolete_reason(status), why);
        res.prepare_payload();
        return res;
    }

    void send_error(http::status status, const std::string& reason) {
        response res = plain(status, 11, reason);
        res.keep_alive(false);
        send(std::move(res));
    }

    void send(response res) {
        res_ = std::move(res);
        set_deadline(limits().read_timeout);
        http::async_write(socket_, res_, beast::bind_front_handler(&mailbox_session::on_write, shared_from_this()));
    }

    void on_write(beast::error_code ec, std::size_t) {
        if (ec || timed_out_ || !res_.keep_alive()) return do_close();
        do_read();
    }

    void do_close() {
        beast::error_code ec;
        socket_.shutdown(tcp::socket::shutdown_both, ec);
        socket_.close(ec);
        deadline_.cancel();
    }

    // 401 with one WWW-Authenticate line per provider, as IIS 6 sends.
    response challenge(const request& req, const std::string& reason) {
        response res = plain(http::status::unauthorized, req.version(), reason);
        for (const auto& p : srv_.backend.auth_providers) res.insert(http::field::www_authenticate, p);
        return res;
    }

    response respond(const request& req) {
        if (boost::starts_with(req.target(), "/exchweb/")) return worker_.api->handle(req, {"", "", id_});

        std::string identity = bound_identity_;
        auth::mechanism mech = bound_mechanism_;
        std::string final_header;
        auto authorization = req[http::field::authorization];
        if (!authorization.empty()) {
            auto outcome = authenticate(req, authorization);
            if (outcome.reply) return std::move(*outcome.reply);
            identity = outcome.identity;
            mech = outcome.mech;
            final_header = std::move(outcome.final_header);
        }
        if (identity.empty()) return challenge(req, "this resource needs authentication");
        response res =
            worker_.api->handle(req, {identity, std::string(auth::mechanism_name(mech)), id_, !authorization.empty()});
        if (!final_header.empty()) res.set(http::field::www_authenticate, final_header);
        return res;
    }

    struct auth_outcome {
        std::optional<response> reply;  // a 401 or 400 that ends this request
        std::string identity;
        auth::mechanism mech = auth::mechanism::none;
        std::string final_header;  // e.g. the Kerberos AP-REP for mutual authentication
    };

    auth_outcome authenticate(const request& req, std::string_view authorization) {
        auth_outcome out;
        const auto header = auth::parse_auth_header(authorization);
        const auto scheme = header.known_scheme;
        if (!scheme || !srv_.backend.offers(auth::scheme_name(*scheme))) {
            out.reply = challenge(req, fmt::format("the scheme '{}' is not offered here", header.scheme_text.substr(0, 32)));
            return out;
        }
        const auto& token = header.token;
        if (!token) {
            out.reply = plain(http::status::bad_request, req.version(),
                              "Authorization: the token is missing or not valid base64");
            return out;
        }
        // MS02-058: refused here, as gss-ntlmssp answers a NEGOTIATE whose fields run past its end.
        const auto decoded = auth::decode_token(*token);
        if (!decoded) {
            srv_.log->info("conn {}: logon failed ({}): malformed token: {} at byte {}", id_,
                           auth::scheme_name(*scheme), decoded.error().what, decoded.error().offset);
            pending_.reset();
            bound_identity_.clear();  // as a new handshake would: the connection is no one's now
            bound_mechanism_ = auth::mechanism::none;
            out.reply = challenge(req, fmt::format("logon failed: malformed token ({})", decoded.error().what));
            return out;
        }

        if (!pending_ || pending_scheme_ != *scheme || opens_handshake(*decoded)) {
            // A new handshake on this connection: whoever it authenticated before is forgotten.
            pending_ = worker_.credentials->make_acceptor(*scheme);
            pending_scheme_ = *scheme;
            legs_ = 0;
            bound_identity_.clear();
            bound_mechanism_ = auth::mechanism::none;
        }
        if (++legs_ > limits().max_handshake_legs) {
            pending_.reset();
            out.reply = challenge(req, "too many handshake legs");
            return out;
        }
        auto step = pending_->step(*token);
        const auto scheme_text = std::string(auth::scheme_name(*scheme));
        switch (step.status) {
            case auth::step_status::continue_needed: {
                response res = challenge(req, "authentication in progress");
                res.set(http::field::www_authenticate, scheme_text + " " + common::base64_encode(step.token.data(), step.token.size()));
                out.reply = std::move(res);
                return out;
            }
            case auth::step_status::failed:
                srv_.log->info("conn {}: logon failed ({}): {}", id_, scheme_text, step.error);
                pending_.reset();
                out.reply = challenge(req, "logon failed");
                return out;
            case auth::step_status::complete:
                break;
        }
        out.identity = pending_->peer();
        out.mech = pending_->negotiated();
        if (!step.token.empty())
            out.final_header = scheme_text + " " + common::base64_encode(step.token.data(), step.token.size());
        pending_.reset();
        // NTLM authenticates the connection; Kerberos only this request, unless persist_kerberos.
        if (out.mech == auth::mechanism::ntlm || srv_.backend.persist_kerberos) {
            bound_identity_ = out.identity;
            bound_mechanism_ = out.mech;
        }
        srv_.log->debug("conn {}: {} authenticated as {} via {}", id_, scheme_text, out.identity,
                        auth::mechanism_name(out.mech));
        return out;
    }

    tcp::socket socket_;
    net::steady_timer deadline_;
    bool timed_out_ = false;
    beast::flat_buffer buffer_;
    std::optional<http::request_parser<http::string_body>> parser_;
    response res_;
    worker& worker_;
    server::impl& srv_;
    std::uint64_t id_;

    // The connection's authentication state (what IIS keeps per connection).
    std::string bound_identity_;
    auth::mechanism bound_mechanism_ = auth::mechanism::none;
    std::unique_ptr<auth::acceptor> pending_;
    auth::scheme pending_scheme_ = auth::scheme::negotiate;
    std::size_t legs_ = 0;
};

}  // namespace

void server::impl::do_accept() {
    common::accept_loop(
        acceptor, workers,
        [this](worker& w, tcp::socket socket) {
            socket.set_option(tcp::no_delay(true));
            std::make_shared<mailbox_session>(std::move(socket), w, *this, next_connection++)->run();
        },
        log);
}

server::server(const common::topology& topology, server_options options)
    : impl_(std::make_unique<impl>(topology, std::move(options))) {
    auto& s = *impl_;
    const auto* be = s.topology.find_backend(s.options.backend);
    if (!be) throw std::runtime_error(fmt::format("back-end '{}' is not in the directory", s.options.backend));
    s.backend = *be;
    if (s.options.threads == 0) s.options.threads = 1;
    s.options.acceptor.providers = s.backend.auth_providers;
    s.options.acceptor.host = s.backend.host;

    const auto db = mailbox_database_path(s.options.state_dir, s.backend.name);
    {
        mailbox_store seed_store(db);
        if (s.options.reset_store) seed_store.reset(s.topology, s.backend.name);
        else seed_store.seed(s.topology, s.backend.name);
    }
    for (std::size_t i = 0; i < s.options.threads; ++i) {
        auto w = std::make_unique<worker>(mailbox_store(db));
        w->credentials = auth::make_acceptor_credentials(s.options.acceptor);
        w->api = std::make_unique<mailbox_api>(s.topology, s.backend.name, w->store, s.audit);
        s.workers.push_back(std::move(w));
    }

    common::listen_on(s.acceptor, s.options.address, s.options.port, "back-end " + s.backend.name);
}

void server::start() {
    auto& s = *impl_;
    if (s.running) return;
    if (s.workers.empty()) throw std::runtime_error("a stopped back-end cannot be started again");
    s.running = true;
    for (auto& w : s.workers) {
        w->thread = std::thread([&ioc = w->ioc] {
            auto guard = net::make_work_guard(ioc);
            ioc.run();
        });
    }
    s.do_accept();
    s.accept_thread = std::thread([&s] { s.accept_ioc.run(); });
    s.log->info("back-end {} ({}, providers {}{}) listening on {}:{}", s.backend.name, s.backend.host,
                fmt::join(s.backend.auth_providers, ","), s.backend.persist_kerberos ? ", persist_kerberos" : "",
                s.options.address, port());
}

void server::stop() {
    auto& s = *impl_;
    if (!s.running) return;
    s.running = false;
    common::stop_accepting(s.accept_ioc, s.acceptor, s.accept_thread);
    for (auto& w : s.workers) {
        w->ioc.stop();
        if (w->thread.joinable()) w->thread.join();
    }
    s.workers.clear();  // destroys the sessions: every connection is closed
}

server::~server() {
    stop();
}

std::uint16_t server::port() const { return impl_->acceptor.local_endpoint().port(); }
const std::string& server::backend() const { return impl_->backend.name; }
server_options realm_backend_options(const common::topology& t, const auth::realm& r, const std::string& name,
                                     const std::filesystem::path& state_dir) {
    server_options o;
    o.backend = name;
    o.state_dir = state_dir;
    o.acceptor.keytab = r.paths().keytab(name);
    o.acceptor.ntlm_user_file = r.paths().ntlm_user_file(name);
    o.acceptor.realm = t.realm;
    o.acceptor.ntlm_domain = t.ntlm_domain;
    return o;
}

std::filesystem::path server::audit_log_file() const { return impl_->audit.path(); }
std::filesystem::path server::database_file() const {
    return mailbox_database_path(impl_->options.state_dir, impl_->backend.name);
}

}  // namespace exsim::backend
