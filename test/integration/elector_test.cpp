// The library's blocking API (Elector::run / request_stop) against the real
// server from the PG* environment. Skipped when no server answers.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <thread>
#include <tuple>
#include <vector>

#include "singleton_lock/admin.hpp"
#include "singleton_lock/elector.hpp"
#include "it_support.hpp"

namespace singleton_lock {
namespace {

using namespace std::chrono_literals;

#define REQUIRE_SERVER() IT_REQUIRE_SERVER("SELECT 'singleton_acquire'::regproc", "singleton_lock")

std::string unique_name(const char* what) { return it::unique_name("it_lib_", what); }
using it::eventually;
using it::query;

// A leads, B waits; before each leader is asked to stop (A, then B, once it
// leads) `ready` runs (it may assert). B must lead only after A released, with
// a greater token. Prints how long B took to lead after A's stop request.
// db_errors, if given, counts the database errors either elector reported.
void hand_over(const ElectorOptions& o, const std::function<void()>& ready,
               std::atomic<int>* db_errors = nullptr) {
    std::atomic<std::int64_t> token_a{0}, token_b{0};
    std::atomic<bool> b_standby{false};
    ElectorEvents ea, eb;
    if (db_errors != nullptr) {
        ea.on_database_error = eb.on_database_error = [db_errors](const std::string& e) {
            ++*db_errors;
            std::fprintf(stderr, "database error: %s\n", e.c_str());
        };
    }
    ea.on_leader = [&](const LeaseInfo& l) { token_a = l.token; };
    eb.on_leader = [&](const LeaseInfo& l) { token_b = l.token; };
    eb.on_standby = [&](const LeaseInfo&) { b_standby = true; };
    Elector a(o, ea), b(o, eb);
    State sa{}, sb{};
    std::thread ta([&] { sa = a.run(); });
    std::thread tb;
    const auto join_all = [&] {  // (also on a failed ASSERT: never leave a thread joinable)
        a.request_stop();
        b.request_stop();
        if (ta.joinable()) ta.join();
        if (tb.joinable()) tb.join();
    };
    if (!eventually([&] { return token_a != 0; })) {
        join_all();
        FAIL() << "A never led";
    }
    tb = std::thread([&] { sb = b.run(); });
    if (!eventually([&] { return b_standby.load(); })) {
        join_all();
        FAIL() << "B never waited";
    }
    ready();
    EXPECT_EQ(token_b.load(), 0) << "two leaders";
    const auto t0 = std::chrono::steady_clock::now();
    a.request_stop();
    ta.join();
    EXPECT_EQ(sa, State::released);
    if (!eventually([&] { return token_b != 0; })) {
        join_all();
        FAIL() << "B never led";
    }
    std::printf("library handover after request_stop: %lld ms\n",
                static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                           std::chrono::steady_clock::now() - t0)
                                           .count()));
    EXPECT_GT(token_b.load(), token_a.load());
    ready();
    b.request_stop();
    tb.join();
    EXPECT_EQ(sb, State::released);
}

TEST(ElectorIntegration, HandoverOnRequestStop) {
    REQUIRE_SERVER();
    ElectorOptions o;
    o.name = unique_name("handover");
    o.ttl = 3s;
    hand_over(o, [] { std::this_thread::sleep_for(200ms); });
}

// A database of a test's own, with the extension: its counters show whether
// any statement of the electors using it was cancelled (a cancelled statement
// rolls its transaction back).
class OwnDatabase {
  public:
    explicit OwnDatabase(const char* what) : name_(unique_name(what)) {
        ok_ = it::command("CREATE DATABASE " + name_) &&
              it::command("CREATE EXTENSION singleton_lock", dsn());
    }
    ~OwnDatabase() { (void)it::command("DROP DATABASE IF EXISTS " + name_ + " WITH (FORCE)"); }
    bool ok() const { return ok_; }
    std::string dsn() const { return "dbname=" + name_; }
    // A default for the database's new sessions, as an administrator sets one.
    bool set_default(const std::string& setting, const std::string& value) const {
        return it::command("ALTER DATABASE " + name_ + " SET " + setting + " = '" + value + "'");
    }
    // Whether exactly one other backend of this database becomes active with
    // `condition` (SQL on pg_stat_activity's columns) within the usual limit.
    bool one_active(const std::string& condition) const {
        const std::string sql =
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND "
            "state = 'active' AND pid <> pg_backend_pid() AND " + condition;
        return eventually([&] { return query(sql, dsn()) == "1"; });
    }
    // Options of an elector of lease `lease` in this database.
    ElectorOptions options(const char* lease) const {
        ElectorOptions o;
        o.name = lease;
        o.dsn = dsn();
        return o;
    }
    // Once every backend of the database has gone (each flushed its counters
    // as it exited): how many transactions rolled back, "" if unknown.
    std::string rolled_back() const {
        const std::string stats = " FROM pg_stat_database WHERE datname = '" + name_ + "'";
        if (!eventually([&] { return query("SELECT numbackends" + stats) == "0"; })) return "";
        EXPECT_NE(query("SELECT xact_commit" + stats), "0");
        return query("SELECT xact_rollback" + stats);
    }

