#pragma once
// The files of a state folder that other processes read: endpoints.env (`export KEY=VALUE`
// lines a shell can source) and directory.json. `exsim up` and `exsim check-proxy --serve`
// write them; `exsim load` and `exsim check-proxy --state-dir` read them.

#include <filesystem>
#include <map>
#include <string>

namespace exsim::lab {

// "be1" -> "BE1", "be-2" -> "BE_2": the NAME of EXSIM_BACKEND_<NAME>_ADDR.
std::string env_name(const std::string& backend);

// Replaces what `file` holds with `text`. Throws std::runtime_error naming the file.
void write_file(const std::filesystem::path& file, const std::string& text);

// The `export KEY=VALUE` lines of `file`; empty when it is absent.
std::map<std::string, std::string> read_exports(const std::filesystem::path& file);

}  // namespace exsim::lab
