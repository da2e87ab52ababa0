#include "exsim/lab/capture_notes.hpp"

#include <optional>

#include <fmt/format.h>

#include "exsim/auth/token_decoder.hpp"
#include "exsim/lab/trace.hpp"

namespace exsim::lab {

std::string capture_notes::connection_name(const proxy::trace_event& e) {
    return fmt::format("{}#{}", e.backend, e.connection);
}

std::string served_line(const proxy::trace_event& answer) {
    if (answer.mailbox.empty() || answer.status >= 400) return {};
    if (answer.mailbox == answer.user) return fmt::format("served {}'s own mailbox", answer.user);
    return fmt::format("CROSS-USER: served {}'s mailbox to {}", answer.mailbox, answer.user);
}

namespace {

// "NTLM AUTHENTICATE user=EXSIM\alice ws=EXSIMSRV": a token's description without its flags.
std::string short_token(const std::vector<std::uint8_t>& token) {
    const auto d = auth::decode_token(token);
    if (!d) return fmt::format("({} bytes)", token.size());
    auto text = auth::describe(*d);
    return text.substr(0, text.find(" flags="));
}

// The first comment of a request's frame, the one a one-line listing shows.
std::string leg_headline(const proxy::trace_event& leg, const std::optional<proxy::trace_event>& obtained) {
    auto text = fmt::format("{}'s request on connection #{}", leg.user, leg.connection);
    if (!leg.scheme.empty()) return text + fmt::format(": Authorization: {} ({})", leg.scheme, short_token(leg.token));
    text += ": no Authorization";
    if (obtained && !obtained->held_as.empty())
        text += fmt::format(", sent as is on a connection the back-end holds as {} ({})", obtained->held_as,
                            auth::mechanism_name(obtained->held_mechanism));
    return text;
}

}  // namespace

void capture_notes::note(const proxy::trace_event& e) {
    const auto name = connection_name(e);
    switch (e.kind) {
        case proxy::trace_kind::connection: {
            std::lock_guard lock(mutex_);
            obtained_[name] = e;
            return;
        }
        case proxy::trace_kind::leg: {
            std::optional<proxy::trace_event> obtained;
            {
                std::lock_guard lock(mutex_);
                if (auto it = obtained_.find(name); it != obtained_.end()) {
                    obtained = std::move(it->second);
                    obtained_.erase(it);
                }
            }
            recorder_.note_next(name, true, leg_headline(e, obtained));
            if (obtained) recorder_.note_next(name, true, event_line(*obtained));
            recorder_.note_next(name, true, event_line(e));
            return;
        }
        case proxy::trace_kind::answer: {
            const auto served = served_line(e);
            if (!served.empty()) recorder_.note_last(name, false, served);
            recorder_.note_last(name, false, event_line(e));
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
        "wrote {0}: {1} frames (back-end connections as they crossed, client connections as their decrypted HTTP). "
        "Open it in Wireshark (Analyze > Expert Information lists the comments), or with tshark:\n"
        "  tshark -r {0} -Y 'ntlmssp.messagetype == 3 || (http.request && !http.authorization) || frame.comment "
        "contains \"CROSS-USER: served\"' -T fields -E occurrence=f -e frame.number -e tcp.stream -e frame.comment\n"
        "  tshark -r {0} -Y frame.comment -T fields -e frame.number -e tcp.stream -e frame.comment   # all the narration\n",
        file, frames);
}

}  // namespace exsim::lab
