#include "exsim/auth/gss.hpp"

#include <algorithm>
#include <cstring>
#include <fstream>
#include <stdexcept>
#include <sys/mman.h>
#include <unistd.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <fmt/format.h>
#include <gssapi/gssapi.h>
#include <gssapi/gssapi_ext.h>
#include <gssapi/gssapi_krb5.h>
#include <gssapi/gssapi_ntlmssp.h>
#include <krb5/krb5.h>
#include <openssl/evp.h>

#include "exsim/auth/token_decoder.hpp"
#include "exsim/common/topology.hpp"

namespace exsim::auth {
namespace {

gss_OID_desc krb5_oid = {9, const_cast<char*>("\x2a\x86\x48\x86\xf7\x12\x01\x02\x02")};
gss_OID_desc ms_krb5_oid = {9, const_cast<char*>("\x2a\x86\x48\x82\xf7\x12\x01\x02\x02")};  // Windows clients
gss_OID_desc spnego_oid = {6, const_cast<char*>("\x2b\x06\x01\x05\x05\x02")};
gss_OID_desc ntlmssp_oid = {GSS_NTLMSSP_OID_LENGTH, const_cast<char*>(GSS_NTLMSSP_OID_STRING)};
gss_OID_desc neg_flags_oid = {GSS_NTLMSSP_NEG_FLAGS_OID_LENGTH, const_cast<char*>(GSS_NTLMSSP_NEG_FLAGS_OID_STRING)};

// NEGOTIATE flags for the NTLM acceptor that real clients (curl --ntlm) accept: without
// VERSION, ALWAYS_SIGN, SIGN and SEAL (docs/design.md section 3).
constexpr std::uint32_t interop_neg_flags = 0xE0003207;

bool same_oid(gss_const_OID a, const gss_OID_desc& b) {
    return a && a->length == b.length && std::memcmp(a->elements, b.elements, b.length) == 0;
}

mechanism mechanism_of(gss_const_OID oid) {
    if (same_oid(oid, krb5_oid) || same_oid(oid, ms_krb5_oid)) return mechanism::kerberos;
    if (same_oid(oid, ntlmssp_oid)) return mechanism::ntlm;
    return mechanism::none;
}

std::string status_text(OM_uint32 code, int type, gss_OID mech) {
    std::string out;
    OM_uint32 min = 0, ctx = 0;
    do {
        gss_buffer_desc buf = GSS_C_EMPTY_BUFFER;
        if (gss_display_status(&min, code, type, mech, &ctx, &buf) != GSS_S_COMPLETE) break;
        if (!out.empty()) out += "; ";
        out.append(static_cast<const char*>(buf.value), buf.length);
        gss_release_buffer(&min, &buf);
    } while (ctx != 0);
    return out;
}

std::string gss_error(const char* what, OM_uint32 maj, OM_uint32 min, gss_OID mech = GSS_C_NO_OID) {
    std::string minor = min ? status_text(min, GSS_C_MECH_CODE, mech) : "";
    return fmt::format("{}: {}{}{}", what, status_text(maj, GSS_C_GSS_CODE, GSS_C_NO_OID),
                       minor.empty() ? "" : ": ", minor);
}

struct name_deleter {
    void operator()(gss_name_struct* n) const {
        OM_uint32 min;
        gss_name_t h = n;
        gss_release_name(&min, &h);
    }
};
using name_ptr = std::unique_ptr<gss_name_struct, name_deleter>;

struct cred_deleter {
    void operator()(gss_cred_id_struct* c) const {
        OM_uint32 min;
        gss_cred_id_t h = c;
        gss_release_cred(&min, &h);
    }
};
using cred_ptr = std::unique_ptr<gss_cred_id_struct, cred_deleter>;

struct ctx_holder {
    gss_ctx_id_t handle = GSS_C_NO_CONTEXT;
    ctx_holder() = default;
    ctx_holder(const ctx_holder&) = delete;
    ctx_holder& operator=(const ctx_holder&) = delete;
    ~ctx_holder() {
        OM_uint32 min;
        if (handle != GSS_C_NO_CONTEXT) gss_delete_sec_context(&min, &handle, GSS_C_NO_BUFFER);
    }
};

name_ptr import_name(const std::string& text, gss_OID type) {
    OM_uint32 min;
    gss_buffer_desc buf{text.size(), const_cast<char*>(text.data())};
    gss_name_t out = GSS_C_NO_NAME;
    OM_uint32 maj = gss_import_name(&min, &buf, type, &out);
    if (GSS_ERROR(maj)) throw std::runtime_error(gss_error(("gss_import_name " + text).c_str(), maj, min));
    return name_ptr(out);
}

std::vector<std::uint8_t> take_buffer(gss_buffer_desc& buf) {
    OM_uint32 min;
    const auto* p = static_cast<const std::uint8_t*>(buf.value);
    std::vector<std::uint8_t> out(p, p + buf.length);
    gss_release_buffer(&min, &buf);
    return out;
}

step_result failed(std::string why) { return {step_status::failed, {}, std::move(why)}; }

// ---------------------------------------------------------------------------------------------
// Initiator

class gss_initiator final : public initiator {
public:
    gss_initiator(std::shared_ptr<const void> keep_alive, gss_cred_id_t cred, name_ptr target, gss_OID mech,
                  scheme s)
        : keep_alive_(std::move(keep_alive)), cred_(cred), target_(std::move(target)), mech_(mech), scheme_(s) {}

