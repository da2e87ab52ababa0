#include "exsim/lab/trace.hpp"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <optional>

#include <boost/algorithm/string/predicate.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/json.hpp>
#include <fmt/format.h>

#include "exsim/auth/realm.hpp"
#include "exsim/auth/token_decoder.hpp"
#include "exsim/backend_sim/server.hpp"
#include "exsim/common/base64.hpp"
#include "exsim/common/policies.hpp"
#include "exsim/proxy/server.hpp"
#include "exsim/lab/capture_notes.hpp"
#include "exsim/lab/temporary_folder.hpp"

namespace exsim::lab {
namespace fs = std::filesystem;
namespace net = boost::asio;
namespace ssl = net::ssl;
namespace beast = boost::beast;
namespace http = beast::http;
namespace json = boost::json;
using tcp = net::ip::tcp;

std::vector<trace_request> parse_trace_steps(std::string_view text, const common::topology& t) {
    std::vector<trace_request> steps;
    std::size_t start = 0;
    while (start <= text.size()) {
        const auto comma = std::min(text.find(',', start), text.size());
        const auto item = text.substr(start, comma - start);
        start = comma + 1;
        trace_request r;
        const auto colon = item.find(':');
        r.user = std::string(item.substr(0, colon));
        if (colon != std::string_view::npos) {
            const auto request = item.substr(colon + 1);
            const auto space = request.find(' ');
            if (space == std::string_view::npos || space == 0 || space + 1 == request.size())
                throw common::config_error(
                    fmt::format("--steps: '{}' is not USER or USER:METHOD PATH (e.g. alice:GET /exchange/)", item));
            r.method = std::string(request.substr(0, space));
            r.path = std::string(request.substr(space + 1));
            if (r.method != "GET" && r.method != "HEAD")
                throw common::config_error(fmt::format(
                    "--steps: '{}': only GET and HEAD are traced (a trace never changes a mailbox)", item));
            if (r.path.empty() || r.path.front() != '/')
                throw common::config_error(fmt::format("--steps: '{}': the path must start with /", item));
        }
        if (!t.find_user(r.user))
            throw common::config_error(fmt::format("--steps: no user '{}' in the directory", r.user));
        steps.push_back(std::move(r));
    }
    return steps;
}

namespace {

// The default sequence: two users of one back-end, each reading the inbox of whoever the
// back-end authenticated, twice in turn.
std::vector<trace_request> default_requests(const common::topology& t) {
    for (const auto& b : t.backends) {
        const auto users = t.users_of(b.name);
        if (users.size() < 2) continue;
        std::vector<trace_request> r;
        for (int round = 0; round < 2; ++round)
            for (std::size_t i = 0; i < 2; ++i) r.push_back(trace_request{users[i]->name});
        return r;
    }
    throw common::config_error("--steps: no back-end holds two users' mailboxes; name the steps");
}

// Collects the front-end's trace events (called on its worker thread).
class recorder {
public:
    proxy::trace_sink sink() {
        return [this](const proxy::trace_event& e) {
            std::lock_guard lock(mutex_);
            events_.push_back(e);
            changed_.notify_all();
        };
    }

    // The events since the last call. The front-end releases the back-end connection after the
    // client has its response: waits a little for that release.
    std::vector<proxy::trace_event> take() {
        std::unique_lock lock(mutex_);
        auto released = [this] {
            auto last_acquire = std::find_if(events_.rbegin(), events_.rend(), [](const auto& e) {
                return e.kind == proxy::trace_kind::connection;
            });
            return last_acquire == events_.rend() ||
                   std::any_of(events_.rbegin(), last_acquire, [](const auto& e) {
                       return e.kind == proxy::trace_kind::released;
                   });
        };
        changed_.wait_for(lock, std::chrono::seconds(2), released);
        return std::exchange(events_, {});
    }

private:
    std::mutex mutex_;
    std::condition_variable changed_;
    std::vector<proxy::trace_event> events_;
};

// One user's client connection to the front-end, kept alive over the sequence as a browser's.
class user_client {
public:
    user_client(net::io_context& ioc, ssl::context& tls, const common::user_entry& user)
        : stream_(ioc, tls), basic_("Basic " + common::base64_encode(user.name + ":" + user.password)) {}

