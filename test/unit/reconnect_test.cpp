// Reconnect pacing across a failover (policy::Reconnect, policy::primary_missing),
// with a fake clock and a fake RNG.
#include <gtest/gtest.h>

#include "policy.hpp"
#include "singleton_lock/errors.hpp"

namespace singleton_lock::policy {
namespace {

using namespace std::chrono_literals;

constexpr ReconnectLimits kLimits{100ms, 5s, 500ms, 60s};

struct Fixture {
    TimePoint now{std::chrono::hours(1000)};
    double r = 0.999999;  // upper end of each jitter range
    Reconnect reconnect{kLimits, [this] { return r; }};
    // Time from the loss of a working connection until the attempt that runs
    // at or after `until`, retrying every time a delay runs out.
    Duration found_after(Duration until, bool primary_missing) {
        const TimePoint lost = now;
        while (now - lost < until) now += reconnect.next(now, primary_missing);
        return std::chrono::duration_cast<Duration>(now - lost);
    }
};

TEST(Reconnect, FirstRetryAfterLosingAWorkingConnectionIsImmediate) {
    Fixture f;
    f.reconnect.working();
    EXPECT_EQ(f.reconnect.next(f.now, false), 0ms);
    EXPECT_EQ(f.reconnect.next(f.now, false), 99ms);  // then the backoff starts over
}

TEST(Reconnect, WithoutAWorkingConnectionTheFirstRetryWaits) {
    Fixture f;
    EXPECT_EQ(f.reconnect.next(f.now, false), 99ms);
}

// The failover the issue describes: the primary crashed (refused), the standby
// answers read-only for 3 s, then is promoted. Before this policy the delays
// grew to 1.6 s and 3.2 s, so the new primary was found up to ~3 s late.
TEST(Reconnect, NewPrimaryFoundWithinTheFailoverCap) {
    for (const Duration promoted_after :
         {Duration(300ms), Duration(1s), Duration(3s), Duration(10s), Duration(59s)}) {
        for (const double r : {0.0, 0.5, 0.999999}) {
            Fixture f;
            f.r = r;
            f.reconnect.working();
            const Duration found = f.found_after(promoted_after, true);
            EXPECT_LE((found - promoted_after).count(), kLimits.failover_max.count())
                << "promoted after " << promoted_after.count() << " ms, r " << r;
        }
    }
}

// A virtual IP or a proxy with nothing behind it: nothing says "standby", but
// a working connection broke recently, so the same cap applies in the window.
TEST(Reconnect, FailoverWindowCapsDelaysWithoutAStandbySign) {
    Fixture f;
    f.reconnect.working();
    const Duration found = f.found_after(20s, false);
    EXPECT_LE((found - 20s).count(), kLimits.failover_max.count());
}

TEST(Reconnect, OutsideAFailoverDelaysGrowToTheMax) {
    Fixture f;
    f.reconnect.working();
    f.found_after(kLimits.failover_window, false);  // the window has passed
    Duration longest{};
    for (int i = 0; i < 10; ++i) {
        const Duration d = f.reconnect.next(f.now, false);
        f.now += d;
        longest = std::max(longest, d);
    }
    EXPECT_GT(longest, kLimits.failover_max);
    EXPECT_LE(longest, kLimits.max);
}

TEST(Reconnect, StandbySignKeepsTheCapAfterTheWindow) {
    Fixture f;  // e.g. started while the cluster had only standbys
    for (int i = 0; i < 200; ++i) {
        const Duration d = f.reconnect.next(f.now, true);
        EXPECT_LE(d.count(), kLimits.failover_max.count());
        f.now += d;
    }
}

// A connection that breaks right after each first reply (a server in a crash
// loop, a proxy closing connections) is not retried at once every time.
TEST(Reconnect, ImmediateRetryAtMostOncePerMax) {
    Fixture f;
    f.r = 0.0;
    f.reconnect.working();
    EXPECT_EQ(f.reconnect.next(f.now, false), 0ms);
    f.now += 10ms;
    f.reconnect.working();
    EXPECT_EQ(f.reconnect.next(f.now, false), 50ms);
    f.now += kLimits.max;
    f.reconnect.working();
    EXPECT_EQ(f.reconnect.next(f.now, false), 0ms);
}

TEST(Reconnect, JitterStaysWithinHalfToFullCap) {
    for (const double r : {0.0, 0.25, 0.5, 0.75, 0.999999}) {
        Fixture f;
        f.r = r;
        for (int i = 0; i < 10; ++i) f.reconnect.next(f.now, true);
        const Duration d = f.reconnect.next(f.now, true);
        EXPECT_GE(d, kLimits.failover_max / 2);
        EXPECT_LE(d, kLimits.failover_max);
    }
}

TEST(PrimaryMissing, StandbyAndStartupRefusalsAreFailoverSigns) {
    EXPECT_TRUE(primary_missing(
        ServerError("cannot execute singleton_acquire() in a read-only transaction", "25006")));
    EXPECT_TRUE(primary_missing(ConnectionError(
        "connection to server at \"127.0.0.1\", port 5432 failed: Connection refused "
        "connection to server at \"127.0.0.1\", port 5433 failed: session is read-only")));
    EXPECT_TRUE(primary_missing(ConnectionError(
        "connection to server at \"10.0.0.2\", port 5432 failed: server is in hot standby mode")));
    EXPECT_TRUE(primary_missing(ConnectionError(
        "connection to server on socket \"/tmp/.s.PGSQL.5432\" failed: FATAL:  the database "
        "system is starting up")));
    EXPECT_TRUE(primary_missing(ConnectionError("FATAL:  the database system is shutting down")));
}

TEST(PrimaryMissing, OtherErrorsAreNot) {
    EXPECT_FALSE(primary_missing(ConnectionError(
        "connection to server at \"127.0.0.1\", port 5432 failed: Connection refused")));
    EXPECT_FALSE(primary_missing(ConnectionError("no reply from the server in time")));
    EXPECT_FALSE(primary_missing(ServerError("deadlock detected", "40P01")));
    EXPECT_FALSE(primary_missing(UsageError("session is read-only")));
}

TEST(ConnectionLimit, TheServersLimitsAreKnownByTheirText) {
    EXPECT_TRUE(connection_limit(ConnectionError(
        "connection to server on socket \"/tmp/.s.PGSQL.5432\" failed: FATAL:  too many "
        "connections for role \"app\"")));
    EXPECT_TRUE(
        connection_limit(ConnectionError("FATAL:  too many connections for database \"x\"")));
    EXPECT_TRUE(connection_limit(ConnectionError("FATAL:  sorry, too many clients already")));
    EXPECT_TRUE(connection_limit(ConnectionError(
        "FATAL:  remaining connection slots are reserved for roles with the SUPERUSER attribute")));
    EXPECT_FALSE(connection_limit(ConnectionError("FATAL:  the database system is starting up")));
    EXPECT_FALSE(connection_limit(ServerError("too many connections for role \"app\"", "53300")));
}

}  // namespace
}  // namespace singleton_lock::policy
