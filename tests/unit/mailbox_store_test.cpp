#include "exsim/backend_sim/mailbox_store.hpp"

#include <atomic>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "temp_folder.hpp"

namespace fs = std::filesystem;
using namespace exsim::backend;
using exsim::common::topology;

namespace {

using exsim::testing::temp_folder;


topology test_topology(std::size_t seed_messages = 3) {
    topology t;
    t.seed_messages = seed_messages;
    t.backends = {{"be1", "be1.exsim.test", {"Negotiate", "NTLM"}, false},
                  {"be2", "be2.exsim.test", {"NTLM"}, false}};
    t.users = {{"alice", "alice-pw", "be1", {}},
               {"bob", "bob-pw", "be1", {}},
               {"carol", "carol-pw", "be2", {}}};
    return t;
}

std::vector<message> list_all(mailbox_store& s, std::string_view owner,
                              std::string_view folder = inbox_folder) {
    std::vector<message> out;
    EXPECT_FALSE(s.list(owner, folder, 1000, out));
    return out;
}

bool contains_id(const std::vector<message>& ms, const std::string& id) {
    for (const auto& m : ms) {
        if (m.id == id) return true;
    }
    return false;
}

}  // namespace

TEST(MailboxStore, OwnerOfMessageIdIsTheTextBeforeTheLastDot) {
    EXPECT_EQ(owner_of_message_id("alice.3"), "alice");
    EXPECT_EQ(owner_of_message_id("user00012.140"), "user00012");
    EXPECT_EQ(owner_of_message_id("a.b.7"), "a.b");
    EXPECT_EQ(owner_of_message_id("nodot"), "");
    EXPECT_EQ(owner_of_message_id(""), "");
}

TEST(MailboxStore, SeedsEachLocalMailboxOnceAndReopeningDoesNotSeedAgain) {
    temp_folder dir;
    const auto file = mailbox_database_path(dir.path(), "be1");
    {
        mailbox_store store(file);
        EXPECT_EQ(store.seed(test_topology(), "be1"), 2u);  // alice and bob; carol is on be2
        EXPECT_EQ(list_all(store, "alice").size(), 3u);
        EXPECT_EQ(list_all(store, "bob").size(), 3u);
        EXPECT_TRUE(list_all(store, "carol").empty());
        EXPECT_EQ(store.seed(test_topology(), "be1"), 0u);
    }
    mailbox_store reopened(file);
    EXPECT_EQ(reopened.seed(test_topology(), "be1"), 0u);
    EXPECT_EQ(list_all(reopened, "alice").size(), 3u);
}

TEST(MailboxStore, SeedsAMailboxAddedToTheTopologyLater) {
    temp_folder dir;
    mailbox_store store(mailbox_database_path(dir.path(), "be1"));
    store.seed(test_topology(), "be1");
    auto bigger = test_topology();
    bigger.users.push_back({"erin", "erin-pw", "be1", {}});
    EXPECT_EQ(store.seed(bigger, "be1"), 1u);
    EXPECT_EQ(list_all(store, "erin").size(), 3u);
    EXPECT_EQ(list_all(store, "alice").size(), 3u);
}

TEST(MailboxStore, SeededMessagesNameTheirOwnerAndIdsEmbedIt) {
    temp_folder dir;
    mailbox_store store(mailbox_database_path(dir.path(), "be1"));
    store.seed(test_topology(), "be1");
    for (const std::string owner : {"alice", "bob"}) {
        for (const auto& m : list_all(store, owner)) {
            EXPECT_EQ(owner_of_message_id(m.id), owner);
            EXPECT_EQ(m.owner, owner);
            EXPECT_EQ(m.folder, inbox_folder);
            EXPECT_NE(m.subject.find(owner), std::string::npos) << m.subject;
            message full;
            ASSERT_FALSE(store.get(owner, inbox_folder, m.id, full));
            EXPECT_NE(full.body.find(owner), std::string::npos) << full.body;
        }
    }
    const auto newest = list_all(store, "alice");
    EXPECT_EQ(newest.front().subject, "Welcome, alice (3/3)");
    EXPECT_EQ(newest.front().id, "alice.3");
}