  private:
    std::string name_;
    bool ok_ = false;
};

#define REQUIRE_CREATEDB()                                                                      \
    if (query("SELECT rolcreatedb OR rolsuper FROM pg_roles WHERE rolname = current_user") != \
        "t")                                                                                    \
    GTEST_SKIP() << "needs a role that may create a database"

// A server, the right to create a database, and `db`, a database of the test's own.
#define REQUIRE_OWN_DATABASE(db, what) \
    REQUIRE_SERVER();                  \
    REQUIRE_CREATEDB();                \
    OwnDatabase db(what);              \
    ASSERT_TRUE(db.ok())

// A one-session leader keeps singleton_watch in flight between heartbeats. Its
// release is queued behind the watch (pipeline mode) and the server ends the
// watch when the release arrives: no cancel request, which costs a new
// connection and a process forked in the server (a graceful handover took 22 ms
// with it, 4 without, in the handover bench).
TEST(ElectorIntegration, ReleaseQueuedBehindTheWatchCancelsNothing) {
    REQUIRE_OWN_DATABASE(db, "pipe");
    ElectorOptions o = db.options("pipe");
    o.ttl = 30s;  // heartbeats every 10 s: the watch waits in between
    hand_over(o, [&] {
        EXPECT_TRUE(db.one_active("query LIKE '%singleton_watch%'")) << "the leader does not watch";
    });
    EXPECT_EQ(db.rolled_back(), "0") << "a statement of the electors was cancelled in the server";
}

// Limits an administrator may set for the application's role or database
// (here the connection's options): a statement_timeout shorter than the
// electors' waits, and an idle_session_timeout shorter than the time their
// sessions idle between calls. The standby's waiting acquires and the leader's
// watches stay under the first; the sessions turn the second off for
// themselves. Nothing is cancelled, no session ends, nobody loses or
// reconnects. (Before: a cancel and a reconnection every statement_timeout;
// the leader lost its lease when the server ended its idle main session.)
// (An elector with one session and no watch idles between heartbeats too.)
using Limit = std::tuple<const char*, bool, bool>;  // the setting, a second session, watch
class ServerTimeouts : public ::testing::TestWithParam<Limit> {};

TEST_P(ServerTimeouts, EndNoWaitNoWatchAndNoSession) {
    REQUIRE_OWN_DATABASE(db, "limits");
    ElectorOptions o = db.options("limits");
    o.dsn += " options='-c " + std::string(std::get<0>(GetParam())) + "=300'";
    // waits of up to 1.5 s (the watch) and 1 s (acquire slices), heartbeats
    // every second; 300 ms allowed
    o.ttl = 3s;
    o.second_session = std::get<1>(GetParam());
    o.watch = std::get<2>(GetParam());
    std::atomic<int> errors{0};
    hand_over(o, [] { std::this_thread::sleep_for(1500ms); }, &errors);
    EXPECT_EQ(errors.load(), 0);
    EXPECT_EQ(db.rolled_back(), "0") << "a statement of the electors was cancelled in the server";
}

INSTANTIATE_TEST_SUITE_P(
    ElectorIntegration, ServerTimeouts,
    ::testing::Values(Limit{"statement_timeout", false, true},
                      Limit{"statement_timeout", true, true},
                      Limit{"idle_session_timeout", false, false},
                      Limit{"idle_session_timeout", true, true}),
    [](const auto& info) {
        return std::string(std::get<0>(info.param)) +
               (std::get<1>(info.param) ? "_TwoSessions" : "_OneSession") +
               (std::get<2>(info.param) ? "" : "_NoWatch");
    });

// A database whose sessions default to REPEATABLE READ or SERIALIZABLE, or to
// read-only transactions (an administrator's choice for the application): a
// waiting acquire, whose snapshot would never see the release, needs READ
// COMMITTED, and every call but the watch writes, so each session of ours sets
// its own defaults in a first statement before anything else, and again in
// every new session after a reconnection (here the standby's waiting backend
// is terminated). Before: the standby retried the 0A000 error forever and
// never led; under read-only the 25006 error, as if looking for a primary.
// The setting, its value, a second session, reconnect.
using Default = std::tuple<const char*, const char*, bool, bool>;
class SessionDefaults : public ::testing::TestWithParam<Default> {};

