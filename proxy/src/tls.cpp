#include "exsim/proxy/tls.hpp"

#include <cerrno>
#include <ctime>
#include <memory>
#include <stdexcept>
#include <system_error>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

namespace exsim::proxy {
namespace {

template <auto free_fn>
struct openssl_deleter {
    template <typename T>
    void operator()(T* p) const { free_fn(p); }
};
using pkey_ptr = std::unique_ptr<EVP_PKEY, openssl_deleter<EVP_PKEY_free>>;
using x509_ptr = std::unique_ptr<X509, openssl_deleter<X509_free>>;
using bio_ptr = std::unique_ptr<BIO, openssl_deleter<BIO_free>>;
using bn_ptr = std::unique_ptr<BIGNUM, openssl_deleter<BN_free>>;
using asn1_string_ptr = std::unique_ptr<ASN1_STRING, openssl_deleter<ASN1_STRING_free>>;
using general_names_ptr = std::unique_ptr<GENERAL_NAMES, openssl_deleter<GENERAL_NAMES_free>>;

constexpr long validity_seconds = 365L * 24 * 60 * 60;

// Every reason in OpenSSL's error queue, oldest first (the oldest is usually the root cause,
// e.g. "No such file or directory"), and empties the queue.
std::string openssl_errors() {
    std::string text;
    while (const unsigned long code = ERR_get_error()) {
        char buffer[256];
        ERR_error_string_n(code, buffer, sizeof buffer);
        if (!text.empty()) text += "; ";
        text += buffer;
    }
    return text.empty() ? "unknown OpenSSL error" : text;
}

[[noreturn]] void fail(const std::string& what, const std::filesystem::path& file) {
    throw std::runtime_error(what + " " + file.string() + ": " + openssl_errors());
}

x509_ptr read_certificate(const std::filesystem::path& file) {
    const bio_ptr bio(BIO_new_file(file.c_str(), "r"));
    return x509_ptr(bio ? PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr) : nullptr);
}

pkey_ptr read_private_key(const std::filesystem::path& file) {
    const bio_ptr bio(BIO_new_file(file.c_str(), "r"));
    return pkey_ptr(bio ? PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr) : nullptr);
}

bool covers(X509* cert, const std::string& name) {
    if (X509_check_ip_asc(cert, name.c_str(), 0) == 1) return true;
    return X509_check_host(cert, name.data(), name.size(), X509_CHECK_FLAG_NO_WILDCARDS, nullptr) == 1;
}

// True when the existing pair can be kept: both load, they match, the certificate is still
// valid a day from now (so it does not expire under a running proxy) and it names every name.
bool reusable(const tls_files& files, const std::vector<std::string>& names) {
    const auto cert = read_certificate(files.certificate);
    const auto key = read_private_key(files.private_key);
    bool ok = cert && key && X509_check_private_key(cert.get(), key.get()) == 1;
    if (ok) {
        std::time_t tomorrow = std::time(nullptr) + 24 * 60 * 60;
        ok = X509_cmp_time(X509_get0_notAfter(cert.get()), &tomorrow) > 0;
    }
    for (std::size_t i = 0; ok && i < names.size(); ++i) ok = covers(cert.get(), names[i]);
    ERR_clear_error();  // the failed reads above leave reasons that are not errors here
    return ok;
}

x509_ptr make_certificate(EVP_PKEY* key, const std::vector<std::string>& names) {
    x509_ptr cert(X509_new());
    const bn_ptr serial(BN_new());
    const general_names_ptr alt_names(GENERAL_NAMES_new());
    if (!cert || !serial || !alt_names) return nullptr;
    // A random 159-bit serial: positive, at most 20 octets, and unique between regenerations
    // so that clients never see two different certificates with the same issuer and serial.
    bool ok = X509_set_version(cert.get(), X509_VERSION_3) == 1 &&
              BN_rand(serial.get(), 159, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) == 1 &&
              BN_to_ASN1_INTEGER(serial.get(), X509_get_serialNumber(cert.get())) != nullptr &&
              X509_gmtime_adj(X509_getm_notBefore(cert.get()), -5 * 60) != nullptr &&  // clock skew
              X509_gmtime_adj(X509_getm_notAfter(cert.get()), validity_seconds) != nullptr &&
              X509_set_pubkey(cert.get(), key) == 1;

    X509_NAME* subject = X509_get_subject_name(cert.get());
    const std::string common_name = names.front().substr(0, 64);  // ub-common-name
    ok = ok && X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_UTF8,
                                          reinterpret_cast<const unsigned char*>(common_name.c_str()), -1, -1, 0) == 1 &&
         X509_set_issuer_name(cert.get(), subject) == 1;

    for (std::size_t i = 0; ok && i < names.size(); ++i) {
        GENERAL_NAME* entry = GENERAL_NAME_new();
        if (!entry) return nullptr;
        if (asn1_string_ptr ip(a2i_IPADDRESS(names[i].c_str())); ip) {
            GENERAL_NAME_set0_value(entry, GEN_IPADD, ip.release());
        } else {
            ERR_clear_error();  // not an IP address, so a DNS name
            asn1_string_ptr dns(ASN1_IA5STRING_new());
            ok = dns && ASN1_STRING_set(dns.get(), names[i].data(), static_cast<int>(names[i].size())) == 1;
            if (ok) GENERAL_NAME_set0_value(entry, GEN_DNS, dns.release());
        }
        if (!ok || sk_GENERAL_NAME_push(alt_names.get(), entry) == 0) {
            GENERAL_NAME_free(entry);
            ok = false;
        }
    }

    // No keyUsage: one without keyCertSign would stop OpenSSL from treating this self-signed
    // certificate as its own issuer, and clients that trust it directly would fail to verify it.
    BASIC_CONSTRAINTS constraints{};  // cA FALSE, no path length
    ok = ok && X509_add1_ext_i2d(cert.get(), NID_subject_alt_name, alt_names.get(), 0, 0) == 1 &&
         X509_add1_ext_i2d(cert.get(), NID_basic_constraints, &constraints, 1, 0) == 1 &&
         X509_sign(cert.get(), key, EVP_sha256()) > 0;
    return ok ? std::move(cert) : nullptr;
}

