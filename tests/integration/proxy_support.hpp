#pragma once
// What the front-end's integration tests share: an in-process proxy in front of the
// environment's back-ends, what the audit lines say about connections, the proxy's counters, a
// scripted back-end; back-ends of a test's own that can be restarted, a relay that closes
// connections as idle timeouts and restarts do, the `exsim proxy` binary as a child process.
// (audit_since, eventually and message_ids are in environment.hpp.)

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <thread>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <gtest/gtest.h>

#include "environment.hpp"
#include "exsim/backend_sim/audit_log.hpp"
#include "exsim/backend_sim/server.hpp"
#include "exsim/common/process.hpp"
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
    proxy::proxy_limits limits{};
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
        answer_chunked,    // 200 kept alive, "scripted\n" in two chunks and the last one, each its own write
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

// Back-ends of the test topology in a state folder of their own, stores fresh from the seed
// (the environment's are shared by every test of the program). One of them can be stopped and
// started again, as a crashed and restarted back-end.
class fresh_backends {
public:
    explicit fresh_backends(const std::vector<std::string>& names);

    backend::server& at(const std::string& name) { return *servers_.at(name); }
    std::uint16_t port(const std::string& name) const { return options_.at(name).port; }

    // For proxy_setup::addresses: the front-end talks to these instead of the shared ones.
    std::map<std::string, std::string> addresses() const;
    std::vector<std::filesystem::path> audit_logs() const;
    std::vector<backend::audit_record> audit() const;
    // How many times each subject is in `user`'s Sent Items, read from its home's store.
    std::map<std::string, std::size_t> sent_subjects(const std::string& user) const;

    // Stops `name` at once: its listener and every connection closed in whatever state they
    // are, requests in progress unanswered (acted on or not), as a crash looks from outside.
    void stop(const std::string& name);
    // Starts it again on the same port, with the same store and audit log.
    void start_again(const std::string& name);

private:
    std::filesystem::path dir_;
    std::map<std::string, backend::server_options> options_;
    std::map<std::string, std::unique_ptr<backend::server>> servers_;
};

// Between the front-end and a real back-end: forwards each request and its response (whole,
// so that the front-end never sees half of one), with the faults a back-end's idle timeout and
// restarts bring:
//  - a re-used connection is closed at random (`cut_probability`) instead of forwarding the
//    request that re-uses it: the back-end's idle close racing the proxy's send, where the
//    pool's check cannot see it. Only a request that follows a finished exchange (not a 401 of
//    a handshake) is cut, as an idle close would;
//  - close_idle() closes connections that wait between exchanges: an idle close the pool's
//    check can see;
//  - a back-end that closes its side (stopped) gets the front-end's side closed too, at once,
//    as a direct connection would; refuse() and accept_again() make connecting fail while it
//    is down.
class idle_closing_relay {
public:
    idle_closing_relay(std::uint16_t backend_port, double cut_probability, unsigned seed);
    ~idle_closing_relay();
    idle_closing_relay(const idle_closing_relay&) = delete;
    idle_closing_relay& operator=(const idle_closing_relay&) = delete;

    std::string address() const;
    // Requests cut, by method.
    std::map<std::string, std::size_t> cut();
    void set_cut_probability(double p) { probability_ = p; }
    struct idle_closes {
        std::size_t closed = 0;
        std::size_t raced = 0;  // of those, with a request already sent by the front-end (unread)
    };
    // Closes each connection waiting between exchanges with `probability`.
    idle_closes close_idle(double probability);
    void refuse();        // closes the listener: connecting is refused
    void accept_again();  // listens again on the same port

private:
    struct link;
    boost::asio::awaitable<void> accept();
    boost::asio::awaitable<void> relay(boost::asio::ip::tcp::socket front);
    template <class F>
    auto on_relay_thread(F f);

    boost::asio::ip::tcp::endpoint backend_;
    boost::asio::io_context ioc_{1};
    // Keeps the thread running while refused with no connection left: on_relay_thread() needs it.
    boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_{ioc_.get_executor()};
    boost::asio::ip::tcp::acceptor acceptor_;
    boost::asio::ip::tcp::endpoint listening_;
    std::atomic<double> probability_;
    std::mt19937 rng_;           // relay thread only
    std::set<link*> links_;      // relay thread only
    std::mutex m_;
    std::map<std::string, std::size_t> cut_;
    std::thread thread_;
};

// The real `exsim proxy` binary in its own process, with the test realm's client files, in
// front of `backends` (name -> "127.0.0.1:PORT", one per back-end of the topology it runs),
// for what an in-process front-end cannot show: its death as one failed test (with its log),
// its own memory and file descriptors. `options` go on its command line.
class proxy_process {
public:
    explicit proxy_process(const std::map<std::string, std::string>& backends,
                           const std::vector<std::string>& options = {"--workers", "1", "--allow-insecure-http"});
    ~proxy_process() { process_.stop(); }

    std::uint16_t port() const { return port_; }  // 0: it did not start
    const std::string& url() const { return url_; }
    const std::string& metrics_url() const { return metrics_url_; }
    std::uint16_t metrics_port() const { return metrics_port_; }
    pid_t pid() const { return pid_; }
    bool running() { return process_.running(); }
    std::string log() const;
    // How it ended, for a failure message.
    std::string status();
    // SIGTERM (SIGKILL after `grace`); its exit code (nullopt: it was never started).
    std::optional<int> stop(std::chrono::milliseconds grace = std::chrono::milliseconds(10'000));

private:
    std::filesystem::path dir_;
    common::child_process process_;
    pid_t pid_ = -1;
    std::uint16_t port_ = 0, metrics_port_ = 0;
    std::string url_, metrics_url_;
};

}  // namespace exsim::testing
