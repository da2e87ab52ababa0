#pragma once
// `exsim trace` (issue 7): a short scripted sequence of requests (by default alice reads her
// inbox, then bob reads his, twice) through one policy and back-end configuration, narrated step
// by step for trainers: which back-end connection carried each request and how it was obtained,
// what the back-end offered, which mechanism was chosen, each NTLM message decoded, the identity
// the back-end saw and the mailbox it served, and the response that crossed users, marked.
//
// Everything runs in this process on loopback: a realm and its KDC, the back-ends and a TLS
// front-end with one worker (so that the run is deterministic, docs/design.md section 6) whose trace
// sink (proxy/trace_event.hpp) records every step. Each user has its own client connection, kept
// alive over the sequence, as a browser does.

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "exsim/capture/recorder.hpp"
#include "exsim/common/topology.hpp"
#include "exsim/proxy/trace_event.hpp"

namespace exsim::lab {

struct trace_request {
    std::string user;
    std::string method = "GET";
    std::string path = "/exchange/";  // the inbox of whoever the back-end authenticated
};

// "alice,bob" or "alice:GET /exchange/alice/Inbox/,bob": user[:METHOD path], comma-separated.
// Throws common::config_error naming --steps and the problem.
std::vector<trace_request> parse_trace_steps(std::string_view text, const common::topology& t);

struct trace_options {
    common::topology topology;            // validated, with the command line's overrides applied
    std::string source;                   // what it came from, for the header: "scenario ...", a file
    std::vector<trace_request> requests;  // empty: the first two users of the first back-end, twice
    std::filesystem::path state_dir;      // empty: a temporary folder, removed afterwards
    // --pcap: every client and back-end connection of the trace, with the narration as packet
    // comments (capture_notes.hpp); null: none.
    capture::recorder* pcap = nullptr;
};

struct trace_step {
    trace_request request;
    std::uint64_t client = 0;      // the user's client connection
    std::uint64_t connection = 0;  // the back-end connection that answered (0: none)
    std::string obtained;          // "new", "pooled", "pinned" ("" when none was acquired)
    std::string mechanism;         // that authenticated the request: "kerberos", "ntlm", "none"
    bool handshake = false;        // a handshake ran during this request
    unsigned status = 0;           // what the client got
    std::string identity, mailbox; // X-Exsim-Identity and X-Exsim-Mailbox of the response
    std::vector<std::string> message_ids;  // the messages it listed or showed
    std::string error;             // the front-end's own answer (e.g. a 502's reason)
    bool cross_user = false;       // served a mailbox that is not the user's
    std::vector<proxy::trace_event> events;
};

struct trace_result {
    std::string source;
    std::string policy;
    bool require_kerberos = false, leak_guard = false;
    std::vector<std::string> backends;  // "be1 (Negotiate, NTLM)", ...
    std::vector<trace_step> steps;
    std::string explanation;  // the closing paragraph
};

trace_result run_trace(const trace_options& o);

// The narration: ANSI colour when `color`, plain text otherwise.
std::string trace_text(const trace_result& r, bool color);
// {"source","policy",...,"steps":[{"user","connection","obtained","mechanism","identity",
// "mailbox","cross_user",...,"legs":[...]}],"explanation"}
std::string trace_json(const trace_result& r);

// A trace event as one line of plain text (the narration `exsim trace` prints; the captures'
// comments, capture_notes.cpp, use it too).
std::string event_line(const proxy::trace_event& e);

}  // namespace exsim::lab
