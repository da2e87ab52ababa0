#include "pool.hpp"

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include <boost/asio/post.hpp>

#include "nothrow.hpp"

namespace exsim::proxy {
namespace net = boost::asio;
using namespace std::chrono_literals;

namespace {
// Spare exchange buffers a pool keeps (48 KiB each): enough for the exchanges one worker runs at
// once on one back-end in a benchmark; more concurrent ones allocate their own.
constexpr std::size_t max_spare_buffers = 64;

// An idle connection must have nothing to read: end of stream means the back-end closed it,
// and stray bytes mean it can no longer frame a response.
bool quiet(net::ip::tcp::socket& s) {
    if (!s.is_open()) return false;
    char c;
    const auto n = ::recv(s.native_handle(), &c, 1, MSG_PEEK | MSG_DONTWAIT);
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

template <class Map, class Key>
std::size_t count_of(const Map& map, const Key& key) {
    auto it = map.find(key);
    return it == map.end() ? 0 : it->second;
}
}  // namespace

backend_connection::backend_connection(backend_pool& o, net::any_io_executor ex, std::uint64_t i)
    : owner(o), id(i), stream(std::move(ex)) {}

backend_connection::~backend_connection() {
    if (handed_over) return;
    if (stream.tap) stream.tap.tap->closed(stream.tap.handle);
    boost::system::error_code ec;
    stream.socket().shutdown(net::ip::tcp::socket::shutdown_both, ec);
    stream.close();
    owner.on_closed(*this);
}

// ---- what the workers share ------------------------------------------------------------------

bool pool_group::reserve(std::atomic<std::size_t>& count, std::size_t cap) {
    auto n = count.load();
    while (n < cap)
        if (count.compare_exchange_weak(n, n + 1)) return true;
    return false;
}

bool pool_group::enqueue(const std::shared_ptr<waiter>& w, bool front) {
    std::lock_guard lock(mutex_);
    if (!front && waiters_.size() >= settings_.queue_limit) return false;
    if (front) waiters_.push_front(w);
    else waiters_.push_back(w);
    waiting_.store(waiters_.size(), std::memory_order_relaxed);
    return true;
}

bool pool_group::dequeue(const std::shared_ptr<waiter>& w) {
    std::lock_guard lock(mutex_);
    if (w->woken) return true;
    waiters_.remove(w);
    waiting_.store(waiters_.size(), std::memory_order_relaxed);
    return false;
}

// The timer belongs to the waiter's worker, so it is cancelled there; the shared_ptr keeps it
// alive if the waiter timed out meanwhile.
void pool_group::wake(std::shared_ptr<waiter> w) {
    const auto ex = w->ex;
    net::post(ex, [w = std::move(w)] { w->timer.cancel(); });
}

void pool_group::wake_one() {
    std::shared_ptr<waiter> w;
    {
        std::lock_guard lock(mutex_);
        if (waiters_.empty()) return;
        w = std::move(waiters_.front());
        waiters_.pop_front();
        w->woken = true;
        waiting_.store(waiters_.size(), std::memory_order_relaxed);
    }
    wake(std::move(w));
}

void pool_group::wake_all_of(const backend_pool* pool) {
    std::vector<std::shared_ptr<waiter>> woken;
    {
        std::lock_guard lock(mutex_);
        for (auto it = waiters_.begin(); it != waiters_.end();) {
            if ((*it)->pool != pool) {
                ++it;
                continue;
            }
            (*it)->woken = true;
            woken.push_back(std::move(*it));
            it = waiters_.erase(it);
        }
        waiting_.store(waiters_.size(), std::memory_order_relaxed);
    }
    for (auto& w : woken) wake(std::move(w));
}

// ---- one worker's part -----------------------------------------------------------------------

backend_pool::backend_pool(const common::backend_config& backend, net::ip::tcp::endpoint endpoint,
                           const common::pool_settings& settings, const pool_policy& policy, worker_metrics& metrics,
                           net::any_io_executor ex, std::chrono::milliseconds connect_timeout,
                           std::unordered_map<std::uint64_t, std::size_t>& pins_per_client, pool_group& group)
    : backend_(backend), endpoint_(std::move(endpoint)), settings_(settings), policy_(policy), metrics_(metrics),
      ex_(std::move(ex)), connect_timeout_(connect_timeout), group_(group), pins_per_client_(pins_per_client) {}

backend_pool::~backend_pool() { shut_down(); }

// Any thread: a worker closes a connection it took from another worker's list to make room.
void backend_pool::on_closed(const backend_connection& c) {
    group_.open.fetch_sub(1);
    add(metrics_.closed[static_cast<std::size_t>(c.reason)]);
    add(metrics_.open_connections, -1);
    group_.wake_one();
}

// Every connection a request hands back, or that the pool gives up, changes state here:
// busy -> idle, pinned or closed; idle or pinned -> closed. (Out of a list into a request's hands,
// -> busy, is take_from_list() and unpin().) What the state is, the policy said.
release_result backend_pool::transition(conn_ptr c, state to, close_reason why, std::uint64_t client) {
    switch (to) {
        case state::idle: {
            if (!group_.reserve_idle()) return transition(std::move(c), state::closed, close_reason::idle_full);
            add(metrics_.idle_connections, 1);
            {
                std::lock_guard lock(idle_mutex_);
                if (policy_.look() == lookup::user_partition) {
                    auto& list = idle_by_user_[c->user];
                    list.push_back(std::move(c));
                } else {
                    idle_.push_back(std::move(c));
                }
            }
            group_.wake_one();
            return {disposal::pool, {}};
        }
        case state::pinned: {
            // Over a cap (or no client to pin to), the connection ends as the policy says.
            if (client == 0 || pinned_.count(client) || count_of(pinned_by_user_, c->user) >= settings_.pinned_per_user ||
                count_of(pins_per_client_, client) >= settings_.pinned_per_client)
                return transition(std::move(c), state::closed, policy_.row().over_pin_cap.closed);
            ++pinned_by_user_[c->user];
            ++pins_per_client_[client];
            add(metrics_.pinned_connections, 1);
            pinned_[client] = std::move(c);
            group_.wake_one();  // a waiter at the cap may evict it
            return {disposal::pin, {}};
        }
        case state::closed:
            c->reason = why;
            c.reset();
            return {disposal::close, why};
        case state::busy: break;
    }
    return {disposal::close, why};
}

// Why a connection that waits (idle or pinned) may not serve again; nullopt: it may.
std::optional<close_reason> backend_pool::why_unusable(backend_connection& c) const {
    const auto now = clock::now();
    if (now - c.created > std::chrono::milliseconds(settings_.max_lifetime_ms)) return close_reason::max_lifetime;
    if (now - c.last_used > std::chrono::milliseconds(settings_.idle_timeout_ms)) return close_reason::idle_timeout;
    if (!quiet(c.stream.socket())) return close_reason::backend_closed;
    return std::nullopt;
}

// The most recently used connection of the idle list the policy looks in for `user`, out of
// the list. Called by this worker and, for a takeover, by others.
conn_ptr backend_pool::take_from_list(const std::string& user) {
    std::lock_guard lock(idle_mutex_);
    std::deque<conn_ptr>* list = &idle_;
    auto partition = idle_by_user_.end();
    if (policy_.look() == lookup::user_partition) {
        partition = idle_by_user_.find(user);
        if (partition == idle_by_user_.end()) return nullptr;
        list = &partition->second;
    }
    if (list->empty()) return nullptr;
    conn_ptr c = std::move(list->back());
    list->pop_back();
    if (partition != idle_by_user_.end() && list->empty()) idle_by_user_.erase(partition);
    group_.idle.fetch_sub(1);
    add(metrics_.idle_connections, -1);
    return c;
}

// This worker's most recently used idle connection that is still usable; the unusable ones met
// on the way are closed with their reason.
conn_ptr backend_pool::take_idle(const std::string& user) {
    while (conn_ptr c = take_from_list(user)) {
        if (auto why = why_unusable(*c)) transition(std::move(c), state::closed, *why);
        else return c;
    }
    return nullptr;
}

// None of this worker's: another worker's idle connection, moved to this one.
conn_ptr backend_pool::take_over(const std::string& user) {
    const auto n = group_.members.size();
    const auto self = static_cast<std::size_t>(std::find(group_.members.begin(), group_.members.end(), this) -
                                               group_.members.begin());
    for (std::size_t k = 1; k < n; ++k) {
        auto* other = group_.members[(self + k) % n];
        while (conn_ptr c = other->take_from_list(user)) {
            c = adopt(std::move(c));
            if (!c) continue;
            if (auto why = why_unusable(*c)) {
                transition(std::move(c), state::closed, *why);
                continue;
            }
            add(metrics_.takeovers);
            return c;
        }
    }
    return nullptr;
}

// The socket of a connection taken from another worker's list leaves that worker's reactor
// (release) and joins this one's (assign), in a connection object of this worker's; it is the
// same back-end connection (id, who it is authenticated as, age). Nothing else reaches it
// meanwhile: it left its list under that list's lock, so the other worker's sweep and shut_down
// no longer see it, and an idle connection has no operation pending. The release touches the
// other worker's reactor from this thread: its io_context must keep its locking (any concurrency
// hint but BOOST_ASIO_CONCURRENCY_HINT_UNSAFE*).
conn_ptr backend_pool::adopt(conn_ptr other) {
    boost::system::error_code ec;
    const auto fd = other->stream.socket().release(ec);
    if (ec) {  // still the other worker's, and unusable
        other->reason = close_reason::error;
        return nullptr;
    }
    other->handed_over = true;
    add(other->owner.metrics_.open_connections, -1);
    auto c = std::make_unique<backend_connection>(*this, ex_, other->id);
    add(metrics_.open_connections, 1);
    c->mechanism = other->mechanism;
    c->user = std::move(other->user);
    c->requests = other->requests;
    c->created = other->created;
    c->last_used = other->last_used;
    c->stream.tap = other->stream.tap;
    other.reset();
    c->stream.socket().assign(endpoint_.protocol(), fd, ec);
    if (ec) {
        ::close(fd);
        transition(std::move(c), state::closed, close_reason::error);
        return nullptr;
    }
    return c;
}

// The pin of client connection `client`, if it serves `user` and is still usable (closed
// otherwise: a pin of another user is never re-used, pin_rebound).
conn_ptr backend_pool::take_pin(std::uint64_t client, const std::string& user) {
    auto it = pinned_.find(client);
    if (client == 0 || it == pinned_.end()) return nullptr;
    conn_ptr c = unpin(it);
    if (c->user != user) {
        transition(std::move(c), state::closed, close_reason::pin_rebound);
        return nullptr;
    }
    if (auto why = why_unusable(*c)) {
        transition(std::move(c), state::closed, *why);
        return nullptr;
    }
    return c;
}

// The least recently used idle connection of a partition other than `user`'s, out of its list.
conn_ptr backend_pool::take_other_users_idle(const std::string& user) {
    std::lock_guard lock(idle_mutex_);
    for (auto it = idle_by_user_.begin(); it != idle_by_user_.end(); ++it) {
        if (it->first == user || it->second.empty()) continue;
        conn_ptr c = std::move(it->second.front());
        it->second.pop_front();
        if (it->second.empty()) idle_by_user_.erase(it);
        group_.idle.fetch_sub(1);
        add(metrics_.idle_connections, -1);
        return c;
    }
    return nullptr;
}

// At the connection cap, an idle connection that this request may not use is closed to make
// room: another user's partition (this worker's, then others'; closing one of another worker's
// from this thread is as safe as the takeover's release), or else this worker's least recently
// used pin (its client has to authenticate a new one on its next request).
bool backend_pool::evict_one_idle(const std::string& user) {
    if (policy_.look() == lookup::user_partition) {
        const auto n = group_.members.size();
        const auto self = static_cast<std::size_t>(std::find(group_.members.begin(), group_.members.end(), this) -
                                                   group_.members.begin());
        for (std::size_t k = 0; k < n; ++k)
            if (conn_ptr c = group_.members[(self + k) % n]->take_other_users_idle(user)) {
                c->reason = close_reason::idle_full;
                return true;
            }
    }
    return close_oldest_pin();
}

bool backend_pool::close_oldest_pin() {
    if (pinned_.empty()) return false;
    auto oldest = std::min_element(pinned_.begin(), pinned_.end(), [](const auto& a, const auto& b) {
        return a.second->last_used < b.second->last_used;
    });
    transition(unpin(oldest), state::closed, close_reason::idle_full);
    return true;
}

// Posted by another worker that waits at the connection cap: a pin of this worker's that is not
// in use makes room (pins never move, so only their worker may close them).
void backend_pool::evict_pin_for_waiter() {
    if (group_.waiting() > 0 && group_.open.load() >= settings_.max_connections) close_oldest_pin();
}

// Whether a connection may have come back (or room been made) since this worker last looked:
// checked once queued, so that a release racing the queueing is not missed.
bool backend_pool::room_made() const {
    return group_.open.load() < settings_.max_connections || group_.idle.load() > 0;
}

conn_ptr backend_pool::unpin(std::unordered_map<std::uint64_t, conn_ptr>::iterator it) {
    const auto client = it->first;
    conn_ptr c = std::move(it->second);
    pinned_.erase(it);
    add(metrics_.pinned_connections, -1);
    if (--pinned_by_user_[c->user] == 0) pinned_by_user_.erase(c->user);
    if (--pins_per_client_[client] == 0) pins_per_client_.erase(client);
    return c;
}

// A new connection, in the room reserved in group_.open (given back when it closes).
net::awaitable<acquire_result> backend_pool::open() {
    acquire_result r;
    add(metrics_.open_connections, 1);
    add(metrics_.connections_opened);
    r.conn = std::make_unique<backend_connection>(*this, ex_, group_.next_id.fetch_add(1));
    r.conn->stream.expires_after(connect_timeout_);
    auto [ec] = co_await r.conn->stream.async_connect(endpoint_, nothrow);
    if (ec) {
        r.failure = ec == boost::beast::error::timeout ? acquire_failure::connect_timeout : acquire_failure::connect_failed;
        r.error = ec.message();
        transition(std::move(r.conn), state::closed, close_reason::error);
        co_return r;
    }
    r.conn->stream.socket().set_option(net::ip::tcp::no_delay(true));
    if (tap) {
        const auto& socket = r.conn->stream.socket();
        boost::system::error_code local_ec;
        const auto local = socket.local_endpoint(local_ec);
        if (!local_ec)
            r.conn->stream.tap = {tap, tap->opened(backend_.name + "#" + std::to_string(r.conn->id), local, endpoint_), true};
    }
    r.decision = reuse_decision::new_connection;
    co_return r;
}

net::awaitable<acquire_result> backend_pool::connection_for(std::string user, std::uint64_t client) {
    const auto deadline = clock::now() + std::chrono::milliseconds(settings_.queue_timeout_ms);
    const auto look = policy_.look();
    bool queued = false;
    for (;;) {
        if (shutting_down_) co_return acquire_result{nullptr, {}, false, acquire_failure::shutting_down, {}};
        acquire_result r;
        // 1. Where the policy looks: the client's pin, then this worker's idle list, then the
        //    other workers' (a takeover).
        if (look == lookup::pin_then_shared && (r.conn = take_pin(client, user))) r.decision = reuse_decision::reused_pinned;
        if (!r.conn && look != lookup::none) {
            r.conn = take_idle(user);
            if (!r.conn && (r.conn = take_over(user))) r.taken_over = true;
            r.decision = look == lookup::user_partition ? reuse_decision::reused_same_user : reuse_decision::reused_as_is;
        }
        if (r.conn) {
            lend_buffers(*r.conn);
            r.must_authenticate = policy_.must_authenticate(r.conn->view(), user, true);
            if (r.must_authenticate) r.decision = reuse_decision::reused_reauth;
            add(metrics_.acquired[static_cast<std::size_t>(r.decision)]);
            co_return r;
        }
        // 2. A new connection, within the cap over every worker.
        bool room = group_.reserve_open();
        if (!room && evict_one_idle(user)) room = group_.reserve_open();
        if (room) {
            r = co_await open();
            if (r.conn) {
                lend_buffers(*r.conn);
                r.must_authenticate = policy_.must_authenticate(r.conn->view(), user, false);
                add(metrics_.acquired[static_cast<std::size_t>(reuse_decision::new_connection)]);
            }
            co_return r;
        }
        // 3. Wait for a connection to come back or to close, on any worker.
        const auto now = clock::now();
        if (now >= deadline) {
            add(metrics_.queue_timeouts);
            co_return acquire_result{nullptr, {}, false, acquire_failure::queue_timeout, {}};
        }
        auto w = std::make_shared<pool_group::waiter>(ex_, this);
        w->timer.expires_after(deadline - now);
        // A waiter that was woken but lost the connection to a newcomer keeps its place.
        if (!group_.enqueue(w, queued)) {
            add(metrics_.queue_full);
            co_return acquire_result{nullptr, {}, false, acquire_failure::queue_full, {}};
        }
        if (!queued) {
            add(metrics_.queue_waits);
            for (auto* other : group_.members)
                if (other != this) net::post(other->ex_, [other] { other->evict_pin_for_waiter(); });
        }
        queued = true;
        if (room_made()) {  // a connection came back between the look and the queueing
            group_.dequeue(w);
            continue;
        }
        add(metrics_.waiting, 1);
        co_await w->timer.async_wait(nothrow);
        add(metrics_.waiting, -1);
        group_.dequeue(w);  // timed out: still queued
    }
}

release_result backend_pool::release(conn_ptr c, bool reusable, std::uint64_t client, close_reason reason) {
    if (!c) return {};
    c->last_used = clock::now();
    take_back_buffers(*c);
    if (shutting_down_) return transition(std::move(c), state::closed, close_reason::shutdown);
    if (!reusable) return transition(std::move(c), state::closed, reason);
    // Bytes already read past the response (e.g. a body sent to a HEAD) would be taken for the
    // next response (take_back_buffers left them with the connection).
    if (c->io) return transition(std::move(c), state::closed, close_reason::error);
    if (c->requests >= settings_.max_requests) return transition(std::move(c), state::closed, close_reason::max_requests);
    if (clock::now() - c->created > std::chrono::milliseconds(settings_.max_lifetime_ms))
        return transition(std::move(c), state::closed, close_reason::max_lifetime);
    const auto next = policy_.after_response(c->view());
    switch (next.kept) {
        case disposal::close: return transition(std::move(c), state::closed, next.closed);
        case disposal::pin: return transition(std::move(c), state::pinned, {}, client);
        case disposal::pool: return transition(std::move(c), state::idle, {});
    }
    return {};
}

void backend_pool::lend_buffers(backend_connection& c) {
    if (c.io) return;
    if (spare_buffers_.empty()) {
        c.io = std::make_unique<exchange_buffers>();
        return;
    }
    c.io = std::move(spare_buffers_.back());
    spare_buffers_.pop_back();
}

void backend_pool::take_back_buffers(backend_connection& c) {
    if (!c.io || c.io->read.size() != 0) return;
    if (spare_buffers_.size() < max_spare_buffers) spare_buffers_.push_back(std::move(c.io));
    else c.io.reset();
}

void backend_pool::client_closed(std::uint64_t client) {
    auto it = pinned_.find(client);
    if (it != pinned_.end()) transition(unpin(it), state::closed, close_reason::client_gone);
}

void backend_pool::sweep() {
    std::vector<std::pair<conn_ptr, close_reason>> closing;
    {
        std::lock_guard lock(idle_mutex_);
        auto sweep_list = [&](std::deque<conn_ptr>& list) {
            for (auto it = list.begin(); it != list.end();) {
                if (auto why = why_unusable(**it)) {
                    closing.emplace_back(std::move(*it), *why);
                    it = list.erase(it);
                } else {
                    ++it;
                }
            }
        };
        sweep_list(idle_);
        for (auto it = idle_by_user_.begin(); it != idle_by_user_.end();) {
            sweep_list(it->second);
            it = it->second.empty() ? idle_by_user_.erase(it) : std::next(it);
        }
        group_.idle.fetch_sub(closing.size());
        add(metrics_.idle_connections, -static_cast<std::int64_t>(closing.size()));
    }
    for (auto& [c, why] : closing) transition(std::move(c), state::closed, why);
}

void backend_pool::shut_down() {
    shutting_down_ = true;
    std::vector<conn_ptr> closing;
    {
        std::lock_guard lock(idle_mutex_);
        for (auto& c : idle_) closing.push_back(std::move(c));
        idle_.clear();
        for (auto& [user, list] : idle_by_user_)
            for (auto& c : list) closing.push_back(std::move(c));
        idle_by_user_.clear();
        group_.idle.fetch_sub(closing.size());
        add(metrics_.idle_connections, -static_cast<std::int64_t>(closing.size()));
    }
    for (auto& c : closing) transition(std::move(c), state::closed, close_reason::shutdown);
    while (!pinned_.empty()) transition(unpin(pinned_.begin()), state::closed, close_reason::shutdown);
    group_.wake_all_of(this);
}

}  // namespace exsim::proxy
