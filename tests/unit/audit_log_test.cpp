#include "exsim/backend_sim/audit_log.hpp"

#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

#include <gtest/gtest.h>

#include "temp_folder.hpp"

namespace fs = std::filesystem;
using namespace exsim::backend;

namespace {

using exsim::testing::temp_folder;


audit_record sample(std::string identity, std::string on_behalf_of) {
    audit_record r;
    r.backend = "be1";
    r.conn = 42;
    r.identity = std::move(identity);
    r.mechanism = "ntlm";
    r.method = "GET";
    r.path = "/exchange/";
    r.mailbox = r.identity;
    r.op = "list";
    r.status = 200;
    r.on_behalf_of = std::move(on_behalf_of);
    return r;
}

// "2024-05-01T12:34:56.789Z" (std::regex would do, but trips GCC 12 warnings under ASan).
bool is_iso8601_utc_ms(const std::string& s) {
    const std::string shape = "dddd-dd-ddTdd:dd:dd.dddZ";
    if (s.size() != shape.size()) return false;
    for (std::size_t i = 0; i < s.size(); ++i) {
        const bool ok = shape[i] == 'd' ? (s[i] >= '0' && s[i] <= '9') : s[i] == shape[i];
        if (!ok) return false;
    }
    return true;
}

std::vector<std::string> lines_of(const fs::path& file) {
    std::ifstream in(file);
    std::vector<std::string> lines;
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    return lines;
}

}  // namespace

TEST(AuditLog, AppendsOneJsonLinePerRecordReadableAtOnce) {
    temp_folder dir;
    const auto file = audit_log_path(dir.path(), "be1");
    audit_log log(file);
    auto r = sample("alice", "alice");
    r.message = "alice.3";
    ASSERT_FALSE(log.append(r));
    ASSERT_FALSE(log.append(sample("bob", "")));

    // Read while the log is still open: every line is already in the file.
    const auto records = read_audit_log(file);
    ASSERT_EQ(records.size(), 2u);
    EXPECT_EQ(lines_of(file).size(), 2u);
    EXPECT_EQ(records[0].backend, "be1");
    EXPECT_EQ(records[0].conn, 42u);
    EXPECT_EQ(records[0].identity, "alice");
    EXPECT_EQ(records[0].mechanism, "ntlm");
    EXPECT_EQ(records[0].method, "GET");
    EXPECT_EQ(records[0].path, "/exchange/");
    EXPECT_EQ(records[0].mailbox, "alice");
    EXPECT_EQ(records[0].op, "list");
    EXPECT_EQ(records[0].status, 200u);
    EXPECT_EQ(records[0].message, "alice.3");
    EXPECT_EQ(records[0].on_behalf_of, "alice");
    EXPECT_FALSE(records[0].cross_user);
    EXPECT_EQ(records[1].identity, "bob");
    EXPECT_EQ(log.lines_written(), 2u);
    EXPECT_EQ(log.failures(), 0u);
}

TEST(AuditLog, CrossUserIsTrueOnlyWhenOnBehalfOfNamesSomeoneElse) {
    temp_folder dir;
    const auto file = dir.path() / "audit.jsonl";
    audit_log log(file);
    auto lying = sample("alice", "");
    lying.cross_user = true;  // append() decides, not the caller
    log.append(lying);
    log.append(sample("alice", "alice"));
    log.append(sample("alice", "bob"));  // the MS04-002 leak, seen from the back-end
    const auto records = read_audit_log(file);
    ASSERT_EQ(records.size(), 3u);
    EXPECT_FALSE(records[0].cross_user);
    EXPECT_FALSE(records[1].cross_user);
    EXPECT_TRUE(records[2].cross_user);
    EXPECT_EQ(count_cross_user(file), 1u);
    EXPECT_EQ(count_cross_user(records), 1u);

    EXPECT_FALSE(is_cross_user("alice", "", 200));
    EXPECT_FALSE(is_cross_user("alice", "alice", 200));
    EXPECT_TRUE(is_cross_user("alice", "bob", 200));
    EXPECT_TRUE(is_cross_user("", "bob", 200));
    // A refused request served nothing: not a leak, whoever the connection belonged to.
    EXPECT_FALSE(is_cross_user("alice", "bob", 403));
    EXPECT_FALSE(is_cross_user("alice", "bob", 404));
}

TEST(AuditLog, FormatsOneInstantAsIso8601UtcWithMilliseconds) {
    EXPECT_EQ(exsim::common::iso8601_utc(1714566896789), "2024-05-01T12:34:56.789Z");
    EXPECT_EQ(exsim::common::iso8601_utc(0), "1970-01-01T00:00:00.000Z");
}

