#pragma once
// Strict base64 (RFC 4648, with padding) for HTTP authentication tokens.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace exsim::common {

std::string base64_encode(const void* data, std::size_t size);
inline std::string base64_encode(std::string_view s) { return base64_encode(s.data(), s.size()); }

// nullopt for any character outside the alphabet, bad padding or a length not a multiple of 4.
std::optional<std::vector<std::uint8_t>> base64_decode(std::string_view text);

}  // namespace exsim::common
