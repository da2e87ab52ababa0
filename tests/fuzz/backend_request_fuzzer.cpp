// The back-end's request handling without sockets: raw request bytes through Beast's parser, with
// the limits the server uses, then mailbox_api::handle() as one of the directory's users, against
// a seeded mailbox store and an audit log in a temporary folder. The input's first byte chooses
// who the connection is authenticated as: its low four bits modulo 5 pick anonymous, alice, bob,
// eve (alice's delegate) or carol (whose mailbox is on another back-end), 0x10 says Kerberos
// rather than NTLM, 0x20 that the request carried the token. The rest is one or more requests, as
// on a kept-alive connection. A store changed by a request is seeded again before the next input, so
// that every input starts from the same state.
//
// Beyond "no crash, no exception": every status is one the API documents (a 500 or 503 would be a
// store failure on a healthy store); the payload is sized; a response names the identity it ran
// as; no 2xx response holds a mailbox the identity may not open, nor a message of another one; and
// each audited request adds exactly one well-formed audit line that agrees with the response.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

#include <unistd.h>

#include <boost/beast/http.hpp>
#include <boost/json.hpp>

#include "exsim/backend_sim/audit_log.hpp"
#include "exsim/backend_sim/mailbox_api.hpp"
#include "exsim/backend_sim/mailbox_store.hpp"
#include "exsim/backend_sim/server.hpp"
#include "exsim/common/topology.hpp"
#include "api_topology.hpp"
#include "fuzz_check.hpp"
#include "http_input.hpp"

namespace {

using namespace exsim;
namespace fs = std::filesystem;
namespace http = boost::beast::http;
namespace json = boost::json;

constexpr std::string_view backend_name = "be1";
constexpr std::size_t max_requests_per_input = 8;
constexpr std::uintmax_t max_audit_bytes = 1 << 20;  // then the log starts again

constexpr std::string_view identities[] = {"", "alice", "bob", "eve", "carol"};

struct backend_world {
    fs::path dir;
    common::topology topo = testing::api_topology();  // be1: alice, bob, eve (alice's delegate); be2: carol
    backend::mailbox_store store;
    backend::audit_log audit;
    backend::mailbox_api api;

    explicit backend_world(fs::path d)
        : dir(std::move(d)),
          store(backend::mailbox_database_path(dir, backend_name), backend::store_options{.synchronous_full = false}),
          audit(backend::audit_log_path(dir, backend_name)),
          api(topo, std::string(backend_name), store, audit) {
        store.reset(topo, backend_name);
    }

