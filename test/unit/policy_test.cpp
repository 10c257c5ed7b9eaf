// Pure timing policy, driven by a fake clock and a fake RNG.
#include "policy.hpp"

#include <gtest/gtest.h>

#include <stdexcept>

#include "singleton_lock/errors.hpp"

namespace singleton_lock::policy {
namespace {

using namespace std::chrono_literals;

struct FakeClock {
    TimePoint now{std::chrono::hours(1000)};
    void advance(Duration d) { now += d; }
};

TEST(Timing, DefaultsDeriveFromTtl) {
    const Timing t = make_timing(10s, std::nullopt);
    EXPECT_EQ(t.ttl, 10s);
    EXPECT_EQ(t.grace, 2500ms);
    EXPECT_EQ(t.heartbeat_interval, 3333ms);
    EXPECT_EQ(t.safety_margin, 1s);
    EXPECT_EQ(t.wait_slice_max, 2375ms);  // 3/4 of (ttl - grace - margin - heartbeat interval)
    EXPECT_EQ(t.watch_wait, 5s);
}

// A standby's wait slice: a lease handed over at its very end (plus a slow
// reply) still leads at once, without a confirming heartbeat on the way; and a
// waiting standby hears from the server at least twice per ttl (/healthz).
TEST(Timing, WaitSlicesNeverNeedAConfirmationFirst) {
    const TimePoint sent{};
    for (Duration ttl : {Duration(100), Duration(1000), Duration(2000), Duration(10000),
                         Duration(60000), Duration(86400000)}) {
        for (int g = 0; 2 * g < 100; g += 7) {
            const Timing t = make_timing(ttl, ttl * g / 100);
            EXPECT_GE(t.wait_slice_max, Duration(10)) << ttl.count() << " " << g;
            EXPECT_LE(t.wait_slice_max, Duration(5000)) << ttl.count() << " " << g;
            EXPECT_LE(2 * t.wait_slice_max, ttl) << ttl.count() << " " << g;
            if (t.wait_slice_max > Duration(10)) {  // (the floor: grace near ttl/2 at 100 ms)
                EXPECT_TRUE(lead_before_confirmation(
                    t, sent, sent + t.wait_slice_max + t.wait_slice_max / 4))
                    << ttl.count() << " " << g;
            }
        }
    }
}

TEST(Timing, GraceMustStayBelowHalfTheTtl) {
    EXPECT_THROW(make_timing(10s, Duration(5s)), UsageError);
    EXPECT_THROW(make_timing(10s, Duration(6s)), UsageError);
    EXPECT_THROW(make_timing(1001ms, Duration(501ms)), UsageError);
    EXPECT_NO_THROW(make_timing(1001ms, Duration(500ms)));
    EXPECT_NO_THROW(make_timing(10s, Duration(4999ms)));
    EXPECT_NO_THROW(make_timing(10s, Duration(0ms)));
    EXPECT_THROW(make_timing(10s, Duration(-1ms)), UsageError);
}

TEST(Timing, TtlHasAFloor) {
    EXPECT_THROW(make_timing(99ms, std::nullopt), UsageError);
    EXPECT_THROW(make_timing(0ms, std::nullopt), UsageError);
    EXPECT_NO_THROW(make_timing(100ms, std::nullopt));
}

TEST(LeaseTimer, CountsFromTheSendTimeNotTheReply) {
    FakeClock clock;
    const Timing t = make_timing(10s, std::nullopt);
    LeaseTimer timer(t);
    const TimePoint sent = clock.now;
    clock.advance(300ms);  // the reply arrives 300 ms later
    timer.confirmed(sent);
    EXPECT_EQ(timer.deadline(), sent + 10s);
    EXPECT_EQ(timer.next_heartbeat_at(), sent + 3333ms);
    EXPECT_EQ(timer.deadline() - clock.now, 9700ms);
}

TEST(LeaseTimer, StepsDownWhenTimeLeftReachesGracePlusMargin) {
    FakeClock clock;
    const Timing t = make_timing(10s, Duration(2s));  // margin 1s
    LeaseTimer timer(t);
    timer.confirmed(clock.now);
    EXPECT_EQ(timer.step_down_at(), clock.now + 7s);
    clock.advance(6999ms);
    EXPECT_FALSE(timer.must_step_down(clock.now));
    clock.advance(1ms);
    EXPECT_TRUE(timer.must_step_down(clock.now));  // 3 s left = grace + margin
    // SIGKILL at the end of the grace still lands before the server's expiry.
    EXPECT_LT(clock.now + t.grace, timer.deadline());
}

TEST(LeaseTimer, WithoutConfirmationItMustStepDown) {
    LeaseTimer timer(make_timing(10s, std::nullopt));
    EXPECT_TRUE(timer.must_step_down(TimePoint{}));
}

TEST(LeaseTimer, NeverMovesBackwards) {
    FakeClock clock;
    LeaseTimer timer(make_timing(10s, std::nullopt));
    const TimePoint early = clock.now;
    clock.advance(3s);
    timer.confirmed(clock.now);
    timer.confirmed(early);  // a late reply to an older request
    EXPECT_EQ(timer.deadline(), clock.now + 10s);
}

TEST(LeaseTimer, HungHeartbeatStepsDownBeforeExpiry) {
    // Heartbeat at t=0 confirmed; the next one (t=ttl/3) hangs forever.
    FakeClock clock;
    const Timing t = make_timing(3s, std::nullopt);
    LeaseTimer timer(t);
    timer.confirmed(clock.now);
    clock.advance(t.heartbeat_interval);  // heartbeat sent, no reply ever
    EXPECT_FALSE(timer.must_step_down(clock.now));
    while (!timer.must_step_down(clock.now)) clock.advance(1ms);
    const TimePoint step_down = clock.now;
    EXPECT_LE(step_down + t.grace + t.safety_margin, timer.deadline());
}

TEST(LeaseTimer, AtLeastOneHeartbeatFitsBeforeTheStepDown) {
    for (auto ttl : {100ms, 250ms, 1000ms, 3000ms, 10000ms, 60000ms, 3600000ms}) {
        for (double g : {0.0, 0.1, 0.25, 0.49}) {
            const auto grace =
                Duration(static_cast<Duration::rep>(static_cast<double>(ttl.count()) * g));
            const Timing t = make_timing(ttl, grace);
            LeaseTimer timer(t);
            timer.confirmed(TimePoint{});
            EXPECT_LT(timer.next_heartbeat_at(), timer.step_down_at()) << ttl.count() << " " << g;
            EXPECT_LT(timer.step_down_at() + t.grace, timer.deadline()) << ttl.count() << " " << g;
            // The supervisor's watchdog fires after the leader's own rule, and
            // its SIGKILL at the end of the grace still lands before the deadline.
            EXPECT_GT(t.watchdog_slack, Duration::zero()) << ttl.count() << " " << g;
            EXPECT_LT(timer.step_down_at() + t.watchdog_slack + t.grace, timer.deadline())
                << ttl.count() << " " << g;
        }
    }
}

TEST(Confirmation, LeadsAtOnceOnlyWithRoomForTheConfirmingHeartbeat) {
    const Timing t = make_timing(10s, std::nullopt);  // step-down 6.5 s after the send
    const TimePoint sent{};
    EXPECT_TRUE(lead_before_confirmation(t, sent, sent + 5ms));
    EXPECT_TRUE(lead_before_confirmation(t, sent, sent + 1s));  // a full wait slice
    EXPECT_TRUE(lead_before_confirmation(t, sent, sent + 3166ms));
    EXPECT_FALSE(lead_before_confirmation(t, sent, sent + 3167ms));
    EXPECT_FALSE(lead_before_confirmation(t, sent, sent + 1h));  // a wait longer than the TTL
    const Timing short_ttl = make_timing(1s, std::nullopt);      // step-down 650 ms after the send
    EXPECT_TRUE(lead_before_confirmation(short_ttl, sent, sent + 100ms));
    EXPECT_FALSE(lead_before_confirmation(short_ttl, sent, sent + 400ms));
}

TEST(Backoff, DoublesUpToTheCap) {
    Backoff b(100ms, 1s, [] { return 0.999999; });
    EXPECT_EQ(b.next(), 99ms);  // upper end of [50, 100]
    EXPECT_EQ(b.next(), 199ms);
    EXPECT_EQ(b.next(), 399ms);
    EXPECT_EQ(b.next(), 799ms);
    EXPECT_EQ(b.next(), 999ms);
    for (int i = 0; i < 100; ++i) EXPECT_LE(b.next(), 1s);
}

TEST(Backoff, JitterStaysWithinHalfToFullBase) {
    double r = 0.0;
    Backoff b(100ms, 5s, [&r] { return r; });
    for (int attempt = 0; attempt < 20; ++attempt) {
        const Duration base = std::min<Duration>(Duration(100 << std::min(attempt, 10)), 5s);
        for (double v : {0.0, 0.3, 0.7, 0.999}) {
            r = v;
            Backoff probe(100ms, 5s, [&r] { return r; });
            for (int i = 0; i < attempt; ++i) probe.next();
            const Duration d = probe.next();
            EXPECT_GE(d, base / 2) << attempt << " " << v;
            EXPECT_LE(d, base) << attempt << " " << v;
        }
    }
    r = 0.0;
    EXPECT_EQ(b.next(), 50ms);
}

TEST(Backoff, ResetStartsOver) {
    Backoff b(100ms, 5s, [] { return 0.0; });
    b.next();
    b.next();
    EXPECT_EQ(b.next(), 200ms);
    b.reset();
    EXPECT_EQ(b.next(), 50ms);
}

TEST(Backoff, RandomOutOfRangeIsClamped) {
    Backoff b(100ms, 5s, [] { return 7.0; });
    EXPECT_EQ(b.next(), 100ms);
}

TEST(WaitSlices, ForeverUsesFullSlices) {
    const Timing t = make_timing(10s, std::nullopt);
    FakeClock clock;
    EXPECT_EQ(wait_slice(t, clock.now, std::nullopt), t.wait_slice_max);
    EXPECT_FALSE(wait_ran_out(clock.now, std::nullopt));
}

// A session's statement_timeout (set for the role, say) cancels a wait that
// outlasts it: waits stay under it, with room for the rest of the statement.
TEST(WaitSlices, StayUnderTheStatementTimeout) {
    EXPECT_EQ(within_statement_timeout(5000ms, 0ms), 5000ms);  // off
    EXPECT_EQ(within_statement_timeout(5000ms, 60000ms), 5000ms);
    EXPECT_EQ(within_statement_timeout(5000ms, 1000ms), 800ms);  // a fifth left
    EXPECT_EQ(within_statement_timeout(5000ms, 200ms), 150ms);   // at least 50 ms left
    EXPECT_EQ(within_statement_timeout(5000ms, 80ms), 40ms);     // else half of it
    EXPECT_EQ(within_statement_timeout(5000ms, 1ms), 1ms);       // never 0: no busy loop
    EXPECT_EQ(within_statement_timeout(0ms, 1000ms), 0ms);       // "don't wait" stays so
    EXPECT_EQ(within_statement_timeout(300ms, 1000ms), 300ms);
}

TEST(WaitSlices, LastSliceEndsExactlyAtTheWaitLimit) {
    const Timing t = make_timing(10s, std::nullopt);
    FakeClock clock;
    const TimePoint until = clock.now + t.wait_slice_max + 300ms;
    EXPECT_EQ(wait_slice(t, clock.now, until), t.wait_slice_max);
    clock.advance(t.wait_slice_max);
    EXPECT_EQ(wait_slice(t, clock.now, until), 300ms);
    EXPECT_FALSE(wait_ran_out(clock.now, until));
    clock.advance(300ms);
    EXPECT_EQ(wait_slice(t, clock.now, until), 0ms);
    EXPECT_TRUE(wait_ran_out(clock.now, until));
}

TEST(Requests, ReplyDeadlineCoversTheServerSideWait) {
    const Timing t = make_timing(10s, std::nullopt);
    const TimePoint sent{};
    EXPECT_EQ(reply_deadline(t, sent, 1s), sent + 1s + t.reply_slack);
}

TEST(Connection, DefaultsDeriveFromTtl) {
    const auto d = connection_defaults(make_timing(10s, std::nullopt), true);
    auto value = [&](const std::string& k) {
        for (const auto& [key, v] : d)
            if (key == k) return v;
        return std::string("<missing>");
    };
    EXPECT_EQ(value("connect_timeout"), "5");
    EXPECT_EQ(value("tcp_user_timeout"), "5000");
    EXPECT_EQ(value("keepalives"), "1");
    EXPECT_EQ(value("keepalives_idle"), "3");
    EXPECT_EQ(value("keepalives_interval"), "1");
    EXPECT_EQ(value("keepalives_count"), "3");
    EXPECT_EQ(value("client_encoding"), "UTF8");  // names are the same lease for every client
}

TEST(Text, NamesMustBeUtf8) {
    for (const char* ok : {"", "job", "z\xc3\xbcrich", "\xe6\x9d\xb1\xe4\xba\xac",
                           "\xf0\x9f\x94\x92", "\xf4\x8f\xbf\xbf"})
        EXPECT_NO_THROW(require_utf8("the lease name", ok)) << ok;
    // a stray byte, LATIN1's u-umlaut, cut short, overlong, a surrogate, beyond U+10FFFF
    for (const char* bad : {"\xff", "z\xfcrich", "ab\xe6\x9d", "\xc0\xaf", "\xe0\x80\xaf",
                            "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xf5\x80\x80\x80"})
        EXPECT_THROW(require_utf8("the lease name", bad), UsageError) << bad;
    try {
        require_utf8("the holder id", "ab\xff");
        FAIL() << "no error";
    } catch (const UsageError& e) {
        EXPECT_STREQ(e.what(), "the holder id must be valid UTF-8 (byte 3 is not)");
    }
}

// The server's rules, checked before connecting (SPEC: 1..255 characters, not
// only white space, no control characters).
TEST(Text, LabelsFollowTheServersRules) {
    std::string longest;
    for (int i = 0; i < 255; ++i) longest += "\xc3\xbc";
    for (const std::string& ok : {std::string("job"), std::string(" job "), std::string("a b"),
                                  std::string(255, 'n'), longest, std::string("\xe2\x80\x8bx")})
        EXPECT_NO_THROW(check_label("the lease name", ok)) << ok;
    const auto message = [](const std::string& text) {
        try {
            check_label("the lease name", text);
        } catch (const UsageError& e) {
            return std::string(e.what());
        }
        return std::string("no error");
    };
    EXPECT_EQ(message(""), "the lease name must be 1 to 255 characters long (it has 0)");
    EXPECT_EQ(message(std::string(256, 'n')),
              "the lease name must be 1 to 255 characters long (it has 256)");
    EXPECT_EQ(message(longest + "\xc3\xbc"),
              "the lease name must be 1 to 255 characters long (it has 256)");
    // a tab, a newline, DEL, a C1 control (U+0085 is also white space: control wins)
    for (const char* bad : {"a\tb", "job\n", "a\x7f", "\xc2\x85"})
        EXPECT_EQ(message(bad), "the lease name must not contain control characters") << bad;
    // spaces: ASCII, no-break, ideographic, zero-width, byte order mark
    for (const char* bad : {" ", "   ", "\xc2\xa0", "\xe3\x80\x80", "\xe2\x80\x8b", "\xef\xbb\xbf"})
        EXPECT_EQ(message(bad), "the lease name must not be only white space") << bad;
    EXPECT_EQ(message("\xff"), "the lease name must be valid UTF-8 (byte 1 is not)");
}

TEST(Recovery, TransientErrorsAreRetriedSetupErrorsAreFatal) {
    EXPECT_EQ(recovery_for(ConnectionError("down")), Recovery::retry);
    EXPECT_EQ(recovery_for(ServerError("serialization", "40001")), Recovery::retry);
    EXPECT_EQ(recovery_for(QueryCanceledError("timeout", "57014")), Recovery::retry);
    EXPECT_EQ(recovery_for(PermissionDeniedError("no", "42501")), Recovery::fatal);
    EXPECT_EQ(recovery_for(ExtensionMissingError("no", "42883")), Recovery::fatal);
    EXPECT_EQ(recovery_for(InvalidArgumentError("bad", "22023")), Recovery::fatal);
    EXPECT_EQ(recovery_for(ServerError("syntax", "42601")), Recovery::fatal);
    EXPECT_EQ(recovery_for(std::runtime_error("other")), Recovery::retry);
}

}  // namespace
}  // namespace singleton_lock::policy