TEST(AuditLog, TimestampIsIso8601UtcWithMilliseconds) {
    const std::string now = iso8601_utc_now();
    EXPECT_TRUE(is_iso8601_utc_ms(now)) << now;
    EXPECT_FALSE(is_iso8601_utc_ms("2024-05-01 12:34:56Z"));

    temp_folder dir;
    const auto file = dir.path() / "audit.jsonl";
    audit_log log(file);
    log.append(sample("alice", ""));
    const auto records = read_audit_log(file);
    ASSERT_EQ(records.size(), 1u);
    EXPECT_TRUE(is_iso8601_utc_ms(records[0].ts)) << records[0].ts;
}

TEST(AuditLog, HostileValuesStayInsideOneEscapedLine) {
    temp_folder dir;
    const auto file = dir.path() / "audit.jsonl";
    audit_log log(file);
    log.append(sample("alice", "bob\n{\"identity\":\"mallory\"}\"\\"));
    const auto lines = lines_of(file);
    ASSERT_EQ(lines.size(), 1u);
    const auto records = read_audit_log(file);
    ASSERT_EQ(records.size(), 1u);
    EXPECT_EQ(records[0].identity, "alice");
    EXPECT_EQ(records[0].on_behalf_of, "bob\n{\"identity\":\"mallory\"}\"\\");
}

// Found by fuzzing (tests/fuzz/backend_request): a request path or X-Exsim-On-Behalf-Of with a byte
// that is not UTF-8, or one cut inside a character, was written as is, and the line was then not
// JSON: the reader skipped it, and a cross-user line with it.
TEST(AuditLog, BytesThatAreNotUtf8AreWrittenAsReplacementCharacters) {
    temp_folder dir;
    const auto file = dir.path() / "audit.jsonl";
    audit_log log(file);
    auto r = sample("alice", "b\xffob");
    r.path = "/exchange\xf7/alice/Inbox/\xc3";  // a stray byte, then "\xc3\xa9" cut in two
    log.append(r);
    std::size_t malformed = 99;
    const auto records = read_audit_log(file, &malformed);
    EXPECT_EQ(malformed, 0u);
    ASSERT_EQ(records.size(), 1u);
    EXPECT_EQ(records[0].path, "/exchange\xef\xbf\xbd/alice/Inbox/\xef\xbf\xbd");
    EXPECT_EQ(records[0].on_behalf_of, "b\xef\xbf\xbdob");
    EXPECT_TRUE(records[0].cross_user);
    EXPECT_EQ(count_cross_user(file), 1u);
}

TEST(AuditLog, ReaderSkipsATornLastLineAndCountsIt) {
    temp_folder dir;
    const auto file = dir.path() / "audit.jsonl";
    {
        audit_log log(file);
        log.append(sample("alice", "bob"));
    }
    std::ofstream(file, std::ios::app) << "{\"ts\":\"2024-01-01T00:00:00.000Z\",\"iden";
    std::size_t malformed = 99;
    const auto records = read_audit_log(file, &malformed);
    EXPECT_EQ(records.size(), 1u);
    EXPECT_EQ(malformed, 1u);
    EXPECT_EQ(count_cross_user(file), 1u);
}

TEST(AuditLog, MissingFileReadsAsEmpty) {
    temp_folder dir;
    EXPECT_TRUE(read_audit_log(dir.path() / "absent.jsonl").empty());
    EXPECT_EQ(count_cross_user(dir.path() / "absent.jsonl"), 0u);
}

TEST(AuditLog, ReopeningAppendsInsteadOfTruncating) {
    temp_folder dir;
    const auto file = dir.path() / "nested" / "audit.jsonl";
    { audit_log(file).append(sample("alice", "")); }
    { audit_log(file).append(sample("bob", "")); }
    EXPECT_EQ(read_audit_log(file).size(), 2u);
}

TEST(AuditLog, UnwritableFileThrowsAtStartUp) {
    temp_folder dir;
    // A directory where the file should be: open() fails whatever the privileges.
    fs::create_directories(dir.path() / "audit.jsonl");
    EXPECT_THROW(audit_log(dir.path() / "audit.jsonl"), std::runtime_error);
}

TEST(AuditLog, ConcurrentAppendsNeverInterleave) {
    temp_folder dir;
    const auto file = dir.path() / "audit.jsonl";
    audit_log log(file);
    constexpr int threads = 4, per_thread = 200;
    std::vector<std::thread> workers;
    for (int t = 0; t < threads; ++t) {
        workers.emplace_back([&, t] {
            for (int k = 0; k < per_thread; ++k) {
                auto r = sample("user" + std::to_string(t), "");
                r.message = std::string(300, static_cast<char>('a' + t)) + std::to_string(k);
                log.append(r);
            }
        });
    }
    for (auto& w : workers) w.join();
    std::size_t malformed = 0;
    const auto records = read_audit_log(file, &malformed);
    EXPECT_EQ(malformed, 0u);
    ASSERT_EQ(records.size(), static_cast<std::size_t>(threads * per_thread));
    std::set<std::string> unique;
    for (const auto& r : records) unique.insert(r.message);
    EXPECT_EQ(unique.size(), records.size());
}
