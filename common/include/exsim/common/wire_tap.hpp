#pragma once
// A tap on the TCP connections a server carries: what `exsim trace --pcap` and `exsim up
// --capture` record (capture/). The front-end calls it for every connection it opens to a
// back-end and accepts from a client, with the bytes as they crossed (the plaintext of a TLS
// client connection). Called from every worker thread: implementations lock. Never blocks on the
// network; an implementation that cannot record (full, failed) returns at once.

#include <cstdint>
#include <string>
#include <string_view>

#include <boost/asio/ip/tcp.hpp>

namespace exsim::common {

class wire_tap {
public:
    using endpoint = boost::asio::ip::tcp::endpoint;
    virtual ~wire_tap() = default;

    // A connection `opener` opened to `acceptor`, named for notes ("be1#3", "client#2"). Returns
    // its handle for carried() and closed(); 0: not recorded (the handle is then ignored).
    virtual std::uint64_t opened(std::string name, const endpoint& opener, const endpoint& acceptor) = 0;
    // Bytes that crossed it, from the side that opened it or from the other.
    virtual void carried(std::uint64_t handle, bool from_opener, std::string_view bytes) = 0;
    // It was closed.
    virtual void closed(std::uint64_t handle) = 0;
};

}  // namespace exsim::common
