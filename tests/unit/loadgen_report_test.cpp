#include <cmath>
#include <set>
#include <string>

#include <boost/json.hpp>
#include <gtest/gtest.h>

#include "exsim/loadgen/demo_summary.hpp"
#include "exsim/loadgen/histogram.hpp"
#include "exsim/loadgen/report.hpp"
#include "exsim/loadgen/results.hpp"

namespace exsim::loadgen {
namespace {

namespace json = boost::json;

op_stats& stats(load_result& r, op o) { return r.ops[static_cast<std::size_t>(o)]; }

// 100 reads over 10 s at 1..100 ms, `leaks` of them leaks, and a timeline of 10 slices.
load_result sample_result(std::uint64_t leaks = 0) {
    load_result r;
    r.mode = "frontend";
    r.url = "http://127.0.0.1:8080";
    r.policy = "legacy";
    r.backend_auth = "ntlm";
    r.model = "closed";
    r.sessions = 4;
    r.users = 4;
    r.seconds = 10;
    op_stats& s = stats(r, op::read);
    for (std::uint64_t i = 1; i <= 100; ++i) s.latency.record(i * 1000);
    s.requests = 100;
    s.leaks = leaks;
    s.errors = 2;
    s.errors_by_kind["http_502"] = 2;
    for (int t = 0; t < 10; ++t) {
        time_slice slice;
        slice.requests = 10;
        slice.leaks = t == 3 ? leaks : 0;
        slice.latency.record(5000);
        r.timeline.push_back(slice);
    }
    r.backend = {"front-end metrics", 20, 0, 20};
    r.audit_cross_user = leaks;
    return r;
}

TEST(Histogram, PercentilesAreWithinOneSixtyFourthOfExact) {
    histogram h;
    for (std::uint64_t v = 1; v <= 100000; ++v) h.record(v);
    for (double p : {1.0, 10.0, 50.0, 90.0, 99.0, 99.9, 99.99, 100.0}) {
        const double exact = std::ceil(p / 100.0 * 100000);
        const auto got = static_cast<double>(h.percentile(p));
        EXPECT_GE(got, exact) << p;
        EXPECT_LE(got, exact * (1 + 1.0 / 64)) << p;
    }
    EXPECT_EQ(h.min(), 1u);
    EXPECT_EQ(h.max(), 100000u);
    EXPECT_EQ(h.count(), 100000u);
    EXPECT_DOUBLE_EQ(h.mean(), 50000.5);
}

TEST(Histogram, SmallValuesAreExactAndHugeOnesClampButKeepMax) {
    histogram h;
    h.record(0);
    h.record(127);
    EXPECT_EQ(h.percentile(50), 0u);
    EXPECT_EQ(h.percentile(100), 127u);
    const std::uint64_t huge = std::uint64_t{1} << 50;
    h.record(huge);
    EXPECT_EQ(h.max(), huge);
    EXPECT_EQ(h.percentile(100), huge);
}

TEST(Histogram, MergeEqualsRecordingBoth) {
    histogram a, b, both;
    for (std::uint64_t v = 1; v <= 5000; v += 3) {
        a.record(v * 7);
        both.record(v * 7);
    }
    for (std::uint64_t v = 2; v <= 900; v += 5) {
        b.record(v * 131);
        both.record(v * 131);
    }
    a.merge(b);
    EXPECT_EQ(a.count(), both.count());
    EXPECT_EQ(a.min(), both.min());
    EXPECT_EQ(a.max(), both.max());
    EXPECT_DOUBLE_EQ(a.mean(), both.mean());
    for (double p : {1.0, 25.0, 50.0, 75.0, 99.0, 99.9, 100.0}) EXPECT_EQ(a.percentile(p), both.percentile(p)) << p;

    histogram empty;
    empty.merge(both);
    EXPECT_EQ(empty.min(), both.min());
    EXPECT_EQ(empty.percentile(50), both.percentile(50));
}

TEST(Histogram, EmptyReportsZero) {
    const histogram h;
    EXPECT_EQ(h.count(), 0u);
    EXPECT_EQ(h.min(), 0u);
    EXPECT_EQ(h.max(), 0u);
    EXPECT_EQ(h.mean(), 0.0);
    EXPECT_EQ(h.percentile(99), 0u);
}

TEST(Threshold, PassesWhenEveryLimitHolds) {
    const load_result r = sample_result(0);  // p99 is 99 ms, error rate 0.02
    EXPECT_TRUE(failed_thresholds(r, {0, 250.0, 0.05}).empty());
    EXPECT_TRUE(failed_thresholds(r, {}).empty());
}

TEST(Threshold, MaxLeaksFailsAlone) {
    const auto failed = failed_thresholds(sample_result(12), {0, 250.0, 0.05});
    ASSERT_EQ(failed.size(), 1u);
    EXPECT_EQ(failed[0], "max-leaks: 12 leaks+tampers (audit cross-user: 12) > 0");
}

// A proxy that strips X-Exsim-* hides leaks from the oracle, not from the back-ends' audit.
TEST(Threshold, MaxLeaksJudgesTheAuditToo) {
    load_result r = sample_result(0);
    r.audit_cross_user = 4;
    const auto failed = failed_thresholds(r, {0, 250.0, 0.05});
    ASSERT_EQ(failed.size(), 2u);
    EXPECT_EQ(failed[0], "max-leaks: 0 leaks+tampers (audit cross-user: 4) > 0");
    EXPECT_EQ(failed[1], "max-leaks: the audit's cross-user count 4 disagrees with the oracle's 0");
    EXPECT_TRUE(failed_thresholds(r, {std::nullopt, 250.0, 0.05}).empty());
}

TEST(Threshold, MaxP99FailsAlone) {
    const auto failed = failed_thresholds(sample_result(0), {0, 50.0, 0.05});
    ASSERT_EQ(failed.size(), 1u);
    EXPECT_EQ(failed[0].rfind("max-p99-ms: p99 99.", 0), 0u) << failed[0];
    EXPECT_NE(failed[0].find("ms > 50 ms"), std::string::npos) << failed[0];
}

TEST(Threshold, MaxErrorRateFailsAlone) {
    const auto failed = failed_thresholds(sample_result(0), {0, 250.0, 0.01});
    ASSERT_EQ(failed.size(), 1u);
    EXPECT_EQ(failed[0], "max-error-rate: 0.02 > 0.01");
}

TEST(Report, TotalAndAuditAgreement) {
    load_result r = sample_result(3);
    stats(r, op::send).requests = 5;
    stats(r, op::send).tampers = 1;
    EXPECT_EQ(r.total().requests, 105u);
    EXPECT_FALSE(r.audit_agrees());  // audit says 3, oracle 4
    r.audit_cross_user = 4;
    EXPECT_TRUE(r.audit_agrees());
    r.audit_cross_user.reset();
    EXPECT_TRUE(r.audit_agrees());
}

TEST(Report, TableShowsOpsBackendAndAudit) {
    load_result r = sample_result(3);
    std::string table = render_table(r);
    EXPECT_NE(table.find("total"), std::string::npos);
    EXPECT_NE(table.find("http_502 2"), std::string::npos);
    EXPECT_NE(table.find("back-end connections: 20 (0.200 per request)"), std::string::npos) << table;
    EXPECT_NE(table.find("agrees with the oracle (leaks+tampers = 3)"), std::string::npos) << table;
    r.audit_cross_user = 5;
    EXPECT_NE(render_table(r).find("DISAGREES"), std::string::npos);
    r.audit_cross_user.reset();
    EXPECT_NE(render_table(r).find("audit: not read"), std::string::npos);
}

TEST(Report, JsonParsesBackWithEveryField) {
    const json::value v = json::parse(to_json(sample_result(3)));
    const json::object& o = v.as_object();
    for (const char* key : {"mode", "url", "policy", "backend_auth", "model", "rate", "sessions", "users", "seconds",
                            "rps", "ops", "total", "timeline", "backend", "audit_cross_user", "audit_agrees"})
        EXPECT_TRUE(o.contains(key)) << key;
    const json::object& read = o.at("ops").at("read").as_object();
    EXPECT_EQ(read.at("requests").to_number<std::uint64_t>(), 100u);
    EXPECT_EQ(read.at("leaks").to_number<std::uint64_t>(), 3u);
    EXPECT_EQ(read.at("errors_by_kind").at("http_502").to_number<std::uint64_t>(), 2u);
    for (const char* key : {"p50_ms", "p90_ms", "p99_ms", "p99_9_ms", "max_ms", "mean_ms"})
        EXPECT_TRUE(read.contains(key)) << key;
    EXPECT_NEAR(read.at("max_ms").to_number<double>(), 100.0, 1e-9);
    EXPECT_EQ(o.at("timeline").as_array().size(), 10u);
    EXPECT_EQ(o.at("timeline").at(3).at("leaks").to_number<std::uint64_t>(), 3u);
    EXPECT_EQ(o.at("backend").at("handshakes").to_number<std::uint64_t>(), 20u);
    EXPECT_EQ(o.at("audit_cross_user").to_number<std::uint64_t>(), 3u);
    EXPECT_TRUE(o.at("audit_agrees").as_bool());

    load_result unread = sample_result(0);
    unread.audit_cross_user.reset();
    EXPECT_TRUE(json::parse(to_json(unread)).at("audit_cross_user").is_null());
}

// Nothing a browser would fetch or run: no script, no external reference of any kind.
void expect_self_contained(const std::string& html) {
    EXPECT_NE(html.find("<svg"), std::string::npos);
    EXPECT_NE(html.find("default-src 'none'"), std::string::npos);
    for (const char* bad : {"<script", "src=", "href=", "url(", "@import", "://"})
        EXPECT_EQ(html.find(bad), std::string::npos) << bad;
}

TEST(Report, HtmlIsSelfContainedAndEscapesStrings) {
    load_result r = sample_result(3);
    r.url = "<script>x</script>";
    r.policy = "\"><img>";
    const std::string html = render_html(r);
    expect_self_contained(html);
    EXPECT_NE(html.find("&lt;script&gt;x&lt;/script&gt;"), std::string::npos);
    EXPECT_EQ(html.find("<img"), std::string::npos);
}

std::vector<demo_run> demo(std::uint64_t legacy_leaks) {
    std::vector<demo_run> runs;
    for (const char* policy : {"legacy", "ms04-002"}) {
        for (const char* auth : {"negotiate", "ntlm"}) {
            demo_run run{policy, auth, sample_result(0)};
            run.result.policy = policy;
            run.result.backend_auth = auth;
            if (std::string(policy) == "legacy" && std::string(auth) == "ntlm") {
                stats(run.result, op::read).leaks = legacy_leaks;
                run.result.audit_cross_user = legacy_leaks;
            }
            if (std::string(policy) == "ms04-002" && std::string(auth) == "ntlm") run.result.backend.connections = 100;
            runs.push_back(std::move(run));
        }
    }
    return runs;
}

TEST(Report, DemoJsonHasExactlyTheDocumentedKeys) {
    auto runs = demo(7);
    runs[0].result.audit_cross_user.reset();
    const json::value v = json::parse(demo_json(runs));
    ASSERT_EQ(v.as_object().size(), 1u);
    const json::array& rows = v.at("runs").as_array();
    ASSERT_EQ(rows.size(), 4u);
    const std::set<std::string> expected{"policy", "backend_auth", "requests", "leaks", "tampers", "audit_cross_user",
                                         "backend_connections", "auth_handshakes", "ntlm_handshakes", "rps", "p50_ms",
                                         "p99_ms", "errors"};
    for (const auto& row : rows) {
        std::set<std::string> keys;
        for (const auto& kv : row.as_object()) keys.emplace(kv.key());
        EXPECT_EQ(keys, expected);
    }
    EXPECT_TRUE(rows[0].at("audit_cross_user").is_null());
    EXPECT_EQ(rows[1].at("leaks").to_number<std::uint64_t>(), 7u);
    EXPECT_EQ(rows[1].at("auth_handshakes").to_number<std::uint64_t>(), 20u);
    EXPECT_EQ(rows[1].at("errors").to_number<std::uint64_t>(), 2u);
    EXPECT_NEAR(rows[1].at("p50_ms").to_number<double>(), 50.0, 1.0);
    EXPECT_NEAR(rows[1].at("rps").to_number<double>(), 10.0, 1e-9);
}

TEST(Report, DemoSummaryNamesTheLeakingRowsAndTheFixCost) {
    const std::string s = demo_summary(demo(7));
    EXPECT_NE(s.find("only under legacy with NTLM back-ends (7 leaks, 0 tampers)"), std::string::npos) << s;
    EXPECT_NE(s.find("stopped every leak at the cost of 1.000 back-end connections per request with NTLM (vs 0.200"),
              std::string::npos) << s;
    EXPECT_EQ(s.find("No row leaked"), std::string::npos);
}

TEST(Report, DemoSummarySaysWhenNoRowLeaked) {
    const std::string s = demo_summary(demo(0));
    EXPECT_EQ(s.rfind("No row leaked", 0), 0u) << s;
    EXPECT_EQ(s.find("stopped every leak"), std::string::npos) << s;
}

TEST(Report, DemoTableAndHtmlMarkDisagreement) {
    auto runs = demo(7);
    runs[1].result.audit_cross_user = 6;
    const std::string table = render_demo_table(runs);
    EXPECT_NE(table.find("6 *"), std::string::npos) << table;
    EXPECT_NE(table.find("DISAGREES"), std::string::npos);
    runs[0].policy = "<script>x</script>";
    const std::string html = render_demo_html(runs);
    expect_self_contained(html);
    EXPECT_NE(html.find("&lt;script&gt;"), std::string::npos);
}

}  // namespace
}  // namespace exsim::loadgen