TEST_P(SessionDefaults, StandbyStillWaitsAndLeads) {
    REQUIRE_OWN_DATABASE(db, "defaults");
    ASSERT_TRUE(db.set_default(std::get<0>(GetParam()), std::get<1>(GetParam())));
    ElectorOptions o = db.options("defaults");
    o.ttl = 3s;
    o.second_session = std::get<2>(GetParam());
    const bool reconnect = std::get<3>(GetParam());
    std::atomic<int> errors{0};
    int calls = 0;  // hand_over calls back while B waits, then once B leads
    hand_over(o, [&] {
        if (++calls > 1) return;
        const std::string waiting =
            "query LIKE '%singleton_acquire%' AND wait_event_type = 'Extension'";
        ASSERT_TRUE(db.one_active(waiting)) << "the standby does not wait in the server";
        if (!reconnect) return;
        const bool terminated =
            query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
                  "datname = current_database() AND state = 'active' AND " + waiting,
                  db.dsn()) == "t";
        ASSERT_TRUE(terminated) << "the standby's waiting backend was not terminated";
        ASSERT_TRUE(db.one_active(waiting)) << "the standby does not wait again after reconnecting";
    }, &errors);
    EXPECT_EQ(errors.load(), reconnect ? 1 : 0) << "database errors other than the termination";
}

constexpr const char* kIsolation = "default_transaction_isolation";
constexpr const char* kReadOnly = "default_transaction_read_only";
INSTANTIATE_TEST_SUITE_P(
    ElectorIntegration, SessionDefaults,
    ::testing::Values(Default{kIsolation, "repeatable read", true, false},
                      Default{kIsolation, "serializable", false, false},
                      Default{kIsolation, "serializable", false, true},
                      Default{kIsolation, "repeatable read", true, true},
                      Default{kReadOnly, "on", true, false},
                      Default{kReadOnly, "on", false, true}),
    [](const auto& info) {
        std::string value = std::string(std::get<0>(info.param) == kReadOnly ? "read_only_" : "") +
                            std::get<1>(info.param);
        std::replace(value.begin(), value.end(), ' ', '_');
        return value + (std::get<2>(info.param) ? "_TwoSessions" : "_OneSession") +
               (std::get<3>(info.param) ? "_Reconnecting" : "");
    });

// A database whose sessions default to SERIALIZABLE, READ ONLY and
// DEFERRABLE (a reporting role's defaults), while a serializable read-write
// transaction stays open (a batch job): any statement that takes a snapshot,
// a SELECT of constants included, waits for a safe snapshot until that
// transaction ends. Our sessions' first statement is a SET (which takes none)
// of their own defaults. Before: every connect of ours waited for it ("no
// reply from the server in time", then again), so nobody led.
TEST(ElectorIntegration, ADeferrableDefaultDelaysNoConnect) {
    REQUIRE_OWN_DATABASE(db, "deferrable");
    ASSERT_TRUE(db.set_default("default_transaction_isolation", "serializable"));
    ASSERT_TRUE(db.set_default("default_transaction_read_only", "on"));
    ASSERT_TRUE(db.set_default("default_transaction_deferrable", "on"));
    std::unique_ptr<PGconn, decltype(&PQfinish)> batch(PQconnectdb(db.dsn().c_str()), PQfinish);
    ASSERT_EQ(PQstatus(batch.get()), CONNECTION_OK);
    for (const char* sql : {"BEGIN ISOLATION LEVEL SERIALIZABLE READ WRITE",
                            "SELECT count(*) FROM pg_class"}) {
        std::unique_ptr<PGresult, decltype(&PQclear)> r(PQexec(batch.get(), sql), PQclear);
        ASSERT_TRUE(PQresultStatus(r.get()) == PGRES_COMMAND_OK ||
                    PQresultStatus(r.get()) == PGRES_TUPLES_OK) << PQerrorMessage(batch.get());
    }
    // The defaults do hold a snapshot-taking statement back (else this test
    // proves nothing): a plain SELECT 1 waits for a safe snapshot.
    const std::string limited = db.dsn() + " options='-c statement_timeout=300";
    ASSERT_EQ(query("SELECT 'answered'", limited + "'"), "")
        << "a SELECT under these defaults did not wait";
    ASSERT_EQ(query("SELECT 'answered'", limited + " -c default_transaction_deferrable=off'"),
              "answered") << "(the check itself)";
    ElectorOptions o = db.options("deferrable");
    o.ttl = 3s;
    std::atomic<int> errors{0};
    hand_over(o, [] {}, &errors);
    EXPECT_EQ(errors.load(), 0) << "a connect of ours waited for a safe snapshot";
    // The admin commands' connection too (a statement_timeout in case it waits).
    std::vector<LeaseStatus> leases;
    EXPECT_NO_THROW(leases = list_leases(limited + "'", "", std::string("deferrable")));
    EXPECT_EQ(leases.size(), 1u);
}