TEST(MailboxStore, ResetDropsEverythingAndSeedsAgain) {
    temp_folder dir;
    mailbox_store store(mailbox_database_path(dir.path(), "be1"));
    store.seed(test_topology(), "be1");
    send_result r;
    ASSERT_FALSE(store.send({"alice", "bob", "hi", "there"}, true, r));
    ASSERT_FALSE(store.remove("alice", inbox_folder, "alice.1"));

    EXPECT_EQ(store.reset(test_topology(2), "be1"), 2u);
    const auto alice = list_all(store, "alice");
    ASSERT_EQ(alice.size(), 2u);
    EXPECT_EQ(alice.front().id, "alice.2");
    EXPECT_EQ(alice.back().id, "alice.1");
    EXPECT_TRUE(list_all(store, "alice", sent_items_folder).empty());
    EXPECT_EQ(list_all(store, "bob").size(), 2u);
}

TEST(MailboxStore, SendStoresInSentItemsAndDeliversToALocalRecipient) {
    temp_folder dir;
    mailbox_store store(mailbox_database_path(dir.path(), "be1"));
    store.seed(test_topology(), "be1");
    send_result r;
    ASSERT_FALSE(store.send({"alice", "bob", "Lunch?", "At noon."}, true, r));
    EXPECT_EQ(r.sent_id, "alice.4");
    EXPECT_EQ(r.delivered_id, "bob.4");

    message sent;
    ASSERT_FALSE(store.get("alice", sent_items_folder, r.sent_id, sent));
    EXPECT_EQ(sent.from, "alice");
    EXPECT_EQ(sent.to, "bob");
    EXPECT_EQ(sent.subject, "Lunch?");
    EXPECT_EQ(sent.body, "At noon.");

    message delivered;
    ASSERT_FALSE(store.get("bob", inbox_folder, r.delivered_id, delivered));
    EXPECT_EQ(delivered.owner, "bob");
    EXPECT_EQ(delivered.from, "alice");
    EXPECT_EQ(delivered.body, "At noon.");
    EXPECT_EQ(list_all(store, "bob").front().id, "bob.4");  // newest first
}

TEST(MailboxStore, SendToARemoteRecipientStoresOnlyTheSentCopy) {
    temp_folder dir;
    mailbox_store store(mailbox_database_path(dir.path(), "be1"));
    store.seed(test_topology(), "be1");
    send_result r;
    ASSERT_FALSE(store.send({"alice", "carol", "Hi", "carol is on be2"}, false, r));
    EXPECT_EQ(r.sent_id, "alice.4");
    EXPECT_TRUE(r.delivered_id.empty());
    EXPECT_TRUE(list_all(store, "carol").empty());
}

TEST(MailboxStore, SentMailSurvivesClosingAndReopeningTheStore) {
    temp_folder dir;
    const auto file = mailbox_database_path(dir.path(), "be1");
    send_result r;
    {
        mailbox_store store(file);
        store.seed(test_topology(), "be1");
        ASSERT_FALSE(store.send({"alice", "bob", "Durable", "really"}, true, r));
    }
    mailbox_store reopened(file);
    message m;
    EXPECT_FALSE(reopened.get("alice", sent_items_folder, r.sent_id, m));
    EXPECT_FALSE(reopened.get("bob", inbox_folder, r.delivered_id, m));
    EXPECT_EQ(m.subject, "Durable");
}

