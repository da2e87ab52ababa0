#include "pool.hpp"

#include <sys/socket.h>

#include <algorithm>
#include <cerrno>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "exsim/common/log.hpp"

namespace exsim::proxy {
namespace net = boost::asio;
using namespace std::chrono_literals;

namespace {
constexpr auto nothrow = net::as_tuple(net::use_awaitable);
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
}  // namespace

backend_connection::backend_connection(backend_pool& o, net::any_io_executor ex, std::uint64_t i)
    : owner(o), id(i), stream(std::move(ex)) {}

backend_connection::~backend_connection() {
    boost::system::error_code ec;
    stream.socket().shutdown(net::ip::tcp::socket::shutdown_both, ec);
    stream.close();
    owner.on_closed(*this);
}

backend_pool::backend_pool(const common::backend_config& backend, net::ip::tcp::endpoint endpoint,
                           const common::pool_settings& settings, const pool_policy& policy, worker_metrics& metrics,
                           net::any_io_executor ex, std::chrono::milliseconds connect_timeout,
                           std::unordered_map<std::uint64_t, std::size_t>& pins_per_client)
    : backend_(backend), endpoint_(std::move(endpoint)), settings_(settings), policy_(policy), metrics_(metrics),
      ex_(std::move(ex)), connect_timeout_(connect_timeout), pins_per_client_(pins_per_client) {}

backend_pool::~backend_pool() { shut_down(); }

void backend_pool::on_closed(const backend_connection& c) {
    --open_;
    add(metrics_.closed[static_cast<std::size_t>(c.reason)]);
    add(metrics_.open_connections, -1);
    wake_one();
}

void backend_pool::close(conn_ptr c, close_reason why) {
    if (!c) return;
    c->reason = why;
    c.reset();
}

// Why a connection that waits (idle or pinned) may not serve again; nullopt: it may.
std::optional<close_reason> backend_pool::why_unusable(backend_connection& c) const {
    const auto now = clock::now();
    if (now - c.created > std::chrono::milliseconds(settings_.max_lifetime_ms)) return close_reason::max_lifetime;
    if (now - c.last_used > std::chrono::milliseconds(settings_.idle_timeout_ms)) return close_reason::idle_timeout;
    if (!quiet(c.stream.socket())) return close_reason::backend_closed;
    return std::nullopt;
}

conn_ptr backend_pool::take_idle(std::deque<conn_ptr>& list, std::deque<conn_ptr>::iterator it) {
    conn_ptr c = std::move(*it);
    list.erase(it);
    --idle_count_;
    add(metrics_.idle_connections, -1);
    return c;
}

// The most recently used idle connection of the policy's scope that is still usable; the
// unusable ones met on the way are closed with their reason.
conn_ptr backend_pool::take_idle(const std::string& user) {
    std::deque<conn_ptr>* list = nullptr;
    if (policy_.scope() == idle_scope::shared) list = &idle_;
    else if (policy_.scope() == idle_scope::per_user) {
        auto it = idle_by_user_.find(user);
        if (it != idle_by_user_.end()) list = &it->second;
    }
    while (list && !list->empty()) {
        conn_ptr c = take_idle(*list, std::prev(list->end()));
        if (auto why = why_unusable(*c)) close(std::move(c), *why);
        else return c;
    }
    return nullptr;
}

// At the connection cap, an idle connection that this request may not use is closed to make
// room: another user's (per-user), or else the least recently used pin (a pinned connection
// not in use; its client has to authenticate a new one on its next request).
bool backend_pool::evict_one_idle() {
    for (auto& [user, list] : idle_by_user_) {
        if (list.empty()) continue;
        close(take_idle(list, list.begin()), close_reason::idle_full);
        return true;
    }
    if (pinned_.empty()) return false;
    auto oldest = std::min_element(pinned_.begin(), pinned_.end(), [](const auto& a, const auto& b) {
        return a.second->last_used < b.second->last_used;
    });
    close(unpin(oldest), close_reason::idle_full);
    return true;
}

void backend_pool::add_idle(conn_ptr c) {
    if (idle_count_ >= settings_.max_idle) return close(std::move(c), close_reason::idle_full);
    ++idle_count_;
    add(metrics_.idle_connections, 1);
    if (policy_.scope() == idle_scope::per_user) idle_by_user_[c->user].push_back(std::move(c));
    else idle_.push_back(std::move(c));
}

void backend_pool::wake_one() {
    if (waiters_.empty()) return;
    auto* w = waiters_.front();
    waiters_.pop_front();
    w->woken = true;
    w->timer.cancel();
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

net::awaitable<acquire_result> backend_pool::open() {
    acquire_result r;
    ++open_;
    add(metrics_.open_connections, 1);
    add(metrics_.connections_opened);
    r.conn = std::make_unique<backend_connection>(*this, ex_, next_id_++);
    r.conn->stream.expires_after(connect_timeout_);
    auto [ec] = co_await r.conn->stream.async_connect(endpoint_, nothrow);
    if (ec) {
        r.failure = ec == boost::beast::error::timeout ? acquire_failure::connect_timeout : acquire_failure::connect_failed;
        r.error = ec.message();
        close(std::move(r.conn), close_reason::error);
        co_return r;
    }
    r.conn->stream.socket().set_option(net::ip::tcp::no_delay(true));
    r.decision = reuse_decision::new_connection;
    co_return r;
}

net::awaitable<acquire_result> backend_pool::acquire(std::string user, std::uint64_t client) {
    const auto deadline = clock::now() + std::chrono::milliseconds(settings_.queue_timeout_ms);
    bool queued = false;
    for (;;) {
        if (shutting_down_) co_return acquire_result{nullptr, {}, false, acquire_failure::shutting_down, {}};
        acquire_result r;
        // 1. The connection pinned to this client (pinned policy).
        if (auto it = pinned_.find(client); client != 0 && it != pinned_.end()) {
            conn_ptr c = unpin(it);
            if (c->user != user) close(std::move(c), close_reason::pin_rebound);
            else if (auto why = why_unusable(*c)) close(std::move(c), *why);
            else {
                r.conn = std::move(c);
                r.decision = reuse_decision::reused_pinned;
            }
        }
        // 2. An idle connection of the policy's scope.
        if (!r.conn) {
            r.conn = take_idle(user);
            if (r.conn) r.decision = policy_.scope() == idle_scope::per_user ? reuse_decision::reused_same_user
                                                                              : reuse_decision::reused_as_is;
        }
        if (r.conn) {
            lend_buffers(*r.conn);
            r.must_authenticate = policy_.must_authenticate(r.conn->view(), user);
            if (r.must_authenticate && r.decision != reuse_decision::new_connection)
                r.decision = reuse_decision::reused_reauth;
            add(metrics_.acquired[static_cast<std::size_t>(r.decision)]);
            co_return r;
        }
        // 3. A new connection, within the cap.
        if (open_ >= settings_.max_connections) evict_one_idle();
        if (open_ < settings_.max_connections) {
            r = co_await open();
            if (r.conn) {
                lend_buffers(*r.conn);
                r.must_authenticate = !user.empty();
                add(metrics_.acquired[static_cast<std::size_t>(reuse_decision::new_connection)]);
            }
            co_return r;
        }
        // 4. Wait for a connection to come back or to close.
        const auto now = clock::now();
        if (now >= deadline) {
            add(metrics_.queue_timeouts);
            co_return acquire_result{nullptr, {}, false, acquire_failure::queue_timeout, {}};
        }
        if (!queued) {
            if (waiters_.size() >= settings_.queue_limit) {
                add(metrics_.queue_full);
                co_return acquire_result{nullptr, {}, false, acquire_failure::queue_full, {}};
            }
            add(metrics_.queue_waits);
        }
        waiter w{net::steady_timer(ex_, deadline - now)};
        // A waiter that was woken but lost the connection to a newcomer keeps its place.
        auto it = waiters_.insert(queued ? waiters_.begin() : waiters_.end(), &w);
        queued = true;
        add(metrics_.waiting, 1);
        co_await w.timer.async_wait(nothrow);
        add(metrics_.waiting, -1);
        if (!w.woken) waiters_.erase(it);  // timed out: still in the list
    }
}

release_result backend_pool::release(conn_ptr c, bool reusable, std::uint64_t client, close_reason reason) {
    if (!c) return {};
    c->last_used = clock::now();
    auto closed = [&](close_reason why) {
        close(std::move(c), why);
        return release_result{disposal::close, why};
    };
    take_back_buffers(*c);
    if (!reusable || shutting_down_) return closed(shutting_down_ ? close_reason::shutdown : reason);
    // Bytes already read past the response (e.g. a body sent to a HEAD) would be taken for the
    // next response (take_back_buffers left them with the connection).
    if (c->io) return closed(close_reason::error);
    if (c->requests >= settings_.max_requests) return closed(close_reason::max_requests);
    if (clock::now() - c->created > std::chrono::milliseconds(settings_.max_lifetime_ms))
        return closed(close_reason::max_lifetime);
    const auto view = c->view();
    switch (policy_.after_response(view)) {
        case disposal::close:
            return closed(view.mechanism == auth::mechanism::ntlm && policy_.scope() != idle_scope::none
                              ? close_reason::ntlm_not_pooled
                              : close_reason::no_reuse);
        case disposal::pin: {
            auto count = [](const auto& map, const auto& key) -> std::size_t {
                auto it = map.find(key);
                return it == map.end() ? 0 : it->second;
            };
            // Over a cap (or no client to pin to), the connection is not kept: as ms04-002.
            if (client == 0 || pinned_.count(client) || count(pinned_by_user_, c->user) >= settings_.pinned_per_user ||
                count(pins_per_client_, client) >= settings_.pinned_per_client)
                return closed(close_reason::ntlm_not_pooled);
            ++pinned_by_user_[c->user];
            ++pins_per_client_[client];
            add(metrics_.pinned_connections, 1);
            pinned_[client] = std::move(c);
            wake_one();  // a waiter may evict it (the pool is at its cap)
            return {disposal::pin};
        }
        case disposal::pool:
            add_idle(std::move(c));
            wake_one();
            return {disposal::pool};
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
    if (it != pinned_.end()) close(unpin(it), close_reason::client_gone);
}

void backend_pool::sweep() {
    auto sweep_list = [this](std::deque<conn_ptr>& list) {
        for (std::size_t i = 0; i < list.size();) {
            if (auto why = why_unusable(*list[i])) close(take_idle(list, list.begin() + static_cast<std::ptrdiff_t>(i)), *why);
            else ++i;
        }
    };
    sweep_list(idle_);
    for (auto it = idle_by_user_.begin(); it != idle_by_user_.end();) {
        sweep_list(it->second);
        it = it->second.empty() ? idle_by_user_.erase(it) : std::next(it);
    }
}

void backend_pool::shut_down() {
    shutting_down_ = true;
    auto drain = [this](std::deque<conn_ptr>& list) {
        while (!list.empty()) close(take_idle(list, list.begin()), close_reason::shutdown);
    };
    drain(idle_);
    for (auto& [user, list] : idle_by_user_) drain(list);
    idle_by_user_.clear();
    while (!pinned_.empty()) close(unpin(pinned_.begin()), close_reason::shutdown);
    while (!waiters_.empty()) wake_one();
}

}  // namespace exsim::proxy
