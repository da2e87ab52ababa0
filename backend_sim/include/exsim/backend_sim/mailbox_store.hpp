#pragma once
// The back-end's information store: every mailbox of one back-end in one SQLite database file in
// the state folder.
//
// Durability: WAL journal with synchronous=FULL by default, so an acknowledged send or delete
// survives not only a kill -9 of the process (WAL+NORMAL would already) but also a power loss, as
// an information store should. It costs one fsync of the WAL per send/delete; reads, the bulk of
// a mailbox workload, pay nothing. store_options::synchronous_full = false selects NORMAL for
// benchmarks that want to leave the disk out.
//
// Threads: one mailbox_store per worker thread, each with its own sqlite3 connection (opened
// SQLITE_OPEN_NOMUTEX) and its own cache of prepared statements, all on the same file. WAL lets
// readers run beside the one writer; writers queue on busy_timeout. A store is not thread-safe:
// never share one between threads.
//
// Errors: opening or creating the database, seeding and resetting run at start-up and throw
// std::runtime_error naming the file. The request-path operations (list/get/send/remove) return
// a std::error_code of store_errc and never throw for database errors.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <vector>

#include "exsim/common/message_id.hpp"
#include "exsim/common/topology.hpp"

namespace exsim::backend {

enum class store_errc {
    not_found = 1,   // no such message in that mailbox and folder
    busy,            // the database stayed locked longer than busy_timeout
    database_error,  // anything else SQLite reported (I/O, corruption, full disk)
    closed,          // the store was moved from
};

const std::error_category& store_category() noexcept;
std::error_code make_error_code(store_errc e) noexcept;

}  // namespace exsim::backend

template <>
struct std::is_error_code_enum<exsim::backend::store_errc> : std::true_type {};

namespace exsim::backend {

// Folder names as stored. (The mailbox API spells "Sent Items" as the path segment "Sent".)
inline constexpr std::string_view inbox_folder = "Inbox";
inline constexpr std::string_view sent_items_folder = "Sent Items";

struct message {
    std::string id;       // "<owner>.<n>", e.g. "alice.3"; n is never re-used within a mailbox
    std::string owner;    // the mailbox that holds this copy
    std::string folder;   // inbox_folder or sent_items_folder
    std::string from;     // user name of the sender
    std::string to;       // user name of the recipient
    std::string subject;
    std::string body;     // left empty by list()
    std::int64_t created_ms = 0;  // Unix time in milliseconds
};

struct outgoing_message {
    std::string_view from;
    std::string_view to;
    std::string_view subject;
    std::string_view body;
};

struct send_result {
    std::string sent_id;       // the copy in the sender's Sent Items
    std::string delivered_id;  // the copy in the recipient's Inbox; empty when not delivered here
};

struct store_options {
    bool synchronous_full = true;                 // false: synchronous=NORMAL (see top of file)
    std::chrono::milliseconds busy_timeout{5000};
};

// The owner embedded in a message id ("alice.3" -> "alice"), shared with the leak oracle.
using common::owner_of_message_id;

// The database file of a back-end in the state folder: `<state_dir>/mailboxes-<backend>.sqlite3`.
std::filesystem::path mailbox_database_path(const std::filesystem::path& state_dir,
                                            std::string_view backend_name);

class mailbox_store {
public:
    // Opens or creates the database (and its folder): WAL, synchronous, busy_timeout, schema.
    // Throws std::runtime_error naming the file on any failure.
    explicit mailbox_store(const std::filesystem::path& file, store_options options = {});
    ~mailbox_store();
    mailbox_store(mailbox_store&& other) noexcept;
    mailbox_store& operator=(mailbox_store&& other) noexcept;
    mailbox_store(const mailbox_store&) = delete;
    mailbox_store& operator=(const mailbox_store&) = delete;

    // Gives every mailbox of `backend_name` that was never seeded in this database
    // `topo.seed_messages` messages in its Inbox ("Welcome, alice (1/3)"), in one transaction;
    // each mailbox is seeded once for the life of the database (a table records it), so
    // re-opening, or several threads calling seed(), seed nothing more.
    // Returns how many mailboxes were seeded now. Throws std::runtime_error on database errors,
    // or when the database already belongs to another back-end.
    std::size_t seed(const common::topology& topo, std::string_view backend_name);

    // `--reset`: deletes every message, id counter and seed record, then seeds again, in one
    // transaction. Call it on one store before other threads open theirs.
    std::size_t reset(const common::topology& topo, std::string_view backend_name);

    // The newest `limit` messages of a folder, newest first, bodies left empty.
    std::error_code list(std::string_view owner, std::string_view folder, std::size_t limit,
                         std::vector<message>& out);

    // One message, only if it is in `owner`'s `folder`: an id of another mailbox is not_found.
    std::error_code get(std::string_view owner, std::string_view folder, std::string_view id,
                        message& out);

    // Stores a copy in the sender's Sent Items and, when `deliver_locally` (the recipient's
    // mailbox is on this back-end), another in the recipient's Inbox with an id of the
    // recipient's. One transaction, committed before returning.
    std::error_code send(const outgoing_message& m, bool deliver_locally, send_result& out);

    // Deletes one message of `owner`'s `folder`, committed before returning.
    // Returns {} when a message was deleted, store_errc::not_found when there was none.
    std::error_code remove(std::string_view owner, std::string_view folder, std::string_view id);

    const std::filesystem::path& path() const noexcept;

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

}  // namespace exsim::backend
