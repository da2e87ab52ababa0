#pragma once
// The servers that 'up', 'proxy' and 'backend' start, and the front-end's options ('trace' reads
// some of them too).

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "exsim/auth/realm.hpp"
#include "exsim/backend_sim/server.hpp"
#include "exsim/common/topology.hpp"
#include "exsim/proxy/server.hpp"
#include "options.hpp"

namespace exsim::app {

// What the front-end takes from the command line, on top of the topology's "frontend" section.
struct frontend_options {
    std::string address = "127.0.0.1";
    std::string policy;
    std::size_t workers = 0;
    std::uint16_t port = 0;
    std::uint16_t admin_port = 0;
    bool allow_insecure_http = false;
    bool require_kerberos = false;
    bool leak_guard = false;
    std::string tls_cert, tls_key;
};

void add_frontend(po::options_description& d, frontend_options& o);

// Checks the front-end options and applies them to the topology's "frontend" section; called
// before anything starts, so that a typo stops exsim at once.
void apply_frontend_options(common::topology& t, const frontend_options& f);

std::unique_ptr<proxy::server> make_frontend(const common::topology& t, const frontend_options& f,
                                             const std::filesystem::path& state,
                                             std::map<std::string, std::string> backends,
                                             const std::function<void(proxy::proxy_options&)>& adjust = {});

std::unique_ptr<backend::server> make_backend(const common::topology& t, const auth::realm& r, const std::string& name,
                                              const std::filesystem::path& state, std::uint16_t port,
                                              std::size_t threads, bool reset);

}  // namespace exsim::app
