#pragma once
// A pcapng file of the TCP connections a tap reports (common/wire_tap.hpp): each connection's
// handshake, its bytes as segments with their sequence and acknowledgement numbers (each one
// acknowledged at once, as loopback does), and its FIN exchange, with real addresses and ports,
// so that Wireshark and tshark dissect HTTP, NTLMSSP, SPNEGO and Kerberos as on a live capture.
// Notes become packet comments (frame.comment) on a connection's frames.
//
// Frames wait in memory until flush() (or the destructor) writes them, so that a note can still
// reach the first frame of an answer already recorded (note_last), and so that the tap, called on
// the front-end's worker threads, never writes a file there: the caller flushes from its own
// thread (exsim up: twice a second; exsim trace: at the end of its few requests). A cap bounds the file: the
// frame that would pass it is not written, and neither is anything after it (full() says so,
// and a warning is logged once). Thread-safe.

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <deque>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "exsim/common/wire_tap.hpp"

namespace exsim::capture {

struct recorder_options {
    std::filesystem::path file;
    std::string option = "--pcap";  // the command-line option the file came from, for errors
    bool force = false;             // overwrite an existing file
    std::uint64_t max_bytes = 0;    // the file's cap; 0: none
    std::string comment;            // the section's comment: what was captured
};

class recorder final : public common::wire_tap {
public:
    // Opens (creates) the file and writes its header. Throws common::config_error naming the
    // option when the file exists (without force), cannot be written, or the cap is too small.
    explicit recorder(recorder_options o);
    ~recorder() override;
    recorder(const recorder&) = delete;
    recorder& operator=(const recorder&) = delete;

    std::uint64_t opened(std::string name, const endpoint& opener, const endpoint& acceptor) override;
    void carried(std::uint64_t handle, bool from_opener, std::string_view bytes) override;
    void closed(std::uint64_t handle) override;

    // A comment for the next segment of data one side of the connection `name` sends. A frame's
    // comments keep the order they came in: the first is its headline.
    void note_next(const std::string& name, bool from_opener, std::string text);
    // A comment for the first segment of the data that side sent last (a response that was just
    // read), if it is not written yet; else for its next one.
    void note_last(const std::string& name, bool from_opener, std::string text);

    // Writes the frames that wait, but those younger than `settle` (whose answer's note may still
    // come), and flushes the file: it is readable as it stands.
    void flush(std::chrono::milliseconds settle = std::chrono::milliseconds(0));

    struct counts {
        std::uint64_t frames = 0, bytes = 0;  // written to the file
        bool full = false;
    };
    counts written() const;

private:
    struct side {
        endpoint at;
        std::uint32_t next = 0;         // its next sequence number
        std::uint16_t ip_id = 0;
        std::vector<std::string> notes; // for its next data segment
        std::uint64_t run_start = 0;    // the frame number that began its last data (0: none)
    };
    struct connection {
        std::string name;
        side opener, acceptor;
        bool last_from_opener = false, any_data = false;
    };
    struct frame {
        std::string bytes;
        std::uint64_t micros = 0;
        std::vector<std::string> comments;
    };

    void add(connection& c, bool from_opener, std::uint8_t flags, std::string_view payload,
             std::vector<std::string> comments = {});
    void write_pending(std::uint64_t until_micros = UINT64_MAX);
    side* find_side(const std::string& name, bool from_opener);

    recorder_options options_;
    std::FILE* file_ = nullptr;
    mutable std::mutex mutex_;
    std::unordered_map<std::uint64_t, connection> connections_;
    std::unordered_map<std::string, std::uint64_t> by_name_;
    std::uint64_t next_handle_ = 1;
    std::deque<frame> pending_;
    std::uint64_t first_pending_ = 1;  // the frame number of pending_.front()
    std::uint64_t last_micros_ = 0;
    counts written_;
};

}  // namespace exsim::capture