    scheme http_scheme() const override { return scheme_; }
    mechanism negotiated() const override { return negotiated_; }

    step_result step(std::span<const std::uint8_t> input) override {
        OM_uint32 min = 0;
        gss_buffer_desc in{input.size(), const_cast<std::uint8_t*>(input.data())};
        gss_buffer_desc out = GSS_C_EMPTY_BUFFER;
        gss_OID actual = GSS_C_NO_OID;
        const OM_uint32 flags = mech_ == &ntlmssp_oid ? 0 : GSS_C_MUTUAL_FLAG | GSS_C_REPLAY_FLAG | GSS_C_SEQUENCE_FLAG;
        OM_uint32 maj = gss_init_sec_context(&min, cred_, &ctx_.handle, target_.get(), mech_, flags, 0,
                                             GSS_C_NO_CHANNEL_BINDINGS, &in, &actual, &out, nullptr, nullptr);
        if (GSS_ERROR(maj)) {
            OM_uint32 m;
            gss_release_buffer(&m, &out);
            auto r = failed(gss_error("gss_init_sec_context", maj, min, actual));
            r.kdc_unreachable = min == static_cast<OM_uint32>(KRB5_KDC_UNREACH);  // the TGS exchange
            return r;
        }
        if (auto m = mechanism_of(actual); m != mechanism::none) negotiated_ = m;
        // SPNEGO names the mechanism only once complete; the acceptor's reply says it earlier.
        if (negotiated_ == mechanism::none && !input.empty())
            if (auto reply = decode_token(input); reply && !reply->chosen_mech.empty())
                negotiated_ = reply->chosen_mech == "ntlmssp" ? mechanism::ntlm : mechanism::kerberos;
        // SPNEGO reports SPNEGO itself until a mechanism is chosen; the first token of a raw
        // NTLM or a Kerberos-only exchange already tells.
        if (negotiated_ == mechanism::none && mech_ == &ntlmssp_oid) negotiated_ = mechanism::ntlm;
        return {maj & GSS_S_CONTINUE_NEEDED ? step_status::continue_needed : step_status::complete, take_buffer(out),
                {}};
    }

private:
    std::shared_ptr<const void> keep_alive_;  // the credentials this initiator borrows
    gss_cred_id_t cred_;
    name_ptr target_;
    gss_OID mech_;
    scheme scheme_;
    ctx_holder ctx_;
    mechanism negotiated_ = mechanism::none;
};

class gss_user_credentials final : public user_credentials,
                                   public std::enable_shared_from_this<gss_user_credentials> {
public:
    gss_user_credentials(std::string user, initiator_mode mode) : user_(std::move(user)), mode_(mode) {}
    ~gss_user_credentials() override {
        cred_.reset();  // the GSS credential refers to the ccache: release it first
        if (ccache_) krb5_cc_destroy(kctx_, ccache_);
        if (kctx_) krb5_free_context(kctx_);
    }

    const std::string& user() const override { return user_; }
    initiator_mode mode() const override { return mode_; }

    std::unique_ptr<initiator> make_initiator(const std::string& service_host) const override {
        auto target = import_name("HTTP@" + service_host, GSS_C_NT_HOSTBASED_SERVICE);
        const bool raw_ntlm = mode_ == initiator_mode::ntlm;
        return std::make_unique<gss_initiator>(shared_from_this(), cred_.get(), std::move(target),
                                               raw_ntlm ? &ntlmssp_oid : &spnego_oid,
                                               raw_ntlm ? scheme::ntlm : scheme::negotiate);
    }

    // Kerberos: the AS exchange with the password, into a fresh MEMORY ccache. The errors the
    // KDC gives (wrong password, unknown user, unreachable) are kept word for word.
    std::string get_ticket(const std::string& principal, const std::string& password) {
        if (krb5_error_code rc = krb5_init_context(&kctx_)) return fmt::format("krb5_init_context failed ({})", rc);
        krb5_principal client = nullptr;
        krb5_creds creds{};
        auto krb_error = [&](const char* what, krb5_error_code rc) {
            const char* msg = krb5_get_error_message(kctx_, rc);
            std::string s = fmt::format("{}: {}", what, msg);
            krb5_free_error_message(kctx_, msg);
            return s;
        };
        std::string error;
        if (auto rc = krb5_parse_name(kctx_, principal.c_str(), &client)) return krb_error("krb5_parse_name", rc);
        if (auto rc = krb5_get_init_creds_password(kctx_, &creds, client, password.c_str(), nullptr, nullptr, 0,
                                                   nullptr, nullptr)) {
            error = krb_error("Kerberos AS exchange", rc);
            as_error = rc;
        }
        else if (auto rc2 = krb5_cc_new_unique(kctx_, "MEMORY", nullptr, &ccache_))
            error = krb_error("krb5_cc_new_unique", rc2);
        else if (auto rc3 = krb5_cc_initialize(kctx_, ccache_, client))
            error = krb_error("krb5_cc_initialize", rc3);
        else if (auto rc4 = krb5_cc_store_cred(kctx_, ccache_, &creds))
            error = krb_error("krb5_cc_store_cred", rc4);
        krb5_free_cred_contents(kctx_, &creds);
        krb5_free_principal(kctx_, client);
        if (error.empty()) {
            const char* type = krb5_cc_get_type(kctx_, ccache_);
            ccache_name_ = fmt::format("{}:{}", type, krb5_cc_get_name(kctx_, ccache_));
        }
        return error;
    }

    // SPNEGO credentials hold the Kerberos ticket (ccache) and/or the NTLM password; both are
    // given explicitly so that nothing falls back to a default credential or a user file.
    std::string acquire(const std::string& name, gss_OID name_type, gss_OID mech, const std::string& password,
                        const std::string& ntlm_domain, bool with_ntlm) {
        auto n = import_name(name, name_type);
        std::vector<gss_key_value_element_desc> store;
        if (!ccache_name_.empty()) store.push_back({"ccache", ccache_name_.c_str()});
        if (with_ntlm) {
            store.push_back({GSS_NTLMSSP_CS_PASSWORD, password.c_str()});
            store.push_back({GSS_NTLMSSP_CS_DOMAIN, ntlm_domain.c_str()});
        }
        gss_key_value_set_desc set{static_cast<OM_uint32>(store.size()), store.data()};
        gss_OID_set_desc mechs{1, mech};
        OM_uint32 min = 0;
        gss_cred_id_t out = GSS_C_NO_CREDENTIAL;
        OM_uint32 maj = gss_acquire_cred_from(&min, n.get(), GSS_C_INDEFINITE, &mechs, GSS_C_INITIATE, &set, &out,
                                              nullptr, nullptr);
        if (GSS_ERROR(maj)) return gss_error("gss_acquire_cred_from", maj, min, mech);
        cred_.reset(out);
        if (mech != &spnego_oid) return {};
        // Narrow SPNEGO to exactly what this mode allows.
        gss_OID_desc allowed[2] = {krb5_oid, ntlmssp_oid};
        gss_OID_set_desc neg{0, allowed};
        if (mode_ != initiator_mode::ntlm) neg.count = 1;
        if (mode_ == initiator_mode::negotiate && with_ntlm) neg.count = 2;
        maj = gss_set_neg_mechs(&min, cred_.get(), &neg);
        if (GSS_ERROR(maj)) return gss_error("gss_set_neg_mechs", maj, min);
        return {};
    }

    krb5_error_code as_error = 0;  // of the AS exchange: why get_ticket failed, as a code

private:
    std::string user_;
    initiator_mode mode_;
    krb5_context kctx_ = nullptr;
    krb5_ccache ccache_ = nullptr;
    std::string ccache_name_;
    cred_ptr cred_;
};

std::string sha256_hex(const std::string& s) {
    unsigned char md[32];
    unsigned int len = 0;
    EVP_Digest(s.data(), s.size(), md, &len, EVP_sha256(), nullptr);
    std::string hex;
    for (unsigned i = 0; i < len; ++i) hex += fmt::format("{:02x}", md[i]);
    return hex;
}

// Negotiate credentials that hold only NTLM because the KDC could not be reached are kept this
// long, not max_age: Kerberos is tried again once the KDC is back.
constexpr auto without_kerberos_lifetime = std::chrono::seconds(10);

// acquire_user_credentials, also telling whether Negotiate had to do without Kerberos.
credential_result acquire_credentials(const std::string& user, const std::string& password, initiator_mode mode,
                                      const std::string& realm, const std::string& ntlm_domain,
                                      bool& without_kerberos) {
    without_kerberos = false;
    if (!common::is_valid_name(user)) return {nullptr, fmt::format("'{}' is not a valid user name", user)};
    auto creds = std::make_shared<gss_user_credentials>(user, mode);
    std::string error;
    try {
        switch (mode) {
            case initiator_mode::ntlm:
                // Raw NTLMSSP with "DOMAIN\user": the NTLM credential is the password itself.
                error = creds->acquire(ntlm_domain + "\\" + user, GSS_C_NT_USER_NAME, &ntlmssp_oid, password,
                                       ntlm_domain, true);
                break;
            case initiator_mode::kerberos:
            case initiator_mode::negotiate: {
                error = creds->get_ticket(user + "@" + realm, password);
                // Negotiate may still fall back to NTLM when the KDC cannot be reached; Kerberos may not.
                const bool kerberos_ok = error.empty();
                if (!kerberos_ok && mode == initiator_mode::kerberos) break;
                if (mode == initiator_mode::negotiate && creds->as_error == KRB5KDC_ERR_PREAUTH_FAILED)
                    break;  // a wrong password is not a reason to try NTLM
                without_kerberos = !kerberos_ok;
                // Negotiate needs a name both mechanisms import: "alice" is alice@<default realm>
                // for Kerberos (our krb5.conf's) and alice in ntlm_domain for NTLM.
                const bool kerberos_only = mode == initiator_mode::kerberos;
                error = creds->acquire(kerberos_only ? user + "@" + realm : user,
                                       kerberos_only ? GSS_KRB5_NT_PRINCIPAL_NAME : GSS_C_NT_USER_NAME, &spnego_oid,
                                       password, ntlm_domain, !kerberos_only);
                break;
            }
        }
    } catch (const std::exception& e) {
        error = e.what();
    }
    if (!error.empty()) {
        credential_result r{nullptr, fmt::format("credentials for {} ({}): {}", user, mode_name(mode), error)};
        r.kdc_unreachable = creds->as_error == KRB5_KDC_UNREACH;
        return r;
    }
    return {std::move(creds), {}};
}

}  // namespace

credential_result acquire_user_credentials(const std::string& user, const std::string& password,
                                           initiator_mode mode, const std::string& realm,
                                           const std::string& ntlm_domain) {
    bool without_kerberos = false;
    return acquire_credentials(user, password, mode, realm, ntlm_domain, without_kerberos);
}

credential_cache::credential_cache(std::string realm, std::string ntlm_domain, std::size_t blocking_threads,
                                   std::chrono::seconds max_age)
    : realm_(std::move(realm)), ntlm_domain_(std::move(ntlm_domain)), max_age_(max_age), pool_(blocking_threads) {}

credential_cache::~credential_cache() { join(); }

void credential_cache::join() { pool_.join(); }

credential_result credential_cache::get(const std::string& user, const std::string& password, initiator_mode mode) {
    const auto key = fmt::format("{}/{}", mode_name(mode), user);
    const auto digest = sha256_hex(user + '\0' + password);
    {
        std::lock_guard lock(mutex_);
        auto it = entries_.find(key);
        if (it != entries_.end() && it->second.password_digest == digest &&
            it->second.fresh_until > std::chrono::steady_clock::now())
            return {it->second.credentials, {}, it->second.fresh_until};
    }
    // Acquire outside the lock: the AS exchange takes milliseconds. Two concurrent first requests
    // for one user may both acquire; the later simply replaces the earlier.
    bool without_kerberos = false;
    auto result = acquire_credentials(user, password, mode, realm_, ntlm_domain_, without_kerberos);
    if (result.credentials) {
        const auto lifetime =
            without_kerberos ? std::min<std::chrono::seconds>(max_age_, without_kerberos_lifetime) : max_age_;
        result.fresh_until = std::chrono::steady_clock::now() + lifetime;
        std::lock_guard lock(mutex_);
        entries_[key] = {digest, result.credentials, result.fresh_until};
    }
    return result;
}

void credential_cache::async_get(const std::string& user, const std::string& password, initiator_mode mode,
                                 boost::asio::any_io_executor ex, std::function<void(credential_result)> done,
                                 const std::string& service_host) {
    // The work guard keeps the caller's event loop alive while the acquisition is outstanding.
    auto work = boost::asio::make_work_guard(ex);
    boost::asio::post(pool_, [this, user, password, mode, service_host, work = std::move(work),
                              done = std::move(done)]() mutable {
        auto result = get(user, password, mode);
        if (result.credentials && mode != initiator_mode::ntlm && !service_host.empty()) {
            auto first = result.credentials->make_initiator(service_host)->step({});
            if (first.status == step_status::failed) result = {nullptr, first.error, {}, first.kdc_unreachable};
        }
        boost::asio::post(work.get_executor(),
                          [done = std::move(done), result = std::move(result)]() mutable { done(std::move(result)); });
        work.reset();
    });
}

std::size_t credential_cache::size() const {
    std::lock_guard lock(mutex_);
    return entries_.size();
}

// -------------------------------------------------------------------------------------------------
// Acceptor

namespace {

// A one-line key file in memory (memfd), visible to gss-ntlmssp as /proc/self/fd/N.
class memory_key_file {
public:
    explicit memory_key_file(const std::string& content) {
        fd_ = memfd_create("exsim-ntlm-key", MFD_CLOEXEC);
        if (fd_ < 0) throw std::runtime_error("memfd_create failed");
        if (!content.empty() && write(fd_, content.data(), content.size()) != static_cast<ssize_t>(content.size())) {
            close(fd_);
            throw std::runtime_error("writing an NTLM key line failed");
        }
        path_ = fmt::format("/proc/self/fd/{}", fd_);
    }
    memory_key_file(const memory_key_file&) = delete;
    memory_key_file& operator=(const memory_key_file&) = delete;
    ~memory_key_file() { close(fd_); }
    const std::string& path() const { return path_; }

private:
    int fd_ = -1;
    std::string path_;
};

std::string lower(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
    return s;
}

class gss_acceptor_credentials;

class gss_acceptor final : public acceptor {
public:
    gss_acceptor(gss_acceptor_credentials& owner, scheme s) : owner_(owner), scheme_(s) {}
    step_result step(std::span<const std::uint8_t> input) override;
    const std::string& peer() const override { return peer_; }
    mechanism negotiated() const override { return mech_; }

private:
    gss_acceptor_credentials& owner_;
    scheme scheme_;
    ctx_holder ctx_;
    std::string peer_;
    mechanism mech_ = mechanism::none;
};

class gss_acceptor_credentials final : public acceptor_credentials {
public:
    explicit gss_acceptor_credentials(acceptor_config cfg) : cfg_(std::move(cfg)) {
        load_ntlm_users();
        service_ = import_name("HTTP@" + cfg_.host, GSS_C_NT_HOSTBASED_SERVICE);
        auto offers = [&](const char* p) {
            return std::find(cfg_.providers.begin(), cfg_.providers.end(), p) != cfg_.providers.end();
        };
        negotiate_ = offers("Negotiate");
        ntlm_ = offers("NTLM");
        // The long-lived credentials point at the whole user file: should the one-line fast path
        // in step() ever stop being used, acceptance stays correct, only slower.
        if (negotiate_) spnego_cred_ = acquire(&spnego_oid, cfg_.ntlm_user_file.string(), true);
        if (ntlm_) ntlm_cred_ = acquire(&ntlmssp_oid, cfg_.ntlm_user_file.string(), true);
    }

