#pragma once
// A fresh folder per test under the system temp directory, removed afterwards.

#include <filesystem>
#include <random>
#include <string>
#include <system_error>

#include <unistd.h>

namespace exsim::testing {

class temp_folder {
public:
    explicit temp_folder(const std::string& prefix = "exsim-test") {
        std::random_device rd;
        path_ = std::filesystem::temp_directory_path() /
                (prefix + "-" + std::to_string(::getpid()) + "-" + std::to_string(rd()));
        std::filesystem::create_directories(path_);
    }
    ~temp_folder() {
        std::error_code ec;
        std::filesystem::remove_all(path_, ec);
    }
    temp_folder(const temp_folder&) = delete;
    temp_folder& operator=(const temp_folder&) = delete;
    const std::filesystem::path& path() const { return path_; }

private:
    std::filesystem::path path_;
};

}  // namespace exsim::testing
