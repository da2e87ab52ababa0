#include "exsim/common/log.hpp"

#include <mutex>

#include <spdlog/sinks/stdout_color_sinks.h>

namespace exsim::common {

std::shared_ptr<spdlog::logger> logger(const std::string& component) {
    static std::mutex m;
    std::lock_guard lock(m);
    if (auto existing = spdlog::get(component)) return existing;
    auto l = spdlog::stderr_color_mt(component);
    l->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%-5l%$ [%n] %v");
    l->set_level(spdlog::get_level());
    return l;
}

void set_log_level(const std::string& level) {
    spdlog::set_level(spdlog::level::from_str(level));
}

}  // namespace exsim::common
