#include "exsim/backend_sim/audit_log.hpp"

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include <fcntl.h>
#include <unistd.h>

namespace exsim::backend {

audit_log::audit_log(std::filesystem::path file) : path_(std::move(file)) {
    if (path_.has_parent_path()) {
        std::error_code ec;
        std::filesystem::create_directories(path_.parent_path(), ec);
        // A failure shows up as the open() error below, which names the file.
    }
    fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd_ < 0) {
        throw std::runtime_error("cannot open audit log " + path_.string() + ": " +
                                 std::strerror(errno));
    }
}

audit_log::~audit_log() {
    if (fd_ >= 0) ::close(fd_);
}

std::error_code audit_log::append(audit_record record) {
    if (record.ts.empty()) record.ts = iso8601_utc_now();
    // Computed here, not trusted from the caller: there is one definition of cross_user.
    record.cross_user = is_cross_user(record.identity, record.on_behalf_of, record.status);
    std::string line = to_json_line(record);
    line.push_back('\n');

    // One write(2) per line on an O_APPEND descriptor: lines from several threads (or several
    // processes sharing the file) never interleave, and no user-space buffer needs flushing.
    std::lock_guard lock(mutex_);
    const char* p = line.data();
    std::size_t left = line.size();
    while (left > 0) {
        const ssize_t n = ::write(fd_, p, left);
        if (n < 0) {
            if (errno == EINTR) continue;
            ++failures_;
            return {errno, std::generic_category()};
        }
        p += n;
        left -= static_cast<std::size_t>(n);
    }
    ++lines_;
    return {};
}

std::uint64_t audit_log::lines_written() const {
    std::lock_guard lock(mutex_);
    return lines_;
}

std::uint64_t audit_log::failures() const {
    std::lock_guard lock(mutex_);
    return failures_;
}

}  // namespace exsim::backend
