#pragma once
// Child processes started directly (posix_spawn, no shell) and always reaped: the KDC and the
// krb5 admin tools. Start-up helpers only; never used on a request path.

#include <chrono>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <sys/types.h>
#include <vector>

namespace exsim::common {

// Finds an executable on PATH, then in /usr/sbin and /sbin (where krb5kdc lives).
std::optional<std::filesystem::path> find_program(const std::string& name);

struct run_result {
    int exit_code = -1;
    std::string output;  // stdout and stderr, merged
};

// Runs to completion, feeding `input` on stdin. `env` is added to the current environment.
run_result run_program(const std::filesystem::path& program, const std::vector<std::string>& args,
                       const std::map<std::string, std::string>& env, const std::string& input = {});

class child_process {
public:
    child_process() = default;
    child_process(const child_process&) = delete;
    child_process& operator=(const child_process&) = delete;
    child_process(child_process&& other) noexcept;
    child_process& operator=(child_process&& other) noexcept;
    ~child_process();  // stops and reaps

    // Starts in the background; stdout and stderr go to `log_file`.
    static child_process start(const std::filesystem::path& program, const std::vector<std::string>& args,
                               const std::map<std::string, std::string>& env,
                               const std::filesystem::path& log_file);

    pid_t pid() const { return pid_; }
    bool running();                 // reaps and returns false if it has exited
    std::optional<int> exit_code() const { return exit_code_; }
    void stop(std::chrono::milliseconds grace = std::chrono::milliseconds(3000));  // SIGTERM, then SIGKILL

private:
    pid_t pid_ = -1;
    std::optional<int> exit_code_;
};

}  // namespace exsim::common
