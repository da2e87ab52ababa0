#pragma once
// The front-end's counters, exported in Prometheus text format on the admin port.
//
// Each worker thread owns one `worker_metrics` and is almost its only writer, so the request path
// takes no lock: relaxed atomics make the admin thread's reads well-defined, and let another
// worker move a connection's gauges when it takes that connection over (or closes it to make
// room). The admin thread sums the workers when it renders.

#include <algorithm>
#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace exsim::proxy {

// How the pool served an acquire (docs/design.md section 5's table, one label per row outcome).
enum class reuse_decision : std::size_t {
    new_connection,      // opened a connection to the back-end
    reused_reauth,       // re-used an idle connection and re-authenticated as the current user
    reused_as_is,        // re-used an authenticated connection without re-authenticating (legacy)
    reused_pinned,       // re-used the NTLM connection pinned to this client connection
    reused_same_user,    // re-used a connection of this user's partition (per-user)
    count
};

// Why a back-end connection was closed.
enum class close_reason : std::size_t {
    ntlm_not_pooled,     // ms04-002: an NTLM-authenticated connection never enters the pool
    no_reuse,            // no-reuse: one request per connection
    client_gone,         // pinned: its client connection closed
    pin_rebound,         // pinned: the client's next request came as another user
    idle_timeout,
    max_requests,
    max_lifetime,
    idle_full,           // more idle connections than max_idle
    backend_closed,      // the back-end closed it (seen while idle or on use)
    error,               // I/O error, timeout, unusable response
    shutdown,
    count
};

enum class handshake_mechanism : std::size_t { kerberos, ntlm, count };

std::string_view name(reuse_decision d);
std::string_view name(close_reason r);
std::string_view name(handshake_mechanism m);

struct worker_metrics {
    using counter = std::atomic<std::uint64_t>;
    using gauge = std::atomic<std::int64_t>;

    counter requests{0};                  // client requests read
    std::array<counter, 5> responses{};   // by status class: [0]=1xx ... [4]=5xx
    counter login_failures{0};            // 401 for an unknown user or a wrong password
    counter bad_requests{0};              // malformed or non-canonical requests refused
    counter client_connections{0};        // accepted

    counter backend_requests{0};          // requests sent to a back-end (every handshake leg counts)
    counter connections_opened{0};
    counter takeovers{0};                 // idle connections this worker took over from another worker
    std::array<counter, static_cast<std::size_t>(reuse_decision::count)> acquired{};
    std::array<counter, static_cast<std::size_t>(close_reason::count)> closed{};
    std::array<counter, static_cast<std::size_t>(handshake_mechanism::count)> handshakes{};
    counter handshake_failures{0};        // the back-end refused the user's credentials
    counter ntlm_fallbacks{0};            // a handshake that ended in NTLM (warned)
    counter kerberos_required_refusals{0};  // 502: require_kerberos and the back-end offers only NTLM
    counter queue_waits{0};               // acquires that had to wait for a connection
    counter queue_full{0};                // 503: the wait queue was full
    counter queue_timeouts{0};            // 503: waited longer than queue_timeout_ms
    counter idempotent_retries{0};        // a request retried once on a fresh connection
    counter leak_guard_hits{0};           // responses replaced because X-Exsim-Mailbox was not the user's
    // Responses (status < 400) from a mailbox the user may not open, leak_guard on or off: the
    // leaks the front-end itself can see (the browser view's red banner).
    counter cross_user_responses{0};
    counter backend_errors{0};            // 502/504 answered for a back-end failure

    gauge open_connections{0};            // back-end connections open now
    gauge idle_connections{0};            // in a shared or per-user idle list
    gauge pinned_connections{0};          // bound to a client connection
    gauge waiting{0};                     // requests waiting in the queue now
    gauge active_clients{0};              // client connections open now
};

inline void add(worker_metrics::counter& c, std::uint64_t n = 1) { c.fetch_add(n, std::memory_order_relaxed); }
inline void add(worker_metrics::gauge& g, std::int64_t n) { g.fetch_add(n, std::memory_order_relaxed); }
// One more response to a client, by its status class (out of range: the nearest class).
inline void count_response(worker_metrics& m, unsigned status) {
    add(m.responses[std::clamp<unsigned>(status / 100, 1, 5) - 1]);
}

// Prometheus text exposition format (version 0.0.4) of the sum over `workers`. Every series is
// named exsim_proxy_*, carries the label policy="<policy>", and has # HELP and # TYPE lines.
std::string render_prometheus(std::string_view policy, const std::vector<const worker_metrics*>& workers);

// Sum of one counter or gauge over workers (for tests and the log line at stop).
template <class Get>
std::int64_t total(const std::vector<const worker_metrics*>& workers, Get get) {
    std::int64_t sum = 0;
    for (const auto* w : workers) sum += static_cast<std::int64_t>(get(*w).load(std::memory_order_relaxed));
    return sum;
}

}  // namespace exsim::proxy
