#pragma once
// What several commands read from the command line, and the checks that turn a bad value into
// one message naming the option (main() prints it and exits with 2).

#include <cstddef>
#include <stdexcept>
#include <string>
#include <vector>

#include <boost/program_options/options_description.hpp>
#include <boost/program_options/variables_map.hpp>

#include "exsim/common/topology.hpp"

namespace exsim::app {

namespace po = boost::program_options;

// A command's arguments, without "exsim" and the command's name.
using arguments = std::vector<std::string>;

// A misuse of the command line: main() prints the message as it is and exits with 2.
struct usage_error : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// Options every subcommand shares.
struct common_options {
    std::string config;
    std::string scenario;
    std::string state_dir = "state";
    std::string backend_auth;
    std::size_t extra_users = 0;
    std::string log_level = "info";
    bool reset = false;
};

void add_common(po::options_description& d, common_options& o);

// Parses args into d's variables (and *parsed, when given). False when --help was asked for:
// the help is printed and the command returns 0.
bool parse(const arguments& args, po::options_description& d, const char* what, po::variables_map* parsed = nullptr);

// What the topology came from, for messages and the trace's header.
std::string topology_source(const common_options& o);

// The topology --scenario or --config names (else the default), with the options' changes
// applied and validated; also sets the log level.
common::topology topology_of(const common_options& o);

// Numbers from the command line are read signed (program_options wraps "-1" into a huge
// unsigned) and checked here, naming the option.
std::size_t count_option(const char* name, long long v, long long lo, long long hi);
double number_option(const char* name, double v, double lo, double hi);

// "a,b,,c" -> {a, b, c}
std::vector<std::string> split_list(const std::string& s);

// The report files a command writes besides its table on stdout.
struct report_options {
    std::string json, html;
};

void add_reports(po::options_description& d, report_options& r);

}  // namespace exsim::app
