#pragma once
// pcapng blocks (draft-ietf-opsawg-pcapng, the format Wireshark writes): a Section Header Block,
// an Interface Description Block and Enhanced Packet Blocks with an optional packet comment
// (opt_comment, which Wireshark shows as frame.comment; a packet may have several). Written in this machine's byte order, as
// the format allows (the section's byte-order magic tells readers). Every block and option is
// padded to 32 bits and carries its total length at both ends. No Debian library writes pcapng
// comments (libpcap's writer writes pcap), hence these few functions.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace exsim::capture::pcapng {

constexpr std::uint16_t linktype_ethernet = 1;

// The section header, naming the application (shb_userappl) and, if not empty, a comment.
std::string section_header(std::string_view application, std::string_view comment);

// Interface 0: its link type, name (if_name) and microsecond timestamps (if_tsresol 6).
std::string interface_description(std::uint16_t link_type, std::string_view name);

// A frame seen on interface 0 at `micros` (microseconds since 1970), with its comments (one
// opt_comment each, in order: tshark's `-E occurrence=f -e frame.comment` prints the first).
std::string enhanced_packet(std::string_view frame, std::uint64_t micros, const std::vector<std::string>& comments);

}  // namespace exsim::capture::pcapng
