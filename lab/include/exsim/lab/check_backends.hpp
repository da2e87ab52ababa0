#pragma once
// The back-ends `exsim check-proxy` judges a proxy through: started in this process or by
// `exsim check-proxy --serve`, and found again from the files --serve wrote.

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>

#include "exsim/common/topology.hpp"

namespace exsim::lab {

// The check-proxy topology: be1 NTLM only, be2 Negotiate,NTLM, be3 the same with
// persist_kerberos, be4 Negotiate,NTLM without a Kerberos key (SPNEGO falls back to NTLM); six
// users on be1 and two on each of the others.
common::topology check_proxy_topology();

// The realm, its KDC and the four back-ends, started in `state_dir` (created; it must be empty or
// hold an earlier check-proxy state). base_port 0: free ports; else be1 = base_port, be2 = +1...
// Writes <state_dir>/endpoints.env and <state_dir>/directory.json.
class check_backends {
public:
    check_backends(const std::filesystem::path& state_dir, std::uint16_t base_port);
    ~check_backends();
    check_backends(const check_backends&) = delete;
    check_backends& operator=(const check_backends&) = delete;

    const common::topology& topology() const;
    const std::filesystem::path& state_dir() const;
    std::map<std::string, std::string> addresses() const;  // "be1" -> "127.0.0.1:PORT"
    std::string endpoints_env() const;                     // what endpoints.env holds

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

// The back-ends a `check_backends` (in this process or `exsim check-proxy --serve`) started.
struct check_environment {
    common::topology topology;
    std::filesystem::path state_dir;
    std::map<std::string, std::string> backends;  // "be1" -> "127.0.0.1:PORT"
};
// Reads <state_dir>/endpoints.env and directory.json that --serve wrote; throws
// common::config_error naming what is missing.
check_environment read_check_environment(const std::filesystem::path& state_dir);

}  // namespace exsim::lab