// A database whose sessions default to a lock_timeout (an administrator's guard
// for the application): the release and the standby's take of the lease wait
// for the lease's row until the leader's asserting transactions end (fenced
// work ends before the lease moves), so our sessions turn it off for
// themselves; our own deadlines bound every call. Before: both failed with
// 55P03 while such a transaction ran, and retried.
TEST(ElectorIntegration, ALockTimeoutDefaultFailsNoWait) {
    REQUIRE_OWN_DATABASE(db, "locks");
    ASSERT_TRUE(db.set_default("lock_timeout", "100ms"));
    ElectorOptions o = db.options("locks");
    o.ttl = 3s;
    std::atomic<int> errors{0};
    const auto work = [&](const std::string& token, const char* seconds) {
        return query("SELECT 'held' FROM (SELECT singleton_assert('locks', " + token + "), "
                     "pg_sleep(" + seconds + ")) work", db.dsn());
    };
    std::thread last_work;
    std::string last_result;
    int calls = 0;  // hand_over calls back while B waits, then once B leads
    hand_over(o, [&] {
        if (++calls > 1) return;
        const std::string token =
            query("SELECT token FROM singleton_lock_leases WHERE name = 'locks'", db.dsn());
        // The leader's work: asserting transactions, back to back; the last one
        // still runs as the leader releases.
        for (int i = 0; i < 3; ++i) ASSERT_EQ(work(token, "0.3"), "held");
        last_work = std::thread([&, token] { last_result = work(token, "1"); });
        // (asserted: sleeping)
        ASSERT_TRUE(db.one_active("query LIKE '%pg_sleep(1)%' AND wait_event = 'PgSleep'"));
    }, &errors);
    if (last_work.joinable()) last_work.join();
    EXPECT_EQ(last_result, "held");
    EXPECT_EQ(errors.load(), 0) << "a call of ours failed on the lock_timeout";
}

// A database whose sessions default to LATIN1 and German dates: a lease name
// is the same lease for every client (the bytes of "zürich" as UTF-8, not as
// LATIN1 read as UTF-8: "zÃ¼rich", another lease than other clients'), and
// the times reported stay ISO, the durations PostgreSQL's style (an ISO 8601
// IntervalStyle showed the status's ttl as "PT10S").
TEST(ElectorIntegration, ARoleEncodingOrDateStyleChangesNoNameAndNoTime) {
    REQUIRE_OWN_DATABASE(db, "encoding");
    ASSERT_TRUE(db.set_default("client_encoding", "LATIN1"));
    ASSERT_TRUE(db.set_default("DateStyle", "German, DMY"));
    ASSERT_TRUE(db.set_default("IntervalStyle", "iso_8601"));
    ElectorOptions o = db.options("z\xc3\xbcrich");  // "zürich" in UTF-8
    std::string expires_at;
    ElectorEvents e;
    e.on_leader = [&](const LeaseInfo& l) { expires_at = l.expires_at; };
    Elector a(o, e);
    std::thread t([&] { (void)a.run(); });
    const bool led = eventually([&] { return a.state() == State::leader; });
    const std::string names = query(
        "SELECT string_agg(encode(convert_to(name, 'UTF8'), 'hex'), ',') FROM singleton_lock_leases",
        db.dsn());
    std::vector<LeaseStatus> leases;
    EXPECT_NO_THROW(leases = list_leases(db.dsn(), "", std::nullopt));
    a.request_stop();
    t.join();
    ASSERT_TRUE(led) << "never led";
    EXPECT_EQ(names, "7ac3bc72696368") << "the lease's name as stored (hex of its UTF-8)";
    EXPECT_TRUE(expires_at.size() > 10 && expires_at[4] == '-' && expires_at[7] == '-')
        << "expires_at is not ISO: " << expires_at;
    ASSERT_EQ(leases.size(), 1u);
    EXPECT_EQ(leases[0].ttl, "00:00:10");
    EXPECT_EQ(leases[0].expires_in.rfind("00:00:", 0), 0u) << leases[0].expires_in;
    EXPECT_EQ(leases[0].expires_at.rfind(expires_at.substr(0, 10), 0), 0u) << leases[0].expires_at;
}

