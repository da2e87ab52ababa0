// The pcapng blocks and TCP frames a capture is made of, against the format's rules: every block
// a multiple of 4 bytes with its total length at both ends, options padded to 32 bits and ended
// by opt_endofopt, a comment that reads back byte for byte; IPv4 and TCP checksums that verify
// (a checksum over data that includes its own checksum is 0); and a recorder whose sequence and
// acknowledgement numbers follow the bytes, which refuses an existing file and a cap too small.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include <fmt/format.h>
#include <unistd.h>

#include "exsim/capture/frames.hpp"
#include "exsim/capture/pcapng.hpp"
#include "exsim/capture/recorder.hpp"
#include "exsim/common/topology.hpp"

namespace exsim::testing {
namespace {
namespace fs = std::filesystem;
namespace net = boost::asio;
using namespace capture;
using ::testing::HasSubstr;

template <class T>
T read_at(std::string_view bytes, std::size_t at) {
    T v;
    std::memcpy(&v, bytes.data() + at, sizeof(T));
    return v;
}

std::uint16_t big16(std::string_view b, std::size_t at) {
    return static_cast<std::uint16_t>((static_cast<std::uint8_t>(b[at]) << 8) | static_cast<std::uint8_t>(b[at + 1]));
}
std::uint32_t big32(std::string_view b, std::size_t at) { return (std::uint32_t{big16(b, at)} << 16) | big16(b, at + 2); }

// A block's type, and its body checked for the framing rules.
std::uint32_t check_block(std::string_view block) {
    EXPECT_EQ(block.size() % 4, 0u);
    EXPECT_EQ(read_at<std::uint32_t>(block, 4), block.size());
    EXPECT_EQ(read_at<std::uint32_t>(block, block.size() - 4), block.size());
    return read_at<std::uint32_t>(block, 0);
}

// The options from `at` to the trailing length: code -> value; checks padding and the end marker.
std::map<std::uint16_t, std::string> options(std::string_view block, std::size_t at) {
    std::map<std::uint16_t, std::string> out;
    bool ended = false;
    while (at < block.size() - 4) {
        const auto code = read_at<std::uint16_t>(block, at), length = read_at<std::uint16_t>(block, at + 2);
        if (code == 0) {
            EXPECT_EQ(length, 0);
            ended = true;
            at += 4;
            break;
        }
        out[code] = std::string(block.substr(at + 4, length));
        const auto padded = (length + 3u) / 4 * 4;
        for (std::size_t i = length; i < padded; ++i) EXPECT_EQ(block[at + 4 + i], '\0') << "padding of option " << code;
        at += 4 + padded;
    }
    EXPECT_EQ(at, block.size() - 4) << "options do not end at the trailing length";
    EXPECT_TRUE(out.empty() || ended) << "options without opt_endofopt";
    return out;
}

TEST(Pcapng, SectionHeaderHasTheByteOrderMagicVersionAndPaddedOptions) {
    const auto b = pcapng::section_header("exsim", "trace of x");  // 5 and 10 bytes: both padded
    EXPECT_EQ(check_block(b), 0x0A0D0D0Au);
    EXPECT_EQ(read_at<std::uint32_t>(b, 8), 0x1A2B3C4Du);
    EXPECT_EQ(read_at<std::uint16_t>(b, 12), 1);
    EXPECT_EQ(read_at<std::uint16_t>(b, 14), 0);
    EXPECT_EQ(read_at<std::int64_t>(b, 16), -1);
    const auto o = options(b, 24);
    EXPECT_EQ(o.at(1), "trace of x");
    EXPECT_EQ(o.at(4), "exsim");
}

TEST(Pcapng, SectionHeaderWithNoOptionsHasNoEndMarker) {
    const auto b = pcapng::section_header("", "");
    check_block(b);
    EXPECT_EQ(b.size(), 28u);
}

TEST(Pcapng, InterfaceIsEthernetInMicroseconds) {
    const auto b = pcapng::interface_description(pcapng::linktype_ethernet, "lo");
    EXPECT_EQ(check_block(b), 1u);
    EXPECT_EQ(read_at<std::uint16_t>(b, 8), 1);
    const auto o = options(b, 16);
    EXPECT_EQ(o.at(2), "lo");
    EXPECT_EQ(o.at(9), std::string("\x06", 1));
}

TEST(Pcapng, EnhancedPacketPadsTheFrameAndCarriesTheCommentExactly) {
    for (std::size_t size : {53u, 54u, 55u, 56u}) {
        const std::string frame(size, 'x');
        const std::string comment = "CROSS-USER: served alice's mailbox to bob\n← 200 ünïcode";
        const auto b = pcapng::enhanced_packet(frame, 0x0000000500000007ull, {comment});
        EXPECT_EQ(check_block(b), 6u);
        EXPECT_EQ(read_at<std::uint32_t>(b, 12), 5u);  // timestamp, high
        EXPECT_EQ(read_at<std::uint32_t>(b, 16), 7u);  // low
        EXPECT_EQ(read_at<std::uint32_t>(b, 20), size);
        EXPECT_EQ(read_at<std::uint32_t>(b, 24), size);
        EXPECT_EQ(b.substr(28, size), frame);
        EXPECT_EQ(options(b, 28 + (size + 3) / 4 * 4).at(1), comment);
    }
    EXPECT_EQ(pcapng::enhanced_packet("abcd", 1, {}).size(), 32u + 4u);  // no options at all
}

TEST(Pcapng, SeveralCommentsKeepTheirOrder) {
    const auto b = pcapng::enhanced_packet("abcd", 1, {"headline", "detail one", "two"});
    check_block(b);
    std::vector<std::string> seen;
    for (std::size_t at = 32; read_at<std::uint16_t>(b, at) == 1;) {
        const auto length = read_at<std::uint16_t>(b, at + 2);
        seen.emplace_back(b.substr(at + 4, length));
        at += 4 + (length + 3u) / 4 * 4;
    }
    EXPECT_EQ(seen, (std::vector<std::string>{"headline", "detail one", "two"}));
}

TEST(Frames, Ipv4AndTcpChecksumsVerify) {
    const segment s{{net::ip::make_address("127.0.0.1"), 40000}, {net::ip::make_address("127.0.0.2"), 8081},
                    1000, 2000, tcp_flag::psh | tcp_flag::ack, 7, "GET / HTTP/1.1\r\n\r\n!"};  // odd length
    const auto f = tcp_frame(s);
    ASSERT_EQ(f.size(), 14u + 20 + 20 + s.payload.size());
    EXPECT_EQ(big16(f, 12), 0x0800);
    const std::string_view ip(f.data() + 14, 20), tcp(f.data() + 34, f.size() - 34);
    EXPECT_EQ(internet_checksum(ip), 0) << "IPv4 header checksum";
    EXPECT_EQ(big16(ip, 2), 40 + s.payload.size());
    std::string pseudo(ip.substr(12, 8));
    pseudo += '\0';
    pseudo += '\x06';
    pseudo += static_cast<char>(tcp.size() >> 8);
    pseudo += static_cast<char>(tcp.size() & 0xff);
    EXPECT_EQ(internet_checksum(pseudo + std::string(tcp)), 0) << "TCP checksum over the pseudo-header";
    EXPECT_EQ(big16(tcp, 0), 40000);
    EXPECT_EQ(big16(tcp, 2), 8081);
    EXPECT_EQ(big32(tcp, 4), 1000u);
    EXPECT_EQ(big32(tcp, 8), 2000u);
    EXPECT_EQ(static_cast<std::uint8_t>(tcp[13]), tcp_flag::psh | tcp_flag::ack);
    EXPECT_EQ(tcp.substr(20), s.payload);
}

TEST(Frames, Ipv6HasNoHeaderChecksumButTheTcpOneVerifies) {
    const segment s{{net::ip::make_address("::1"), 1}, {net::ip::make_address("::1"), 2}, 1, 0, tcp_flag::syn, 0, ""};
    const auto f = tcp_frame(s);
    ASSERT_EQ(f.size(), 14u + 40 + 20);
    EXPECT_EQ(big16(f, 12), 0x86DD);
    const std::string_view ip(f.data() + 14, 40), tcp(f.data() + 54, 20);
    std::string pseudo(ip.substr(8, 32));
    pseudo += std::string("\0\0\0\x14\0\0\0\x06", 8);
    EXPECT_EQ(internet_checksum(pseudo + std::string(tcp)), 0);
    EXPECT_EQ(big32(tcp, 8), 0u) << "no acknowledgement number without ACK";
}

TEST(Frames, RefusesMixedFamilies) {
    const segment s{{net::ip::make_address("127.0.0.1"), 1}, {net::ip::make_address("::1"), 2}, 0, 0, 0, 0, ""};
    EXPECT_THROW(tcp_frame(s), std::invalid_argument);
}

recorder_options to(const fs::path& file, bool force = false, std::uint64_t max_bytes = 0) {
    recorder_options o;
    o.file = file;
    o.option = "--capture";
    o.force = force;
    o.max_bytes = max_bytes;
    return o;
}

class Recorder : public ::testing::Test {
protected:
    void SetUp() override {
        dir_ = fs::temp_directory_path() / fmt::format("exsim-recorder-{}", ::getpid());
        fs::remove_all(dir_);
        fs::create_directories(dir_);
    }
    void TearDown() override { fs::remove_all(dir_); }