    std::unique_ptr<acceptor> make_acceptor(scheme s) override {
        if ((s == scheme::negotiate && !negotiate_) || (s == scheme::ntlm && !ntlm_)) return nullptr;
        return std::make_unique<gss_acceptor>(*this, s);
    }

    gss_cred_id_t base_cred(scheme s) const { return s == scheme::negotiate ? spnego_cred_.get() : ntlm_cred_.get(); }

    // A credential that knows only the user named in an NTLM AUTHENTICATE: gss-ntlmssp scans its
    // key file line by line on every AUTHENTICATE (tens of ms at 10,000 users: see
    // bench/README.md), a one-line file costs microseconds. An unknown user, or a foreign domain, gets an empty file and so fails.
    struct one_user_cred {
        std::unique_ptr<memory_key_file> file;
        cred_ptr cred;
    };
    one_user_cred cred_for(scheme s, const std::string& user, const std::string& domain) {
        std::string line;
        if (domain.empty() || lower(domain) == lower(cfg_.ntlm_domain))
            if (auto it = ntlm_lines_.find(lower(user)); it != ntlm_lines_.end()) line = it->second;
        one_user_cred out;
        out.file = std::make_unique<memory_key_file>(line);
        out.cred = acquire(s == scheme::negotiate ? &spnego_oid : &ntlmssp_oid, out.file->path(), false);
        return out;
    }

