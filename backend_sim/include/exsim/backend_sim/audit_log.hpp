#pragma once
// The back-end's audit log writer. The record format, its reader and cross_user's definition are
// shared with the load generator in exsim/common/audit_record.hpp; the back-end names them as its
// own below.

#include <cstdint>
#include <filesystem>
#include <mutex>
#include <system_error>

#include "exsim/common/audit_record.hpp"

namespace exsim::backend {

using common::audit_log_path;
using common::audit_record;
using common::count_cross_user;
using common::is_cross_user;
using common::iso8601_utc_now;
using common::parse_audit_line;
using common::read_audit_log;
using common::to_json_line;

// Thread-safe appender shared by every worker of a back-end. Each line is handed to the kernel
// with one write(2) on an O_APPEND descriptor before append() returns, so a reader sees it at
// once and a kill -9 does not lose it (it is not fsync'ed: a power loss may).
class audit_log {
public:
    // Opens (creating it and its folder when needed) for appending.
    // Throws std::runtime_error naming the file when it cannot (start-up only).
    explicit audit_log(std::filesystem::path file);
    ~audit_log();
    audit_log(const audit_log&) = delete;
    audit_log& operator=(const audit_log&) = delete;

    // Stamps `ts` (when empty) and `cross_user`, then writes one line.
    // Returns the errno of a failed write (also counted in failures()); never throws.
    std::error_code append(audit_record record);

    const std::filesystem::path& path() const noexcept { return path_; }
    std::uint64_t lines_written() const;
    std::uint64_t failures() const;

private:
    std::filesystem::path path_;
    int fd_ = -1;
    mutable std::mutex mutex_;
    std::uint64_t lines_ = 0;
    std::uint64_t failures_ = 0;
};

}  // namespace exsim::backend
