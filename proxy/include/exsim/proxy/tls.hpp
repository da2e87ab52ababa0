#pragma once
// The front-end's TLS: a certificate and key from files, or a self-signed pair generated into
// the state folder the first time (and re-used while it is valid), and a server context that
// accepts TLS 1.2 and later with AEAD suites only.

#include <filesystem>
#include <string>
#include <vector>

#include <boost/asio/ssl/context.hpp>

namespace exsim::proxy {

struct tls_files {
    std::filesystem::path certificate;  // PEM, may hold a chain
    std::filesystem::path private_key;  // PEM
};

// `<dir>/proxy-cert.pem` and `<dir>/proxy-key.pem`: generated (EC P-256, SHA-256, valid one
// year, subjectAltName = every entry of `names`, each a DNS name or an IP address) when either
// is missing, unreadable, expired or does not cover `names`; otherwise kept. The key file is
// created with mode 0600. Throws std::runtime_error naming the file on failure.
tls_files ensure_self_signed(const std::filesystem::path& dir, const std::vector<std::string>& names);

// A server context: TLS 1.2 minimum, AEAD suites only (Mozilla's "intermediate" profile, without
// DHE), no compression, no renegotiation, the certificate chain and key loaded and checked to
// match. Throws std::runtime_error naming the file and the OpenSSL reason on failure.
boost::asio::ssl::context make_server_context(const tls_files& files);

}  // namespace exsim::proxy