    const acceptor_config& config() const { return cfg_; }

private:
    void load_ntlm_users() {
        std::ifstream in(cfg_.ntlm_user_file);
        if (!in) throw std::runtime_error(fmt::format("NTLM user file {} cannot be read", cfg_.ntlm_user_file.string()));
        std::string line;
        while (std::getline(in, line)) {
            auto slash = line.find('\\');
            auto colon = line.find(':');
            if (slash == std::string::npos || colon == std::string::npos || colon < slash) continue;
            ntlm_lines_[lower(line.substr(slash + 1, colon - slash - 1))] = line + "\n";
        }
    }

    cred_ptr acquire(gss_OID mech, const std::string& key_file, bool with_keytab) {
        std::vector<gss_key_value_element_desc> store{{GSS_NTLMSSP_CS_KEYFILE, key_file.c_str()}};
        const std::string keytab = cfg_.keytab.string();
        if (mech == &spnego_oid && with_keytab && std::filesystem::exists(cfg_.keytab))
            store.push_back({"keytab", keytab.c_str()});
        gss_key_value_set_desc set{static_cast<OM_uint32>(store.size()), store.data()};
        gss_OID_set_desc mechs{1, mech};
        OM_uint32 min = 0;
        gss_cred_id_t out = GSS_C_NO_CREDENTIAL;
        OM_uint32 maj = gss_acquire_cred_from(&min, service_.get(), GSS_C_INDEFINITE, &mechs, GSS_C_ACCEPT, &set, &out,
                                              nullptr, nullptr);
        if (GSS_ERROR(maj))
            throw std::runtime_error(gss_error(fmt::format("acceptor credential for HTTP@{}", cfg_.host).c_str(), maj, min));
        cred_ptr cred(out);
        if (mech == &spnego_oid) {
            // Offer through SPNEGO only what the back-end's providers allow.
            gss_OID_desc allowed[2] = {krb5_oid, ntlmssp_oid};
            gss_OID_set_desc neg{ntlm_ ? 2u : 1u, allowed};
            maj = gss_set_neg_mechs(&min, cred.get(), &neg);
            if (GSS_ERROR(maj)) throw std::runtime_error(gss_error("gss_set_neg_mechs (acceptor)", maj, min));
        } else {
            std::uint32_t flags = interop_neg_flags;
            gss_buffer_desc value{sizeof flags, &flags};
            maj = gss_set_cred_option(&min, &out, &neg_flags_oid, &value);
            if (GSS_ERROR(maj)) throw std::runtime_error(gss_error("NTLM negotiate flags", maj, min));
        }
        return cred;
    }

