#pragma once
// `exsim load`: virtual users from the directory, each a session with its own keep-alive
// connection, running a weighted mix of mailbox operations through the exsim front-end (Basic
// over TLS) or straight at a back-end or any reverse proxy in front of the back-ends
// (pass-through: each virtual user speaks Negotiate or NTLM itself, like a browser, or Basic when
// a proxy asks for it). Every response goes through the leak oracle; the back-ends' audit logs and
// the front-end's metrics give the other side. A success that no exsim back-end vouched for (no
// X-Exsim-Identity, no X-Exsim-Mailbox) is an error of its own kind, "unattributed", and
// successes the audit logs never saw are counted (load_result::unaudited): a proxy that answers
// by itself is never a clean run.

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "exsim/auth/mechanism.hpp"
#include "exsim/common/topology.hpp"
#include "exsim/loadgen/results.hpp"

namespace exsim::loadgen {

// Relative weights, indexed by op. Parsed from "list=50,read=30,send=10,delete=10" (an op left
// out weighs 0); throws common::config_error naming the part that is wrong.
using op_mix = std::array<unsigned, 4>;
inline constexpr op_mix default_mix{50, 30, 10, 10};
op_mix parse_mix(std::string_view text);

enum class entry { frontend, passthrough };

struct load_options {
    entry mode = entry::frontend;
    std::string url;          // "https://127.0.0.1:8443" (front-end) or "http://be1.exsim.test:8081"
    std::string connect_to;   // "127.0.0.1:8081": connect here instead of resolving the URL's host
    common::topology directory;       // users, passwords, homes, delegates (and realm, NTLM domain)
    std::vector<std::string> users;   // empty: every user (pass-through: those homed on the URL's host, if any)
    std::size_t sessions = 0;         // concurrent sessions; 0: one per user
    std::size_t threads = 1;          // event-loop threads of the load generator

    // Schedule. rate > 0: open model (requests due at a fixed total rate, latency counted from
    // when each was due); otherwise closed (each session waits `think`, 0.5x..1.5x, between requests).
    double rate = 0;
    std::chrono::milliseconds think{0};
    std::chrono::milliseconds ramp_up{0};      // sessions start spread over it (part of duration)
    std::chrono::milliseconds duration{10'000};
    std::uint64_t requests = 0;                // > 0: stop after this many instead
    op_mix mix = default_mix;
    // Non-empty: every request is GET of this origin-form target (e.g. "/exchweb/blob?size=16384"),
    // with no mix and no leak oracle: a fixed request for comparing proxies. Counted as list.
    std::string path;
    std::uint64_t seed = 1;
    std::chrono::milliseconds timeout{30'000};  // per request, every handshake leg included
    // Unmeasured Inbox lists per session before the run (connections, TLS, credentials warm);
    // the metrics and audit logs are read after them.
    std::size_t warmup = 0;

    std::filesystem::path ca_file;  // trust for an https URL (e.g. <state>/tls/proxy-cert.pem)
    bool insecure = false;          // https without verifying the certificate
    std::optional<auth::initiator_mode> mechanism;  // pass-through; none: Negotiate when offered, else NTLM

    std::string metrics_url;        // the exsim front-end's /metrics, read before and after
    std::vector<std::filesystem::path> audit_logs;  // back-end audit logs, read before and after
    std::string policy, backend_auth;  // labels for the report
    bool record_sends = false;      // fill load_result::sends (measured sends only, not the warm-up)
    std::string subject_tag;        // appended to every send's subject (unique across runs on one store)
    bool progress = false;          // live line on stderr, when it is a terminal
    const std::atomic<bool>* stop = nullptr;  // set: issue no more requests, finish those in flight
};

// Throws common::config_error for bad options (before any request) and std::runtime_error when
// the target cannot be reached at all.
load_result run_load(const load_options& options);

}  // namespace exsim::loadgen
