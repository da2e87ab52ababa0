#pragma once
// The front-end: a Boost.Beast HTTP/1.1 reverse proxy in front of the back-ends (docs/design.md
// section 5). Each request: parse with limits -> Basic login against the directory ->
// canonicalize the target -> route to the user's home back-end -> acquire a connection from
// the back-end's pool (this worker's idle list, else another worker's) -> authenticate to the back-end as the user when the policy says so
// (answering 401 challenges) -> forward with X-Exsim-On-Behalf-Of, streaming the bodies ->
// release the connection with the outcome -> respond.
//
// Worker threads each run their own io_context with their own credentials and their own part of
// each back-end's pool; a client connection lives on one worker, and an idle back-end connection
// moves to the worker that takes it over. GSSAPI work that may reach the KDC runs on a blocking pool.

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "exsim/common/topology.hpp"
#include "exsim/common/wire_tap.hpp"
#include "exsim/proxy/metrics.hpp"
#include "exsim/proxy/tls.hpp"
#include "exsim/proxy/trace_event.hpp"

namespace exsim::proxy {

struct proxy_limits {
    std::size_t header_bytes = 16 * 1024;                  // client request line + headers (431)
    std::size_t body_bytes = 1024 * 1024;                  // client request body (413)
    std::size_t replay_bytes = 64 * 1024;                  // request body kept to answer a 401 once it was sent
    std::chrono::milliseconds client_idle_timeout{120'000};  // waiting for a client's next request
    std::chrono::milliseconds client_io_timeout{30'000};     // reading or writing a started message
    std::chrono::milliseconds connect_timeout{5'000};        // TCP connect to a back-end
    std::chrono::milliseconds backend_timeout{30'000};       // each back-end read or write
    std::chrono::milliseconds tls_handshake_timeout{10'000};
    // Waiting for a user's credentials from the KDC (then 503, or NTLM under Negotiate). libkrb5's
    // own limit is about 27 s; 15 s leaves room for a queue of first-time users on a loaded machine.
    std::chrono::milliseconds credential_timeout{15'000};
    std::size_t max_handshake_legs = 6;                     // 401 answers per request
};

struct proxy_options {
    std::string address = "127.0.0.1";
    std::uint16_t port = 0;                  // 0: a free port
    std::string admin_address = "127.0.0.1";
    std::uint16_t admin_port = 0;            // metrics; 0: a free port
    std::size_t workers = 0;                 // 0: the topology's frontend.workers, else the number of cores
    // Where each back-end listens, by name: "127.0.0.1:8081". Every back-end of the topology
    // must be present.
    std::map<std::string, std::string> backends;
    bool allow_insecure_http = false;        // plain HTTP listener (warned at every start)
    std::optional<tls_files> tls;            // none: a self-signed pair in state_dir/tls
    std::filesystem::path state_dir;
    proxy_limits limits;
    trace_sink trace;                        // each step of each request (exsim trace); empty: off
    // Told every client and back-end connection's bytes (exsim trace --pcap, exsim up --capture);
    // null: off. Must outlive the server.
    common::wire_tap* tap = nullptr;
};

class server {
public:
    // The front-end settings (policy, require_kerberos, leak_guard, pool) come from
    // topology.frontend. Checks the options, prepares TLS, binds the listener and the admin
    // port. Throws std::runtime_error (common::config_error for bad settings) with a clear
    // message at start-up.
    server(const common::topology& topology, proxy_options options);
    ~server();  // stops
    server(const server&) = delete;
    server& operator=(const server&) = delete;

    void start();
    void stop();  // closes the listeners, every client and back-end connection, joins threads

    std::uint16_t port() const;
    std::uint16_t admin_port() const;
    bool tls() const;
    std::string url() const;          // "https://127.0.0.1:PORT" (http:// when insecure)
    std::string metrics_url() const;  // "http://127.0.0.1:ADMIN/metrics"
    const std::string& policy() const;

    std::string metrics_text() const;  // what GET /metrics returns
    std::vector<const worker_metrics*> metrics() const;

    struct impl;

private:
    std::unique_ptr<impl> impl_;
};

}  // namespace exsim::proxy
