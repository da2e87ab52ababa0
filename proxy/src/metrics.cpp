#include "exsim/proxy/metrics.hpp"

#include <iterator>
#include <utility>

#include <fmt/format.h>

namespace exsim::proxy {

// Switches rather than name tables, so that -Wswitch flags an enumerator added without a name.
std::string_view name(reuse_decision d) {
    switch (d) {
        case reuse_decision::new_connection: return "new_connection";
        case reuse_decision::reused_reauth: return "reused_reauth";
        case reuse_decision::reused_as_is: return "reused_as_is";
        case reuse_decision::reused_pinned: return "reused_pinned";
        case reuse_decision::reused_same_user: return "reused_same_user";
        case reuse_decision::count: break;
    }
    return "unknown";
}

std::string_view name(close_reason r) {
    switch (r) {
        case close_reason::ntlm_not_pooled: return "ntlm_not_pooled";
        case close_reason::no_reuse: return "no_reuse";
        case close_reason::client_gone: return "client_gone";
        case close_reason::pin_rebound: return "pin_rebound";
        case close_reason::idle_timeout: return "idle_timeout";
        case close_reason::max_requests: return "max_requests";
        case close_reason::max_lifetime: return "max_lifetime";
        case close_reason::idle_full: return "idle_full";
        case close_reason::backend_closed: return "backend_closed";
        case close_reason::error: return "error";
        case close_reason::shutdown: return "shutdown";
        case close_reason::count: break;
    }
    return "unknown";
}

std::string_view name(handshake_mechanism m) {
    switch (m) {
        case handshake_mechanism::kerberos: return "kerberos";
        case handshake_mechanism::ntlm: return "ntlm";
        case handshake_mechanism::count: break;
    }
    return "unknown";
}

namespace {

using workers_t = std::vector<const worker_metrics*>;

// Label values may hold any UTF-8; the 0.0.4 text format escapes exactly these three.
std::string escape_label_value(std::string_view v) {
    std::string out;
    out.reserve(v.size());
    for (char c : v) {
        if (c == '\\') out += "\\\\";
        else if (c == '"') out += "\\\"";
        else if (c == '\n') out += "\\n";
        else out += c;
    }
    return out;
}

// Writes families one after another: a family's HELP and TYPE lines, then its samples, so
// that each family appears once and contiguously as the format requires.
class exposition {
public:
    exposition(std::string_view policy, const workers_t& workers)
        : policy_(escape_label_value(policy)), workers_(workers) {}

    template <class Get>
    void single(std::string_view family, std::string_view type, std::string_view help, Get get) {
        header(family, type, help);
        sample(family, {}, {}, total(workers_, get));
    }

    // One sample per value of `label`; every value is written, zeros included, so that a
    // scraper always sees the whole table.
    template <class Enum, class Get>
    void by_enum(std::string_view family, std::string_view help, std::string_view label, Get get) {
        header(family, "counter", help);
        for (std::size_t i = 0; i < static_cast<std::size_t>(Enum::count); ++i)
            sample(family, label, name(static_cast<Enum>(i)),
                   total(workers_, [&](const worker_metrics& w) -> auto& { return get(w)[i]; }));
    }

    void header(std::string_view family, std::string_view type, std::string_view help) {
        fmt::format_to(std::back_inserter(out_), "# HELP {} {}\n# TYPE {} {}\n", family, help, family, type);
    }

    // `label_value` must already be a valid label value (our enum names and status classes are).
    void sample(std::string_view family, std::string_view label, std::string_view label_value, std::int64_t value) {
        fmt::format_to(std::back_inserter(out_), "{}{{policy=\"{}\"", family, policy_);
        if (!label.empty()) fmt::format_to(std::back_inserter(out_), ",{}=\"{}\"", label, label_value);
        fmt::format_to(std::back_inserter(out_), "}} {}\n", value);
    }

