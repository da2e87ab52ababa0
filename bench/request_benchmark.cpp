// What the front-end does to every client request before and after the back-end sees it, alone:
//
//   BM_CanonicalizeTarget/<case>  canonicalize_target() (MS04-013: canonicalize before routing)
//   BM_ParseBasicAuthorization    the user's Basic login header
//   BM_FindUser/<how>/<users>     the login's directory look-up, for users spread over a
//                                 directory of 1,000 or 10,000: topology::find_user (a linear scan)
//                                 and the front-end's user_index
//   BM_BackendRequest             header rewriting towards the back-end: a browser's request
//                                 (11 fields, hop-by-hop ones and a forged X-Exsim-* among them)
//   BM_ClientResponse             header rewriting towards the client: a back-end's response
//                                 (10 fields, a WWW-Authenticate with a token among them)

#include <benchmark/benchmark.h>

#include <string>
#include <string_view>
#include <vector>

#include <boost/beast/http.hpp>

#include "exsim/common/topology.hpp"
#include "exsim/proxy/request_checks.hpp"
#include "forwarding.hpp"

namespace {

namespace http = boost::beast::http;
namespace proxy = exsim::proxy;

void BM_CanonicalizeTarget(benchmark::State& state, std::string_view target) {
    for (auto _ : state) {
        auto c = proxy::canonicalize_target(target);
        if (!c.error.empty()) {
            state.SkipWithError(c.error.c_str());
            break;
        }
        benchmark::DoNotOptimize(c);
    }
    state.SetItemsProcessed(state.iterations());
}

BENCHMARK_CAPTURE(BM_CanonicalizeTarget, plain, std::string_view("/exchange/alice/Inbox/"));
BENCHMARK_CAPTURE(BM_CanonicalizeTarget, message, std::string_view("/exchange/Inbox/alice-1712345678-42"));
BENCHMARK_CAPTURE(BM_CanonicalizeTarget, query, std::string_view("/exchweb/blob?size=16384"));
BENCHMARK_CAPTURE(BM_CanonicalizeTarget, dot_segments, std::string_view("/exchange/bob/../alice/./Inbox//"));
BENCHMARK_CAPTURE(BM_CanonicalizeTarget, percent_encoded, std::string_view("/exchange/%61lice/In%62ox/%7Euser?x=%2F"));
BENCHMARK_CAPTURE(BM_CanonicalizeTarget, long_path,
                  std::string_view("/exchange/alice/Inbox/Folder%20One/Folder%20Two/Folder%20Three/Sub/Sub/Sub/Sub/"
                                   "Sub/Sub/Sub/Sub/Sub/Sub/message-with-a-rather-long-name-0123456789abcdef.eml"));

void BM_ParseBasicAuthorization(benchmark::State& state) {
    const std::string header = "Basic dXNlcjA0MjQyOnVzZXIwNDI0Mi1wdw==";  // user04242:user04242-pw
    for (auto _ : state) {
        auto c = proxy::parse_basic_authorization(header);
        if (!c) {
            state.SkipWithError("not parsed");
            break;
        }
        benchmark::DoNotOptimize(c);
    }
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ParseBasicAuthorization);

void BM_FindUser(benchmark::State& state, bool indexed) {
    const auto directory = exsim::common::generated_topology(static_cast<std::size_t>(state.range(0)) - 4);
    const exsim::common::user_index index(directory);
    std::vector<std::string> names;  // 64 users spread over the directory
    for (std::size_t i = 0; i < 64; ++i) names.push_back(directory.users[i * directory.users.size() / 64].name);
    std::size_t i = 0;
    for (auto _ : state) {
        const auto& name = names[i++ % names.size()];
        const auto* u = indexed ? index.find(name) : directory.find_user(name);
        benchmark::DoNotOptimize(u);
    }
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK_CAPTURE(BM_FindUser, linear, false)->ArgName("users")->Arg(1000)->Arg(10000);
BENCHMARK_CAPTURE(BM_FindUser, index, true)->ArgName("users")->Arg(1000)->Arg(10000);

void BM_BackendRequest(benchmark::State& state) {
    http::request<http::empty_body> req{http::verb::get, "/exchange/Inbox/", 11};
    req.set(http::field::host, "owa.exsim.test");
    req.set(http::field::user_agent, "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko)");
    req.set(http::field::accept, "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8");
    req.set(http::field::accept_language, "en-US,en;q=0.5");
    req.set(http::field::accept_encoding, "gzip, deflate, br");
    req.set(http::field::authorization, "Basic YWxpY2U6YWxpY2UtcHc=");
    req.set(http::field::cookie, "sessionid=0123456789abcdef0123456789abcdef; theme=classic");
    req.set(http::field::connection, "keep-alive");
    req.set(http::field::cache_control, "no-cache");
    req.set("X-Exsim-On-Behalf-Of", "bob");  // forged by the client: must not reach the back-end
    req.set(http::field::referer, "https://owa.exsim.test/exchange/");
    const std::string target = "/exchange/Inbox/", user = "alice", host = "be1.exsim.test:8081";
    for (auto _ : state) {
        auto out = proxy::backend_request(req, target, user, host);
        benchmark::DoNotOptimize(out);
    }
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_BackendRequest);

void BM_ClientResponse(benchmark::State& state) {
    http::response<http::empty_body> res{http::status::ok, 11};
    res.set(http::field::server, "exsim-backend");
    res.set(http::field::date, "Tue, 20 Jan 2004 10:00:00 GMT");
    res.set(http::field::content_type, "application/json; charset=utf-8");
    res.set(http::field::content_length, "1834");
    res.set(http::field::cache_control, "no-store");
    res.set("Content-Security-Policy", "default-src 'none'; style-src 'self'; frame-ancestors 'none'");
    res.set("X-Exsim-Mailbox", "alice");
    res.set("X-Exsim-Identity", "alice");
    res.set(http::field::www_authenticate, "Negotiate oYG2MIGzoAMKAQChCwYJKoZIgvcSAQICooGeBIGbYIGYBgkqhkiG9xIBAgICAG+BiDCBhaADAgEFoQMCAQ+ieTB3oAMCARKicARu");
    res.set(http::field::connection, "keep-alive");
    for (auto _ : state) {
        auto out = proxy::client_response(res, 11);
        benchmark::DoNotOptimize(out);
    }
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ClientResponse);

}  // namespace

BENCHMARK_MAIN();