// The poll-loop interface, release() in the step right after the one that made
// the elector leader and sent its first watch: the server has not begun to
// answer the watch, and a release sent now could arrive in its read of the
// watch, unnoticed. The release waits for that answer, then is queued behind
// the watch: nothing is cancelled (each round once took a cancel request).
TEST(ElectorIntegration, ReleaseRightAfterTheFirstWatchCancelsNothing) {
    REQUIRE_OWN_DATABASE(db, "pipe_first");
    for (int round = 0; round < 10; ++round) {
        ElectorOptions o = db.options("first_watch");
        bool released = false, confirmed = false;
        ElectorEvents e;
        e.on_released = [&](bool ok) { confirmed = ok; };
        Elector a(o, e);
        a.start();
        const auto give_up = std::chrono::steady_clock::now() + 20s;
        while (!is_terminal(a.state()) && std::chrono::steady_clock::now() < give_up) {
            pollfd fds[Elector::max_pollfds];
            const int n = a.pollfds(fds);
            const auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(
                a.next_wakeup() - std::chrono::steady_clock::now());
            (void)::poll(fds, static_cast<nfds_t>(n),
                         static_cast<int>(std::clamp<std::int64_t>(wait.count(), 0, 100)));
            a.step(fds, n);
            if (a.state() == State::leader && !released) {
                released = true;
                a.release();
            }
        }
        EXPECT_EQ(a.state(), State::released) << "round " << round;
        EXPECT_TRUE(confirmed) << "round " << round;
        a.stop();
    }
    EXPECT_EQ(db.rolled_back(), "0") << "a statement of the elector was cancelled in the server";
}

// A schema `schema` in `db` standing in for an older extension build: the
// extension's functions called through SQL proxies, singleton_bind only if
// `with_bind`, and singleton_watch as `watch_body` (SQL on $1..$3).
bool proxy_schema(const OwnDatabase& db, const std::string& schema, bool with_bind,
                  const std::string& watch_body) {
    const std::string s = schema + ".";
    std::vector<std::string> proxies = {
        "CREATE SCHEMA " + schema,
        "CREATE FUNCTION " + s + "singleton_acquire(text, interval, text, interval, integer) "
        "RETURNS TABLE(acquired boolean, token bigint, holder text, expires_at timestamptz) "
        "LANGUAGE sql AS 'SELECT * FROM public.singleton_acquire($1, $2, $3, $4, $5)'",
        "CREATE FUNCTION " + s + "singleton_acquire(text, interval, text, interval) "
        "RETURNS TABLE(acquired boolean, token bigint, holder text, expires_at timestamptz) "
        "LANGUAGE sql AS 'SELECT * FROM public.singleton_acquire($1, $2, $3, $4)'",
        "CREATE FUNCTION " + s + "singleton_heartbeat(text, bigint, interval) RETURNS "
        "timestamptz LANGUAGE sql AS 'SELECT public.singleton_heartbeat($1, $2, $3)'",
        "CREATE FUNCTION " + s + "singleton_release(text, bigint) RETURNS boolean "
        "LANGUAGE sql AS 'SELECT public.singleton_release($1, $2)'",
        "CREATE FUNCTION " + s + "singleton_watch(text, bigint, interval) RETURNS text "
        "LANGUAGE sql AS '" + watch_body + "'",
    };
    if (with_bind)
        proxies.push_back("CREATE FUNCTION " + s + "singleton_bind(text, bigint) RETURNS boolean "
                          "LANGUAGE sql AS 'SELECT public.singleton_bind($1, $2)'");
    for (const std::string& sql : proxies)
        if (!it::command(sql, db.dsn())) return false;
    return true;
}

// A server whose watch neither ends when the next statement arrives nor
// answers early (an extension build older than that, simulated by a schema
// whose singleton_watch sleeps its whole wait first): a one-session leader's
// release is still confirmed and hands the lease over, after the fallback, a
// cancel of the watch 200 ms after the release was asked for (one rolled-back
// watch per release). Without the fallback the release would wait for the
// watch, 10 s here, longer than the release may take.
TEST(ElectorIntegration, AWatchThatNeverYieldsIsCancelledForTheRelease) {
    REQUIRE_OWN_DATABASE(db, "pipe_old");
    ASSERT_TRUE(proxy_schema(db, "old_watch", true,
                             "SELECT pg_sleep(extract(epoch FROM $3)::float8); "
                             "SELECT public.singleton_watch($1, $2, interval ''0'')"));
    ElectorOptions o = db.options("old_watch");
    o.schema = "old_watch";
    o.ttl = 30s;  // heartbeats every 10 s: the watch sleeps in between
    hand_over(o, [&] {
        EXPECT_TRUE(db.one_active("wait_event = 'PgSleep' AND query LIKE '%singleton_watch%'"))
            << "the leader's watch does not sleep";
    });
    EXPECT_EQ(db.rolled_back(), "2") << "not one cancelled watch per release";
}

// An extension without singleton_bind (the second session's warm-up finds
// none): the electors lead with one session each, and say so. Before: the
// fallback sent the watch's warm-up on the second session it had just
// closed, and the elector failed ("internal: a request on the second session
// while it is not idle").
TEST(ElectorIntegration, WithoutSingletonBindOneSessionLeads) {
    REQUIRE_OWN_DATABASE(db, "no_bind");
    ASSERT_TRUE(proxy_schema(db, "no_bind", false, "SELECT public.singleton_watch($1, $2, $3)"));
    ElectorOptions o = db.options("no_bind");
    o.schema = "no_bind";
    o.ttl = 3s;
    o.second_session = true;  // (as singleton-lock run)
    std::atomic<int> errors{0};
    hand_over(o, [] {}, &errors);
    EXPECT_EQ(errors.load(), 2) << "not one missing singleton_bind per elector and nothing else";
}

