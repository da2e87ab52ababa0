#pragma once
// One realm, one real krb5kdc and real back-ends per test program (realm creation takes
// seconds), in a temporary folder, stopped at the end. Tests that need isolation use their own
// users or messages.

#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "exsim/auth/gss.hpp"
#include "exsim/auth/realm.hpp"
#include "exsim/backend_sim/audit_log.hpp"
#include "exsim/backend_sim/server.hpp"
#include "exsim/common/topology.hpp"

namespace exsim::testing {

namespace http = boost::beast::http;
using response = http::response<http::string_body>;

// The test topology: the default one (be1 Negotiate,NTLM: alice, bob; be2 NTLM: carol, dave),
// plus erin on be1 as alice's delegate, and be3 (Negotiate,NTLM, persist_kerberos) with frank
// and gina (two users, so that a persisted Kerberos connection can be handed to the wrong one).
common::topology test_topology();

class realm_environment {
public:
    static realm_environment& get();  // set up by main()

    void set_up();
    void tear_down();

    const common::topology& topology() const { return topology_; }
    auth::realm& realm() { return *realm_; }
    const std::filesystem::path& dir() const { return dir_; }
    std::uint16_t port(const std::string& backend) const { return servers_.at(backend)->port(); }
    backend::server& server(const std::string& backend) { return *servers_.at(backend); }

    // A back-end of the topology started with explicit options (e.g. without its keytab).
    std::unique_ptr<backend::server> start_backend(const std::string& name, bool with_keytab = true,
                                                   backend::server_limits limits = {});

    std::shared_ptr<const auth::user_credentials> credentials(const std::string& user, auth::initiator_mode mode,
                                                              const std::string& password = "");

private:
    common::topology topology_;
    std::filesystem::path dir_;
    std::unique_ptr<auth::realm> realm_;
    std::map<std::string, std::unique_ptr<backend::server>> servers_;
};

// A kept-alive HTTP/1.1 connection to 127.0.0.1:port, synchronous, with a timeout.
class connection {
public:
    explicit connection(std::uint16_t port);
    response request(http::verb method, const std::string& target,
                     const std::map<std::string, std::string>& headers = {}, const std::string& body = "");
    // Runs the handshake with `ini` on this connection (first request carries the first token;
    // each 401 carrying a token is answered) and returns the final response.
    response authenticated(auth::initiator& ini, http::verb method, const std::string& target,
                           const std::string& body = "", const std::map<std::string, std::string>& headers = {});
    bool open();
    void write_raw(const std::string& bytes);
    // to_head: the response to a HEAD request, which has no body whatever its Content-Length says.
    std::optional<response> read_response(bool to_head = false);

private:
    boost::asio::io_context ioc_;
    boost::beast::tcp_stream stream_;
    boost::beast::flat_buffer buffer_;
};

std::string header(const response& res, http::field f);
// The value of `Authorization: Basic base64(user:password)`; the password defaults to "<user>-pw".
std::string basic(const std::string& user, const std::string& password = "");
std::vector<std::string> headers(const response& res, http::field f);

// The message ids of a JSON mailbox list ({"messages":[{"id":...},...]}). A body that is not
// one is a test failure (an empty list would pass every "not in the list" check).
std::vector<std::string> message_ids(const response& res);

// The audit lines a back-end appended since this object was made (the log is shared by every
// test of the program).
class audit_since {
public:
    explicit audit_since(const std::string& backend);  // one of the environment's back-ends
    static audit_since of_file(std::filesystem::path file);
    std::vector<backend::audit_record> records() const;

private:
    audit_since() = default;
    std::filesystem::path file_;
    std::size_t start_ = 0;
};

// Polls `condition` every 10 ms until it holds or `timeout` passes; returns its last value.
bool eventually(const std::function<bool()>& condition,
                std::chrono::milliseconds timeout = std::chrono::milliseconds(3000));

// How long `work` took, in whole milliseconds.
std::chrono::milliseconds time_of(const std::function<void()>& work);

// The upper bound of a duration a test asserts, for a machine of any speed and load. `promised`
// is what the code under test promises (a timeout, 0 for "at once"); `baseline` is comparable
// work measured by the test on the same machine in the same run, just before (a warm request, a
// first login). The bound is promised + `factor` baselines, and at least promised + `floor`:
// close to the promise on a quiet machine, growing with a slow or busy one, and still far below
// what the assertion guards against (a missing timeout: libkrb5's 27 s, the 30 s and 120 s
// defaults).
std::chrono::milliseconds bound(std::chrono::milliseconds promised, std::chrono::milliseconds baseline, int factor = 20,
                                std::chrono::milliseconds floor = std::chrono::milliseconds(1000));

}  // namespace exsim::testing
