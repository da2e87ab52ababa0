#pragma once
// The back-end side of one request (exchange.cpp): a connection from the back-end's pool, the
// handshake legs as the user, the body sent, the response relayed to the client (or kept for a
// browser-view page), the connection released. The client session (client_session.cpp) calls
// forward(); what it needs of the client connection goes through `client_side`.

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/status.hpp>

#include "client_session.hpp"

namespace exsim::proxy {

using client_parser = boost::beast::http::request_parser<boost::beast::http::buffer_body>;

// What an exchange needs of the client connection it serves; the client session is one. Not a
// template on the client's stream type: the exchange is compiled once for both.
class client_side {
public:
    virtual ~client_side() = default;
    // The client connection's id (the pool's pins, the trace).
    virtual std::uint64_t id() const = 0;
    // Whether it is over TLS (the response then says Strict-Transport-Security).
    virtual bool tls() const = 0;
    // A short plain-text answer from the proxy itself. Returns whether the connection stays open.
    virtual boost::asio::awaitable<bool> answer(boost::beast::http::status status, unsigned version, bool keep_alive,
                                                std::string why, bool basic_challenge = false) = 0;
    // Reads (more of) the request body into the buffer `parser`'s body points at.
    virtual boost::asio::awaitable<boost::beast::error_code> read_body(client_parser& parser) = 0;
    // Writes bytes of the response (the header, a chunk's framing, body bytes), in one write.
    virtual boost::asio::awaitable<boost::beast::error_code> write(
        const std::array<boost::asio::const_buffer, 5>& pieces) = 0;
};

// One client request as the back-end exchange gets it: routed, with its header parsed.
struct forward_request {
    client_parser& parser;
    const std::string& target;    // canonical
    const std::string& user;      // empty: anonymous (/exchweb/)
    const std::string& password;
    backend_pool& pool;           // this worker's part of the user's home back-end's pool
    // The whole body of a request the proxy made itself (a browser-view page's, its parser
    // already done): it goes out as a replay.
    std::string_view body = {};
    // Set for a browser-view page: the response (or the proxy's error) is kept here instead of
    // written to the client.
    owa::backend_reply* capture = nullptr;
};

// Gets a connection, runs the exchange, releases the connection; retries once on a fresh
// connection when a re-used one failed before answering and the request is idempotent (a send
// is never sent twice). Returns whether the client connection stays open.
boost::asio::awaitable<bool> forward(server::impl& srv, worker& w, client_side& client, const forward_request& r);

}  // namespace exsim::proxy
