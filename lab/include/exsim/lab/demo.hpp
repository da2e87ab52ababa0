#pragma once
// `exsim demo`: the default topology (plus generated users, so that each back-end holds several
// mailboxes) in a temporary state folder, one realm and KDC, and for each back-end configuration
// and each pool policy: fresh back-ends (stores from the seed), a fresh front-end, the same
// closed-model workload through it (Basic over TLS), and the run's measurements.

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "exsim/loadgen/report.hpp"

namespace exsim::lab {

// "negotiate" (every back-end Negotiate,NTLM), "ntlm" (NTLM only: the SharePoint
// misconfiguration), "kerberos-persist" (Negotiate,NTLM with persist_kerberos).
const std::vector<std::string>& demo_backend_auths();

struct demo_options {
    bool quick = false;
    std::filesystem::path state_dir;    // empty: a temporary folder, removed at the end
    std::size_t workers = 0;            // front-end workers; 0: one per core
    std::size_t extra_users = 12;       // generated users added to the default four
    std::uint64_t requests = 0;         // per run; 0: 3000 with quick, 20000 without
    std::size_t sessions = 0;           // 0: one per user
    std::vector<std::string> policies;       // empty: all five
    std::vector<std::string> backend_auths;  // empty: demo_backend_auths()
    bool progress = false;
    const std::atomic<bool>* stop = nullptr;  // set: finish the current run and start no other
    std::function<void(const loadgen::demo_run&)> on_run;  // after each run (e.g. to print a line)
};

// Throws common::config_error for an unknown policy or back-end configuration.
std::vector<loadgen::demo_run> run_demo(const demo_options& options);

}  // namespace exsim::lab