    std::string take() { return std::move(out_); }

private:
    std::string out_;
    std::string policy_;
    const workers_t& workers_;
};

}  // namespace

std::string render_prometheus(std::string_view policy, const workers_t& workers) {
    exposition out(policy, workers);
    using w_t = const worker_metrics&;
    auto counter = [&](std::string_view family, std::string_view help, auto get) {
        out.single(family, "counter", help, get);
    };
    auto gauge = [&](std::string_view family, std::string_view help, auto get) {
        out.single(family, "gauge", help, get);
    };

    counter("exsim_proxy_requests_total", "Client requests read.", [](w_t w) -> auto& { return w.requests; });

    out.header("exsim_proxy_responses_total", "counter", "Responses sent to clients, by status class.");
    static constexpr std::string_view classes[] = {"1xx", "2xx", "3xx", "4xx", "5xx"};
    for (std::size_t i = 0; i < std::size(classes); ++i)
        out.sample("exsim_proxy_responses_total", "class", classes[i],
                   total(workers, [i](w_t w) -> auto& { return w.responses[i]; }));

    counter("exsim_proxy_login_failures_total", "401 answered for an unknown user or a wrong password.",
            [](w_t w) -> auto& { return w.login_failures; });
    counter("exsim_proxy_bad_requests_total", "Malformed or non-canonical client requests refused.",
            [](w_t w) -> auto& { return w.bad_requests; });
    counter("exsim_proxy_client_connections_total", "Client connections accepted.",
            [](w_t w) -> auto& { return w.client_connections; });
    counter("exsim_proxy_backend_requests_total", "Requests sent to back-ends, every handshake leg included.",
            [](w_t w) -> auto& { return w.backend_requests; });
    counter("exsim_proxy_backend_connections_opened_total", "Back-end connections opened.",
            [](w_t w) -> auto& { return w.connections_opened; });
    counter("exsim_proxy_backend_connections_taken_over_total",
            "Idle back-end connections a worker took over from another worker's idle list (one pool across workers).",
            [](w_t w) -> auto& { return w.takeovers; });
    out.by_enum<reuse_decision>("exsim_proxy_backend_connections_acquired_total",
                                "Back-end connections acquired for a request, by how the pool served it.", "decision",
                                [](w_t w) -> auto& { return w.acquired; });
    out.by_enum<close_reason>("exsim_proxy_backend_connections_closed_total", "Back-end connections closed, by reason.",
                              "reason", [](w_t w) -> auto& { return w.closed; });
    out.by_enum<handshake_mechanism>("exsim_proxy_backend_handshakes_total",
                                     "Back-end authentication handshakes completed, by mechanism.", "mechanism",
                                     [](w_t w) -> auto& { return w.handshakes; });
    counter("exsim_proxy_backend_handshake_failures_total", "Handshakes in which the back-end refused the credentials.",
            [](w_t w) -> auto& { return w.handshake_failures; });
    counter("exsim_proxy_ntlm_fallbacks_total", "Handshakes that ended in NTLM.",
            [](w_t w) -> auto& { return w.ntlm_fallbacks; });
    counter("exsim_proxy_kerberos_required_refusals_total",
            "502 answered because Kerberos is required and the back-end offers only NTLM.",
            [](w_t w) -> auto& { return w.kerberos_required_refusals; });
    counter("exsim_proxy_queue_waits_total", "Acquires that had to wait for a back-end connection.",
            [](w_t w) -> auto& { return w.queue_waits; });

    out.header("exsim_proxy_queue_rejections_total", "counter", "503 answered from the wait queue, by reason.");
    out.sample("exsim_proxy_queue_rejections_total", "reason", "full",
               total(workers, [](w_t w) -> auto& { return w.queue_full; }));
    out.sample("exsim_proxy_queue_rejections_total", "reason", "timeout",
               total(workers, [](w_t w) -> auto& { return w.queue_timeouts; }));

    counter("exsim_proxy_idempotent_retries_total", "Requests retried once on a fresh back-end connection.",
            [](w_t w) -> auto& { return w.idempotent_retries; });
    counter("exsim_proxy_leak_guard_hits_total", "Responses replaced because they named another user's mailbox.",
            [](w_t w) -> auto& { return w.leak_guard_hits; });
    counter("exsim_proxy_cross_user_responses_total",
            "Back-end responses (status < 400) from a mailbox the user may not open, leak guard or not.",
            [](w_t w) -> auto& { return w.cross_user_responses; });
    counter("exsim_proxy_backend_errors_total", "502 or 504 answered for a back-end failure.",
            [](w_t w) -> auto& { return w.backend_errors; });

    gauge("exsim_proxy_backend_connections_open", "Back-end connections open now.",
          [](w_t w) -> auto& { return w.open_connections; });
    gauge("exsim_proxy_backend_connections_idle", "Back-end connections idle in a shared or per-user list now.",
          [](w_t w) -> auto& { return w.idle_connections; });
    gauge("exsim_proxy_backend_connections_pinned", "Back-end connections bound to a client connection now.",
          [](w_t w) -> auto& { return w.pinned_connections; });
    gauge("exsim_proxy_queue_waiting", "Requests waiting for a back-end connection now.",
          [](w_t w) -> auto& { return w.waiting; });
    gauge("exsim_proxy_client_connections_active", "Client connections open now.",
          [](w_t w) -> auto& { return w.active_clients; });
    return out.take();
}

}  // namespace exsim::proxy
