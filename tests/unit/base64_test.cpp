#include <gtest/gtest.h>

#include "exsim/common/base64.hpp"

namespace exsim::common {
namespace {

TEST(Base64, RoundTripsEveryLength) {
    std::string s;
    for (int i = 0; i < 64; ++i) {
        auto decoded = base64_decode(base64_encode(s));
        ASSERT_TRUE(decoded);
        EXPECT_EQ(std::string(decoded->begin(), decoded->end()), s);
        s += static_cast<char>(i * 37);
    }
}

TEST(Base64, KnownVectors) {
    EXPECT_EQ(base64_encode("foobar"), "Zm9vYmFy");
    EXPECT_EQ(base64_encode("fo"), "Zm8=");
    EXPECT_EQ(base64_encode("f"), "Zg==");
}

TEST(Base64, RejectsWhatIsNotStrictBase64) {
    for (const char* bad : {"Zg=", "Zg", "Z===", "=Zg=", "Zg==Zg==", "Zm9v YmFy", "Zm9v\nYmFy", "Zm9-YmFy", "Zm=v"})
        EXPECT_FALSE(base64_decode(bad)) << bad;
}

}  // namespace
}  // namespace exsim::common