TEST(ElectorIntegration, WaitRunsOut) {
    REQUIRE_SERVER();
    ElectorOptions o;
    o.name = unique_name("wait");
    std::atomic<bool> leader{false};
    ElectorEvents ea;
    ea.on_leader = [&](const LeaseInfo&) { leader = true; };
    Elector a(o, ea);
    std::thread ta([&] { a.run(); });
    ASSERT_TRUE(eventually([&] { return leader.load(); }));
    ElectorOptions w = o;
    w.wait = 300ms;
    bool expired = false;
    ElectorEvents ew;
    ew.on_wait_expired = [&] { expired = true; };
    Elector waiter(w, ew);
    EXPECT_EQ(waiter.run(), State::wait_expired);
    EXPECT_TRUE(expired);
    a.request_stop();
    ta.join();
}

TEST(ElectorIntegration, StopWhileStandby) {
    REQUIRE_SERVER();
    ElectorOptions o;
    o.name = unique_name("stop");
    std::atomic<bool> leader{false}, standby{false};
    ElectorEvents ea, eb;
    ea.on_leader = [&](const LeaseInfo&) { leader = true; };
    eb.on_standby = [&](const LeaseInfo&) { standby = true; };
    Elector a(o, ea), b(o, eb);
    std::thread ta([&] { a.run(); });
    ASSERT_TRUE(eventually([&] { return leader.load(); }));
    State sb{};
    std::thread tb([&] { sb = b.run(); });
    ASSERT_TRUE(eventually([&] { return standby.load(); }));
    b.request_stop();
    tb.join();
    EXPECT_EQ(sb, State::stopped);
    a.request_stop();
    ta.join();
}

TEST(ElectorIntegration, ForceReleaseIsALoss) {
    REQUIRE_SERVER();
    ElectorOptions o;
    o.name = unique_name("force");
    std::atomic<bool> leader{false};
    LossReason reason{};
    ElectorEvents ea;
    ea.on_leader = [&](const LeaseInfo&) { leader = true; };
    ea.on_lost = [&](LossReason r, const std::string&) { reason = r; };
    Elector a(o, ea);
    State sa{};
    std::thread ta([&] { sa = a.run(); });
    ASSERT_TRUE(eventually([&] { return leader.load(); }));
    EXPECT_TRUE(force_release("", "", o.name));
    ta.join();
    EXPECT_EQ(sa, State::lost);
    // The leader's watch reports it (extension 1.1), or the heartbeat its NOTIFY triggers.
    EXPECT_TRUE(reason == LossReason::revoked || reason == LossReason::refused);
}

// With a second session, losing either session's backend is reported while the
// lease is still held (so the work can stop before anyone else gets it), and
// run() then releases it.
class SecondSession : public ::testing::TestWithParam<int> {};

TEST_P(SecondSession, LosingOneSessionKeepsTheLeaseUntilTheRelease) {
    REQUIRE_SERVER();
    const int victim = GetParam();  // 0: the main session, 1: the second one
    ElectorOptions o;
    o.name = unique_name(victim == 0 ? "second_keep_main" : "second_keep_second");
    o.ttl = 5s;
    o.second_session = true;
    std::vector<int> backends;
    std::atomic<std::int64_t> token{0};
    std::atomic<bool> lost{false};
    std::string state_at_loss, token_at_loss;
    LossReason reason{};
    bool released = false;
    ElectorEvents e;
    e.on_leader = [&](const LeaseInfo& l) {
        backends = l.backend_pids;
        token = l.token;
    };
    e.on_lost = [&](LossReason r, const std::string&) {
        reason = r;
        state_at_loss = query("SELECT state FROM singleton_leases WHERE name = '" + o.name + "'");
        token_at_loss = query("SELECT token FROM singleton_leases WHERE name = '" + o.name + "'");
        lost = true;
    };
    e.on_released = [&](bool ok) { released = ok; };
    Elector a(o, e);
    State end{};
    std::thread t([&] { end = a.run(); });
    ASSERT_TRUE(eventually([&] { return token != 0; }));
    ASSERT_EQ(backends.size(), 2u) << "the lease is not bound to two sessions";
    EXPECT_EQ(query("SELECT pg_terminate_backend(" + std::to_string(backends[victim]) + ")"), "t");
    t.join();
    EXPECT_TRUE(lost.load());
    EXPECT_EQ(reason, LossReason::connection_lost);
    EXPECT_EQ(state_at_loss, "held") << "the lease went with one of its two sessions";
    EXPECT_EQ(token_at_loss, std::to_string(token.load()));
    EXPECT_EQ(end, State::lost);
    EXPECT_TRUE(released) << "the release after the loss was not confirmed";
    EXPECT_EQ(query("SELECT state FROM singleton_leases WHERE name = '" + o.name + "'"), "free");
}

