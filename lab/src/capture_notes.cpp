#include "exsim/lab/capture_notes.hpp"

#include <fmt/format.h>

namespace exsim::lab {

std::string capture_notes::connection_name(const proxy::trace_event& e) {
    return fmt::format("{}#{}", e.backend, e.connection);
}

std::string served_line(const proxy::trace_event& answer) {
    if (answer.mailbox.empty() || answer.status >= 400) return {};
    if (answer.mailbox == answer.user) return fmt::format("served {}'s own mailbox", answer.user);
    return fmt::format("CROSS-USER: served {}'s mailbox to {}", answer.mailbox, answer.user);
}

void capture_notes::note(const proxy::trace_event& e) {
    const auto name = connection_name(e);
    switch (e.kind) {
        case proxy::trace_kind::connection: {
            std::lock_guard lock(mutex_);
            obtained_[name] = event_line(e);
            return;
        }
        case proxy::trace_kind::leg: {
            std::string how;
            {
                std::lock_guard lock(mutex_);
                if (auto it = obtained_.find(name); it != obtained_.end()) {
                    how = "\n" + it->second;
                    obtained_.erase(it);
                }
            }
            recorder_.note_next(name, true, fmt::format("{}'s request{}\n{}", e.user, how, event_line(e)));
            return;
        }
        case proxy::trace_kind::answer: {
            auto text = event_line(e);
            if (auto served = served_line(e); !served.empty()) text += "\n" + served;
            recorder_.note_last(name, false, text);
            return;
        }
        case proxy::trace_kind::authenticated:
            recorder_.note_last(name, false, event_line(e));
            return;
        case proxy::trace_kind::released:
            return;  // told by the next request's "how it was obtained"
    }
}

proxy::trace_sink capture_notes::sink(proxy::trace_sink next) {
    return [this, next = std::move(next)](const proxy::trace_event& e) {
        note(e);
        if (next) next(e);
    };
}

}  // namespace exsim::lab

namespace exsim::lab {

std::string capture_hint(const std::string& file, std::uint64_t frames) {
    return fmt::format(
        "wrote {0}: {1} frames. Open it in Wireshark (packet comments: Statistics > Capture File Properties, or the "
        "frame.comment column), or:\n"
        "  tshark -r {0} -Y 'frame.comment' -T fields -e tcp.stream -e frame.comment   # the narration\n"
        "  tshark -r {0} -Y 'ntlmssp.messagetype == 3' -T fields -e tcp.stream -e ntlmssp.auth.username   # NTLM logins\n"
        "  tshark -r {0} -Y 'http.response' -T fields -e tcp.stream -e http.response.code -e "
        "http.response.line   # who was served what\n",
        file, frames);
}

}  // namespace exsim::lab
