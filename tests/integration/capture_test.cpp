// `exsim trace --pcap` read back with real tshark, with the display filters a student types:
// under legacy with NTLM, alice's NTLM AUTHENTICATE on a TCP stream and, later on that same
// stream, bob's request with no Authorization answered with alice's mailbox; under the fix, every
// one of bob's requests rides a stream with bob's own AUTHENTICATE; under Kerberos, AP-REQs that
// name each user. The narration is in the packet comments; tshark finds nothing malformed, no
// bad checksum and no TCP analysis warning.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include <fmt/format.h>
#include <unistd.h>

#include "exsim/common/process.hpp"
#include "tshark.hpp"

namespace exsim::testing {
namespace {
namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;

class Capture : public ::testing::Test {
protected:
    void SetUp() override {
        ASSERT_TRUE(common::find_program("tshark")) << "tshark is missing: bash scripts/bootstrap.sh test";
        dir_ = fs::temp_directory_path() / fmt::format("exsim-capture-test-{}", ::getpid());
        fs::remove_all(dir_);
        fs::create_directories(dir_);
    }
    void TearDown() override { fs::remove_all(dir_); }

    // exsim trace --scenario NAME --pcap FILE; the realm stays in dir_/state (its keytabs).
    fs::path trace(const std::string& scenario) {
        const auto file = dir_ / (scenario + ".pcapng");
        auto r = common::run_program(EXSIM_BINARY, {"trace", "--scenario", scenario, "--pcap", file.string(),
                                                    "--state-dir", (dir_ / "state").string(), "--color", "never"},
                                     {});
        EXPECT_EQ(r.exit_code, 0) << r.output;
        EXPECT_THAT(r.output, HasSubstr("tshark -r"));
        return file;
    }

    // tcp.stream -> the users whose NTLM AUTHENTICATE it carries.
    static std::map<std::string, std::set<std::string>> ntlm_logins(const fs::path& file) {
        std::map<std::string, std::set<std::string>> by_stream;
        for (const auto& row : tshark_rows(file, "ntlmssp.messagetype == 3", {"tcp.stream", "ntlmssp.auth.username"}))
            by_stream[row[0]].insert(row[1]);
        return by_stream;
    }

    // bob's requests to a back-end (X-Exsim-On-Behalf-Of: bob): stream, frame, whether it carries
    // an Authorization header.
    struct request {
        std::string stream, frame;
        bool authorized;
    };
    static std::vector<request> requests_for(const fs::path& file, const std::string& user) {
        std::vector<request> out;
        for (const auto& row : tshark_rows(file, "http.request && http.request.line contains \"X-Exsim-On-Behalf-Of: " + user + "\"",
                                           {"tcp.stream", "frame.number", "http.authorization"}))
            out.push_back({row[0], row[1], !row[2].empty()});
        return out;
    }

    // The X-Exsim-Mailbox of the response to the request in frame `frame`.
    static std::string mailbox_answering(const fs::path& file, const std::string& frame) {
        for (const auto& row : tshark_rows(file, "http.response && http.request_in == " + frame, {"http.response.line"}, {}, 'a')) {
            const auto at = row[0].find("X-Exsim-Mailbox: ");
            if (at != std::string::npos) return row[0].substr(at + 17, row[0].find('\\', at) - at - 17);
        }
        return {};
    }

    static void expect_clean(const fs::path& file) {
        const auto bad = tshark_rows(file, "_ws.malformed || _ws.expert.severity >= 0x00600000 || tcp.checksum.status == \"Bad\" "
                                           "|| ip.checksum.status == \"Bad\"",
                                     {"frame.number", "_ws.expert.message"},
                                     {"tcp.check_checksum:TRUE", "ip.check_checksum:TRUE"});
        EXPECT_TRUE(bad.empty()) << bad.size() << " frames with warnings, the first: " << bad.front()[0] << " "
                                 << bad.front()[1];
    }

    static std::string comments(const fs::path& file) {
        std::string all;
        for (const auto& row : tshark_rows(file, "frame.comment", {"frame.comment"})) all += row[0] + "\n";
        return all;
    }

