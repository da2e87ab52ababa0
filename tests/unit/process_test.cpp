#include "exsim/common/process.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "temp_folder.hpp"

namespace {

using exsim::common::child_process;
using exsim::common::run_program;

// A descriptor of the parent without close-on-exec (as Asio opens its sockets), at a number no
// child would open by itself.
class inheritable_socket {
public:
    inheritable_socket() {
        const int s = ::socket(AF_INET, SOCK_STREAM, 0);
        fd_ = ::dup2(s, 200);
        ::close(s);
    }
    ~inheritable_socket() { ::close(fd_); }
    int fd() const { return fd_; }

private:
    int fd_ = -1;
};

TEST(Process, RunProgramGivesTheChildOnlyStdinStdoutAndStderr) {
    inheritable_socket parent;
    ASSERT_EQ(parent.fd(), 200);
    ASSERT_EQ(::fcntl(parent.fd(), F_GETFD) & FD_CLOEXEC, 0);
    // ls opens /proc/self/fd itself: 3 is its own.
    auto r = run_program("/bin/sh", {"-c", "ls /proc/self/fd"}, {});
    ASSERT_EQ(r.exit_code, 0) << r.output;
    EXPECT_EQ(r.output, "0\n1\n2\n3\n");
}

TEST(Process, AChildProcessGetsOnlyStdinStdoutAndStderr) {
    inheritable_socket parent;
    exsim::testing::temp_folder dir;
    const auto log = dir.path() / "child.log";
    auto child = child_process::start("/bin/sh", {"-c", "ls /proc/self/fd"}, {}, log);
    for (int i = 0; i < 500 && child.running(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    ASSERT_EQ(child.exit_code(), 0);
    std::ifstream in(log);
    std::stringstream text;
    text << in.rdbuf();
    EXPECT_EQ(text.str(), "0\n1\n2\n3\n");
}

}  // namespace