TEST(MailboxStore, AcknowledgedSendAndDeleteSurviveAKillOfTheProcess) {
    temp_folder dir;
    const auto file = mailbox_database_path(dir.path(), "be1");
    {
        mailbox_store store(file);
        store.seed(test_topology(), "be1");
    }
    const auto marker = dir.path() / "acknowledged";
    const pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        // The child acknowledges (writes the marker) only after send/remove returned, then dies
        // without any clean-up: no destructor, no checkpoint, no close.
        mailbox_store store(file);
        send_result r;
        const bool ok = !store.send({"alice", "bob", "Before the kill", "x"}, true, r) &&
                        !store.remove("bob", inbox_folder, "bob.1");
        if (ok) std::ofstream(marker) << r.sent_id << ' ' << r.delivered_id;
        ::raise(SIGKILL);
        ::_exit(1);
    }
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFSIGNALED(status));
    ASSERT_TRUE(fs::exists(marker));

    mailbox_store store(file);
    message m;
    EXPECT_FALSE(store.get("alice", sent_items_folder, "alice.4", m));
    EXPECT_FALSE(store.get("bob", inbox_folder, "bob.4", m));
    EXPECT_EQ(store.get("bob", inbox_folder, "bob.1", m), store_errc::not_found);
}

TEST(MailboxStore, DeleteRemovesTheMessageAndASecondDeleteReportsNotFound) {
    temp_folder dir;
    mailbox_store store(mailbox_database_path(dir.path(), "be1"));
    store.seed(test_topology(), "be1");
    EXPECT_FALSE(store.remove("alice", inbox_folder, "alice.2"));
    message m;
    EXPECT_EQ(store.get("alice", inbox_folder, "alice.2", m), store_errc::not_found);
    EXPECT_FALSE(contains_id(list_all(store, "alice"), "alice.2"));
    EXPECT_EQ(list_all(store, "alice").size(), 2u);
    EXPECT_EQ(store.remove("alice", inbox_folder, "alice.2"), store_errc::not_found);
}

TEST(MailboxStore, MessagesOfAnotherMailboxOrFolderAreNotFound) {
    temp_folder dir;
    mailbox_store store(mailbox_database_path(dir.path(), "be1"));
    store.seed(test_topology(), "be1");
    message m;
    EXPECT_EQ(store.get("bob", inbox_folder, "alice.1", m), store_errc::not_found);
    EXPECT_EQ(store.get("alice", sent_items_folder, "alice.1", m), store_errc::not_found);
    EXPECT_EQ(store.remove("bob", inbox_folder, "alice.1"), store_errc::not_found);
    EXPECT_FALSE(store.get("alice", inbox_folder, "alice.1", m));
}

TEST(MailboxStore, IdsAreNeverReusedAfterADelete) {
    temp_folder dir;
    mailbox_store store(mailbox_database_path(dir.path(), "be1"));
    store.seed(test_topology(), "be1");
    ASSERT_FALSE(store.remove("alice", inbox_folder, "alice.3"));
    send_result r;
    ASSERT_FALSE(store.send({"bob", "alice", "s", "b"}, true, r));
    EXPECT_EQ(r.delivered_id, "alice.4");
}

TEST(MailboxStore, ListIsNewestFirstAndHonoursTheLimit) {
    temp_folder dir;
    mailbox_store store(mailbox_database_path(dir.path(), "be1"));
    store.seed(test_topology(), "be1");
    send_result r;
    for (int k = 0; k < 5; ++k) ASSERT_FALSE(store.send({"bob", "alice", "n", "b"}, true, r));
    std::vector<message> out;
    ASSERT_FALSE(store.list("alice", inbox_folder, 2, out));
    ASSERT_EQ(out.size(), 2u);
    EXPECT_EQ(out[0].id, "alice.8");
    EXPECT_EQ(out[1].id, "alice.7");
    EXPECT_TRUE(out[0].body.empty());
}