    acceptor_config cfg_;
    bool negotiate_ = false, ntlm_ = false;
    name_ptr service_;
    cred_ptr spnego_cred_, ntlm_cred_;
    std::unordered_map<std::string, std::string> ntlm_lines_;  // lower-case user -> smbpasswd line
};

step_result gss_acceptor::step(std::span<const std::uint8_t> input) {
    std::vector<std::uint8_t> padded;
    // curl and other common clients send a 32-byte NEGOTIATE without the Version field, which
    // gss-ntlmssp rejects; the missing field is optional in MS-NLMP, so pad it with zeros.
    if (scheme_ == scheme::ntlm && input.size() == 32 && std::memcmp(input.data(), "NTLMSSP\0\1\0\0\0", 12) == 0) {
        padded.assign(input.begin(), input.end());
        padded.resize(40, 0);
        input = padded;
    }
    gss_cred_id_t cred = owner_.base_cred(scheme_);
    gss_acceptor_credentials::one_user_cred one_user;
    // One decode per token: an NTLM AUTHENTICATE (raw or inside SPNEGO) is accepted with a
    // credential holding only the user it names; one whose names are refused (anonymous,
    // control characters, broken UTF-16) never reaches the whole-file credential.
    if (auto decoded = decode_token(input); decoded && decoded->ntlm && decoded->ntlm->type == 3) {
        const auto& auth = *decoded->ntlm;
        if (!acceptable_ntlm_names(auth)) return failed("NTLM AUTHENTICATE without an acceptable user name");
        try {
            one_user = owner_.cred_for(scheme_, auth.user, auth.domain);
        } catch (const std::exception& e) {
            return failed(e.what());
        }
        cred = one_user.cred.get();
    }

    OM_uint32 min = 0, flags = 0;
    gss_buffer_desc in{input.size(), const_cast<std::uint8_t*>(input.data())};
    gss_buffer_desc out = GSS_C_EMPTY_BUFFER;
    gss_name_t src = GSS_C_NO_NAME;
    gss_OID mech = GSS_C_NO_OID;
    OM_uint32 maj = gss_accept_sec_context(&min, &ctx_.handle, cred, &in, GSS_C_NO_CHANNEL_BINDINGS, &src, &mech,
                                           &out, &flags, nullptr, nullptr);
    name_ptr source(src);
    if (auto m = mechanism_of(mech); m != mechanism::none) mech_ = m;
    if (scheme_ == scheme::ntlm) mech_ = mechanism::ntlm;
    if (GSS_ERROR(maj)) {
        OM_uint32 m;
        gss_release_buffer(&m, &out);
        return failed(gss_error("gss_accept_sec_context", maj, min, mech));
    }
    auto token = take_buffer(out);
    if (maj & GSS_S_CONTINUE_NEEDED) return {step_status::continue_needed, std::move(token), {}};
    if (flags & GSS_C_ANON_FLAG) return failed("anonymous authentication is not accepted");

    gss_buffer_desc display = GSS_C_EMPTY_BUFFER;
    maj = gss_display_name(&min, source.get(), &display, nullptr);
    if (GSS_ERROR(maj)) return failed(gss_error("gss_display_name", maj, min));
    std::string name(static_cast<const char*>(display.value), display.length);
    gss_release_buffer(&min, &display);
    if (auto nul = name.find('\0'); nul != std::string::npos) name.resize(nul);  // gss-ntlmssp counts the NUL

    // "alice@EXSIM.TEST" (Kerberos) or "EXSIM\alice" / "alice" (NTLM): the realm or domain must
    // be ours, and what remains must be a directory name.
    const auto& cfg = owner_.config();
    std::string user = name;
    if (mech_ == mechanism::kerberos) {
        auto at = name.rfind('@');
        if (at == std::string::npos || name.substr(at + 1) != cfg.realm)
            return failed(fmt::format("Kerberos principal {} is not in realm {}", name, cfg.realm));
        user = name.substr(0, at);
    } else if (auto slash = name.find('\\'); slash != std::string::npos) {
        if (lower(name.substr(0, slash)) != lower(cfg.ntlm_domain))
            return failed(fmt::format("NTLM user {} is not in domain {}", name, cfg.ntlm_domain));
        user = name.substr(slash + 1);
    }
    user = lower(user);
    if (!common::is_valid_name(user)) return failed(fmt::format("'{}' is not a directory user name", name));
    peer_ = user;
    return {step_status::complete, std::move(token), {}};
}

}  // namespace

std::unique_ptr<acceptor_credentials> make_acceptor_credentials(const acceptor_config& config) {
    return std::make_unique<gss_acceptor_credentials>(config);
}

}  // namespace exsim::auth
