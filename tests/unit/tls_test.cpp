#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <thread>

#include <sys/stat.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "exsim/proxy/tls.hpp"
#include "temp_folder.hpp"

namespace exsim::proxy {
namespace {

namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;
using tcp = asio::ip::tcp;

std::string read_all(const std::filesystem::path& file) {
    std::ifstream in(file, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_all(const std::filesystem::path& file, const std::string& contents) {
    std::ofstream(file, std::ios::binary | std::ios::trunc) << contents;
}

std::unique_ptr<X509, decltype(&X509_free)> load_certificate(const std::filesystem::path& file) {
    std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new_file(file.c_str(), "r"), BIO_free);
    return {bio ? PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr) : nullptr, X509_free};
}

struct handshake_result {
    boost::system::error_code server;
    boost::system::error_code client;
    int client_version = 0;
};

// One TLS handshake over loopback: the server side in a thread, the client here, both
// synchronous. A side that fails closes its socket so that the other never waits forever.
handshake_result handshake(ssl::context& server_context, ssl::context& client_context) {
    asio::io_context io;
    tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    handshake_result result;

    std::thread server_side([&] {
        ssl::stream<tcp::socket> server(io, server_context);
        acceptor.accept(server.next_layer(), result.server);
        if (!result.server) server.handshake(ssl::stream_base::server, result.server);
        server.next_layer().close();
    });

    ssl::stream<tcp::socket> client(io, client_context);
    client.next_layer().connect(acceptor.local_endpoint(), result.client);
    SSL_set_tlsext_host_name(client.native_handle(), "localhost");
    client.set_verify_callback(ssl::host_name_verification("localhost"));
    if (!result.client) client.handshake(ssl::stream_base::client, result.client);
    if (!result.client) result.client_version = SSL_version(client.native_handle());
    client.next_layer().close();
    server_side.join();
    return result;
}

ssl::context client_trusting(const tls_files& files) {
    ssl::context context(ssl::context::tls_client);
    context.load_verify_file(files.certificate.string());
    context.set_verify_mode(ssl::verify_peer);
    return context;
}

TEST(Tls, GeneratesAKeyOnlyTheOwnerCanRead) {
    testing::temp_folder dir;
    const auto files = ensure_self_signed(dir.path(), {"localhost"});
    EXPECT_EQ(files.certificate, dir.path() / "proxy-cert.pem");
    EXPECT_EQ(files.private_key, dir.path() / "proxy-key.pem");
    struct stat st {};
    ASSERT_EQ(::stat(files.private_key.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST(Tls, CoversEveryNameAsADnsNameOrAnIpAddress) {
    testing::temp_folder dir;
    const auto files = ensure_self_signed(dir.path(), {"localhost", "exsim.test", "127.0.0.1", "::1"});
    const auto cert = load_certificate(files.certificate);
    ASSERT_TRUE(cert);
    EXPECT_EQ(X509_check_host(cert.get(), "localhost", 0, 0, nullptr), 1);
    EXPECT_EQ(X509_check_host(cert.get(), "exsim.test", 0, 0, nullptr), 1);
    EXPECT_EQ(X509_check_ip_asc(cert.get(), "127.0.0.1", 0), 1);
    EXPECT_EQ(X509_check_ip_asc(cert.get(), "::1", 0), 1);
    EXPECT_NE(X509_check_host(cert.get(), "other.test", 0, 0, nullptr), 1);
    // An IP address is not also written as a DNS name.
    EXPECT_NE(X509_check_host(cert.get(), "127.0.0.1", 0, 0, nullptr), 1);
}

TEST(Tls, ReusesValidFilesOnTheNextCall) {
    testing::temp_folder dir;
    const auto files = ensure_self_signed(dir.path(), {"localhost", "127.0.0.1"});
    const auto cert = read_all(files.certificate);
    const auto key = read_all(files.private_key);
    ensure_self_signed(dir.path(), {"localhost", "127.0.0.1"});
    EXPECT_EQ(read_all(files.certificate), cert);
    EXPECT_EQ(read_all(files.private_key), key);
}

TEST(Tls, RegeneratesACorruptedCertificate) {
    testing::temp_folder dir;
    const auto files = ensure_self_signed(dir.path(), {"localhost"});
    write_all(files.certificate, "-----BEGIN CERTIFICATE-----\ngarbage\n-----END CERTIFICATE-----\n");
    ensure_self_signed(dir.path(), {"localhost"});
    EXPECT_TRUE(load_certificate(files.certificate));
    EXPECT_NO_THROW(make_server_context(files));
}

TEST(Tls, RegeneratesWhenTheNamesChange) {
    testing::temp_folder dir;
    const auto files = ensure_self_signed(dir.path(), {"localhost"});
    const auto before = read_all(files.certificate);
    ensure_self_signed(dir.path(), {"localhost", "exsim.test"});
    EXPECT_NE(read_all(files.certificate), before);
    const auto cert = load_certificate(files.certificate);
    ASSERT_TRUE(cert);
    EXPECT_EQ(X509_check_host(cert.get(), "exsim.test", 0, 0, nullptr), 1);
}

TEST(Tls, RegeneratesAKeyThatDoesNotMatchTheCertificate) {
    testing::temp_folder dir, other;
    const auto files = ensure_self_signed(dir.path(), {"localhost"});
    const auto other_files = ensure_self_signed(other.path(), {"localhost"});
    write_all(files.private_key, read_all(other_files.private_key));
    ensure_self_signed(dir.path(), {"localhost"});
    EXPECT_NO_THROW(make_server_context(files));
}

TEST(Tls, ServerContextLoadsTheGeneratedFiles) {
    testing::temp_folder dir;
    const auto files = ensure_self_signed(dir.path(), {"localhost"});
    EXPECT_NO_THROW(make_server_context(files));
}

TEST(Tls, ServerContextNamesAMissingFile) {
    testing::temp_folder dir;
    const auto files = ensure_self_signed(dir.path(), {"localhost"});
    const tls_files missing{dir.path() / "nowhere-cert.pem", files.private_key};
    try {
        make_server_context(missing);
        FAIL() << "no exception";
    } catch (const std::runtime_error& e) {
        EXPECT_NE(std::string(e.what()).find(missing.certificate.string()), std::string::npos) << e.what();
    }
}

TEST(Tls, ServerContextRefusesAKeyThatDoesNotMatch) {
    testing::temp_folder dir, other;
    const auto files = ensure_self_signed(dir.path(), {"localhost"});
    const auto other_files = ensure_self_signed(other.path(), {"localhost"});
    const tls_files mismatched{files.certificate, other_files.private_key};
    try {
        make_server_context(mismatched);
        FAIL() << "no exception";
    } catch (const std::runtime_error& e) {
        EXPECT_NE(std::string(e.what()).find(mismatched.private_key.string()), std::string::npos) << e.what();
    }
}

TEST(Tls, HandshakesWithAClientThatTrustsTheCertificate) {
    testing::temp_folder dir;
    const auto files = ensure_self_signed(dir.path(), {"localhost", "127.0.0.1"});
    auto server_context = make_server_context(files);
    auto client_context = client_trusting(files);
    const auto result = handshake(server_context, client_context);
    EXPECT_FALSE(result.server) << result.server.message();
    EXPECT_FALSE(result.client) << result.client.message();
    EXPECT_GE(result.client_version, TLS1_2_VERSION);
}

TEST(Tls, RefusesAClientLimitedToTls11) {
    testing::temp_folder dir;
    const auto files = ensure_self_signed(dir.path(), {"localhost"});
    auto server_context = make_server_context(files);
    auto client_context = client_trusting(files);
    SSL_CTX_set_max_proto_version(client_context.native_handle(), TLS1_1_VERSION);
    // OpenSSL 3 would otherwise refuse TLS 1.1 on the client side already, and the test would
    // never reach the server's own refusal.
    SSL_CTX_set_security_level(client_context.native_handle(), 0);
    const auto result = handshake(server_context, client_context);
    // The server itself refuses ("unsupported protocol"); the client only hears its alert.
    EXPECT_EQ(ERR_GET_REASON(static_cast<unsigned long>(result.server.value())), SSL_R_UNSUPPORTED_PROTOCOL)
        << result.server.message();
    EXPECT_TRUE(result.client);
}

// Mozilla's "intermediate" profile: at TLS 1.2 the server takes AEAD suites only. A client
// offering CBC suites alone (what testssl.sh flags as "LUCKY13 potentially vulnerable") gets no
// shared cipher; one offering AES-GCM or ChaCha20-Poly1305 gets it.
TEST(Tls, AtTls12AcceptsAeadSuitesOnlyNeverCbc) {
    testing::temp_folder dir;
    const auto files = ensure_self_signed(dir.path(), {"localhost"});
    auto server_context = make_server_context(files);
    const auto at_tls12_with = [&](const char* suites) {
        auto client_context = client_trusting(files);
        SSL_CTX_set_max_proto_version(client_context.native_handle(), TLS1_2_VERSION);
        EXPECT_EQ(SSL_CTX_set_cipher_list(client_context.native_handle(), suites), 1) << suites;
        return handshake(server_context, client_context);
    };
    for (const char* cbc : {"ECDHE-ECDSA-AES128-SHA", "ECDHE-ECDSA-AES256-SHA384", "ECDHE-ECDSA-AES128-SHA256"}) {
        SCOPED_TRACE(cbc);
        const auto result = at_tls12_with(cbc);
        EXPECT_EQ(ERR_GET_REASON(static_cast<unsigned long>(result.server.value())), SSL_R_NO_SHARED_CIPHER)
            << result.server.message();
        EXPECT_TRUE(result.client);
    }
    for (const char* aead : {"ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-ECDSA-CHACHA20-POLY1305"}) {
        SCOPED_TRACE(aead);
        const auto result = at_tls12_with(aead);
        EXPECT_FALSE(result.server) << result.server.message();
        EXPECT_FALSE(result.client) << result.client.message();
        EXPECT_EQ(result.client_version, TLS1_2_VERSION);
    }
}

}  // namespace
}  // namespace exsim::proxy