TEST(MailboxStore, TwoStoresOnOneFileSeeEachOthersCommits) {
    temp_folder dir;
    const auto file = mailbox_database_path(dir.path(), "be1");
    mailbox_store a(file);
    mailbox_store b(file);
    a.seed(test_topology(), "be1");
    EXPECT_EQ(b.seed(test_topology(), "be1"), 0u);
    EXPECT_EQ(list_all(b, "alice").size(), 3u);

    send_result r;
    ASSERT_FALSE(a.send({"alice", "bob", "from a", "x"}, true, r));
    message m;
    EXPECT_FALSE(b.get("bob", inbox_folder, r.delivered_id, m));
    ASSERT_FALSE(b.remove("bob", inbox_folder, r.delivered_id));
    EXPECT_EQ(a.get("bob", inbox_folder, r.delivered_id, m), store_errc::not_found);
}

TEST(MailboxStore, ConcurrentSendsFromSeveralThreadsAllCommitWithUniqueIds) {
    temp_folder dir;
    const auto file = mailbox_database_path(dir.path(), "be1");
    {
        mailbox_store seeder(file);
        seeder.seed(test_topology(), "be1");
    }
    // synchronous=NORMAL keeps this test quick on slow disks; the locking is the same.
    constexpr int threads = 4, sends = 25;
    std::vector<std::vector<std::string>> ids(threads);
    std::atomic<int> failures{0};
    std::vector<std::thread> workers;
    for (int t = 0; t < threads; ++t) {
        workers.emplace_back([&, t] {
            mailbox_store store(file, store_options{false, std::chrono::seconds(30)});
            for (int k = 0; k < sends; ++k) {
                send_result r;
                if (store.send({"alice", "bob", "s", "b"}, true, r)) {
                    ++failures;
                } else {
                    ids[t].push_back(r.sent_id);
                    ids[t].push_back(r.delivered_id);
                }
            }
        });
    }
    for (auto& w : workers) w.join();
    EXPECT_EQ(failures.load(), 0);
    std::set<std::string> unique;
    for (const auto& v : ids) unique.insert(v.begin(), v.end());
    EXPECT_EQ(unique.size(), static_cast<std::size_t>(threads * sends * 2));
    mailbox_store check(file);
    EXPECT_EQ(list_all(check, "bob").size(), static_cast<std::size_t>(3 + threads * sends));
}

TEST(MailboxStore, MovedStoreKeepsItsConnectionAndTheMovedFromOneReportsClosed) {
    temp_folder dir;
    mailbox_store a(mailbox_database_path(dir.path(), "be1"));
    a.seed(test_topology(), "be1");
    mailbox_store b(std::move(a));
    EXPECT_EQ(list_all(b, "alice").size(), 3u);
    std::vector<message> out;
    EXPECT_EQ(a.list("alice", inbox_folder, 10, out), store_errc::closed);  // NOLINT(bugprone-use-after-move)
}

TEST(MailboxStore, RefusesADatabaseSeededForAnotherBackend) {
    temp_folder dir;
    const auto file = dir.path() / "shared.sqlite3";
    mailbox_store store(file);
    store.seed(test_topology(), "be1");
    EXPECT_THROW(store.seed(test_topology(), "be2"), std::runtime_error);
}

TEST(MailboxStore, OpeningAFileThatIsNotADatabaseThrowsNamingIt) {
    temp_folder dir;
    const auto file = dir.path() / "garbage.sqlite3";
    std::ofstream(file) << std::string(4096, 'x');
    try {
        mailbox_store store(file);
        FAIL() << "expected std::runtime_error";
    } catch (const std::runtime_error& e) {
        EXPECT_NE(std::string(e.what()).find(file.string()), std::string::npos) << e.what();
    }
}

TEST(MailboxStore, StoresHostileTextVerbatim) {
    temp_folder dir;
    mailbox_store store(mailbox_database_path(dir.path(), "be1"));
    store.seed(test_topology(), "be1");
    const std::string subject = "'); DROP TABLE messages; --";
    const std::string body = std::string("nul\0inside", 10);
    send_result r;
    ASSERT_FALSE(store.send({"alice", "bob", subject, body}, true, r));
    message m;
    ASSERT_FALSE(store.get("bob", inbox_folder, r.delivered_id, m));
    EXPECT_EQ(m.subject, subject);
    EXPECT_EQ(m.body, body);
}
