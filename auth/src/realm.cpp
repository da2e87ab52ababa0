#include "exsim/auth/realm.hpp"

#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include <fmt/format.h>
#include <openssl/evp.h>
#include <openssl/provider.h>

#include "exsim/common/log.hpp"
#include "exsim/common/net.hpp"

namespace exsim::auth {
namespace fs = std::filesystem;
using clock_type = std::chrono::steady_clock;

namespace {

std::chrono::milliseconds since(clock_type::time_point t0) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(clock_type::now() - t0);
}

fs::path require_program(const std::string& name, const char* package) {
    if (auto p = common::find_program(name)) return *p;
    throw realm_error(fmt::format("'{}' was not found on PATH or in /usr/sbin: install the Debian package {} "
                                  "(scripts/bootstrap.sh does)", name, package));
}

std::string read_file(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

void write_file(const fs::path& p, const std::string& text) {
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    out << text;
    if (!out) throw realm_error(fmt::format("cannot write {}", p.string()));
}

std::string random_hex(std::size_t bytes) {
    std::random_device rd;
    std::string s;
    for (std::size_t i = 0; i < bytes; ++i) s += fmt::format("{:02x}", rd() & 0xff);
    return s;
}

// The kadmin tools need the KDC profile; nothing else of ours is relevant to them.
std::map<std::string, std::string> admin_env(const realm_paths& p) {
    return {{"KRB5_CONFIG", p.krb5_conf().string()}, {"KRB5_KDC_PROFILE", p.kdc_conf().string()}};
}

}  // namespace

std::string nt_hash_hex(const std::string& password) {
    // MD4 lives in OpenSSL 3's legacy provider; load it into a private library context so the
    // rest of the process keeps the default provider set.
    static OSSL_LIB_CTX* ctx = [] {
        auto* c = OSSL_LIB_CTX_new();
        if (!c || !OSSL_PROVIDER_load(c, "legacy"))
            throw realm_error("OpenSSL's legacy provider (MD4, needed for NT hashes) cannot be loaded");
        return c;
    }();
    EVP_MD* md = EVP_MD_fetch(ctx, "MD4", nullptr);
    if (!md) throw realm_error("OpenSSL has no MD4 in its legacy provider");
    std::string utf16;  // demo passwords are ASCII (checked by the directory loader)
    for (char c : password) {
        utf16 += c;
        utf16 += '\0';
    }
    unsigned char digest[16];
    unsigned int len = 0;
    int ok = EVP_Digest(utf16.data(), utf16.size(), digest, &len, md, nullptr);
    EVP_MD_free(md);
    if (!ok || len != 16) throw realm_error("MD4 digest failed");
    std::string hex;
    for (auto b : digest) hex += fmt::format("{:02X}", b);
    return hex;
}

std::string smbpasswd_line(const std::string& domain, const std::string& user, std::uint32_t uid,
                           const std::string& hash) {
    return fmt::format("{}\\{}:{}:XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX:{}:[U          ]:LCT-00000000:\n", domain, user,
                       uid, hash);
}

fs::path ntlmssp_module() {
    for (const char* p : {"/usr/lib/x86_64-linux-gnu/gssntlmssp/gssntlmssp.so",
                          "/usr/lib/aarch64-linux-gnu/gssntlmssp/gssntlmssp.so", "/usr/lib/gssntlmssp/gssntlmssp.so"})
        if (fs::exists(p)) return p;
    throw realm_error("gssntlmssp.so was not found: install the Debian package gss-ntlmssp");
}

namespace {

// What the realm is made of, and nothing else: realm, domain, users and passwords, back-end
// names and hosts. Any other setting (providers, homes, delegates, the front-end) changes
// nothing in it, so it must not recreate it under a running KDC.
std::string realm_identity(const common::topology& t) {
    std::string s = fmt::format("realm {}\ndomain {}\n", t.realm, t.ntlm_domain);
    for (const auto& b : t.backends) s += fmt::format("backend {} {}\n", b.name, b.host);
    for (const auto& u : t.users) s += fmt::format("user {} {}\n", u.name, u.password);
    return s;
}

}  // namespace

realm::realm(const common::topology& t, const fs::path& state_dir)
    : realm_name_(t.realm), ntlm_domain_(t.ntlm_domain) {
    paths_.root = fs::absolute(state_dir) / "realm";
    for (const auto& b : t.backends) hosts_.push_back(b.host);
}

realm realm::create(const common::topology& t, const fs::path& state_dir) {
    realm r(t, state_dir);
    const auto& p = r.paths_;
    const auto identity = realm_identity(t);
    const auto kdb5_util = require_program("kdb5_util", "krb5-kdc");
    const auto kadmin = require_program("kadmin.local", "krb5-admin-server");
    require_program("krb5kdc", "krb5-kdc");
    const auto module = ntlmssp_module();

    if (fs::exists(p.stash()) && fs::exists(p.identity_file()) && read_file(p.identity_file()) == identity) {
        r.timings_.reused = true;
        return r;
    }
    fs::remove_all(p.root);
    fs::create_directories(p.rcache_dir());
    fs::permissions(p.root, fs::perms::owner_all, fs::perm_options::replace);
    write_file(p.acl(), fmt::format("*/admin@{} *\n", t.realm));
    write_file(p.mech_file(), fmt::format("gssntlmssp_v1 1.3.6.1.4.1.311.2.2.10 {}\n", module.string()));
    r.write_configs(0);

    auto t0 = clock_type::now();
    auto res = common::run_program(kdb5_util, {"create", "-s", "-r", t.realm, "-P", random_hex(16), "-W"},
                                   admin_env(p));
    if (res.exit_code != 0) throw realm_error(fmt::format("kdb5_util create failed: {}", res.output));
    r.timings_.database = since(t0);

    // One kadmin.local for every principal and keytab: a process per user would take minutes.
    t0 = clock_type::now();
    std::string script;
    for (const auto& u : t.users) script += fmt::format("addprinc -pw \"{}\" {}\n", u.password, u.name);
    for (const auto& b : t.backends) {
        script += fmt::format("addprinc -randkey HTTP/{}\n", b.host);
        script += fmt::format("ktadd -k {} HTTP/{}\n", p.keytab(b.name).string(), b.host);
    }
    res = common::run_program(kadmin, {"-r", t.realm}, admin_env(p), script);
    std::size_t created = 0;
    for (std::size_t pos = 0; (pos = res.output.find("\" created.", pos)) != std::string::npos; ++pos) ++created;
    const std::size_t expected = t.users.size() + t.backends.size();
    if (res.exit_code != 0 || created != expected) {
        auto err = res.output.find("add_principal:");
        throw realm_error(fmt::format("kadmin.local created {} of {} principals: {}", created, expected,
                                      err == std::string::npos ? res.output.substr(0, 400)
                                                               : res.output.substr(err, res.output.find('\n', err) - err)));
    }
    for (const auto& b : t.backends)
        if (!fs::exists(p.keytab(b.name))) throw realm_error(fmt::format("ktadd did not write {}", p.keytab(b.name).string()));
    r.timings_.principals = since(t0);

    t0 = clock_type::now();
    std::map<std::string, std::string> hashes;
    for (const auto& u : t.users) hashes[u.name] = nt_hash_hex(u.password);
    for (const auto& b : t.backends) {
        std::string lines;
        std::uint32_t uid = 1000;
        // Every domain user can log on to every back-end, as in a Windows domain; the mailbox
        // API decides what each may open. The acceptor looks one line up in memory, so the
        // file's length costs nothing per handshake.
        for (const auto& u : t.users) lines += smbpasswd_line(t.ntlm_domain, u.name, uid++, hashes.at(u.name));
        write_file(p.ntlm_user_file(b.name), lines);
    }
    r.timings_.ntlm_files = since(t0);
    write_file(p.identity_file(), identity);
    return r;
}

void realm::write_configs(std::uint16_t port) const {
    const auto& p = paths_;
    std::string domain_realm;
    for (const auto& h : hosts_) domain_realm += fmt::format("    {} = {}\n", h, realm_name_);
    write_file(p.krb5_conf(), fmt::format(R"([libdefaults]
    default_realm = {0}
    dns_lookup_kdc = false
    dns_lookup_realm = false
    dns_canonicalize_hostname = false
    rdns = false
    ignore_acceptor_hostname = false
    permitted_enctypes = aes256-cts-hmac-sha1-96 aes128-cts-hmac-sha1-96

[realms]
    {0} = {{
        kdc = 127.0.0.1:{1}
    }}

[domain_realm]
{2})", realm_name_, port, domain_realm));
    write_file(p.kdc_conf(), fmt::format(R"([kdcdefaults]
    kdc_listen = 127.0.0.1:{1}
    kdc_tcp_listen = 127.0.0.1:{1}

[realms]
    {0} = {{
        database_name = {2}
        key_stash_file = {3}
        acl_file = {4}
        # One enctype: creating a principal derives a key per enctype from the password
        # (PBKDF2, 89 % of kadmin's time), so a second one would double realm creation time.
        supported_enctypes = aes256-cts-hmac-sha1-96:normal
        default_principal_flags = +preauth
        max_life = 24h
    }}

[logging]
    kdc = FILE:{5}
)", realm_name_, port, p.database().string(), p.stash().string(), p.acl().string(), p.kdc_log().string()));
}

void realm::start_kdc(std::uint16_t port) {
    const auto krb5kdc = require_program("krb5kdc", "krb5-kdc");
    const bool fixed = port != 0;
    auto log = common::logger("realm");
    for (int attempt = 0; attempt < 5; ++attempt) {
        std::uint16_t try_port = fixed ? port : common::pick_free_port();
        if (common::tcp_port_open(try_port)) {
            if (fixed) throw realm_error(fmt::format("KDC port 127.0.0.1:{} is already taken", try_port));
            continue;
        }
        write_configs(try_port);
        fs::remove(paths_.kdc_log());
        kdc_ = common::child_process::start(krb5kdc, {"-n", "-P", paths_.kdc_pid().string()}, admin_env(paths_),
                                            paths_.root / "krb5kdc.stderr");
        auto deadline = clock_type::now() + std::chrono::seconds(10);
        while (clock_type::now() < deadline && kdc_.running() && !common::tcp_port_open(try_port))
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        auto kdc_output = read_file(paths_.kdc_log()) + read_file(paths_.root / "krb5kdc.stderr");
        const bool bind_failed = kdc_output.find("Cannot bind") != std::string::npos ||
                                 kdc_output.find("Address already in use") != std::string::npos;
        if (kdc_.running() && !bind_failed && common::tcp_port_open(try_port)) {
            kdc_port_ = try_port;
            log->info("krb5kdc (pid {}) serves realm {} on 127.0.0.1:{}", kdc_.pid(), realm_name_, try_port);
            return;
        }
        kdc_.stop();
        if (fixed && bind_failed) throw realm_error(fmt::format("KDC port 127.0.0.1:{} is already taken", try_port));
        if (!bind_failed)
            throw realm_error(fmt::format("krb5kdc did not start: {}", kdc_output.empty() ? "no output" : kdc_output));
        log->warn("KDC port {} was taken between picking and binding; trying another", try_port);
    }
    throw realm_error("krb5kdc could not bind a free port on 127.0.0.1 after 5 attempts");
}

void realm::stop_kdc() {
    if (kdc_.pid() > 0) common::logger("realm")->info("stopping krb5kdc (pid {})", kdc_.pid());
    kdc_.stop();
    kdc_port_ = 0;
}

bool realm::kdc_running() { return kdc_.running(); }

realm::~realm() { kdc_.stop(); }

realm realm::open(const common::topology& t, const std::filesystem::path& state_dir) {
    realm r(t, state_dir);
    for (const auto& f : {r.paths_.krb5_conf(), r.paths_.mech_file()})
        if (!fs::exists(f))
            throw realm_error(fmt::format("{} is missing: run `exsim realm` or `exsim up` with this --state-dir first",
                                          f.string()));
    r.timings_.reused = true;
    return r;
}

std::map<std::string, std::string> realm::client_environment() const {
    return {{"KRB5_CONFIG", paths_.krb5_conf().string()}, {"GSS_MECH_CONFIG", paths_.mech_file().string()}};
}

void realm::apply_environment() const {
    for (const auto& [k, v] : client_environment()) setenv(k.c_str(), v.c_str(), 1);
    setenv("KRB5RCACHEDIR", paths_.rcache_dir().c_str(), 1);
    // Never fall back to a ticket or keytab of whoever runs exsim: a default credential is how
    // the wrong user gets authenticated silently (docs/design.md section 3).
    setenv("KRB5CCNAME", "MEMORY:exsim-default", 1);
    setenv("KRB5_CLIENT_KTNAME", "MEMORY:exsim-client", 1);
    setenv("KRB5_KTNAME", "MEMORY:exsim-none", 1);
    // Without these gss-ntlmssp asks winbind on every new context (slow, and racy).
    setenv("NETBIOS_COMPUTER_NAME", "EXSIMSRV", 1);
    setenv("NETBIOS_DOMAIN_NAME", ntlm_domain_.c_str(), 1);
    unsetenv("NTLM_USER_FILE");
}

}  // namespace exsim::auth
