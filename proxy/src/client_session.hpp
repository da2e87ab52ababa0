#pragma once
// What the server (server.cpp), its client sessions (client_session.cpp) and their back-end exchanges
// (exchange.cpp) share: the server's state and each worker thread's.

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>

#include "exsim/auth/gss.hpp"
#include "exsim/common/log.hpp"
#include "exsim/proxy/admin_server.hpp"
#include "exsim/proxy/owa.hpp"
#include "exsim/proxy/policy.hpp"
#include "exsim/proxy/server.hpp"
#include "pool.hpp"

namespace exsim::proxy {

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
    // Keys whose credentials are being fetched, each with the timers of the requests waiting
    // for them (cancelled when they arrive): one fetch per key however many wait.
    std::unordered_map<std::string, std::vector<boost::asio::steady_timer*>> fetching;
    boost::asio::io_context ioc{1};
    std::optional<boost::asio::steady_timer> sweep;  // after ioc: destroyed before it
    std::thread thread;
};

struct server::impl {
    common::topology topology;
    std::optional<common::user_index> users;  // of topology, which does not change once set
    proxy_options options;
    std::unique_ptr<pool_policy> policy;
    std::map<std::string, boost::asio::ip::tcp::endpoint> endpoints;
    // One pool per back-end across the workers: what their parts share. Before `workers`, so
    // that it outlives them.
    std::map<std::string, std::unique_ptr<pool_group>, std::less<>> pools;
    std::optional<boost::asio::ssl::context> tls;
    std::shared_ptr<spdlog::logger> log = common::logger("proxy");
    std::vector<std::unique_ptr<worker>> workers;
    std::optional<auth::credential_cache> credentials;  // shared by the workers; its pool does the KDC work
    // NTLM needs no KDC: its own pool, so that it never waits behind AS exchanges with a slow KDC.
    std::optional<auth::credential_cache> ntlm_credentials;
    auth::credential_cache& cache_for(auth::initiator_mode mode) {
        return mode == auth::initiator_mode::ntlm ? *ntlm_credentials : *credentials;
    }
    boost::asio::io_context accept_ioc{1};
    boost::asio::ip::tcp::acceptor acceptor{accept_ioc};
    std::thread accept_thread;
    std::unique_ptr<admin_server> admin;
    std::optional<owa::site> owa;  // the browser view; its sessions are server-wide
    std::atomic<std::uint64_t> next_client{1};
    bool running = false;

    void do_accept();
};

// Runs a client connection the listener accepted and dealt to `w` (client_session.cpp): on w's thread,
// until the client or the server closes it.
void start_session(server::impl& srv, worker& w, boost::asio::ip::tcp::socket socket);

}  // namespace exsim::proxy
