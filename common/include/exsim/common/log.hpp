#pragma once
// One named spdlog logger per component ("auth", "backend", "realm", "proxy", ...), on stderr.

#include <memory>
#include <string>

#include <spdlog/spdlog.h>

namespace exsim::common {

std::shared_ptr<spdlog::logger> logger(const std::string& component);

// Applies a level name ("debug", "info", "warn", ...) to every logger, current and future.
void set_log_level(const std::string& level);

}  // namespace exsim::common
