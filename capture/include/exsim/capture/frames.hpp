#pragma once
// One TCP segment as a loopback interface shows it: an Ethernet header with zero addresses (as
// Linux's `lo`), IPv4 or IPv6 (after the addresses' family), TCP without options, and valid
// checksums (Wireshark verifies them when asked: tcp.check_checksum).

#include <cstdint>
#include <string>
#include <string_view>

#include <boost/asio/ip/tcp.hpp>

namespace exsim::capture {

namespace tcp_flag {
constexpr std::uint8_t fin = 0x01, syn = 0x02, rst = 0x04, psh = 0x08, ack = 0x10;
}

struct segment {
    boost::asio::ip::tcp::endpoint from, to;
    std::uint32_t seq = 0, ack = 0;
    std::uint8_t flags = 0;
    std::uint16_t ip_id = 0;
    std::string_view payload;
};

// Throws std::invalid_argument when the two addresses' families differ or the payload does not fit.
std::string tcp_frame(const segment& s);

// The Internet checksum (RFC 1071) of `bytes`, continuing from `sum`.
std::uint16_t internet_checksum(std::string_view bytes, std::uint32_t sum = 0);

}  // namespace exsim::capture