    bool may_open(std::string_view identity, std::string_view mailbox) const {
        if (identity == mailbox) return true;
        const auto* owner = topo.find_user(mailbox);
        return owner && std::find(owner->delegates.begin(), owner->delegates.end(), identity) != owner->delegates.end();
    }
};

backend_world* world = nullptr;

std::string_view sv(boost::beast::string_view s) { return {s.data(), s.size()}; }

bool starts_with_segment(std::string_view path, std::string_view prefix) {
    return path == prefix || (path.starts_with(prefix) && path.size() > prefix.size() && path[prefix.size()] == '/');
}

// A message id names its mailbox: "<owner>.<n>".
void check_message_id(std::string_view id, std::string_view mailbox) {
    EXSIM_FUZZ_CHECK(backend::owner_of_message_id(id) == mailbox);
}

// What a successful response shows must belong to a mailbox the identity may open.
void check_content(const backend::mailbox_api::response& res, std::string_view identity, std::string_view mailbox) {
    const std::string_view type = sv(res[http::field::content_type]);
    const std::string& body = res.body();
    if (type.starts_with("application/json")) {
        boost::system::error_code ec;
        const json::value v = json::parse(body, ec);
        EXSIM_FUZZ_CHECK(!ec && v.is_object());
        const auto& o = v.get_object();
        if (const auto* m = o.if_contains("mailbox")) {
            EXSIM_FUZZ_CHECK(m->is_string() && m->get_string() == mailbox);
            EXSIM_FUZZ_CHECK(world->may_open(identity, mailbox));
        }
        if (const auto* messages = o.if_contains("messages")) {
            EXSIM_FUZZ_CHECK(messages->is_array());
            for (const auto& m : messages->get_array()) check_message_id(m.at("id").get_string(), mailbox);
        }
        for (const char* key : {"id", "sent", "deleted"})
            if (const auto* id = o.if_contains(key)) check_message_id(id->get_string(), mailbox);
    } else if (type.starts_with("text/html")) {
        // Message links are the only href values a client cannot write: its quotes are escaped.
        for (auto at = body.find("href=\""); at != std::string::npos; at = body.find("href=\"", at + 1)) {
            const auto begin = at + 6, end = body.find('"', begin);
            EXSIM_FUZZ_CHECK(end != std::string::npos);
            const std::string_view link(body.data() + begin, end - begin);
            EXSIM_FUZZ_CHECK(link.starts_with("/exchange/"));
            const auto last = link.substr(link.rfind('/') + 1);
            if (!last.empty()) check_message_id(last, mailbox);
        }
    }
}

void check_response(const backend::mailbox_api::request& req, const backend::request_context& ctx,
                    const backend::mailbox_api::response& res, std::uintmax_t audit_from) {
    const unsigned status = res.result_int();
    EXSIM_FUZZ_CHECK(status == 200 || status == 400 || status == 401 || status == 403 || status == 404 || status == 405 ||
                     status == 501);
    EXSIM_FUZZ_CHECK(res.version() == req.version());
    EXSIM_FUZZ_CHECK(res[http::field::content_length] == std::to_string(res.body().size()));
    EXSIM_FUZZ_CHECK(!res[http::field::server].empty() && !res[http::field::content_type].empty());
    if (status == 405) EXSIM_FUZZ_CHECK(!res[http::field::allow].empty());

    const std::string_view identity = sv(res["X-Exsim-Identity"]);
    const std::string_view mailbox = sv(res["X-Exsim-Mailbox"]);
    EXSIM_FUZZ_CHECK(identity.empty() || identity == ctx.identity);
    EXSIM_FUZZ_CHECK(mailbox.empty() || !identity.empty());

    const std::string_view target = sv(req.target());
    const std::string_view path = target.substr(0, target.find('?'));
    const bool mailbox_request = status == 200 && starts_with_segment(path, "/exchange");
    if (mailbox_request) {
        EXSIM_FUZZ_CHECK(!ctx.identity.empty() && identity == ctx.identity && !mailbox.empty());
        EXSIM_FUZZ_CHECK(world->may_open(ctx.identity, mailbox));
        check_content(res, ctx.identity, mailbox);
    }

    std::size_t malformed = 0;
    const auto records = backend::read_audit_log(world->audit.path(), &malformed, audit_from);
    EXSIM_FUZZ_CHECK(malformed == 0 && world->audit.failures() == 0);
    // Static content is not audited, but a /exchweb/ path refused as not canonical is.
    if (starts_with_segment(path, "/exchweb")) {
        EXSIM_FUZZ_CHECK(records.size() <= 1);
        if (records.empty()) return;
        EXSIM_FUZZ_CHECK(status == 400 && records.front().op == "bad_request");
    }
    EXSIM_FUZZ_CHECK(records.size() == 1);
    const auto& r = records.front();
    EXSIM_FUZZ_CHECK(r.identity == ctx.identity && r.status == status && r.mailbox == mailbox);
    EXSIM_FUZZ_CHECK(r.backend == backend_name && r.method == sv(req.method_string()));
    EXSIM_FUZZ_CHECK(r.cross_user == backend::is_cross_user(r.identity, r.on_behalf_of, r.status));
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    // Under the runner's TMPDIR, which it removes: a crashed run leaves nothing behind.
    auto dir = fs::temp_directory_path() / ("exsim-fuzz-backend-" + std::to_string(::getpid()));
    fs::remove_all(dir);
    world = new backend_world(dir);
    std::atexit([] { fs::remove_all(world->dir); });
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return 0;
    const std::uint8_t who = data[0];
    backend::request_context ctx;
    ctx.identity = std::string(identities[(who & 0x0f) % std::size(identities)]);
    ctx.mechanism = ctx.identity.empty() ? "" : (who & 0x10) ? "kerberos" : "ntlm";
    ctx.fresh_auth = !ctx.identity.empty() && (who & 0x20);
    ctx.connection_id = 1;

    const backend::server_limits limits;
    std::string_view rest(reinterpret_cast<const char*>(data + 1), size - 1);
    bool changed = false;
    for (std::size_t n = 0; n < max_requests_per_input && !rest.empty(); ++n) {
        http::request_parser<http::string_body> parser;
        parser.header_limit(static_cast<std::uint32_t>(limits.header_bytes));
        parser.body_limit(limits.body_bytes);
        parser.eager(true);
        auto ec = fuzz::feed(parser, rest);
        if (!ec && !parser.is_done() && rest.empty()) parser.put_eof(ec);  // the client closed
        if (ec || !parser.is_done()) break;

        const auto req = parser.release();
        const auto audit_from = fs::file_size(world->audit.path());
        const auto res = world->api.handle(req, ctx);
        check_response(req, ctx, res, audit_from);
        const bool writes = req.method() == http::verb::post || req.method() == http::verb::delete_;
        changed = changed || (writes && res.result() == http::status::ok);
    }

    if (changed) world->store.reset(world->topo, backend_name);
    if (fs::file_size(world->audit.path()) > max_audit_bytes) fs::resize_file(world->audit.path(), 0);
    return 0;
}
