#pragma once
// What a load run measured: per operation and in total, per second, and from the other side
// (front-end metrics, back-end audit logs). Filled by run_load(), read by the reports.

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "exsim/loadgen/histogram.hpp"

namespace exsim::loadgen {

// The operations of the mix: list the Inbox, read a message, send one, delete one.
enum class op { list, read, send, del };
inline constexpr std::array<op, 4> all_ops{op::list, op::read, op::send, op::del};
std::string_view op_name(op o);  // "list", "read", "send", "delete"

struct op_stats {
    std::uint64_t requests = 0;  // completed, successful or not
    std::uint64_t errors = 0;    // transport failures and HTTP statuses >= 400
    std::uint64_t leaks = 0;     // read responses served as (or from the mailbox of) another user
    std::uint64_t tampers = 0;   // send or delete carried out as another user
    std::map<std::string, std::uint64_t> errors_by_kind;  // "http_502", "timeout", "connect", ...
    histogram latency;           // microseconds; open model: from when the request was due
    // From the back-ends' audit logs when they were read (zero otherwise): back-end connections
    // first seen on this operation, and requests that carried a completed handshake.
    std::uint64_t backend_connections = 0;
    std::uint64_t handshakes = 0;

    void merge(const op_stats& other);
};

// One second of the run (by completion time).
struct time_slice {
    std::uint64_t requests = 0, errors = 0, leaks = 0, tampers = 0;
    histogram latency;
};

// The other side of the connections the load generator's requests caused.
struct backend_side {
    // "front-end metrics" (the exsim front-end's counters, before/after), "load generator"
    // (pass-through: the virtual users' own connections and handshakes), or "" (unknown).
    std::string source;
    std::uint64_t connections = 0;
    std::uint64_t handshakes_kerberos = 0;
    std::uint64_t handshakes_ntlm = 0;
    std::uint64_t handshakes() const { return handshakes_kerberos + handshakes_ntlm; }
};

// One send of a run, when load_options::record_sends asks for them: a test can then check the
// store message by message (a send told 2xx is stored once; one told an error at most once).
struct send_record {
    std::string user;     // the sender
    std::string to;
    std::string subject;  // unique within the run
    unsigned status = 0;  // 0: no HTTP response
    std::string error;    // "" when it succeeded; else its kind, as in op_stats::errors_by_kind
};

// The first response the oracle judged served as someone else: the evidence a report quotes.
struct crossing_seen {
    std::string user, served_as, method, target;
};

struct load_result {
    std::string mode;          // "frontend" or "passthrough"
    std::string url;           // where the requests went
    std::string policy;        // the front-end's pool policy when known, else ""
    std::string backend_auth;  // a label for the back-ends' configuration when known, else ""
    std::string model;         // "closed" or "open"
    double rate = 0;           // open model: requests per second asked for
    std::uint64_t unsent = 0;  // open model: requests due before the end that were never sent
                               // (the target, or this machine, could not keep up)
    std::size_t sessions = 0;
    std::size_t users = 0;
    double seconds = 0;        // from the start (after any warm-up) to the last response

    std::array<op_stats, 4> ops;  // indexed by op
    std::vector<time_slice> timeline;
    backend_side backend;
    // From the back-ends' audit logs, the records written during the run: requests served as
    // someone other than the user the front-end acted for. Absent when no audit log was read.
    std::optional<std::uint64_t> audit_cross_user;
    std::vector<send_record> sends;  // load_options::record_sends only; in no particular order
    std::optional<crossing_seen> first_crossing;
    // Successful mailbox responses (the oracle's, not --path's) that no audit record written
    // during the run accounts for: requests a proxy answered without any back-end. Absent when no
    // audit log was read.
    std::optional<std::uint64_t> unaudited;

    op_stats total() const;
    double rps() const { return seconds > 0 ? static_cast<double>(total().requests) / seconds : 0.0; }
    // True when no audit log was read, or when audit_cross_user == leaks + tampers.
    bool audit_agrees() const;
};

// k6-like thresholds; each absent one is not checked.
struct thresholds {
    std::optional<std::uint64_t> max_leaks;     // leaks + tampers
    std::optional<double> max_p99_ms;           // total p99
    std::optional<double> max_error_rate;       // errors / requests, 0..1
};

// One line per failed threshold, naming it, the limit and the value ("max-leaks: 12 > 0").
// Responses no exsim back-end produced (errors "unattributed", or load_result::unaudited) fail
// the run whatever the thresholds: such a run measured something else.
std::vector<std::string> failed_thresholds(const load_result& r, const thresholds& t);

}  // namespace exsim::loadgen
