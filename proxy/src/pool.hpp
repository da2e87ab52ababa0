#pragma once
// The pool of connections to one back-end: one logical pool across all worker threads, as the
// Exchange 2003 front-end had one per process, made of one `backend_pool` per worker and the
// `pool_group` they share.
//
// A worker serves a request from its own idle list when it can (its own lock, uncontended: no
// cross-thread work in the common case); with none usable it takes one over from another
// worker's idle list, and the socket moves to the taking worker's io_context (HAProxy's
// idle-connection takeover). Pins never move: they belong to a client connection, which lives on
// one worker. The caps (open and idle connections) are the group's, over every worker.
//
// Threads: a backend_pool's idle lists are guarded by its mutex, because other workers take
// from them; everything else of it (pins, spare buffers, what the back-end offers) is touched by
// its worker's thread only. A connection out of every list (busy) belongs to the request that
// holds its conn_ptr. The group's counters are atomics; its wait queue has its own mutex. Lock
// order: a pool's mutex, then the group's; never two pools' at once.

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/flat_buffer.hpp>

#include "exsim/common/topology.hpp"
#include "exsim/common/wire_tap.hpp"
#include "exsim/proxy/metrics.hpp"
#include "exsim/proxy/policy.hpp"
#include "backend_stream.hpp"
#include "tapped_stream.hpp"

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
    ~backend_connection();  // tells the pool, with `reason` (unless its socket was handed over)
    backend_connection(const backend_connection&) = delete;
    backend_connection& operator=(const backend_connection&) = delete;

    connection_view view() const { return {mechanism, user}; }

    backend_pool& owner;  // the pool of the worker whose io_context its stream runs on
    std::uint64_t id;     // unique per back-end over every worker; kept by a takeover
    tapped<backend_stream> stream;  // tells the server's wire tap, if any, what crosses
    // Lent by the pool from connection_for() to release(): an idle or pinned connection holds none.
    std::unique_ptr<exchange_buffers> io;
    auth::mechanism mechanism = auth::mechanism::none;  // how the last handshake on it ended
    std::string user;                                  // who it authenticated
    std::size_t requests = 0;                          // client requests it carried
    clock::time_point created = clock::now();
    clock::time_point last_used = clock::now();
    close_reason reason = close_reason::error;         // why it is being closed
    bool handed_over = false;  // its socket went on in another worker's connection: not a close
};
using conn_ptr = std::unique_ptr<backend_connection>;

// Why an acquire gave no connection (an error_code-free enum, Envoy style).
enum class acquire_failure { none, queue_full, queue_timeout, connect_failed, connect_timeout, shutting_down };

// What release() did with a connection: kept (disposal::pool or pin), or closed and why.
using release_result = outcome;

struct acquire_result {
    conn_ptr conn;
    reuse_decision decision = reuse_decision::new_connection;
    bool must_authenticate = true;
    acquire_failure failure = acquire_failure::none;
    std::string error;  // for connect failures: the socket's reason
    bool taken_over = false;  // it came from another worker's idle list
};

// What the workers' pools of one back-end share: the caps' counts, connection ids, the wait
// queue, and each other (for takeovers). Lives as long as the server; members are set before the
// workers start and never change after.
class pool_group {
public:
    explicit pool_group(const common::pool_settings& settings) : settings_(settings) {}

    std::vector<backend_pool*> members;  // one per worker
    std::atomic<std::size_t> open{0};    // busy + idle + pinned, every worker
    std::atomic<std::size_t> idle{0};    // in the idle lists of every worker
    std::atomic<std::uint64_t> next_id{1};

    // One more open (or idle) connection, if that stays within max_connections (max_idle).
    bool reserve_open() { return reserve(open, settings_.max_connections); }
    bool reserve_idle() { return reserve(idle, settings_.max_idle); }

