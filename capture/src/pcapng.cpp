#include "exsim/capture/pcapng.hpp"

#include <cstring>

namespace exsim::capture::pcapng {
namespace {

constexpr std::uint32_t section_header_type = 0x0A0D0D0A, interface_type = 1, enhanced_packet_type = 6;
constexpr std::uint32_t byte_order_magic = 0x1A2B3C4D;
constexpr std::uint16_t opt_endofopt = 0, opt_comment = 1, shb_userappl = 4, if_name = 2, if_tsresol = 9;

template <class T>
void put(std::string& out, T v) {
    char bytes[sizeof(T)];
    std::memcpy(bytes, &v, sizeof(T));
    out.append(bytes, sizeof(T));
}

void pad(std::string& out) { out.append((4 - out.size() % 4) % 4, '\0'); }

// An option: code, length, value padded to 32 bits. Empty values are left out.
void option(std::string& body, std::uint16_t code, std::string_view value) {
    if (value.empty()) return;
    put(body, code);
    put(body, static_cast<std::uint16_t>(value.size()));
    body.append(value);
    pad(body);
}

// Options end with opt_endofopt, when there are any.
void end_options(std::string& body, std::size_t before) {
    if (body.size() == before) return;
    put(body, opt_endofopt);
    put(body, std::uint16_t{0});
}

// type, total length, body, total length again.
std::string block(std::uint32_t type, const std::string& body) {
    const auto total = static_cast<std::uint32_t>(12 + body.size());
    std::string out;
    out.reserve(total);
    put(out, type);
    put(out, total);
    out += body;
    put(out, total);
    return out;
}

}  // namespace

std::string section_header(std::string_view application, std::string_view comment) {
    std::string body;
    put(body, byte_order_magic);
    put(body, std::uint16_t{1});  // major
    put(body, std::uint16_t{0});  // minor
    put(body, std::int64_t{-1});  // section length: not given
    const auto options = body.size();
    option(body, opt_comment, comment);
    option(body, shb_userappl, application);
    end_options(body, options);
    return block(section_header_type, body);
}

std::string interface_description(std::uint16_t link_type, std::string_view name) {
    std::string body;
    put(body, link_type);
    put(body, std::uint16_t{0});       // reserved
    put(body, std::uint32_t{262144});  // snap length
    const auto options = body.size();
    option(body, if_name, name);
    option(body, if_tsresol, std::string_view("\x06", 1));  // 10^-6 s
    end_options(body, options);
    return block(interface_type, body);
}

std::string enhanced_packet(std::string_view frame, std::uint64_t micros, const std::vector<std::string>& comments) {
    std::string body;
    put(body, std::uint32_t{0});  // interface
    put(body, static_cast<std::uint32_t>(micros >> 32));
    put(body, static_cast<std::uint32_t>(micros & 0xffffffffu));
    put(body, static_cast<std::uint32_t>(frame.size()));  // captured
    put(body, static_cast<std::uint32_t>(frame.size()));  // on the wire
    body.append(frame);
    pad(body);
    const auto options = body.size();
    for (const auto& c : comments) option(body, opt_comment, c);
    end_options(body, options);
    return block(enhanced_packet_type, body);
}

}  // namespace exsim::capture::pcapng
