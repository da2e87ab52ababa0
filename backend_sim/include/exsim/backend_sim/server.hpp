#pragma once
// An IIS 6-like HTTP/1.1 back-end (Boost.Beast) in front of the mailbox API:
//  - `auth_providers` decide the 401 challenges, one WWW-Authenticate line per provider;
//  - NTLM authenticates the connection: later requests without Authorization run as that user,
//    and a new handshake on it switches identity;
//  - Kerberos authenticates the request that carries the token, unless persist_kerberos;
//  - limits and timeouts on every connection (431, 413, 400 with a short reason; 408 for a header
//    that has not arrived whole within read_timeout of its first byte);
// Worker threads each run their own io_context with their own acceptor credentials and their
// own SQLite connection.

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>

#include "exsim/auth/gss.hpp"
#include "exsim/auth/realm.hpp"
#include "exsim/common/topology.hpp"

namespace exsim::backend {

struct server_limits {
    std::size_t header_bytes = 16 * 1024;      // request line + headers (431 past it)
    std::size_t body_bytes = 1024 * 1024;      // request body (413 past it)
    std::chrono::milliseconds idle_timeout{120'000};  // waiting for a request (IIS: 120 s)
    std::chrono::milliseconds read_timeout{30'000};   // a started request, header and body in all (a header: 408), and each answer
    std::size_t max_handshake_legs = 8;        // per handshake, then 401
};

struct server_options {
    std::string backend;                       // name in the topology
    std::string address = "127.0.0.1";
    std::uint16_t port = 0;                    // 0: a free port
    std::size_t threads = 2;
    std::filesystem::path state_dir;           // mailbox database and audit log
    auth::acceptor_config acceptor;            // keytab, NTLM user file, providers
    bool reset_store = false;                  // start from the seed again
    server_limits limits;
};

// The options of back-end `name` with its keytab and NTLM file from realm `r` (the rest default).
server_options realm_backend_options(const common::topology& t, const auth::realm& r, const std::string& name,
                                     const std::filesystem::path& state_dir);

class server {
public:
    // Opens (and seeds) the store, acquires acceptor credentials, binds the listener. Throws
    // std::runtime_error with a clear message at start-up.
    server(const common::topology& topology, server_options options);
    ~server();  // stops
    server(const server&) = delete;
    server& operator=(const server&) = delete;

    void start();  // runs the worker threads
    void stop();   // closes the listener and every connection, joins the threads

    std::uint16_t port() const;
    const std::string& backend() const;
    std::filesystem::path audit_log_file() const;
    std::filesystem::path database_file() const;

    struct impl;  // public only so that the .cpp's sessions can name it

private:
    std::unique_ptr<impl> impl_;
};

}  // namespace exsim::backend
