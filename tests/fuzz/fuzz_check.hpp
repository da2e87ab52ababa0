#pragma once
// What the fuzz targets share: a check that stops the run with the broken invariant named, so
// that libFuzzer keeps the input (an abort is a crash to it), and small text predicates.

#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <string_view>

namespace exsim::fuzz {

[[noreturn]] inline void invariant_failed(const char* what, const char* file, int line) {
    std::fprintf(stderr, "%s:%d: fuzz invariant broken: %s\n", file, line, what);
    std::abort();
}

// True when `s` holds a C0 control character or DEL (what would break or forge a log line).
inline bool has_control(std::string_view s) {
    for (const char c : s)
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return true;
    return false;
}

// Well-formed UTF-8 (RFC 3629): no overlong forms, no surrogates, nothing above U+10FFFF.
inline bool is_utf8(std::string_view s) {
    for (std::size_t i = 0; i < s.size();) {
        const auto b = static_cast<unsigned char>(s[i]);
        std::size_t n = 0;
        unsigned lo = 0x80, hi = 0xBF;  // bounds of the second byte
        if (b < 0x80) n = 0;
        else if (b >= 0xC2 && b <= 0xDF) n = 1;
        else if (b == 0xE0) n = 2, lo = 0xA0;
        else if (b >= 0xE1 && b <= 0xEC) n = 2;
        else if (b == 0xED) n = 2, hi = 0x9F;
        else if (b >= 0xEE && b <= 0xEF) n = 2;
        else if (b == 0xF0) n = 3, lo = 0x90;
        else if (b >= 0xF1 && b <= 0xF3) n = 3;
        else if (b == 0xF4) n = 3, hi = 0x8F;
        else return false;
        for (std::size_t k = 1; k <= n; ++k) {
            if (i + k >= s.size()) return false;
            const auto c = static_cast<unsigned char>(s[i + k]);
            if (c < (k == 1 ? lo : 0x80) || c > (k == 1 ? hi : 0xBF)) return false;
        }
        i += n + 1;
    }
    return true;
}

}  // namespace exsim::fuzz

#define EXSIM_FUZZ_CHECK(condition) \
    ((condition) ? static_cast<void>(0) : ::exsim::fuzz::invariant_failed(#condition, __FILE__, __LINE__))