INSTANTIATE_TEST_SUITE_P(EitherSession, SecondSession, ::testing::Values(0, 1));

// A role with CREATE on the database (its owner, say) puts a schema named
// after the electors' role, first on their search_path ("$user"), with a
// function of the same argument types as each of ours and a view like ours,
// and operators that need no cast where pg_catalog's do (numeric = integer,
// numeric * integer: these beat pg_catalog's although it is searched first):
// calls resolved through the search_path would run them with the electors'
// rights. Each trap raises "shadow NAME called by ROLE".
class ShadowingSchema {
  public:
    explicit ShadowingSchema(const std::string& database) : role_(unique_name("shadower")) {
        dsn_ = "dbname=" + database;
        const std::string victim = query("SELECT current_user");
        ok_ = !victim.empty() && it::command("CREATE ROLE " + role_) &&
              it::command("GRANT CREATE ON DATABASE " + database + " TO " + role_) &&
              it::command(shadows(victim), dsn_);
    }
    ~ShadowingSchema() {
        (void)it::command("DROP OWNED BY " + role_, dsn_);
        (void)it::command("DROP ROLE IF EXISTS " + role_);
    }
    bool ok() const { return ok_; }

  private:
    std::string shadows(const std::string& victim) const {
        const std::string s = query("SELECT quote_ident('" + victim + "')");
        return "SET ROLE " + role_ + "; CREATE SCHEMA " + s + "; GRANT USAGE ON SCHEMA " + s +
               " TO PUBLIC; CREATE FUNCTION " + s + ".trap(f text) RETURNS boolean "
               "LANGUAGE plpgsql AS $$BEGIN RAISE EXCEPTION 'shadow % called by %', f, "
               "current_user; END$$; CREATE VIEW " + s + ".singleton_leases AS SELECT * FROM "
               "public.singleton_leases WHERE " + s + ".trap('singleton_leases'); " +
               operator_trap(s, "=", "boolean") + operator_trap(s, "*", "numeric") +
               "DO $do$ DECLARE p record; BEGIN FOR p IN SELECT f.oid, f.proname FROM pg_proc f "
               "JOIN pg_depend d ON d.objid = f.oid AND d.deptype = 'e' JOIN pg_extension e ON "
               "e.oid = d.refobjid AND e.extname = 'singleton_lock' LOOP EXECUTE format("
               "'CREATE FUNCTION %I.%I(%s) RETURNS %s LANGUAGE plpgsql AS $f$BEGIN PERFORM "
               "%I.trap(%L); END$f$', '" + victim + "', p.proname, oidvectortypes((SELECT "
               "proargtypes FROM pg_proc WHERE oid = p.oid)), pg_get_function_result(p.oid), '" +
               victim + "', p.proname); END LOOP; END $do$";
    }
    static std::string operator_trap(const std::string& s, const std::string& op,
                                     const std::string& result) {
        const std::string f = s + ".op_" + (op == "=" ? "eq" : "mul");
        return "CREATE FUNCTION " + f + "(numeric, integer) RETURNS " + result +
               " LANGUAGE plpgsql AS $$BEGIN PERFORM " + s + ".trap('operator " + op +
               "'); END$$; CREATE OPERATOR " + s + "." + op +
               " (leftarg = numeric, rightarg = integer, function = " + f + "); ";
    }
    std::string role_, dsn_;
    bool ok_ = false;
};