// The PEM text that `write(BIO*)` produces, or "" when it fails.
template <typename Write>
std::string to_pem(Write write) {
    const bio_ptr bio(BIO_new(BIO_s_mem()));
    if (!bio || write(bio.get()) != 1) return {};
    char* data = nullptr;
    const long size = BIO_get_mem_data(bio.get(), &data);
    return std::string(data, static_cast<std::size_t>(size));
}

// Writes `contents` to a fresh sibling file created with `mode` (so the key is never readable
// by others, not even for a moment), then renames it over `file`.
void write_file(const std::filesystem::path& file, const std::string& contents, mode_t mode) {
    auto temporary = file;
    temporary += ".tmp";
    ::unlink(temporary.c_str());
    const int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0) throw std::system_error(errno, std::generic_category(), "cannot create " + temporary.string());
    bool ok = ::fchmod(fd, mode) == 0;  // the umask may have taken bits we want for the cert
    for (std::size_t done = 0; ok && done < contents.size();) {
        const ssize_t n = ::write(fd, contents.data() + done, contents.size() - done);
        if (n < 0 && errno == EINTR) continue;
        ok = n > 0;
        if (ok) done += static_cast<std::size_t>(n);
    }
    ok = ::close(fd) == 0 && ok;
    ok = ok && ::rename(temporary.c_str(), file.c_str()) == 0;
    if (!ok) {
        const int error = errno;
        ::unlink(temporary.c_str());
        throw std::system_error(error, std::generic_category(), "cannot write " + file.string());
    }
}

}  // namespace

tls_files ensure_self_signed(const std::filesystem::path& dir, const std::vector<std::string>& names) {
    tls_files files{dir / "proxy-cert.pem", dir / "proxy-key.pem"};
    if (names.empty()) throw std::runtime_error("no names for the certificate " + files.certificate.string());
    if (reusable(files, names)) return files;

    const pkey_ptr key(EVP_EC_gen("P-256"));
    if (!key) fail("cannot generate the key for", files.private_key);
    const auto cert = make_certificate(key.get(), names);
    if (!cert) fail("cannot build the certificate", files.certificate);
    const auto key_pem = to_pem([&](BIO* bio) {
        return PEM_write_bio_PrivateKey(bio, key.get(), nullptr, nullptr, 0, nullptr, nullptr);
    });
    const auto cert_pem = to_pem([&](BIO* bio) { return PEM_write_bio_X509(bio, cert.get()); });
    if (key_pem.empty() || cert_pem.empty()) fail("cannot encode", files.certificate);

    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) throw std::system_error(ec, "cannot create " + dir.string());
    // Key first: a crash in between leaves a mismatched pair, which the next start regenerates.
    write_file(files.private_key, key_pem, 0600);
    write_file(files.certificate, cert_pem, 0644);
    return files;
}

constexpr const char* tls12_ciphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";
constexpr const char* tls_groups = "X25519:prime256v1:secp384r1";

boost::asio::ssl::context make_server_context(const tls_files& files) {
    boost::asio::ssl::context context(boost::asio::ssl::context::tls_server);
    SSL_CTX* ctx = context.native_handle();
    ERR_clear_error();
    if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1)
        throw std::runtime_error("cannot require TLS 1.2: " + openssl_errors());
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
    // Mozilla's "intermediate" server profile: TLS 1.2 suites are AEAD only (no CBC: LUCKY13 and
    // its kin), with ECDHE. Its DHE-RSA suites are left out: they need a DH group set up (a
    // dhparam file or RFC 7919's ffdhe2048), the generated certificate is ECDSA, which no DHE-RSA
    // suite can use, and every client the profile serves also speaks ECDHE. TLS 1.3's own suites
    // (all AEAD) stay OpenSSL's default.
    if (SSL_CTX_set_cipher_list(ctx, tls12_ciphers) != 1 || SSL_CTX_set1_groups_list(ctx, tls_groups) != 1)
        throw std::runtime_error("cannot set the TLS 1.2 cipher suites or groups: " + openssl_errors());
    // An idle keep-alive connection gives back OpenSSL's record buffers (2 x 17 KiB allocated)
    // until its next request.
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    if (SSL_CTX_use_certificate_chain_file(ctx, files.certificate.c_str()) != 1)
        fail("cannot load the certificate chain", files.certificate);
    if (SSL_CTX_use_PrivateKey_file(ctx, files.private_key.c_str(), SSL_FILETYPE_PEM) != 1)
        fail("cannot load the private key", files.private_key);
    if (SSL_CTX_check_private_key(ctx) != 1)
        throw std::runtime_error("the private key " + files.private_key.string() + " does not match the certificate " +
                                 files.certificate.string() + ": " + openssl_errors());
    return context;
}

}  // namespace exsim::proxy
