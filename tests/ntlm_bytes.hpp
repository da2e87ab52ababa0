#pragma once
// NTLM messages built byte by byte (MS-NLMP 2.2.1), for the tests that feed hand-made tokens to
// the token decoder (unit) and to the back-ends and the proxy (integration). Flag names are the
// project's own: exsim::auth::ntlm_flag.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string_view>
#include <vector>

namespace exsim::testing::ntlm {

using bytes = std::vector<std::uint8_t>;

inline void put16(bytes& b, std::size_t at, std::uint16_t v) {
    b[at] = static_cast<std::uint8_t>(v);
    b[at + 1] = static_cast<std::uint8_t>(v >> 8);
}

inline void put32(bytes& b, std::size_t at, std::uint32_t v) {
    for (int i = 0; i < 4; ++i) b[at + i] = static_cast<std::uint8_t>(v >> (8 * i));
}

inline bytes ascii(std::string_view s) { return bytes(s.begin(), s.end()); }

inline bytes utf16le(std::u16string_view s) {
    bytes out;
    for (char16_t c : s) {
        out.push_back(static_cast<std::uint8_t>(c));
        out.push_back(static_cast<std::uint8_t>(c >> 8));
    }
    return out;
}

inline bytes cat(std::initializer_list<bytes> parts) {
    bytes out;
    for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
    return out;
}

// A message of `type` with a fixed header of `header_size` bytes and a payload after it. Fields
// are appended to the payload and their (Len, MaxLen, Offset) descriptor written at `descriptor`.
struct builder {
    bytes msg;
    builder(std::uint32_t type, std::size_t header_size) : msg(header_size, 0) {
        const char sig[] = "NTLMSSP";
        std::copy(sig, sig + 8, msg.begin());  // includes the NUL
        put32(msg, 8, type);
    }
    builder& flags(std::size_t at, std::uint32_t f) {
        put32(msg, at, f);
        return *this;
    }
    builder& field(std::size_t descriptor, const bytes& data) {
        claim(descriptor, static_cast<std::uint16_t>(data.size()), static_cast<std::uint32_t>(msg.size()));
        msg.insert(msg.end(), data.begin(), data.end());
        return *this;
    }
    // A (Len, MaxLen, Offset) descriptor that need not describe anything real.
    builder& claim(std::size_t descriptor, std::uint16_t length, std::uint32_t offset) {
        put16(msg, descriptor, length);
        put16(msg, descriptor + 2, length);
        put32(msg, descriptor + 4, offset);
        return *this;
    }
    builder& raw(std::size_t at, const bytes& data) {
        std::copy(data.begin(), data.end(), msg.begin() + static_cast<std::ptrdiff_t>(at));
        return *this;
    }
};

}  // namespace exsim::testing::ntlm
