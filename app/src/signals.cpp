#include "signals.hpp"

#include <cstdlib>
#include <thread>

#include <pthread.h>

#include "exsim/common/log.hpp"

namespace exsim::app {

sigset_t block_stop_signals() {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
    return set;
}

int wait_for_stop(const sigset_t& set) {
    int sig = 0;
    sigwait(&set, &sig);
    common::logger("exsim")->info("received {}, stopping", sig == SIGINT ? "SIGINT" : "SIGTERM");
    return 0;
}

const std::atomic<bool>& stop_flag_on_signals() {
    static std::atomic<bool> flag{false};
    const auto set = block_stop_signals();
    std::thread([set] {
        for (int sig = 0;;) {
            sigwait(&set, &sig);
            if (flag.exchange(true)) std::_Exit(128 + sig);
            common::logger("exsim")->warn("received {}, stopping after the requests in flight (again to quit now)",
                                          sig == SIGINT ? "SIGINT" : "SIGTERM");
        }
    }).detach();
    return flag;
}

}  // namespace exsim::app
