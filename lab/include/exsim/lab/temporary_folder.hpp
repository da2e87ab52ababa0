#pragma once
// A temporary state folder for the demo, the trace and check-proxy, removed with everything in it at the end.

#include <stdlib.h>

#include <filesystem>
#include <stdexcept>
#include <string>

namespace exsim::lab {

struct temporary_folder {
    std::filesystem::path path;
    explicit temporary_folder(const char* what) {
        std::string pattern = (std::filesystem::temp_directory_path() / (std::string("exsim-") + what + "-XXXXXX")).string();
        if (!mkdtemp(pattern.data())) throw std::runtime_error(std::string("cannot create a temporary folder for the ") + what);
        path = pattern;
    }
    ~temporary_folder() {
        std::error_code ec;
        std::filesystem::remove_all(path, ec);
    }
    temporary_folder(const temporary_folder&) = delete;
    temporary_folder& operator=(const temporary_folder&) = delete;
};

}  // namespace exsim::lab
