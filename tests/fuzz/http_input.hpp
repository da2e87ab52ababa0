#pragma once
// Raw bytes into a Beast parser, as a server or client would feed it from a socket, for the fuzz
// targets that read HTTP messages.

#include <string_view>

#include <boost/asio/buffer.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/http/error.hpp>

namespace exsim::fuzz {

// Puts the bytes at the front of `input` into `parser` until it is done (a whole message, or the
// header of one told to skip its body), fails, or has no more bytes; removes what it used.
template <class Parser>
boost::beast::error_code feed(Parser& parser, std::string_view& input) {
    boost::beast::error_code ec;
    while (!ec && !parser.is_done() && !input.empty()) {
        const auto used = parser.put(boost::asio::buffer(input.data(), input.size()), ec);
        input.remove_prefix(used);
        if (ec == boost::beast::http::error::need_more) ec = {};
        if (used == 0 && !ec) break;
    }
    return ec;
}

}  // namespace exsim::fuzz
