// Writes real authentication tokens into the seed corpora of the token decoder and the header
// parsers: a realm and its KDC in a temporary folder, then real handshakes between alice's
// initiator and a back-end's acceptor (gss-ntlmssp, MIT krb5), every token as bytes into
// corpus/token_decoder/ and as the header value that carries it into corpus/auth_headers/.
// Not a fuzz target: run it by hand when the seeds should be made again.
//   cmake --build build/asan --target fuzz_make_token_seeds
//   ASAN_OPTIONS=detect_leaks=0 build/asan/tests/fuzz/fuzz_make_token_seeds tests/fuzz/corpus

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <unistd.h>

#include <fmt/format.h>

#include "exsim/auth/gss.hpp"
#include "exsim/auth/http_auth.hpp"
#include "exsim/auth/realm.hpp"
#include "exsim/auth/token_decoder.hpp"
#include "exsim/common/topology.hpp"

namespace {

using namespace exsim;
namespace fs = std::filesystem;

void write(const fs::path& file, const void* data, std::size_t size) {
    std::ofstream out(file, std::ios::binary | std::ios::trunc);
    out.write(static_cast<const char*>(data), static_cast<std::streamsize>(size));
    if (!out) throw std::runtime_error("cannot write " + file.string());
}

struct handshake {
    std::string name;           // part of the file names
    auth::initiator_mode mode;  // what alice offers
    std::string backend;        // whose acceptor answers
    bool with_keytab = true;    // false: the back-end cannot do Kerberos, SPNEGO falls back to NTLM
};

// Runs one handshake and writes every token; returns how many there were.
int run(const handshake& h, const common::topology& t, const auth::realm& r, const fs::path& corpus) {
    const auto* be = t.find_backend(h.backend);
    auth::acceptor_config config{be->host,
                                 h.with_keytab ? r.paths().keytab(be->name) : r.paths().root / "no-such.keytab",
                                 r.paths().ntlm_user_file(be->name),
                                 be->auth_providers,
                                 t.realm,
                                 t.ntlm_domain};
    auto acceptor_credentials = auth::make_acceptor_credentials(config);
    const auto credentials = auth::acquire_user_credentials("alice", "alice-pw", h.mode, t.realm, t.ntlm_domain);
    if (!credentials.credentials) throw std::runtime_error(h.name + ": " + credentials.error);
    auto initiator = credentials.credentials->make_initiator(be->host);
    auto acceptor = acceptor_credentials->make_acceptor(initiator->http_scheme());
    if (!acceptor) throw std::runtime_error(h.name + ": the back-end does not offer the scheme");

    int leg = 0;
    auto keep = [&](const char* side, const std::vector<std::uint8_t>& token) {
        if (token.empty()) return;
        const auto base = fmt::format("{}-{}-{}", h.name, ++leg, side);
        write(corpus / "token_decoder" / base, token.data(), token.size());
        const auto header = auth::token_header(initiator->http_scheme(), token);
        write(corpus / "auth_headers" / base, header.data(), header.size());
        const auto decoded = auth::decode_token(token);
        std::printf("%s: %zu bytes: %s\n", base.c_str(), token.size(),
                    decoded ? auth::describe(*decoded).c_str() : decoded.error().what.c_str());
    };
    std::vector<std::uint8_t> input;
    for (int i = 0; i < 8; ++i) {
        auto out = initiator->step(input);
        if (out.status == auth::step_status::failed) throw std::runtime_error(h.name + ": initiator: " + out.error);
        keep("client", out.token);
        if (out.status == auth::step_status::complete && out.token.empty()) return leg;
        auto in = acceptor->step(out.token);
        if (in.status == auth::step_status::failed) throw std::runtime_error(h.name + ": acceptor: " + in.error);
        keep("server", in.token);
        if (in.status == auth::step_status::complete) {
            if (!in.token.empty()) initiator->step(in.token);  // mutual authentication
            return leg;
        }
        input = std::move(in.token);
    }
    throw std::runtime_error(h.name + ": the handshake did not end");
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: %s CORPUS_DIR (tests/fuzz/corpus)\n", argv[0]);
        return 2;
    }
    const fs::path corpus = argv[1];
    fs::create_directories(corpus / "token_decoder");
    fs::create_directories(corpus / "auth_headers");
    const auto dir = fs::temp_directory_path() / fmt::format("exsim-fuzz-seeds-{}", ::getpid());
    try {
        const auto t = common::default_topology();
        auto r = auth::realm::create(t, dir);
        r.apply_environment();
        r.start_kdc();
        for (const auto& h : {handshake{"kerberos", auth::initiator_mode::kerberos, "be1"},
                              handshake{"negotiate", auth::initiator_mode::negotiate, "be1"},
                              handshake{"negotiate-ntlm", auth::initiator_mode::negotiate, "be1", false},
                              handshake{"ntlm", auth::initiator_mode::ntlm, "be2"}})
            run(h, t, r, corpus);
        r.stop_kdc();
    } catch (const std::exception& e) {
        std::fprintf(stderr, "make_token_seeds: %s\n", e.what());
        fs::remove_all(dir);
        return 1;
    }
    fs::remove_all(dir);
    return 0;
}
