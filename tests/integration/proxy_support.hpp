#pragma once
// What the front-end's integration tests share: an in-process proxy in front of the
// environment's back-ends, what the audit lines say about connections, the proxy's counters, a
// scripted back-end. (audit_since, eventually and message_ids are in environment.hpp.)

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <boost/asio/ip/tcp.hpp>
#include <gtest/gtest.h>

#include "environment.hpp"
#include "exsim/backend/audit_log.hpp"
#include "exsim/proxy/metrics.hpp"
#include "exsim/proxy/server.hpp"

namespace exsim::testing {

struct proxy_setup {
    std::string policy = "ms04-002";
    bool require_kerberos = false;
    bool leak_guard = false;
    common::pool_settings pool{};
    std::size_t workers = 1;
    bool tls = false;                                 // false: allow_insecure_http
    std::map<std::string, std::string> addresses{};  // overrides "127.0.0.1:<env port>" by back-end
};

// A started front-end with a copy of the test topology and its own state folder. The
// destructor stops it; read its metrics before that.
std::unique_ptr<proxy::server> start_proxy(const proxy_setup& setup = {});

// The back-end connection ids that carried the records.
std::set<std::uint64_t> connections(const std::vector<backend::audit_record>& records);
// Passes when each back-end connection served one user: keyed on `on_behalf_of` (who the proxy
// acted for), not `identity`, which stays the connection's owner on a leaked request. A
// predicate, so that a legacy test can show it fails on the same workload.
::testing::AssertionResult one_user_per_connection(const std::vector<backend::audit_record>& records);
// How many records each back-end connection carried.
std::map<std::uint64_t, std::size_t> records_by_connection(const std::vector<backend::audit_record>& records);

// One counter or gauge of the proxy, summed over its workers: metric(p, &worker_metrics::requests).
template <class T>
std::int64_t metric(const proxy::server& p, T proxy::worker_metrics::*member) {
    return proxy::total(p.metrics(), [member](const proxy::worker_metrics& w) -> const T& { return w.*member; });
}
std::int64_t acquired(const proxy::server& p, proxy::reuse_decision d);
std::int64_t closed(const proxy::server& p, proxy::close_reason r);
std::int64_t handshakes(const proxy::server& p, proxy::handshake_mechanism m);

// One request through the proxy as `user` (Basic), on a connection of its own.
response as_user(const proxy::server& p, const std::string& user, http::verb method = http::verb::get,
                 const std::string& target = "/exchange/", const std::string& body = "");

// One request through the proxy with this Authorization header value, on a connection of its own.
response with_authorization(const proxy::server& p, const std::string& authorization,
                            http::verb method = http::verb::get, const std::string& target = "/exchange/");

// The value of one series in a Prometheus text exposition, e.g.
// sample(text, R"(exsim_proxy_requests_total{policy="legacy"})"); nullopt when absent.
std::optional<std::int64_t> sample(const std::string& text, const std::string& series);

// A stand-in back-end on 127.0.0.1: it records every request the proxy sends it and answers
// each as its script says, so that a test sees exactly what was forwarded, or makes a pooled
// connection die at a chosen moment. One connection at a time, in the order they come. Every
// answer is "scripted\n", a HEAD's too (Beast writes the whole message): bytes a proxy must not
// take for the next response.
class scripted_backend {
public:
    using request = http::request<http::string_body>;
    enum class action {
        answer,            // 200, kept alive
        answer_and_close,  // 200 with Connection: close
        drop,              // close the connection without answering
        cut_in_headers,    // write half of the response's header, then close (a back-end killed)
        cut_in_body,       // write the header and half of the body, then close
    };
    // `index` counts the requests received so far, over every connection.
    using script = std::function<action(const request& req, std::size_t index)>;

    explicit scripted_backend(script s);
    ~scripted_backend();
    scripted_backend(const scripted_backend&) = delete;
    scripted_backend& operator=(const scripted_backend&) = delete;

    std::uint16_t port() const;
    std::string address() const;  // "127.0.0.1:PORT"
    std::vector<request> requests();
    std::size_t connections() const { return connections_; }

private:
    void run();

    script script_;
    boost::asio::io_context ioc_;
    boost::asio::ip::tcp::acceptor acceptor_;
    std::atomic<bool> stopping_{false};
    std::atomic<int> current_fd_{-1};
    std::atomic<std::size_t> connections_{0};
    std::mutex m_;
    std::vector<request> requests_;
    std::thread thread_;
};

// {"to":..., "subject":..., "body":...}
std::string mail_json(const std::string& to, const std::string& subject, const std::string& body = "hello");

}  // namespace exsim::testing
