#include "exsim/backend_sim/mailbox_store.hpp"

#include <climits>
#include <stdexcept>
#include <utility>

#include <sqlite3.h>

namespace exsim::backend {

// ---------------------------------------------------------------------------------------------
// Error category

namespace {

class store_category_impl final : public std::error_category {
public:
    const char* name() const noexcept override { return "exsim.store"; }
    std::string message(int ev) const override {
        switch (static_cast<store_errc>(ev)) {
            case store_errc::not_found: return "no such message";
            case store_errc::busy: return "mailbox database busy";
            case store_errc::database_error: return "mailbox database error";
            case store_errc::closed: return "mailbox store closed";
        }
        return "unknown mailbox store error";
    }
};

}  // namespace

const std::error_category& store_category() noexcept {
    static const store_category_impl category;
    return category;
}

std::error_code make_error_code(store_errc e) noexcept {
    return {static_cast<int>(e), store_category()};
}

std::filesystem::path mailbox_database_path(const std::filesystem::path& state_dir,
                                            std::string_view backend_name) {
    return state_dir / ("mailboxes-" + std::string(backend_name) + ".sqlite3");
}

// ---------------------------------------------------------------------------------------------
// SQLite helpers

namespace {

constexpr int schema_version = 1;

// Bumped by hand when the schema changes; checked at open so that an old file fails loudly.
constexpr const char* schema_sql = R"sql(
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS messages (
    id         TEXT PRIMARY KEY,
    owner      TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    folder     TEXT NOT NULL,
    sender     TEXT NOT NULL,
    recipient  TEXT NOT NULL,
    subject    TEXT NOT NULL,
    body       TEXT NOT NULL,
    created_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_by_folder ON messages (owner, folder, seq DESC);
-- The last n handed out per mailbox: ids are never re-used, even after a delete, so the leak
-- oracle can never confuse an old message with a new one.
CREATE TABLE IF NOT EXISTS id_counters (
    owner TEXT PRIMARY KEY,
    last  INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS seeded_mailboxes (
    owner     TEXT PRIMARY KEY,
    seeded_ms INTEGER NOT NULL
);
)sql";

struct stmt_deleter {
    void operator()(sqlite3_stmt* s) const noexcept { sqlite3_finalize(s); }
};
using stmt_ptr = std::unique_ptr<sqlite3_stmt, stmt_deleter>;

// Resets a cached statement (and drops its bindings) when leaving scope, so that it never keeps a
// read transaction open and never carries a binding into the next use.
class stmt_use {
public:
    explicit stmt_use(sqlite3_stmt* s) noexcept : s_(s) {}
    ~stmt_use() {
        sqlite3_reset(s_);
        sqlite3_clear_bindings(s_);
    }
    stmt_use(const stmt_use&) = delete;
    stmt_use& operator=(const stmt_use&) = delete;
    sqlite3_stmt* get() const noexcept { return s_; }

private:
    sqlite3_stmt* s_;
};

int bind_text(sqlite3_stmt* s, int index, std::string_view text) {
    // SQLITE_TRANSIENT: SQLite copies; the views we bind do not outlive the call anyway, but
    // SQLITE_STATIC would tie correctness to that.
    return sqlite3_bind_text64(s, index, text.data(), text.size(), SQLITE_TRANSIENT, SQLITE_UTF8);
}

std::string column_text(sqlite3_stmt* s, int col) {
    const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(s, col));
    const int n = sqlite3_column_bytes(s, col);
    return p == nullptr ? std::string{} : std::string(p, static_cast<std::size_t>(n));
}

// The columns list_folder and get_message both select first, in this order:
// id, owner, folder, from, to, subject, created_ms (get_message adds the body after them).
message message_of_row(sqlite3_stmt* s) {
    message m;
    m.id = column_text(s, 0);
    m.owner = column_text(s, 1);
    m.folder = column_text(s, 2);
    m.from = column_text(s, 3);
    m.to = column_text(s, 4);
    m.subject = column_text(s, 5);
    m.created_ms = sqlite3_column_int64(s, 6);
    return m;
}

std::int64_t now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

std::error_code to_error(int rc) noexcept {
    switch (rc & 0xff) {  // primary result code
        case SQLITE_OK:
        case SQLITE_DONE:
        case SQLITE_ROW: return {};
        case SQLITE_BUSY:
        case SQLITE_LOCKED: return store_errc::busy;
        default: return store_errc::database_error;
    }
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// impl: one connection and its prepared statements

struct mailbox_store::impl {
    std::filesystem::path path;
    sqlite3* db = nullptr;

    stmt_ptr begin_immediate;
    stmt_ptr commit;
    stmt_ptr rollback;
    stmt_ptr next_seq;
    stmt_ptr insert_message;
    stmt_ptr list_folder;
    stmt_ptr get_message;
    stmt_ptr delete_message;
    stmt_ptr meta_get;
    stmt_ptr meta_put;
    stmt_ptr is_seeded;
    stmt_ptr mark_seeded;

    impl(std::filesystem::path p, const store_options& options) : path(std::move(p)) {
        if (path.has_parent_path()) {
            std::error_code ec;
            std::filesystem::create_directories(path.parent_path(), ec);
            // A failure shows up as the open error below, which names the file.
        }
        const int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
        const int rc = sqlite3_open_v2(path.c_str(), &db, flags, nullptr);
        if (rc != SQLITE_OK) {
            const std::string why = db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
            close();
            throw std::runtime_error("cannot open mailbox database " + path.string() + ": " + why);
        }
        try {
            sqlite3_extended_result_codes(db, 1);
            // Before anything that takes a lock: switching to WAL or creating the schema may
            // meet another thread's connection doing the same.
            const auto busy_ms = options.busy_timeout.count();
            sqlite3_busy_timeout(db, busy_ms > INT_MAX ? INT_MAX : static_cast<int>(busy_ms));

            const std::string mode = query_text("PRAGMA journal_mode=WAL");
            if (mode != "wal") {
                fail("journal_mode=WAL refused (got '" + mode + "')");
            }
            exec(options.synchronous_full ? "PRAGMA synchronous=FULL"
                                          : "PRAGMA synchronous=NORMAL");

            exec("BEGIN IMMEDIATE");
            try {
                exec(schema_sql);
                const std::string version = query_text(
                    "SELECT value FROM meta WHERE key = 'schema_version'");
                if (version.empty()) {
                    exec("INSERT INTO meta(key, value) VALUES('schema_version', '" +
                         std::to_string(schema_version) + "')");
                } else if (version != std::to_string(schema_version)) {
                    fail("schema version " + version + ", this build expects " +
                         std::to_string(schema_version) + " (use --reset or remove the file)");
                }
                exec("COMMIT");
            } catch (...) {
                sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
                throw;
            }

            begin_immediate = prepare("BEGIN IMMEDIATE");
            commit = prepare("COMMIT");
            rollback = prepare("ROLLBACK");
            next_seq = prepare(
                "INSERT INTO id_counters(owner, last) VALUES(?1, 1) "
                "ON CONFLICT(owner) DO UPDATE SET last = last + 1 RETURNING last");
            insert_message = prepare(
                "INSERT INTO messages(id, owner, seq, folder, sender, recipient, subject, body, "
                "created_ms) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)");
            list_folder = prepare(
                "SELECT id, owner, folder, sender, recipient, subject, created_ms FROM messages "
                "WHERE owner = ?1 AND folder = ?2 ORDER BY seq DESC LIMIT ?3");
            get_message = prepare(
                "SELECT id, owner, folder, sender, recipient, subject, created_ms, body "
                "FROM messages WHERE id = ?1 AND owner = ?2 AND folder = ?3");
            delete_message = prepare(
                "DELETE FROM messages WHERE id = ?1 AND owner = ?2 AND folder = ?3");
            meta_get = prepare("SELECT value FROM meta WHERE key = ?1");
            meta_put = prepare(
                "INSERT INTO meta(key, value) VALUES(?1, ?2) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value");
            is_seeded = prepare("SELECT 1 FROM seeded_mailboxes WHERE owner = ?1");
            mark_seeded = prepare("INSERT INTO seeded_mailboxes(owner, seeded_ms) VALUES(?1, ?2)");
        } catch (...) {
            close();
            throw;
        }
    }

    ~impl() { close(); }
    impl(const impl&) = delete;
    impl& operator=(const impl&) = delete;

    void close() noexcept {
        for (auto* s : {&begin_immediate, &commit, &rollback, &next_seq, &insert_message,
                        &list_folder, &get_message, &delete_message, &meta_get, &meta_put,
                        &is_seeded, &mark_seeded}) {
            s->reset();
        }
        if (db != nullptr) {
            sqlite3_close_v2(db);
            db = nullptr;
        }
    }

    // --- start-up helpers: throw ---

    [[noreturn]] void fail(const std::string& what) const {
        throw std::runtime_error("mailbox database " + path.string() + ": " + what);
    }

    void exec(const std::string& sql) {
        char* err = nullptr;
        if (sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
            const std::string why = err != nullptr ? err : sqlite3_errmsg(db);
            sqlite3_free(err);
            fail(why);
        }
    }

    // First column of the first row as text; empty when there is no row.
    std::string query_text(const std::string& sql) {
        sqlite3_stmt* raw = nullptr;
        if (sqlite3_prepare_v2(db, sql.c_str(), -1, &raw, nullptr) != SQLITE_OK) {
            fail(sqlite3_errmsg(db));
        }
        stmt_ptr s(raw);
        const int rc = sqlite3_step(s.get());
        if (rc == SQLITE_ROW) return column_text(s.get(), 0);
        if (rc != SQLITE_DONE) fail(sqlite3_errmsg(db));
        return {};
    }

    stmt_ptr prepare(const char* sql) {
        sqlite3_stmt* raw = nullptr;
        if (sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &raw, nullptr) !=
            SQLITE_OK) {
            fail(std::string("cannot prepare \"") + sql + "\": " + sqlite3_errmsg(db));
        }
        return stmt_ptr(raw);
    }

    // --- request-path helpers: error codes ---

    // Runs a statement that returns no rows.
    std::error_code step_done(sqlite3_stmt* s) {
        stmt_use use(s);
        const int rc = sqlite3_step(s);
        return rc == SQLITE_DONE ? std::error_code{} : to_error(rc);
    }

    // A write transaction. BEGIN IMMEDIATE takes the write lock up front: a deferred transaction
    // that reads first and upgrades later can fail with SQLITE_BUSY that busy_timeout cannot
    // resolve when two connections upgrade at once.
    class transaction {
    public:
        explicit transaction(impl& i) : i_(i) { ec_ = i_.step_done(i_.begin_immediate.get()); }
        ~transaction() {
            if (!ec_ && !done_) i_.step_done(i_.rollback.get());
        }
        transaction(const transaction&) = delete;
        transaction& operator=(const transaction&) = delete;
        const std::error_code& begin_error() const noexcept { return ec_; }
        std::error_code commit() {
            auto ec = i_.step_done(i_.commit.get());
            if (!ec) done_ = true;
            return ec;
        }

    private:
        impl& i_;
        std::error_code ec_;
        bool done_ = false;
    };

    // Next n for `owner` (inside a write transaction).
    std::error_code next_sequence(std::string_view owner, std::int64_t& n) {
        sqlite3_stmt* s = next_seq.get();
        stmt_use use(s);
        bind_text(s, 1, owner);
        int rc = sqlite3_step(s);
        if (rc != SQLITE_ROW) return rc == SQLITE_DONE ? store_errc::database_error : to_error(rc);
        n = sqlite3_column_int64(s, 0);
        rc = sqlite3_step(s);  // finish the statement so the upsert is complete
        return rc == SQLITE_DONE ? std::error_code{} : to_error(rc);
    }

    // Inserts a new message of `owner` with a fresh id (inside a write transaction).
    std::error_code insert(std::string_view owner, std::string_view folder,
                           const outgoing_message& m, std::int64_t created, std::string& id) {
        std::int64_t n = 0;
        if (auto ec = next_sequence(owner, n)) return ec;
        id.assign(owner);
        id.push_back('.');
        id += std::to_string(n);
        sqlite3_stmt* s = insert_message.get();
        stmt_use use(s);
        bind_text(s, 1, id);
        bind_text(s, 2, owner);
        sqlite3_bind_int64(s, 3, n);
        bind_text(s, 4, folder);
        bind_text(s, 5, m.from);
        bind_text(s, 6, m.to);
        bind_text(s, 7, m.subject);
        bind_text(s, 8, m.body);
        sqlite3_bind_int64(s, 9, created);
        const int rc = sqlite3_step(s);
        return rc == SQLITE_DONE ? std::error_code{} : to_error(rc);
    }

    std::error_code get_meta(std::string_view key, std::string& value) {
        sqlite3_stmt* s = meta_get.get();
        stmt_use use(s);
        bind_text(s, 1, key);
        const int rc = sqlite3_step(s);
        if (rc == SQLITE_ROW) {
            value = column_text(s, 0);
            return {};
        }
        value.clear();
        return rc == SQLITE_DONE ? std::error_code{} : to_error(rc);
    }

    std::error_code put_meta(std::string_view key, std::string_view value) {
        sqlite3_stmt* s = meta_put.get();
        stmt_use use(s);
        bind_text(s, 1, key);
        bind_text(s, 2, value);
        const int rc = sqlite3_step(s);
        return rc == SQLITE_DONE ? std::error_code{} : to_error(rc);
    }

    // Seeds the mailboxes not seeded yet (inside a write transaction). Throws.
    std::size_t seed_locked(const common::topology& topo, std::string_view backend_name) {
        auto check = [&](std::error_code ec, const char* what) {
            if (ec) fail(std::string(what) + ": " + ec.message() + " (" + sqlite3_errmsg(db) + ")");
        };
        std::string owner_backend;
        check(get_meta("backend", owner_backend), "reading the back-end name");
        if (owner_backend.empty()) {
            check(put_meta("backend", backend_name), "recording the back-end name");
        } else if (owner_backend != backend_name) {
            fail("belongs to back-end '" + owner_backend + "', not '" + std::string(backend_name) +
                 "'");
        }

        const std::int64_t now = now_ms();
        const auto count = topo.seed_messages;
        std::size_t seeded = 0;
        // topology::users_of() lives in exsim_common; a plain loop keeps the store independent.
        for (const auto& user : topo.users) {
            if (user.home != backend_name) continue;
            {
                sqlite3_stmt* s = is_seeded.get();
                stmt_use use(s);
                bind_text(s, 1, user.name);
                const int rc = sqlite3_step(s);
                if (rc == SQLITE_ROW) continue;
                if (rc != SQLITE_DONE) check(to_error(rc), "checking seed records");
            }
            for (std::size_t k = 1; k <= count; ++k) {
                const std::string subject = "Welcome, " + user.name + " (" + std::to_string(k) +
                                            "/" + std::to_string(count) + ")";
                const std::string body = "Seeded message " + std::to_string(k) + " of " +
                                         std::to_string(count) + " for " + user.name +
                                         "'s mailbox on " + std::string(backend_name) + ".";
                const outgoing_message m{"postmaster", user.name, subject, body};
                // Spread a minute apart, oldest first, so dates agree with "newest first".
                const auto created = now - static_cast<std::int64_t>(count - k) * 60'000;
                std::string id;
                check(insert(user.name, inbox_folder, m, created, id), "seeding");
            }
            {
                sqlite3_stmt* s = mark_seeded.get();
                stmt_use use(s);
                bind_text(s, 1, user.name);
                sqlite3_bind_int64(s, 2, now);
                const int rc = sqlite3_step(s);
                if (rc != SQLITE_DONE) check(to_error(rc), "recording the seed");
            }
            ++seeded;
        }
        return seeded;
    }

    std::size_t seed(const common::topology& topo, std::string_view backend_name, bool reset) {
        transaction tx(*this);
        if (tx.begin_error()) fail("cannot start the seeding transaction: " + tx.begin_error().message());
        if (reset) {
            // Statements are executed directly: reset runs once, at start-up.
            exec("DELETE FROM messages; DELETE FROM id_counters; DELETE FROM seeded_mailboxes; "
                 "DELETE FROM meta WHERE key <> 'schema_version';");
        }
        const std::size_t n = seed_locked(topo, backend_name);
        if (auto ec = tx.commit()) fail("cannot commit the seed: " + ec.message());
        return n;
    }
};

// ---------------------------------------------------------------------------------------------
// mailbox_store

mailbox_store::mailbox_store(const std::filesystem::path& file, store_options options)
    : impl_(std::make_unique<impl>(file, options)) {}

mailbox_store::~mailbox_store() = default;
mailbox_store::mailbox_store(mailbox_store&& other) noexcept = default;
mailbox_store& mailbox_store::operator=(mailbox_store&& other) noexcept = default;

const std::filesystem::path& mailbox_store::path() const noexcept {
    static const std::filesystem::path none;
    return impl_ ? impl_->path : none;
}

std::size_t mailbox_store::seed(const common::topology& topo, std::string_view backend_name) {
    if (!impl_) throw std::runtime_error("mailbox store used after move");
    return impl_->seed(topo, backend_name, false);
}

std::size_t mailbox_store::reset(const common::topology& topo, std::string_view backend_name) {
    if (!impl_) throw std::runtime_error("mailbox store used after move");
    return impl_->seed(topo, backend_name, true);
}

std::error_code mailbox_store::list(std::string_view owner, std::string_view folder,
                                    std::size_t limit, std::vector<message>& out) {
    out.clear();
    if (!impl_) return store_errc::closed;
    sqlite3_stmt* s = impl_->list_folder.get();
    stmt_use use(s);
    bind_text(s, 1, owner);
    bind_text(s, 2, folder);
    sqlite3_bind_int64(s, 3, limit > INT64_MAX ? INT64_MAX : static_cast<std::int64_t>(limit));
    for (;;) {
        const int rc = sqlite3_step(s);
        if (rc == SQLITE_DONE) return {};
        if (rc != SQLITE_ROW) {
            out.clear();
            return to_error(rc);
        }
        out.push_back(message_of_row(s));
    }
}

std::error_code mailbox_store::get(std::string_view owner, std::string_view folder,
                                   std::string_view id, message& out) {
    if (!impl_) return store_errc::closed;
    sqlite3_stmt* s = impl_->get_message.get();
    stmt_use use(s);
    bind_text(s, 1, id);
    bind_text(s, 2, owner);
    bind_text(s, 3, folder);
    const int rc = sqlite3_step(s);
    if (rc == SQLITE_DONE) return store_errc::not_found;
    if (rc != SQLITE_ROW) return to_error(rc);
    out = message_of_row(s);
    out.body = column_text(s, 7);
    return {};
}

std::error_code mailbox_store::send(const outgoing_message& m, bool deliver_locally,
                                    send_result& out) {
    out = send_result{};
    if (!impl_) return store_errc::closed;
    impl::transaction tx(*impl_);
    if (tx.begin_error()) return tx.begin_error();
    const std::int64_t created = now_ms();
    send_result r;
    if (auto ec = impl_->insert(m.from, sent_items_folder, m, created, r.sent_id)) return ec;
    if (deliver_locally) {
        if (auto ec = impl_->insert(m.to, inbox_folder, m, created, r.delivered_id)) return ec;
    }
    if (auto ec = tx.commit()) return ec;
    out = std::move(r);
    return {};
}

std::error_code mailbox_store::remove(std::string_view owner, std::string_view folder,
                                      std::string_view id) {
    if (!impl_) return store_errc::closed;
    // One statement in autocommit mode is its own transaction, committed (and, with
    // synchronous=FULL, synced) before sqlite3_step returns.
    sqlite3_stmt* s = impl_->delete_message.get();
    stmt_use use(s);
    bind_text(s, 1, id);
    bind_text(s, 2, owner);
    bind_text(s, 3, folder);
    const int rc = sqlite3_step(s);
    if (rc != SQLITE_DONE) return to_error(rc);
    return sqlite3_changes(impl_->db) > 0 ? std::error_code{} : store_errc::not_found;
}

}  // namespace exsim::backend
