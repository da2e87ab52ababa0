#pragma once
// One worker's pool of connections to one back-end. Single-threaded: only its worker's
// io_context touches it, so it takes no lock. The pool owns every connection that is not in
// use, in explicit lists by state (idle shared, idle per user, pinned per client); a request
// holds the one it acquired (a conn_ptr) and hands it back with release().

#include <array>
#include <chrono>
#include <cstdint>
#include <deque>
#include <list>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>

#include "exsim/common/topology.hpp"
#include "exsim/proxy/metrics.hpp"
#include "exsim/proxy/policy.hpp"

namespace exsim::proxy {

class backend_pool;
using clock = std::chrono::steady_clock;

// How much of a body goes through the proxy per read and write.
constexpr std::size_t relay_chunk = 16 * 1024;

// What a back-end connection reads and relays with while it carries an exchange: its read
// buffer (sized for a relay chunk and its header: one read, not 512-byte ones) and the bytes of a
// body on their way between client and back-end, in either direction. Not in a coroutine frame:
// a frame that large is a malloc and a free per request; not kept by idle connections either:
// 10,000 pooled or pinned connections would hold 48 KiB each. The pool lends them and keeps a
// few spare.
struct exchange_buffers {
    exchange_buffers() { read.reserve(2 * relay_chunk); }
    boost::beast::flat_buffer read;
    std::array<char, relay_chunk> relay;
};

struct backend_connection {
    backend_connection(backend_pool& owner, boost::asio::any_io_executor ex, std::uint64_t id);
    ~backend_connection();  // tells the pool, with `reason`
    backend_connection(const backend_connection&) = delete;
    backend_connection& operator=(const backend_connection&) = delete;

    connection_view view() const { return {mechanism, user}; }

    backend_pool& owner;
    std::uint64_t id;
    boost::beast::tcp_stream stream;
    // Lent by the pool from acquire() to release(): an idle or pinned connection holds none.
    std::unique_ptr<exchange_buffers> io;
    auth::mechanism mechanism = auth::mechanism::none;  // how the last handshake on it ended
    std::string user;                                  // who it authenticated
    std::size_t requests = 0;                          // client requests it carried
    clock::time_point created = clock::now();
    clock::time_point last_used = clock::now();
    close_reason reason = close_reason::error;         // why it is being closed
};
using conn_ptr = std::unique_ptr<backend_connection>;

// Why an acquire gave no connection (an error_code-free enum, Envoy style).
enum class acquire_failure { none, queue_full, queue_timeout, connect_failed, connect_timeout, shutting_down };

// What release() did with a connection: kept (disposal::pool or pin), or closed and why.
struct release_result {
    disposal kept = disposal::close;
    close_reason closed = close_reason::error;
};

struct acquire_result {
    conn_ptr conn;
    reuse_decision decision = reuse_decision::new_connection;
    bool must_authenticate = true;
    acquire_failure failure = acquire_failure::none;
    std::string error;  // for connect failures: the socket's reason
};

class backend_pool {
public:
    backend_pool(const common::backend_config& backend, boost::asio::ip::tcp::endpoint endpoint,
                 const common::pool_settings& settings, const pool_policy& policy, worker_metrics& metrics,
                 boost::asio::any_io_executor ex, std::chrono::milliseconds connect_timeout,
                 std::unordered_map<std::uint64_t, std::size_t>& pins_per_client);
    ~backend_pool();

    // A connection for `user`'s request arriving on client connection `client` (0: none).
    boost::asio::awaitable<acquire_result> acquire(std::string user, std::uint64_t client);

    // Hands a connection back after a response. `reusable` is false when the exchange left it
    // unusable (error, Connection: close, unread body): it is closed with `reason`.
    release_result release(conn_ptr conn, bool reusable, std::uint64_t client, close_reason reason = close_reason::error);

    // The client connection closed: its pinned connection closes too.
    void client_closed(std::uint64_t client);

    // Closes idle connections past idle_timeout (called by the worker's sweep timer).
    void sweep();

    // Closes every idle and pinned connection and fails the waiters (worker shutdown).
    void shut_down();

    // What the back-end offers, as learned from its last 401 ("Negotiate", "NTLM"); empty:
    // not known yet.
    std::vector<std::string> offers;

    const common::backend_config& backend() const { return backend_; }
    const boost::asio::ip::tcp::endpoint& endpoint() const { return endpoint_; }

private:
    friend struct backend_connection;
    void on_closed(const backend_connection& c);
    std::optional<close_reason> why_unusable(backend_connection& c) const;
    conn_ptr take_idle(const std::string& user);
    conn_ptr take_idle(std::deque<conn_ptr>& list, std::deque<conn_ptr>::iterator it);
    bool evict_one_idle();
    void add_idle(conn_ptr c);
    void wake_one();
    void close(conn_ptr c, close_reason why);
    conn_ptr unpin(std::unordered_map<std::uint64_t, conn_ptr>::iterator it);
    boost::asio::awaitable<acquire_result> open();
    void lend_buffers(backend_connection& c);
    void take_back_buffers(backend_connection& c);

    const common::backend_config& backend_;
    boost::asio::ip::tcp::endpoint endpoint_;
    const common::pool_settings& settings_;
    const pool_policy& policy_;
    worker_metrics& metrics_;
    boost::asio::any_io_executor ex_;
    std::chrono::milliseconds connect_timeout_;
    std::uint64_t next_id_ = 1;
    std::size_t open_ = 0;  // busy + idle + pinned
    bool shutting_down_ = false;

    // Idle lists, most recently used at the back. Per-user lists keyed by user name.
    std::deque<conn_ptr> idle_;
    std::unordered_map<std::string, std::deque<conn_ptr>> idle_by_user_;
    std::size_t idle_count_ = 0;
    std::unordered_map<std::uint64_t, conn_ptr> pinned_;  // by client connection
    std::unordered_map<std::string, std::size_t> pinned_by_user_;
    std::unordered_map<std::uint64_t, std::size_t>& pins_per_client_;  // the worker's, over all back-ends
    struct waiter {
        boost::asio::steady_timer timer;
        bool woken = false;
    };
    std::list<waiter*> waiters_;  // FIFO; a waiter is woken by cancelling its timer
    std::vector<std::unique_ptr<exchange_buffers>> spare_buffers_;  // at most max_spare_buffers
};

}  // namespace exsim::proxy