    http::response<http::string_body> request(const trace_request& r, const tcp::endpoint& proxy) {
        if (!open_) connect(proxy);
        http::request<http::empty_body> req{http::string_to_verb(r.method), r.path, 11};
        req.set(http::field::host, "127.0.0.1");
        req.set(http::field::authorization, basic_);
        req.set(http::field::accept, "application/json");
        req.keep_alive(true);
        auto& tcp = stream_.next_layer();
        tcp.expires_after(std::chrono::seconds(60));
        http::write(stream_, req);
        http::response_parser<http::string_body> parser;
        parser.body_limit(1024 * 1024);
        if (r.method == "HEAD") parser.skip(true);
        http::read(stream_, buffer_, parser);
        auto res = parser.release();
        if (!res.keep_alive()) {
            beast::error_code ec;
            tcp.socket().shutdown(tcp::socket::shutdown_both, ec);
            open_ = false;
        }
        return res;
    }

private:
    void connect(const tcp::endpoint& proxy) {
        auto& tcp = stream_.next_layer();
        tcp.expires_after(std::chrono::seconds(10));
        tcp.connect(proxy);
        const std::string host = proxy.address().to_string();
        SSL_set_tlsext_host_name(stream_.native_handle(), host.c_str());
        stream_.set_verify_callback(ssl::host_name_verification(host));
        stream_.handshake(ssl::stream_base::client);
        open_ = true;
    }

