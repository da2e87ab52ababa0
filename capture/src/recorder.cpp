#include "exsim/capture/recorder.hpp"

#include <cerrno>
#include <algorithm>
#include <chrono>
#include <cstring>

#include <fmt/format.h>

#include "exsim/capture/frames.hpp"
#include "exsim/capture/pcapng.hpp"
#include "exsim/common/log.hpp"
#include "exsim/common/topology.hpp"

namespace exsim::capture {
namespace {

constexpr std::size_t max_segment = 32 * 1024;           // loopback's MSS is larger; any size dissects

std::uint64_t now_micros() {
    using namespace std::chrono;
    return duration_cast<microseconds>(system_clock::now().time_since_epoch()).count();
}

}  // namespace

recorder::recorder(recorder_options o) : options_(std::move(o)) {
    const auto& path = options_.file;
    const auto header = pcapng::section_header("exsim", options_.comment) +
                        pcapng::interface_description(pcapng::linktype_ethernet, "lo");
    if (options_.max_bytes && options_.max_bytes < header.size() + 4096)
        throw common::config_error(fmt::format("{}: a cap of {} bytes leaves no room for a single connection",
                                               options_.option, options_.max_bytes));
    std::error_code ec;
    if (!options_.force && std::filesystem::exists(path, ec))
        throw common::config_error(
            fmt::format("{}: {} exists (add --force to overwrite it)", options_.option, path.string()));
    if (std::filesystem::is_directory(path, ec))
        throw common::config_error(fmt::format("{}: {} is a folder, not a file", options_.option, path.string()));
    file_ = std::fopen(path.c_str(), "wb");
    if (!file_)
        throw common::config_error(
            fmt::format("{}: cannot write {}: {}", options_.option, path.string(), std::strerror(errno)));
    std::fwrite(header.data(), 1, header.size(), file_);
    std::fflush(file_);
    written_.bytes = header.size();
}

recorder::~recorder() {
    flush();
    std::fclose(file_);
}

std::uint64_t recorder::opened(std::string name, const endpoint& opener, const endpoint& acceptor) {
    std::lock_guard lock(mutex_);
    if (written_.full || opener.address().is_v4() != acceptor.address().is_v4()) return 0;
    const auto handle = next_handle_++;
    auto& c = connections_[handle];
    c.name = std::move(name);
    c.opener.at = opener;
    c.acceptor.at = acceptor;
    // Initial sequence numbers: arbitrary, distinct per connection and side, as a kernel's are.
    c.opener.next = static_cast<std::uint32_t>(handle * 0x9E3779B9u);
    c.acceptor.next = static_cast<std::uint32_t>(handle * 0x85EBCA6Bu + 0x1000);
    by_name_[c.name] = handle;
    add(c, true, tcp_flag::syn, {});
    add(c, false, tcp_flag::syn | tcp_flag::ack, {});
    add(c, true, tcp_flag::ack, {});
    return handle;
}

void recorder::carried(std::uint64_t handle, bool from_opener, std::string_view bytes) {
    std::lock_guard lock(mutex_);
    auto it = connections_.find(handle);
    if (it == connections_.end() || written_.full) return;
    auto& c = it->second;
    auto& from = from_opener ? c.opener : c.acceptor;
    const bool new_run = !c.any_data || c.last_from_opener != from_opener;
    c.any_data = true;
    c.last_from_opener = from_opener;
    for (std::size_t at = 0; at < bytes.size(); at += max_segment) {
        if (at == 0 && new_run) from.run_start = first_pending_ + pending_.size();
        add(c, from_opener, tcp_flag::psh | tcp_flag::ack, bytes.substr(at, max_segment), std::exchange(from.notes, {}));
        add(c, !from_opener, tcp_flag::ack, {});
    }
}

void recorder::closed(std::uint64_t handle) {
    std::lock_guard lock(mutex_);
    auto it = connections_.find(handle);
    if (it == connections_.end()) return;
    auto& c = it->second;
    if (!written_.full) {
        add(c, true, tcp_flag::fin | tcp_flag::ack, {});
        add(c, false, tcp_flag::fin | tcp_flag::ack, {});
        add(c, true, tcp_flag::ack, {});
    }
    if (auto n = by_name_.find(c.name); n != by_name_.end() && n->second == handle) by_name_.erase(n);
    connections_.erase(it);
}

// One frame of `c` from one side, acknowledging everything the other side sent.
void recorder::add(connection& c, bool from_opener, std::uint8_t flags, std::string_view payload,
                   std::vector<std::string> comments) {
    auto& from = from_opener ? c.opener : c.acceptor;
    auto& to = from_opener ? c.acceptor : c.opener;
    segment s{from.at, to.at, from.next, to.next, flags, from.ip_id++, payload};
    frame f{tcp_frame(s), std::max(now_micros(), last_micros_), std::move(comments)};
    last_micros_ = f.micros;
    from.next += static_cast<std::uint32_t>(payload.size()) + ((flags & (tcp_flag::syn | tcp_flag::fin)) ? 1 : 0);
    pending_.push_back(std::move(f));
}

recorder::side* recorder::find_side(const std::string& name, bool from_opener) {
    auto n = by_name_.find(name);
    if (n == by_name_.end()) return nullptr;
    auto& c = connections_.at(n->second);
    return from_opener ? &c.opener : &c.acceptor;
}

void recorder::note_next(const std::string& name, bool from_opener, std::string text) {
    std::lock_guard lock(mutex_);
    if (auto* s = find_side(name, from_opener)) s->notes.push_back(std::move(text));
}

void recorder::note_last(const std::string& name, bool from_opener, std::string text) {
    std::lock_guard lock(mutex_);
    auto* s = find_side(name, from_opener);
    if (!s) return;
    const bool waiting = s->run_start >= first_pending_ && s->run_start < first_pending_ + pending_.size();
    (waiting ? pending_[s->run_start - first_pending_].comments : s->notes).push_back(std::move(text));
}

void recorder::write_pending(std::uint64_t until_micros) {
    for (; !pending_.empty() && pending_.front().micros <= until_micros; pending_.pop_front(), ++first_pending_) {
        if (written_.full) continue;
        const auto& f = pending_.front();
        const auto block = pcapng::enhanced_packet(f.bytes, f.micros, f.comments);
        if (options_.max_bytes && written_.bytes + block.size() > options_.max_bytes) {
            written_.full = true;
            common::logger("capture")->warn("{}: {} reached its cap of {} bytes after {} frames: no longer recording "
                                            "(the file is complete up to there)",
                                            options_.option, options_.file.string(), options_.max_bytes,
                                            written_.frames);
            continue;
        }
        std::fwrite(block.data(), 1, block.size(), file_);
        written_.bytes += block.size();
        ++written_.frames;
    }
}

void recorder::flush(std::chrono::milliseconds settle) {
    std::lock_guard lock(mutex_);
    const auto settled = static_cast<std::uint64_t>(std::chrono::microseconds(settle).count());
    write_pending(now_micros() - std::min(now_micros(), settled));
    std::fflush(file_);
}

recorder::counts recorder::written() const {
    std::lock_guard lock(mutex_);
    return written_;
}

}  // namespace exsim::capture