    // The frames of the file (Enhanced Packet Blocks), after its two header blocks.
    std::vector<std::string> frames(const fs::path& file) {
        std::ifstream in(file, std::ios::binary);
        const std::string all{std::istreambuf_iterator<char>(in), {}};
        std::vector<std::string> out;
        for (std::size_t at = 0; at + 12 <= all.size();) {
            const auto block = std::string_view(all).substr(at, read_at<std::uint32_t>(all, at + 4));
            if (check_block(block) == 6u) out.emplace_back(block.substr(28, read_at<std::uint32_t>(block, 20)));
            at += block.size();
        }
        return out;
    }

    fs::path dir_;
};

TEST_F(Recorder, SequenceAndAcknowledgementNumbersFollowTheBytes) {
    const auto file = dir_ / "f.pcapng";
    {
        recorder r(to(file));
        const net::ip::tcp::endpoint fe(net::ip::make_address("127.0.0.1"), 50000), be(net::ip::make_address("127.0.0.1"), 8081);
        const auto h = r.opened("be1#1", fe, be);
        r.carried(h, true, "GET / HTTP/1.1\r\n\r\n");    // 18 bytes
        r.carried(h, false, std::string(40000, 'a'));  // two segments
        r.closed(h);
    }
    const auto f = frames(file);
    ASSERT_EQ(f.size(), 3u + 2 + 4 + 3);
    auto seq = [](const std::string& frame) { return big32(frame, 34 + 4); };
    auto ack = [](const std::string& frame) { return big32(frame, 34 + 8); };
    auto len = [](const std::string& frame) { return frame.size() - 54; };
    const auto client_isn = seq(f[0]), server_isn = seq(f[1]);
    EXPECT_EQ(ack(f[1]), client_isn + 1);
    EXPECT_EQ(seq(f[3]), client_isn + 1);
    EXPECT_EQ(len(f[3]), 18u);
    EXPECT_EQ(ack(f[4]), client_isn + 1 + 18);
    EXPECT_EQ(seq(f[5]), server_isn + 1);
    EXPECT_EQ(len(f[5]) + len(f[7]), 40000u);
    EXPECT_EQ(seq(f[7]), server_isn + 1 + len(f[5]));
    EXPECT_EQ(ack(f[8]), server_isn + 1 + 40000);
    EXPECT_EQ(seq(f[9]), client_isn + 1 + 18);  // FIN
    EXPECT_EQ(ack(f[11]), server_isn + 1 + 40000 + 1);
}

TEST_F(Recorder, RefusesAnExistingFileUnlessForcedAndACapWithNoRoom) {
    const auto file = dir_ / "f.pcapng";
    std::ofstream(file) << "keep";
    try {
        recorder r(to(file));
        FAIL() << "no error";
    } catch (const common::config_error& e) {
        EXPECT_THAT(e.what(), HasSubstr("--capture: " + file.string() + " exists (add --force"));
    }
    EXPECT_NO_THROW(recorder(to(file, true)));
    EXPECT_THROW(recorder(to(dir_ / "g.pcapng", false, 100)), common::config_error);
    EXPECT_THROW(recorder(to(dir_, true)), common::config_error);
}

TEST_F(Recorder, StopsAtItsCapAndSaysSo) {
    const auto file = dir_ / "f.pcapng";
    recorder r(to(file, false, 64 * 1024));
    const net::ip::tcp::endpoint a(net::ip::make_address("127.0.0.1"), 1), b(net::ip::make_address("127.0.0.1"), 2);
    const auto h = r.opened("c", a, b);
    for (int i = 0; i < 10; ++i) r.carried(h, true, std::string(16 * 1024, 'x'));
    r.flush();
    EXPECT_TRUE(r.written().full);
    EXPECT_LE(fs::file_size(file), 64u * 1024);
    EXPECT_EQ(fs::file_size(file), r.written().bytes);
    EXPECT_EQ(r.opened("later", a, b), 0u) << "nothing new once full";
}

}  // namespace
}  // namespace exsim::testing
