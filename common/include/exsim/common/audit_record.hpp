#pragma once
// The back-ends' audit log format: one JSON object per line ("JSON Lines"), one line per mailbox
// request, in a file of the state folder. The back-end writes it (exsim/backend_sim/audit_log.hpp);
// the load generator and the lab read it as data, without depending on the back-end.
//
// It is the back-end's side of the leak oracle: `identity` is who the
// connection was authenticated as, `on_behalf_of` is who the front-end said it was acting for
// (the X-Exsim-On-Behalf-Of header, informational only, never used for authorization), and
// `cross_user` is true when the two differ and the request succeeded (a 403 or 404 served nothing,
// so the count matches the leaks and tampers the load generator's oracle sees). Under the MS04-002 bug the front-end acts for bob on a
// connection that NTLM bound to alice: the back-end serves alice and the line says
// identity=alice, on_behalf_of=bob, cross_user=true.

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace exsim::common {

struct audit_record {
    std::string ts;            // ISO-8601 UTC with milliseconds; append() fills it when empty
    std::string backend;       // "be1"
    std::uint64_t conn = 0;    // back-end connection id
    std::string identity;      // authenticated user; empty = anonymous
    std::string mechanism;     // "kerberos", "ntlm" or ""
    std::string auth;          // "request": this request carried a completed handshake;
                               // "connection": it ran as the connection's earlier identity; "" anonymous
    std::string method;        // "GET", "POST", ...
    std::string path;          // request target as received
    std::string mailbox;       // mailbox touched or addressed; empty when none
    std::string op;            // "list", "read", "send", "delete", "denied", "not_found", ...
    unsigned status = 0;       // HTTP status sent
    std::string message;       // message id, when the request named or created one
    std::string on_behalf_of;  // X-Exsim-On-Behalf-Of as received (informational)
    bool cross_user = false;   // append() sets it: is_cross_user(identity, on_behalf_of, status)
};

// True when the front-end said it acted for someone (non-empty) other than the identity the
// back-end authenticated, and the request was served (status below 400).
bool is_cross_user(std::string_view identity, std::string_view on_behalf_of, unsigned status) noexcept;

// "2024-05-01T12:34:56.789Z": the one timestamp format exsim writes (audit records, message
// dates), UTC with milliseconds; a time before the epoch's millisecond shows .000.
std::string iso8601_utc(std::int64_t ms_since_epoch);
std::string iso8601_utc_now();

// One record as one JSON object, without the trailing newline. Bytes of a field that are not
// UTF-8 are written as U+FFFD, so that every line stays JSON.
std::string to_json_line(const audit_record& record);

// Parses one line; false when it is not a JSON object (missing fields take their defaults).
bool parse_audit_line(std::string_view line, audit_record& out);

// Where a back-end keeps its audit log in the state folder: `<state_dir>/audit-<backend>.jsonl`.
std::filesystem::path audit_log_path(const std::filesystem::path& state_dir,
                                     std::string_view backend_name);

// Reads an audit log from byte `from` (0: the whole log; a file size taken earlier: the lines
// written since). A missing file reads as empty; lines that do not parse (e.g. a last line torn
// by a crash) are skipped and counted in *malformed when given.
std::vector<audit_record> read_audit_log(const std::filesystem::path& file,
                                         std::size_t* malformed = nullptr, std::uintmax_t from = 0);

std::size_t count_cross_user(const std::vector<audit_record>& records) noexcept;
std::size_t count_cross_user(const std::filesystem::path& file);

}  // namespace exsim::common
