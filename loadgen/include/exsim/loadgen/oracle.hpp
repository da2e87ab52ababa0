#pragma once
// The leak oracle (docs/design.md section 7), on the load generator's side and on the back-ends'.
//
// Each virtual user knows who it is. A response is "served as another user" when its status is
// below 400 and either the back-end says it authenticated someone else (X-Exsim-Identity), or it
// names a mailbox the user may not open (X-Exsim-Mailbox, the body's "mailbox"), or it shows a
// message id whose owner (ids are "<owner>.<n>") is such a mailbox. For a read (list, read) that
// is a leak; for a send or a delete it is a tamper. The back-ends' audit logs count the same
// requests from the other side (audit_record::cross_user), so the two counts must agree.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "exsim/common/audit_record.hpp"
#include "exsim/loadgen/results.hpp"

namespace exsim::loadgen {

enum class verdict { own, leak, tamper };

struct judged {
    verdict v = verdict::own;
    std::string served_as;            // who it was served as, when not the user ("" otherwise)
    std::vector<std::string> ids;     // message ids the body showed (list, read) or created (send)
};

// `may_open`: the mailboxes `user` may open (its own and those it is a delegate of).
judged judge(op o, std::string_view user, const std::vector<std::string>& may_open, unsigned status,
             std::string_view identity_header, std::string_view mailbox_header, std::string_view body);

// Which operation of the mix an audited request was: GET of a folder -> list, GET of a message
// -> read, POST -> send, DELETE -> delete; nullopt for anything else (HEAD probes, /exchweb/).
std::optional<op> op_of_request(std::string_view method, std::string_view path);

// What the audit records written during a run say, per operation of the mix.
struct audit_summary {
    std::uint64_t records = 0;
    std::uint64_t cross_user = 0;
    std::uint64_t served = 0;                    // records of the mix's operations below 400
    std::array<std::uint64_t, 4> connections{};  // (backend, conn) pairs first seen on this op
    std::array<std::uint64_t, 4> handshakes{};   // records with auth == "request"
};
audit_summary summarize_audit(const std::vector<common::audit_record>& records);

// Sum of every sample of `name` in a Prometheus text exposition whose labels contain
// `label` (e.g. "mechanism=\"ntlm\""; empty: every sample). 0 when absent.
double prometheus_sum(std::string_view text, std::string_view name, std::string_view label = {});

}  // namespace exsim::loadgen
