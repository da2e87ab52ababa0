#pragma once
// The GSSAPI implementations of the mechanism interface: MIT Kerberos through SPNEGO, and NTLM
// through gss-ntlmssp. Guards against the traps of docs/design.md section 3: initiator credentials are
// always acquired for the SPNEGO mechanism (or NTLMSSP itself) from the user's own password and
// narrowed with gss_set_neg_mechs, never taken from a default credential or a user file.

#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/thread_pool.hpp>

#include "exsim/auth/mechanism.hpp"

namespace exsim::auth {

// A user's initiator credentials for one mode, acquired from the password. Immutable once
// built and shared between threads.
class user_credentials {
public:
    virtual ~user_credentials() = default;
    virtual const std::string& user() const = 0;
    virtual initiator_mode mode() const = 0;
    // An initiator for one handshake with the back-end `service_host` (HTTP@service_host).
    virtual std::unique_ptr<initiator> make_initiator(const std::string& service_host) const = 0;
};

struct credential_result {
    std::shared_ptr<const user_credentials> credentials;  // null on failure
    std::string error;
    // From credential_cache: when the cache will acquire them again (a caller keeping its own
    // copy should ask again by then).
    std::chrono::steady_clock::time_point fresh_until{};
    bool kdc_unreachable = false;  // failed because no KDC answered (KRB5_KDC_UNREACH), AS or TGS
};

// Blocking: for Kerberos this is the AS exchange with the KDC (milliseconds; PBKDF2). Never
// call it on an event-loop thread: use credential_cache::async_get.
credential_result acquire_user_credentials(const std::string& user, const std::string& password,
                                           initiator_mode mode, const std::string& realm,
                                           const std::string& ntlm_domain);

// Credentials acquired once per (user, mode) and kept for `max_age` (well inside the realm's
// ticket lifetime); a different password acquires anew (and so fails when it is wrong).
// Acquisition runs on a small blocking pool.
class credential_cache {
public:
    credential_cache(std::string realm, std::string ntlm_domain, std::size_t blocking_threads = 2,
                     std::chrono::seconds max_age = std::chrono::hours(1));
    ~credential_cache();

    credential_result get(const std::string& user, const std::string& password, initiator_mode mode);

    // Runs get() on the blocking pool and posts `done` to `ex`. With `service_host`, a
    // Kerberos credential also gets its ticket for HTTP@service_host there (the TGS exchange),
    // so that later handshakes with that host never reach the KDC from the caller's loop.
    void async_get(const std::string& user, const std::string& password, initiator_mode mode,
                   boost::asio::any_io_executor ex, std::function<void(credential_result)> done,
                   const std::string& service_host = {});

    // Waits for the acquisitions in flight (their handlers are posted by then). Call it before
    // the executors they post to are destroyed; async_get must not be called afterwards.
    void join();

    std::size_t size() const;

private:
    struct entry {
        std::string password_digest;
        std::shared_ptr<const user_credentials> credentials;
        std::chrono::steady_clock::time_point fresh_until;
    };
    std::string realm_, ntlm_domain_;
    std::chrono::seconds max_age_;
    mutable std::mutex mutex_;
    std::unordered_map<std::string, entry> entries_;
    boost::asio::thread_pool pool_;
};

// What a back-end accepts.
struct acceptor_config {
    std::string host;                         // HTTP@host is the service
    std::filesystem::path keytab;             // HTTP/<host> keys; may not exist (no Kerberos)
    std::filesystem::path ntlm_user_file;     // smbpasswd-format NT hashes of the domain's users
    std::vector<std::string> providers;       // "Negotiate", "NTLM"
    std::string realm;                        // Kerberos peers must belong to it
    std::string ntlm_domain;                  // NTLM peers must belong to it (or give none)
};

// Acceptor credentials for one back-end. Give each thread its own (MIT locks a Kerberos
// acceptor credential for the whole accept call).
class acceptor_credentials {
public:
    virtual ~acceptor_credentials() = default;
    // An acceptor for one handshake carried by `s`; nullptr when the back-end does not offer it.
    virtual std::unique_ptr<acceptor> make_acceptor(scheme s) = 0;
};

// Throws std::runtime_error at start-up when a credential cannot be acquired.
std::unique_ptr<acceptor_credentials> make_acceptor_credentials(const acceptor_config& config);

}  // namespace exsim::auth