    // The wait queue, FIFO over every worker. A waiter sleeps on a timer of its own worker, and is
    // woken (by any worker) with a cancel posted to that worker.
    struct waiter {
        waiter(const boost::asio::any_io_executor& e, backend_pool* p) : ex(e), timer(e), pool(p) {}
        const boost::asio::any_io_executor ex;  // its worker's: the timer is touched only there
        boost::asio::steady_timer timer;
        backend_pool* pool;
        bool woken = false;  // guarded by the group's mutex
    };
    std::size_t waiting() const { return waiting_.load(std::memory_order_relaxed); }
    // Queues `w` (at the front: a woken waiter that lost the connection to a newcomer keeps its
    // place); false when the queue is full.
    bool enqueue(const std::shared_ptr<waiter>& w, bool front);
    // Takes `w` off the queue if still on it; returns whether it was woken.
    bool dequeue(const std::shared_ptr<waiter>& w);
    void wake_one();
    void wake_all_of(const backend_pool* pool);  // its worker is stopping

private:
    static bool reserve(std::atomic<std::size_t>& count, std::size_t cap);
    void wake(std::shared_ptr<waiter> w);

    const common::pool_settings& settings_;
    std::mutex mutex_;
    std::list<std::shared_ptr<waiter>> waiters_;
    std::atomic<std::size_t> waiting_{0};
};

// One worker's part of the pool of one back-end. Its worker's thread calls every public
// function; other workers only take from its idle lists (take_over_from) and close what they
// took.
class backend_pool {
public:
    backend_pool(const common::backend_config& backend, boost::asio::ip::tcp::endpoint endpoint,
                 const common::pool_settings& settings, const pool_policy& policy, worker_metrics& metrics,
                 boost::asio::any_io_executor ex, std::chrono::milliseconds connect_timeout,
                 std::unordered_map<std::uint64_t, std::size_t>& pins_per_client, pool_group& group);
    ~backend_pool();

    // A connection for `user`'s request arriving on client connection `client` (0: none).
    boost::asio::awaitable<acquire_result> connection_for(std::string user, std::uint64_t client);

    // Hands a connection back after a response. `reusable` is false when the exchange left it
    // unusable (error, Connection: close, unread body): it is closed with `reason`. Otherwise
    // the policy decides.
    release_result release(conn_ptr conn, bool reusable, std::uint64_t client, close_reason reason = close_reason::error);

    // The client connection closed: its pinned connection closes too.
    void client_closed(std::uint64_t client);

    // Closes idle connections past idle_timeout (called by the worker's sweep timer).
    void sweep();

    // Closes every idle and pinned connection and fails this worker's waiters (worker shutdown).
    void shut_down();

    // What the back-end offers, as learned from its last 401 ("Negotiate", "NTLM"); empty:
    // not known yet.
    std::vector<std::string> offers;

    const common::backend_config& backend() const { return backend_; }
    const boost::asio::ip::tcp::endpoint& endpoint() const { return endpoint_; }

    // Where the connections it opens report their bytes (exsim trace --pcap, up --capture); set
    // before the workers start.
    common::wire_tap* tap = nullptr;

private:
    friend struct backend_connection;
    enum class state { busy, idle, pinned, closed };
    release_result transition(conn_ptr c, state to, close_reason why, std::uint64_t client = 0);
    void on_closed(const backend_connection& c);
    std::optional<close_reason> why_unusable(backend_connection& c) const;
    conn_ptr take_idle(const std::string& user);
    conn_ptr take_over(const std::string& user);
    conn_ptr take_from_list(const std::string& user);
    conn_ptr take_other_users_idle(const std::string& user);
    conn_ptr adopt(conn_ptr other);
    conn_ptr take_pin(std::uint64_t client, const std::string& user);
    bool evict_one_idle(const std::string& user);
    void evict_pin_for_waiter();
    bool close_oldest_pin();
    bool room_made() const;
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
    pool_group& group_;
    bool shutting_down_ = false;

    // Idle lists, most recently used at the back: the shared one, and per-user ones keyed by
    // user name. Other workers take from them: guarded by idle_mutex_.
    mutable std::mutex idle_mutex_;
    std::deque<conn_ptr> idle_;
    std::unordered_map<std::string, std::deque<conn_ptr>> idle_by_user_;

    std::unordered_map<std::uint64_t, conn_ptr> pinned_;  // by client connection
    std::unordered_map<std::string, std::size_t> pinned_by_user_;
    std::unordered_map<std::uint64_t, std::size_t>& pins_per_client_;  // the worker's, over all back-ends
    std::vector<std::unique_ptr<exchange_buffers>> spare_buffers_;  // at most max_spare_buffers
};

}  // namespace exsim::proxy
