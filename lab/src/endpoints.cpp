#include "exsim/lab/endpoints.hpp"

#include <cctype>
#include <fstream>
#include <stdexcept>

#include <fmt/format.h>

namespace exsim::lab {

std::string env_name(const std::string& backend) {
    std::string s;
    for (char c : backend) s += c == '-' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    return s;
}

void write_file(const std::filesystem::path& file, const std::string& text) {
    std::ofstream out(file, std::ios::trunc);
    out << text;
    if (!out.flush()) throw std::runtime_error(fmt::format("cannot write {}", file.string()));
}

std::map<std::string, std::string> read_exports(const std::filesystem::path& file) {
    std::map<std::string, std::string> env;
    std::ifstream in(file);
    for (std::string line; std::getline(in, line);) {
        if (!line.starts_with("export ")) continue;
        const auto eq = line.find('=');
        if (eq != std::string::npos) env[line.substr(7, eq - 7)] = line.substr(eq + 1);
    }
    return env;
}

}  // namespace exsim::lab