    beast::ssl_stream<beast::tcp_stream> stream_;
    beast::flat_buffer buffer_;
    std::string basic_;
    bool open_ = false;
};

// Where a connection came from, as trace.hpp's "obtained" documents it (new, pooled, pinned): a
// grouping of the decisions, not a second name for each; the text prints proxy::name() beside it.
std::string obtained_name(proxy::reuse_decision d) {
    switch (d) {
        case proxy::reuse_decision::new_connection: return "new";
        case proxy::reuse_decision::reused_pinned: return "pinned";
        default: return "pooled";
    }
}

std::vector<std::string> message_ids(const std::string& body) {
    std::vector<std::string> ids;
    boost::system::error_code ec;
    const auto v = json::parse(body, ec);
    if (ec || !v.is_object()) return ids;
    const auto& o = v.get_object();
    auto id_of = [&](const json::value& m) {
        if (const auto* obj = m.if_object(); obj)
            if (const auto* id = obj->if_contains("id"); id && id->is_string()) ids.emplace_back(id->get_string());
    };
    if (const auto* list = o.if_contains("messages"); list && list->is_array())
        for (const auto& m : list->get_array()) id_of(m);
    else id_of(v);
    return ids;
}

// Fills what a step's events say: the connection that answered, how it was obtained, and the
// mechanism that authenticated the request (a handshake during it, or the connection's earlier one).
void summarize(trace_step& s) {
    for (const auto& e : s.events) {
        if (e.kind == proxy::trace_kind::connection) {
            s.connection = e.connection;
            s.client = e.client;
            s.obtained = obtained_name(e.decision);
            s.mechanism = std::string(auth::mechanism_name(e.held_mechanism));
            s.handshake = false;
        }
        if (e.kind == proxy::trace_kind::authenticated) {
            s.mechanism = std::string(auth::mechanism_name(e.mechanism));
            s.handshake = true;
        }
    }
    if (s.mechanism.empty()) s.mechanism = "none";
}

std::string providers(const common::backend_config& b) {
    std::string s = fmt::format("{} ({}", b.name, fmt::join(b.auth_providers, ", "));
    if (b.persist_kerberos) s += ", persist_kerberos";
    return s + ")";
}

// Why the vulnerable policy leaked nothing in this run, and what a trainer changes to see it.
std::string why_the_flaw_did_not_show(std::string_view policy, bool as_is, bool ntlm) {
    std::string text = as_is ? " Here it re-used authenticated connections as they were, but only for the user they "
                               "were authenticated as."
                             : "";
    text += ntlm ? " No connection authenticated by NTLM was handed to another user; try steps that alternate two "
                   "users of one NTLM back-end."
                 : fmt::format(" Here the back-end authenticated every request by its own Kerberos token and answered "
                               "a re-used connection that carried none with 401, so the front-end authenticated again "
                               "as the current user. Turn on persist_kerberos (scenario kerberos-persist) to see {} "
                               "leak with Kerberos too.",
                               policy);
    return text;
}

// The closing paragraph: why this policy did or did not leak, from what the steps show and what
// the policy table (common/policies.hpp) says of the policy.
std::string explain(const trace_result& r) {
    std::size_t crossed = 0, handshakes = 0, ntlm = 0, as_is = 0;
    const trace_step* first_cross = nullptr;
    for (const auto& s : r.steps) {
        if (s.cross_user && !first_cross) first_cross = &s;
        crossed += s.cross_user;
        handshakes += s.handshake;
        ntlm += s.mechanism == "ntlm";
        as_is += s.obtained == "pooled" && !s.handshake && s.mechanism != "none";
    }
    const auto& fix = common::default_policy();
    if (first_cross) {
        const bool by_ntlm = first_cross->mechanism == "ntlm";
        std::string text = fmt::format(
            "{} response(s) of {} crossed users. Under {}, back-end connection #{} had been authenticated as {} "
            "with {}; the front-end put it back into its shared pool and handed it to {}'s request without a new "
            "handshake. ",
            crossed, r.steps.size(), r.policy, first_cross->connection, first_cross->identity,
            by_ntlm ? "NTLM" : "Kerberos", first_cross->request.user);
        text += by_ntlm ? fmt::format("NTLM authenticates the connection, not the request, so the back-end answered as "
                                      "the connection's user and served that user's mailbox: this is the MS04-002 bug. "
                                      "The fix (policy {}) {}.",
                                      fix.name, fix.connection)
                        : fmt::format("This back-end keeps a Kerberos-authenticated connection authenticated "
                                      "(persist_kerberos, as IIS can), so Kerberos leaked as NTLM does: what is safe is "
                                      "re-authenticating every request on a re-used connection (policy {}), not "
                                      "Kerberos as such.",
                                      fix.name);
        if (r.leak_guard) text += " leak_guard was on and should have withheld these responses.";
        return text;
    }
    std::string text = fmt::format("No response crossed users in {} requests ({} handshakes).", r.steps.size(), handshakes);
    if (const auto kind = common::find_policy(r.policy)) {
        const auto& p = common::facts(*kind);
        text += fmt::format(" {} {}.", p.name, p.explanation);
        if (p.vulnerable) text += why_the_flaw_did_not_show(p.name, as_is, ntlm);
    }
    if (r.require_kerberos)
        text += " require_kerberos refuses (502) a back-end that offers only NTLM instead of falling back to it.";
    return text;
}

struct style {
    bool on;
    std::string operator()(std::string_view code, std::string_view text) const {
        return on ? fmt::format("\x1b[{}m{}\x1b[0m", code, text) : std::string(text);
    }
};

std::string token_text(const std::vector<std::uint8_t>& token) {
    if (token.empty()) return "(empty token)";
    auto d = auth::decode_token(token);
    if (!d) return fmt::format("(undecodable, {} bytes: {} at byte {})", token.size(), d.error().what, d.error().offset);
    return auth::describe(*d);
}

std::string release_text(const proxy::trace_event& e) {
    switch (e.kept) {
        case proxy::disposal::pool: return "back into the idle pool";
        case proxy::disposal::pin: return fmt::format("pinned to client connection {}", e.client);
        case proxy::disposal::close: break;
    }
    return fmt::format("closed ({})", proxy::name(e.closed));
}

std::string event_text(const proxy::trace_event& e, const style& st) {
    switch (e.kind) {
        case proxy::trace_kind::connection: {
            std::string how = e.decision == proxy::reuse_decision::new_connection
                                  ? st("36", "new")
                                  : fmt::format("{} ({})", obtained_name(e.decision), proxy::name(e.decision));
            std::string held = e.held_as.empty() ? std::string()
                                                 : fmt::format("; the back-end holds it as {} ({})", e.held_as,
                                                               auth::mechanism_name(e.held_mechanism));
            return fmt::format("connection #{} to {}: {}{}; {}", e.connection, e.backend, how, held,
                               e.must_authenticate ? "the policy asks for a handshake as " + e.user
                                                   : st("33", "the policy sends it as it is, no handshake"));
        }
        case proxy::trace_kind::leg:
            return fmt::format("→ {} {}  {}", e.method, e.target,
                               e.scheme.empty() ? std::string("(no Authorization)")
                                                : fmt::format("Authorization: {}  {}", e.scheme, token_text(e.token)));
        case proxy::trace_kind::answer: {
            std::string text = fmt::format("← {}", e.status);
            if (!e.offers.empty()) text += fmt::format("  WWW-Authenticate: {}", fmt::join(e.offers, ", "));
            if (!e.scheme.empty()) text += fmt::format("  {}", token_text(e.token));
            return text;
        }
        case proxy::trace_kind::authenticated:
            return e.mechanism == auth::mechanism::ntlm
                       ? st("33", fmt::format("authenticated with NTLM as {}: the back-end now holds connection #{} "
                                              "as {}, for every request it carries",
                                              e.user, e.connection, e.user))
                       : fmt::format("authenticated with {} as {} (this request only)", auth::mechanism_name(e.mechanism),
                                     e.user);
        case proxy::trace_kind::released:
            return fmt::format("connection #{}: {}", e.connection, release_text(e));
    }
    return {};
}

// The client connection's side of a step in the capture: the request and what it got.
void note_step(capture::recorder& pcap, const trace_step& s, std::size_t number) {
    if (!s.client) return;
    const auto name = fmt::format("client#{}", s.client);
    pcap.note_last(name, true, fmt::format("step {}: {} {} {} (decrypted: this client connection is TLS)", number,
                                           s.request.user, s.request.method, s.request.path));
    pcap.note_last(name, false,
                   s.cross_user ? fmt::format("CROSS-USER: {} was served {}'s mailbox", s.request.user, s.mailbox)
                                : fmt::format("{} {}: mailbox {}", s.status, s.request.user, s.mailbox.empty() ? "-" : s.mailbox));
}

}  // namespace

std::string event_line(const proxy::trace_event& e) { return event_text(e, style{false}); }

trace_result run_trace(const trace_options& o) {
    const auto& t = o.topology;
    trace_result r;
    r.source = o.source;
    r.policy = t.frontend.policy;
    r.require_kerberos = t.frontend.require_kerberos;
    r.leak_guard = t.frontend.leak_guard;
    for (const auto& b : t.backends) r.backends.push_back(providers(b));
    const auto requests = o.requests.empty() ? default_requests(t) : o.requests;

    std::optional<temporary_folder> temporary;
    const fs::path state = o.state_dir.empty() ? temporary.emplace("trace").path : fs::absolute(o.state_dir);
    fs::create_directories(state);
    auto realm = auth::realm::create(t, state);
    realm.apply_environment();
    realm.start_kdc();
    std::vector<std::unique_ptr<backend::server>> backends;
    recorder events;
    proxy::proxy_options po;
    po.workers = 1;  // deterministic: every client connection on the one worker (docs/design.md section 6)
    po.state_dir = state;
    std::optional<capture_notes> notes;
    if (o.pcap) po.tap = o.pcap;
    po.trace = o.pcap ? notes.emplace(*o.pcap).sink(events.sink()) : events.sink();
    for (const auto& b : t.backends) {
        auto bo = backend::realm_backend_options(t, realm, b.name, state);
        bo.reset_store = true;
        backends.push_back(std::make_unique<backend::server>(t, bo));
        backends.back()->start();
        po.backends[b.name] = fmt::format("127.0.0.1:{}", backends.back()->port());
    }
    proxy::server frontend(t, po);
    frontend.start();

    net::io_context ioc;
    ssl::context tls(ssl::context::tls_client);
    tls.load_verify_file((state / "tls" / "proxy-cert.pem").string());
    tls.set_verify_mode(ssl::verify_peer);
    const tcp::endpoint proxy_at(net::ip::make_address("127.0.0.1"), frontend.port());
    std::map<std::string, std::unique_ptr<user_client>> clients;
    for (const auto& request : requests) {
        auto& client = clients[request.user];
        if (!client) client = std::make_unique<user_client>(ioc, tls, *t.find_user(request.user));
        trace_step s;
        s.request = request;
        const auto res = client->request(request, proxy_at);
        s.status = res.result_int();
        s.identity = std::string(res["X-Exsim-Identity"]);
        s.mailbox = std::string(res["X-Exsim-Mailbox"]);
        s.cross_user = !s.mailbox.empty() && s.mailbox != request.user && s.status < 400;
        if (s.status < 400) s.message_ids = message_ids(res.body());
        else s.error = res.body().substr(0, 300);
        s.events = events.take();
        summarize(s);
        if (o.pcap) note_step(*o.pcap, s, r.steps.size() + 1);
        r.steps.push_back(std::move(s));
    }
    clients.clear();
    frontend.stop();
    for (auto& b : backends) b->stop();
    realm.stop_kdc();
    if (o.pcap) o.pcap->flush();
    r.explanation = explain(r);
    return r;
}

namespace {

std::string served_text(const trace_step& s, const style& st) {
    std::string served = fmt::format("{} {}: served mailbox {} as identity {}", st("1", "=>"), s.status,
                                     s.mailbox.empty() ? "-" : s.mailbox, s.identity.empty() ? "-" : s.identity);
    if (!s.message_ids.empty())
        served += fmt::format(" ({} message{}: {}{})", s.message_ids.size(), s.message_ids.size() == 1 ? "" : "s",
                              fmt::join(s.message_ids.begin(), s.message_ids.begin() + std::min<std::size_t>(3, s.message_ids.size()), ", "),
                              s.message_ids.size() > 3 ? ", ..." : "");
    const auto verdict = s.cross_user ? st("1;31", fmt::format("!! CROSS-USER: {} was served {}'s mailbox", s.request.user, s.mailbox))
                                      : st("32", "ok: the user's own mailbox");
    return "    " + served + "\n    " + verdict + "\n";
}

}  // namespace

std::string trace_text(const trace_result& r, bool color) {
    const style st{color};
    std::string out = st("1", fmt::format("exsim trace: {}", r.source)) +
                      fmt::format("\npolicy {}{}{}; back-ends {}; one front-end worker\n", r.policy,
                                  r.require_kerberos ? ", require_kerberos" : "", r.leak_guard ? ", leak_guard" : "",
                                  fmt::join(r.backends, ", "));
    for (std::size_t i = 0; i < r.steps.size(); ++i) {
        const auto& s = r.steps[i];
        out += "\n" + st("1", fmt::format("step {}  {}  {} {}", i + 1, s.request.user, s.request.method, s.request.path));
        if (s.client) out += fmt::format("   (client connection {})", s.client);
        out += "\n";
        // What the client got, before what became of the connection afterwards.
        auto events = [&](bool releases) {
            for (const auto& e : s.events)
                if ((e.kind == proxy::trace_kind::released) == releases) out += "    " + event_text(e, st) + "\n";
        };
        events(false);
        if (!s.error.empty())
            out += "    " + st("31", fmt::format("the front-end answered {}: {}", s.status, s.error)) + "\n";
        else
            out += served_text(s, st);
        events(true);
    }
    out += "\n" + st("1", "why: ") + r.explanation + "\n";
    return out;
}

std::string trace_json(const trace_result& r) {
    json::object doc;
    doc["source"] = r.source;
    doc["policy"] = r.policy;
    doc["require_kerberos"] = r.require_kerberos;
    doc["leak_guard"] = r.leak_guard;
    doc["backends"] = json::value_from(r.backends);
    json::array steps;
    std::size_t crossed = 0;
    for (const auto& s : r.steps) {
        json::object step;
        step["user"] = s.request.user;
        step["method"] = s.request.method;
        step["path"] = s.request.path;
        step["client_connection"] = s.client;
        step["connection"] = s.connection;
        step["obtained"] = s.obtained;
        step["mechanism"] = s.mechanism;
        step["handshake"] = s.handshake;
        step["status"] = s.status;
        step["identity"] = s.identity;
        step["mailbox"] = s.mailbox;
        step["cross_user"] = s.cross_user;
        step["messages"] = json::value_from(s.message_ids);
        if (!s.error.empty()) step["error"] = s.error;
        json::array legs;
        for (const auto& e : s.events) legs.push_back(json::value(event_text(e, style{false})));
        step["narration"] = std::move(legs);
        crossed += s.cross_user;
        steps.push_back(std::move(step));
    }
    doc["steps"] = std::move(steps);
    doc["cross_user_responses"] = crossed;
    doc["explanation"] = r.explanation;
    return json::serialize(doc) + "\n";
}

}  // namespace exsim::lab
