#pragma once
// A private MIT Kerberos realm in the state folder, and the real krb5kdc that serves it on
// 127.0.0.1. Nothing under /etc is read or written: every file is selected through KRB5_CONFIG,
// KRB5_KDC_PROFILE and friends (see apply_environment).

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "exsim/common/process.hpp"
#include "exsim/common/topology.hpp"

namespace exsim::auth {

class realm_error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

struct realm_paths {
    std::filesystem::path root;  // <state>/realm
    std::filesystem::path krb5_conf() const { return root / "krb5.conf"; }
    std::filesystem::path kdc_conf() const { return root / "kdc.conf"; }
    std::filesystem::path mech_file() const { return root / "gss-mech.conf"; }
    std::filesystem::path database() const { return root / "principal"; }
    std::filesystem::path stash() const { return root / "stash"; }
    std::filesystem::path acl() const { return root / "kadm5.acl"; }
    std::filesystem::path rcache_dir() const { return root / "rcache"; }
    std::filesystem::path kdc_log() const { return root / "krb5kdc.log"; }
    std::filesystem::path kdc_pid() const { return root / "krb5kdc.pid"; }
    // What the realm was made from (realm, domain, users, passwords, hosts): reused when equal.
    std::filesystem::path identity_file() const { return root / "identity"; }
    std::filesystem::path keytab(const std::string& backend) const { return root / ("http-" + backend + ".keytab"); }
    // One back-end's smbpasswd-format NT-hash file of every domain user (NTLM acceptor).
    std::filesystem::path ntlm_user_file(const std::string& backend) const { return root / ("ntlm-" + backend + ".smbpasswd"); }
};

struct realm_timings {
    std::chrono::milliseconds database{0}, principals{0}, keytabs{0}, ntlm_files{0};
    bool reused = false;  // an existing realm for the same directory was kept
};

class realm {
public:
    // Creates the realm for `t` under state_dir/realm (or keeps an existing one that was made
    // from the same directory). Throws realm_error naming the missing binary or failed step.
    static realm create(const common::topology& t, const std::filesystem::path& state_dir);

    // The client side of a realm another process made in state_dir (krb5.conf naming its KDC,
    // the GSS mech file): never creates nor changes anything. Throws realm_error when missing.
    static realm open(const common::topology& t, const std::filesystem::path& state_dir);

    realm(realm&&) = default;
    realm& operator=(realm&&) = default;
    ~realm();

    // Starts krb5kdc in the foreground as a direct child, bound to 127.0.0.1 on a free port
    // (or `port` when non-zero), and waits until it accepts connections. Throws realm_error
    // when the port is taken or the KDC exits.
    void start_kdc(std::uint16_t port = 0);
    void stop_kdc();  // SIGTERM and reap: no zombie
    bool kdc_running();
    std::uint16_t kdc_port() const { return kdc_port_; }
    pid_t kdc_pid() const { return kdc_.pid(); }

    const realm_paths& paths() const { return paths_; }
    const realm_timings& timings() const { return timings_; }
    const std::string& name() const { return realm_name_; }

    // Variables a client of this realm needs (KRB5_CONFIG, GSS_MECH_CONFIG, ...). Never
    // includes NTLM_USER_FILE: in a client's environment it silently logs in as its first user.
    std::map<std::string, std::string> client_environment() const;

    // Sets this process's environment for the realm (client variables, replay cache, NetBIOS
    // names, an in-memory default ccache) and removes NTLM_USER_FILE. Call before any GSSAPI use.
    void apply_environment() const;

private:
    realm(const common::topology& t, const std::filesystem::path& state_dir);
    void write_configs(std::uint16_t port) const;

    realm_paths paths_;
    std::string realm_name_;
    std::string ntlm_domain_;
    std::vector<std::string> hosts_;
    realm_timings timings_;
    std::uint16_t kdc_port_ = 0;
    common::child_process kdc_;
};

// The NT hash (MD4 of the UTF-16LE password) as 32 upper-case hex digits.
std::string nt_hash_hex(const std::string& password);

// One smbpasswd line, the format gss-ntlmssp reads without leaking (docs/design.md section 3).
std::string smbpasswd_line(const std::string& domain, const std::string& user, std::uint32_t uid,
                           const std::string& nt_hash_hex);

// Path of the gss-ntlmssp module, or throws realm_error when the package is missing.
std::filesystem::path ntlmssp_module();

}  // namespace exsim::auth
