#pragma once
// The narration of a capture (exsim trace --pcap, exsim up --capture): turns the front-end's
// trace events (proxy/trace_event.hpp) into packet comments on the back-end connections' frames, so
// that Wireshark's packet comments (frame.comment) tell the story beside the bytes:
//
//   - a request's first segment: whose request it is and the Authorization sent, or that none was
//     and who the back-end holds the connection as (the headline, its first comment); then how
//     the connection was obtained and whether the policy asked for a handshake;
//   - a response's first segment: the mailbox it served, the user's own or "CROSS-USER: served
//     alice's mailbox to bob" (the headline), then the status and what was offered.

#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>

#include "exsim/capture/recorder.hpp"
#include "exsim/proxy/trace_event.hpp"

namespace exsim::lab {

class capture_notes {
public:
    explicit capture_notes(capture::recorder& r) : recorder_(r) {}

    // A sink that comments the capture, then passes each event on to `next` (if set).
    proxy::trace_sink sink(proxy::trace_sink next = {});

    // "be1#3": the name a back-end connection has in the capture.
    static std::string connection_name(const proxy::trace_event& e);

private:
    void note(const proxy::trace_event& e);

    capture::recorder& recorder_;
    std::mutex mutex_;
    std::unordered_map<std::string, proxy::trace_event> obtained_;  // connection -> how, until its first leg
};

// What to tell the user about a capture written: its frames, and the tshark lines that show the
// crossing.
std::string capture_hint(const std::string& file, std::uint64_t frames);

// Whose mailbox an answer served, against the user the front-end served: "" when it names none.
std::string served_line(const proxy::trace_event& answer);

}  // namespace exsim::lab
