#pragma once
// What the front-end did for each request, step by step, for `exsim trace` (issue 7): which
// back-end connection carried it and how it was obtained, each handshake leg with its token, the
// back-end's answers, and what became of the connection. Off unless proxy_options::trace is set;
// the sink is called on the worker thread, in order, and must not block.

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "exsim/proxy/metrics.hpp"
#include "exsim/proxy/policy.hpp"

namespace exsim::proxy {

enum class trace_kind {
    connection,     // a back-end connection was acquired for the request
    leg,            // a request went to the back-end (one per handshake leg)
    answer,         // the back-end's response header to a leg
    authenticated,  // a handshake completed: the back-end now holds the connection as `user`
    released,       // the connection went back to the pool, was pinned, or closed
};

struct trace_event {
    trace_kind kind = trace_kind::connection;
    std::uint64_t client = 0;      // the client connection
    std::uint64_t connection = 0;  // the back-end connection
    std::string backend;
    std::string user;  // the user the front-end serves

    // connection: how it was obtained; who the back-end held it as before this request, and
    // whether the policy asks for a new handshake on it.
    reuse_decision decision = reuse_decision::new_connection;
    std::string held_as;
    auth::mechanism held_mechanism = auth::mechanism::none;
    bool must_authenticate = true;

    // leg: the request line; the Authorization scheme ("" when none) and the token it carried.
    // answer: the status, the WWW-Authenticate schemes offered, and the token of ours (if any).
    std::string method, target;
    std::string scheme;
    std::vector<std::uint8_t> token;
    unsigned status = 0;
    std::vector<std::string> offers;
    std::string mailbox;  // answer: the X-Exsim-Mailbox it names ("" when none)

    auth::mechanism mechanism = auth::mechanism::none;  // authenticated

    // released: kept (pool: back in an idle list; pin: bound to the client) or closed, and why.
    disposal kept = disposal::close;
    close_reason closed = close_reason::error;
};

using trace_sink = std::function<void(const trace_event&)>;

}  // namespace exsim::proxy
