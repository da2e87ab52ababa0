#pragma once
// How a long-running command learns that it is asked to stop (SIGINT, SIGTERM).

#include <atomic>
#include <csignal>

namespace exsim::app {

// Blocks SIGINT/SIGTERM in every thread (threads inherit the mask): call before starting any.
sigset_t block_stop_signals();

// Waits for one of the blocked signals; returns 0, the command's exit code.
int wait_for_stop(const sigset_t& set);

// SIGINT or SIGTERM sets the flag (a load run stops issuing requests, finishes the ones in
// flight and reports); a second one exits at once.
const std::atomic<bool>& stop_flag_on_signals();

}  // namespace exsim::app
