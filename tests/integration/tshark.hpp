#pragma once
// Reading a capture with Debian's tshark, as a student would: rows of fields for a display filter.

#include <gtest/gtest.h>

#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include "exsim/common/process.hpp"

namespace exsim::testing {

// `tshark -r FILE [options] -Y FILTER -T fields -E occurrence=f -e F...`: one row per frame, the
// first value of each field (of a frame's comments, its headline; `occurrence` 'a': all, joined
// by commas). tshark's own warnings (stderr) are dropped.
inline std::vector<std::vector<std::string>> tshark_rows(const std::filesystem::path& file, const std::string& filter,
                                                         const std::vector<std::string>& fields,
                                                         const std::vector<std::string>& options = {},
                                                         char occurrence = 'f') {
    auto quote = [](const std::string& s) {
        std::string q = "'";
        for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
        return q + "'";
    };
    std::string command = "tshark -r " + quote(file.string());
    for (const auto& o : options) command += " -o " + quote(o);
    command += " -Y " + quote(filter) + " -T fields -E separator=/t -E occurrence=" + occurrence;
    for (const auto& f : fields) command += " -e " + quote(f);
    auto r = common::run_program("/bin/sh", {"-c", command + " 2>/dev/null"}, {});
    EXPECT_EQ(r.exit_code, 0) << command << "\n" << r.output;
    std::vector<std::vector<std::string>> rows;
    std::istringstream in(r.output);
    for (std::string line; std::getline(in, line);) {
        std::vector<std::string> row;
        std::istringstream cells(line);
        for (std::string cell; std::getline(cells, cell, '\t');) row.push_back(cell);
        row.resize(fields.size());
        rows.push_back(std::move(row));
    }
    return rows;
}

}  // namespace exsim::testing