    fs::path dir_;
};

TEST_F(Capture, VulnerableShowsAlicesAuthenticateAndBobServedAliceOnTheSameStream) {
    const auto file = trace("ms04-002-vulnerable");
    const auto logins = ntlm_logins(file);
    const auto bob = requests_for(file, "bob");
    ASSERT_FALSE(bob.empty());
    std::size_t crossed = 0;
    for (const auto& r : bob) {
        if (r.authorized) continue;
        ASSERT_TRUE(logins.count(r.stream)) << "bob's request in frame " << r.frame << " rides a stream no NTLM login opened";
        EXPECT_EQ(logins.at(r.stream), std::set<std::string>{"alice"});
        EXPECT_EQ(mailbox_answering(file, r.frame), "alice") << "frame " << r.frame;
        ++crossed;
    }
    EXPECT_GE(crossed, 1u);
    const auto notes = comments(file);
    EXPECT_THAT(notes, HasSubstr("CROSS-USER: served alice's mailbox to bob"));
    EXPECT_THAT(notes, HasSubstr("no Authorization, sent as is on a connection the back-end holds as alice (ntlm)"));
    expect_clean(file);
}

TEST_F(Capture, FixedGivesEveryOneOfBobsRequestsBobsOwnAuthenticate) {
    const auto file = trace("ms04-002-fixed");
    const auto logins = ntlm_logins(file);
    const auto bob = requests_for(file, "bob");
    ASSERT_FALSE(bob.empty());
    for (const auto& r : bob) {
        ASSERT_TRUE(logins.count(r.stream)) << "frame " << r.frame;
        EXPECT_EQ(logins.at(r.stream), std::set<std::string>{"bob"}) << "frame " << r.frame;
        const auto mailbox = mailbox_answering(file, r.frame);
        EXPECT_TRUE(mailbox.empty() || mailbox == "bob") << "frame " << r.frame << " answered " << mailbox;
    }
    EXPECT_THAT(comments(file), Not(HasSubstr("CROSS-USER")));
    expect_clean(file);
}

TEST_F(Capture, KerberosApReqsNameEachUserWithTheServiceKeytab) {
    const auto file = trace("kerberos-default");
    std::set<std::string> names;
    const auto keytab = dir_ / "state" / "realm" / "http-be1.keytab";
    for (const auto& row : tshark_rows(file, "kerberos.msg_type == 14", {"kerberos.CNameString"},
                                       {"kerberos.decrypt:TRUE", "kerberos.file:" + keytab.string()}))
        names.insert(row[0].substr(0, row[0].find(',')));
    EXPECT_EQ(names, (std::set<std::string>{"alice", "bob"}));
    EXPECT_THAT(comments(file), Not(HasSubstr("CROSS-USER")));
    expect_clean(file);
}

TEST_F(Capture, TheCrossingInThreeLinesForASlide) {
    const auto file = dir_ / "slide.pcapng";
    auto r = common::run_program(EXSIM_BINARY, {"trace", "--scenario", "ms04-002-vulnerable", "--steps", "alice,bob",
                                                "--pcap", file.string(), "--state-dir", (dir_ / "state").string()},
                                 {});
    ASSERT_EQ(r.exit_code, 0) << r.output;
    // The command docs/lab-guide.md gives, with -E occurrence=f: each frame's headline comment.
    const auto rows = tshark_rows(file, "ntlmssp.messagetype == 3 || (http.request && !http.authorization) || "
                                        "frame.comment contains \"CROSS-USER: served\"",
                                  {"tcp.stream", "frame.comment"}, {});
    ASSERT_EQ(rows.size(), 3u);
    EXPECT_EQ(rows[0][0], rows[1][0]);
    EXPECT_EQ(rows[1][0], rows[2][0]);
    EXPECT_THAT(rows[0][1], HasSubstr("alice's request on connection #1: Authorization: NTLM (NTLM AUTHENTICATE user=EXSIM\\alice"));
    EXPECT_THAT(rows[1][1], HasSubstr("bob's request on connection #1: no Authorization, sent as is on a connection the "
                                      "back-end holds as alice (ntlm)"));
    EXPECT_THAT(rows[2][1], HasSubstr("CROSS-USER: served alice's mailbox to bob"));
}

TEST_F(Capture, ClientConnectionsAreTheirDecryptedHttpNarratedStepByStep) {
    const auto file = trace("ms04-002-vulnerable");
    // The front-end's answers to the clients carry HSTS: only the client side does (TLS).
    const auto answers = tshark_rows(file, "http.response && http.response.line contains \"Strict-Transport-Security\"",
                                     {"tcp.stream"});
    EXPECT_EQ(answers.size(), 4u);
    EXPECT_THAT(comments(file), HasSubstr("step 2: bob GET /exchange/"));
}

TEST_F(Capture, RefusesAnExistingFileWithoutForceAndAnUnwritablePathBeforeStarting) {
    const auto file = dir_ / "exists.pcapng";
    std::ofstream(file) << "keep me";
    auto r = common::run_program(EXSIM_BINARY, {"trace", "--pcap", file.string()}, {});
    EXPECT_EQ(r.exit_code, 2);
    EXPECT_THAT(r.output, HasSubstr("--pcap: " + file.string() + " exists (add --force"));
    std::ifstream in(file);
    EXPECT_EQ(std::string(std::istreambuf_iterator<char>(in), {}), "keep me");
    r = common::run_program(EXSIM_BINARY, {"trace", "--pcap", (dir_ / "no" / "such" / "f.pcapng").string()}, {});
    EXPECT_EQ(r.exit_code, 2);
    EXPECT_THAT(r.output, HasSubstr("--pcap: cannot write"));
    EXPECT_THAT(r.output, Not(HasSubstr("step 1")));
    r = common::run_program(EXSIM_BINARY, {"up", "--capture", (dir_ / "live.pcapng").string(), "--capture-max-mib", "0",
                                           "--state-dir", (dir_ / "state").string()},
                            {});
    EXPECT_EQ(r.exit_code, 2);
    EXPECT_THAT(r.output, HasSubstr("--capture-max-mib: 0 is not within 1.."));
    r = common::run_program(EXSIM_BINARY, {"up", "--capture", (dir_ / "live.pcapng").string(), "--capture-max-mib", "-3",
                                           "--state-dir", (dir_ / "state").string()},
                            {});
    EXPECT_EQ(r.exit_code, 2);
    EXPECT_THAT(r.output, HasSubstr("--capture-max-mib: -3 is not within 1.."));
    EXPECT_FALSE(fs::exists(dir_ / "state" / "endpoints.env"));
}

}  // namespace
}  // namespace exsim::testing
