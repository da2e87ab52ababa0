#include "exsim/capture/frames.hpp"

#include <stdexcept>

namespace exsim::capture {
namespace {

void put16(std::string& out, std::uint16_t v) {
    out += static_cast<char>(v >> 8);
    out += static_cast<char>(v & 0xff);
}

void put32(std::string& out, std::uint32_t v) {
    put16(out, static_cast<std::uint16_t>(v >> 16));
    put16(out, static_cast<std::uint16_t>(v & 0xffff));
}

void set16(std::string& out, std::size_t at, std::uint16_t v) {
    out[at] = static_cast<char>(v >> 8);
    out[at + 1] = static_cast<char>(v & 0xff);
}

template <class Bytes>
std::string_view view(const Bytes& b) {
    return {reinterpret_cast<const char*>(b.data()), b.size()};
}

// The TCP header (no options, checksum 0) followed by the payload.
std::string tcp_segment(const segment& s) {
    std::string t;
    t.reserve(20 + s.payload.size());
    put16(t, s.from.port());
    put16(t, s.to.port());
    put32(t, s.seq);
    put32(t, (s.flags & tcp_flag::ack) ? s.ack : 0);
    t += static_cast<char>(5 << 4);  // data offset: 5 words
    t += static_cast<char>(s.flags);
    put16(t, 65535);  // window
    put16(t, 0);      // checksum, set below
    put16(t, 0);      // urgent pointer
    t.append(s.payload);
    return t;
}

}  // namespace

std::uint16_t internet_checksum(std::string_view bytes, std::uint32_t sum) {
    for (std::size_t i = 0; i + 1 < bytes.size(); i += 2)
        sum += (static_cast<std::uint8_t>(bytes[i]) << 8) | static_cast<std::uint8_t>(bytes[i + 1]);
    if (bytes.size() % 2) sum += static_cast<std::uint8_t>(bytes.back()) << 8;
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    return static_cast<std::uint16_t>(~sum & 0xffff);
}

std::string tcp_frame(const segment& s) {
    const auto from = s.from.address(), to = s.to.address();
    if (from.is_v4() != to.is_v4()) throw std::invalid_argument("tcp_frame: an IPv4 and an IPv6 address");
    if (s.payload.size() > 65535 - 60) throw std::invalid_argument("tcp_frame: payload over one IP packet");
    auto tcp = tcp_segment(s);

    // The pseudo-header the TCP checksum covers, then the IP header.
    std::string pseudo, ip;
    if (from.is_v4()) {
        pseudo.append(view(from.to_v4().to_bytes())).append(view(to.to_v4().to_bytes()));
        put16(pseudo, 6);
        put16(pseudo, static_cast<std::uint16_t>(tcp.size()));
        ip += '\x45';  // version 4, 5 words
        ip += '\0';
        put16(ip, static_cast<std::uint16_t>(20 + tcp.size()));
        put16(ip, s.ip_id);
        put16(ip, 0x4000);  // don't fragment
        ip += '\x40';       // TTL 64
        ip += '\x06';       // TCP
        put16(ip, 0);       // checksum, set below
        ip.append(pseudo, 0, 8);
        set16(ip, 10, internet_checksum(ip));
    } else {
        pseudo.append(view(from.to_v6().to_bytes())).append(view(to.to_v6().to_bytes()));
        put32(pseudo, static_cast<std::uint32_t>(tcp.size()));
        put32(pseudo, 6);
        put32(ip, 0x60000000);  // version 6
        put16(ip, static_cast<std::uint16_t>(tcp.size()));
        ip += '\x06';  // next header: TCP
        ip += '\x40';  // hop limit 64
        ip.append(pseudo, 0, 32);
    }
    std::uint32_t sum = 0;
    for (std::size_t i = 0; i < pseudo.size(); i += 2)
        sum += (static_cast<std::uint8_t>(pseudo[i]) << 8) | static_cast<std::uint8_t>(pseudo[i + 1]);
    set16(tcp, 16, internet_checksum(tcp, sum));

    std::string frame(12, '\0');  // destination and source MAC: zero, as on Linux's lo
    put16(frame, from.is_v4() ? 0x0800 : 0x86DD);
    return frame + ip + tcp;
}

}  // namespace exsim::capture