// Ours name the extension's schema (looked up at connect): none of the traps
// runs. Before: A never led ("shadow singleton_acquire called by postgres").
TEST(ElectorIntegration, AFunctionOfOursEarlierOnTheSearchPathIsNeverCalled) {
    REQUIRE_OWN_DATABASE(db, "shadowed");
    if (query("SELECT rolsuper FROM pg_roles WHERE rolname = current_user") != "t")
        GTEST_SKIP() << "needs a superuser (to create the shadowing role and SET ROLE to it)";
    const std::string database = db.dsn().substr(std::string("dbname=").size());
    ShadowingSchema shadows(database);
    ASSERT_TRUE(shadows.ok());
    ASSERT_EQ(query("SELECT public.singleton_lock_version()", db.dsn()), "1.1");
    ASSERT_EQ(query("SELECT singleton_lock_version()", db.dsn()), "")
        << "an unqualified call does not meet the trap (this test would prove nothing)";
    ASSERT_EQ(query("SELECT nullif(1.5, 0)", db.dsn()), "") << "nor an operator needing no cast";
    ASSERT_EQ(query("SELECT nullif(1.5, 0::numeric)", db.dsn()), "1.5");
    ElectorOptions o = db.options("shadowed");
    o.ttl = 3s;  // (heartbeats every second: each leader renews while `ready` sleeps)
    std::atomic<int> errors{0};
    hand_over(o, [] { std::this_thread::sleep_for(1500ms); }, &errors);
    EXPECT_EQ(errors.load(), 0) << "a call of ours met a trap";
    // The admin commands' statements too.
    std::vector<LeaseStatus> leases;
    EXPECT_NO_THROW(leases = list_leases(db.dsn(), "", std::string("shadowed")));
    EXPECT_EQ(leases.size(), 1u);
    EXPECT_NO_THROW(EXPECT_EQ(server_version(db.dsn(), ""), "1.1"));
    EXPECT_NO_THROW(pause(db.dsn(), "", "shadowed", "maintenance"));
    EXPECT_EQ(query("SELECT state FROM public.singleton_leases WHERE name = 'shadowed'", db.dsn()),
              "paused");
    EXPECT_NO_THROW(EXPECT_TRUE(resume(db.dsn(), "", "shadowed")));
    EXPECT_NO_THROW(force_release(db.dsn(), "", "shadowed"));
}

// With the extension missing from the database there is no schema to name:
// the error says what to do, and no function of ours is called by name (one
// of someone else's could be found instead: here a trap in public).
TEST(ElectorIntegration, AMissingExtensionIsFatalAndSaysSo) {
    REQUIRE_SERVER();
    REQUIRE_CREATEDB();
    const std::string database = unique_name("no_extension");
    ASSERT_TRUE(it::command("CREATE DATABASE " + database));
    ASSERT_TRUE(it::command(
        "CREATE FUNCTION singleton_acquire(text, interval, text, interval) RETURNS TABLE("
        "acquired boolean, token bigint, holder text, expires_at timestamptz) LANGUAGE plpgsql "
        "AS $$BEGIN RAISE EXCEPTION 'trap called'; END$$", "dbname=" + database));
    try {
        (void)list_leases("dbname=" + database, "", std::nullopt);
        ADD_FAILURE() << "list_leases passed";
    } catch (const ExtensionMissingError& e) {
        EXPECT_NE(std::string(e.what()).find("not installed in this database"), std::string::npos)
            << e.what();
    }
    ElectorOptions o;
    o.name = unique_name("fatal");
    o.dsn = "dbname=" + database;
    o.wait = 5s;  // (an error other than fatal would be retried until then)
    std::string error;
    ElectorEvents e;
    e.on_failed = [&](const std::string& m) { error = m; };
    State end{};
    {
        Elector a(o, e);
        end = a.run();
    }
    (void)it::command("DROP DATABASE " + database + " WITH (FORCE)");
    EXPECT_EQ(end, State::failed);
    EXPECT_NE(error.find("singleton_lock is not installed in this database (CREATE EXTENSION "
                         "singleton_lock)"), std::string::npos) << error;
    EXPECT_EQ(error.find("trap"), std::string::npos) << error;
}

// A schema named that does not hold the extension is fatal, said once and as
// it is: not first as an extension too old to bind a second session (before:
// "warning: the extension has no singleton_bind (update it) ... schema
// \"no_such_schema\" does not exist", then the error).
TEST(ElectorIntegration, MissingSchemaIsFatal) {
    REQUIRE_SERVER();
    for (const std::string schema : {"no_such_schema", "pg_catalog"}) {
        ElectorOptions o;
        o.name = unique_name("fatal");
        o.schema = schema;
        o.second_session = true;  // (as singleton-lock run)
        std::string error;
        std::vector<std::string> warnings;
        ElectorEvents e;
        e.on_failed = [&](const std::string& m) { error = m; };
        e.on_warning = [&](const std::string& m) { warnings.push_back(m); };
        Elector a(o, e);
        EXPECT_EQ(a.run(), State::failed) << schema;
        const std::string cause = schema == "pg_catalog"
                                      ? "function pg_catalog.singleton_"
                                      : "schema \"no_such_schema\" does not exist";
        EXPECT_NE(error.find(cause), std::string::npos) << error;
        EXPECT_TRUE(warnings.empty()) << schema << ": " << warnings.front();
    }
}

TEST(ElectorIntegration, UnreachableServerIsRetriedUntilTheWaitRunsOut) {
    ElectorOptions o;
    o.name = unique_name("unreachable");
    o.dsn = "host=/nonexistent port=1";
    o.wait = 500ms;
    int retries = 0;
    ElectorEvents e;
    e.on_retry = [&](const std::string&, Duration) { ++retries; };
    Elector a(o, e);
    EXPECT_EQ(a.run(), State::wait_expired);
    EXPECT_GE(retries, 2);
}

}  // namespace
}  // namespace singleton_lock
