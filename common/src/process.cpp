#include "exsim/common/process.hpp"

#include <cerrno>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <spawn.h>
#include <stdexcept>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <utility>

#include <fmt/format.h>

extern char** environ;

namespace exsim::common {
namespace {

// argv/envp storage that outlives posix_spawn.
struct spawn_args {
    std::vector<std::string> strings;
    std::vector<char*> argv, envp;

    spawn_args(const std::filesystem::path& program, const std::vector<std::string>& args,
               const std::map<std::string, std::string>& env) {
        strings.push_back(program.string());
        strings.insert(strings.end(), args.begin(), args.end());
        const std::size_t nargs = strings.size();
        for (char** e = environ; *e; ++e) {
            std::string_view kv(*e);
            auto key = kv.substr(0, kv.find('='));
            if (!env.count(std::string(key))) strings.emplace_back(kv);
        }
        for (const auto& [k, v] : env) strings.push_back(k + "=" + v);
        for (std::size_t i = 0; i < strings.size(); ++i) (i < nargs ? argv : envp).push_back(strings[i].data());
        argv.push_back(nullptr);
        envp.push_back(nullptr);
    }
};

// exsim blocks SIGINT/SIGTERM in every thread to sigwait() for them; a child must not inherit
// that mask, or krb5kdc ignores the SIGTERM that stops it.
struct spawn_attributes {
    posix_spawnattr_t attr;
    spawn_attributes() {
        posix_spawnattr_init(&attr);
        sigset_t none, all;
        sigemptyset(&none);
        sigfillset(&all);
        posix_spawnattr_setsigmask(&attr, &none);
        posix_spawnattr_setsigdefault(&attr, &all);
        posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    }
    ~spawn_attributes() { posix_spawnattr_destroy(&attr); }
};

// A child gets stdin, stdout and stderr and nothing else. Asio opens its sockets without
// close-on-exec: a child would otherwise hold copies of every listener and connection of
// exsim's threads, and a listener exsim closes (a back-end stopped to restart) would go on
// accepting connections in the child, which never answers them, and keep its port taken.
void close_the_rest(posix_spawn_file_actions_t& fa) { posix_spawn_file_actions_addclosefrom_np(&fa, 3); }

int decode_status(int status) {
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
    return -1;
}

}  // namespace

std::optional<std::filesystem::path> find_program(const std::string& name) {
    std::string path = getenv("PATH") ? getenv("PATH") : "";
    path += ":/usr/sbin:/sbin:/usr/bin:/bin";
    std::size_t start = 0;
    while (start <= path.size()) {
        auto end = path.find(':', start);
        if (end == std::string::npos) end = path.size();
        if (end > start) {
            std::filesystem::path candidate = std::filesystem::path(path.substr(start, end - start)) / name;
            if (access(candidate.c_str(), X_OK) == 0) return candidate;
        }
        start = end + 1;
    }
    return std::nullopt;
}

run_result run_program(const std::filesystem::path& program, const std::vector<std::string>& args,
                       const std::map<std::string, std::string>& env, const std::string& input) {
    int in_pipe[2], out_pipe[2];
    if (pipe2(in_pipe, O_CLOEXEC) != 0) throw std::runtime_error(fmt::format("pipe: {}", std::strerror(errno)));
    if (pipe2(out_pipe, O_CLOEXEC) != 0) {
        close(in_pipe[0]);
        close(in_pipe[1]);
        throw std::runtime_error(fmt::format("pipe: {}", std::strerror(errno)));
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in_pipe[0], 0);
    posix_spawn_file_actions_adddup2(&fa, out_pipe[1], 1);
    posix_spawn_file_actions_adddup2(&fa, out_pipe[1], 2);
    close_the_rest(fa);
    spawn_args sa(program, args, env);
    pid_t pid;
    spawn_attributes attrs;
    int rc = posix_spawn(&pid, program.c_str(), &fa, &attrs.attr, sa.argv.data(), sa.envp.data());
    posix_spawn_file_actions_destroy(&fa);
    close(in_pipe[0]);
    close(out_pipe[1]);
    if (rc != 0) {
        close(in_pipe[1]);
        close(out_pipe[0]);
        throw std::runtime_error(fmt::format("cannot start {}: {}", program.string(), std::strerror(rc)));
    }
    // Feed stdin from a thread so a chatty child cannot dead-lock against a full output pipe.
    std::thread writer([fd = in_pipe[1], &input] {
        // A child that exits early must give EPIPE here, not kill exsim with SIGPIPE.
        sigset_t pipe_only;
        sigemptyset(&pipe_only);
        sigaddset(&pipe_only, SIGPIPE);
        pthread_sigmask(SIG_BLOCK, &pipe_only, nullptr);
        std::size_t off = 0;
        while (off < input.size()) {
            ssize_t n = write(fd, input.data() + off, input.size() - off);
            if (n <= 0) break;
            off += static_cast<std::size_t>(n);
        }
        close(fd);
    });
    run_result result;
    char buf[4096];
    ssize_t n;
    while ((n = read(out_pipe[0], buf, sizeof buf)) > 0) result.output.append(buf, static_cast<std::size_t>(n));
    close(out_pipe[0]);
    writer.join();
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    result.exit_code = decode_status(status);
    return result;
}

child_process child_process::start(const std::filesystem::path& program, const std::vector<std::string>& args,
                                   const std::map<std::string, std::string>& env,
                                   const std::filesystem::path& log_file) {
    int fd = open(log_file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0) throw std::runtime_error(fmt::format("{}: {}", log_file.string(), std::strerror(errno)));
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, fd, 1);
    posix_spawn_file_actions_adddup2(&fa, fd, 2);
    close_the_rest(fa);
    spawn_args sa(program, args, env);
    child_process child;
    spawn_attributes attrs;
    int rc = posix_spawn(&child.pid_, program.c_str(), &fa, &attrs.attr, sa.argv.data(), sa.envp.data());
    posix_spawn_file_actions_destroy(&fa);
    close(fd);
    if (rc != 0) {
        child.pid_ = -1;
        throw std::runtime_error(fmt::format("cannot start {}: {}", program.string(), std::strerror(rc)));
    }
    return child;
}

child_process::child_process(child_process&& other) noexcept
    : pid_(std::exchange(other.pid_, -1)), exit_code_(other.exit_code_) {}

child_process& child_process::operator=(child_process&& other) noexcept {
    if (this != &other) {
        stop();
        pid_ = std::exchange(other.pid_, -1);
        exit_code_ = other.exit_code_;
    }
    return *this;
}

child_process::~child_process() { stop(); }

bool child_process::running() {
    if (pid_ < 0) return false;
    int status = 0;
    pid_t r = waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
        exit_code_ = decode_status(status);
        pid_ = -1;
        return false;
    }
    return r == 0;
}

void child_process::stop(std::chrono::milliseconds grace) {
    if (!running()) return;
    kill(pid_, SIGTERM);
    auto deadline = std::chrono::steady_clock::now() + grace;
    while (running() && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    if (pid_ >= 0) {
        kill(pid_, SIGKILL);
        int status = 0;
        while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
        }
        exit_code_ = decode_status(status);
        pid_ = -1;
    }
}

}  // namespace exsim::common
