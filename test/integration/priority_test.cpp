// Extension 1.1 through the library: priorities, step-down requests (the
// leader's singleton_watch), pause and resume; against the real server from the
// PG* environment, with one and with two sessions per elector. Skipped when no
// server answers. Latencies are printed, never asserted.
#include <gtest/gtest.h>
#include <poll.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>

#include "singleton_lock/admin.hpp"
#include "singleton_lock/elector.hpp"
#include "it_support.hpp"

namespace singleton_lock {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

#define REQUIRE_SERVER() IT_REQUIRE_SERVER("SELECT singleton_lock_version()", "singleton_lock 1.1")

std::string unique_name(const char* what) { return it::unique_name("it_prio_", what); }
using it::query;

// Polls finer than the default: the latencies printed are measured by it.
template <typename F>
bool eventually(F&& f, std::chrono::milliseconds limit = 20s) {
    return it::eventually(std::forward<F>(f), limit, 2ms);
}

// True once an acquire of `name` sleeps in the server's wait.
bool someone_waits(const std::string& holder) {
    return query("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Extension' AND "
                 "query LIKE '%singleton_acquire%' AND application_name = '" +
                 holder + "'") != "0";
}

double ms_since(Clock::time_point t) {
    return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

// One elector on its own thread (run()), with what it saw.
struct Instance {
    ElectorOptions options;
    std::atomic<std::int64_t> token{0};
    std::atomic<bool> step_down_seen{false}, lost{false};
    std::atomic<int> reason{-1};
    Clock::time_point step_down_at{};
    std::unique_ptr<Elector> elector;
    std::thread thread;
    State end{};

    Instance(const std::string& name, int priority, bool two_sessions) {
        options.name = name;
        options.ttl = 5s;
        options.priority = priority;
        options.second_session = two_sessions;
        options.dsn = "application_name=" + name + "-p" + std::to_string(priority);
    }
    void start() {
        ElectorEvents e;
        e.on_leader = [this](const LeaseInfo& l) { token = l.token; };
        e.on_step_down_requested = [this] {
            step_down_at = Clock::now();
            step_down_seen = elector->step_down_requested() && elector->state() == State::leader;
        };
        e.on_lost = [this](LossReason r, const std::string&) {
            reason = static_cast<int>(r);
            lost = true;
        };
        elector = std::make_unique<Elector>(options, e);
        thread = std::thread([this] { end = elector->run(); });
    }
    std::string app() const { return options.dsn.substr(options.dsn.find('=') + 1); }
    void stop() {
        if (thread.joinable()) {
            elector->request_stop();
            thread.join();
        }
    }
    ~Instance() { stop(); }
};

class Priorities : public ::testing::TestWithParam<bool> {};  // two sessions per elector?

// A standby of higher priority makes the leader step down: the leader hears it
// (on_step_down_requested, while still leader), run() releases, and the lease
// goes to that standby in the release's commit.
TEST_P(Priorities, AHigherPriorityMakesTheLeaderStepDown) {
    REQUIRE_SERVER();
    const std::string name = unique_name("step");
    Instance a(name, 1, GetParam()), b(name, 2, GetParam());
    a.start();
    ASSERT_TRUE(eventually([&] { return a.token != 0; }));
    const auto t0 = Clock::now();
    b.start();
    ASSERT_TRUE(eventually([&] { return b.token != 0; })) << "the standby of higher priority never led";
    std::printf("standby of higher priority started -> leader told %.1f ms, -> new leader %.1f ms\n",
                std::chrono::duration<double, std::milli>(a.step_down_at - t0).count(), ms_since(t0));
    a.thread.join();
    EXPECT_TRUE(a.step_down_seen.load()) << "no step-down request while leading";
    EXPECT_FALSE(a.lost.load());
    EXPECT_EQ(a.end, State::released);
    EXPECT_GT(b.token.load(), a.token.load());
    EXPECT_EQ(query("SELECT holder_pid IS NOT NULL FROM singleton_leases WHERE name = '" + name + "'"),
              "t");
    b.stop();
    EXPECT_EQ(b.end, State::released);
}

// Equal and lower priorities wait; the better of them gets the lease when the
// leader leaves.
TEST_P(Priorities, EqualOrLowerPrioritiesNeverPreempt) {
    REQUIRE_SERVER();
    const std::string name = unique_name("equal");
    Instance a(name, 5, GetParam()), equal(name, 5, GetParam()), lower(name, 1, GetParam());
    a.start();
    ASSERT_TRUE(eventually([&] { return a.token != 0; }));
    lower.start();
    equal.start();
    ASSERT_TRUE(eventually([&] { return someone_waits(lower.app()) && someone_waits(equal.app()); }));
    std::this_thread::sleep_for(500ms);  // a request would have arrived within milliseconds
    EXPECT_FALSE(a.step_down_seen.load()) << "an equal or lower priority preempted the leader";
    EXPECT_EQ(equal.token.load(), 0);
    EXPECT_EQ(lower.token.load(), 0);
    a.stop();
    ASSERT_TRUE(eventually([&] { return equal.token != 0; })) << "the better standby did not lead";
    EXPECT_EQ(lower.token.load(), 0);
    equal.stop();
    ASSERT_TRUE(eventually([&] { return lower.token != 0; }));
    lower.stop();
}

// A pause ends the tenure at once (the watch reports it, or the heartbeat
// that a NOTIFY triggers); nobody leads while paused; resume hands the lease to
// the waiting standby.
TEST_P(Priorities, PauseIsALossAndResumeHandsTheLeaseOver) {
    REQUIRE_SERVER();
    const std::string name = unique_name("pause");
    Instance a(name, 0, GetParam()), b(name, 0, GetParam());
    a.start();
    ASSERT_TRUE(eventually([&] { return a.token != 0; }));
    b.start();
    ASSERT_TRUE(eventually([&] { return someone_waits(b.app()); }));
    const auto t0 = Clock::now();
    EXPECT_TRUE(pause("", "", name, "integration test"));
    ASSERT_TRUE(eventually([&] { return a.lost.load(); }, 3s)) << "the pause was not noticed";
    std::printf("pause -> leader lost it %.1f ms (reason %d)\n", ms_since(t0), a.reason.load());
    EXPECT_TRUE(a.reason == static_cast<int>(LossReason::revoked) ||
                a.reason == static_cast<int>(LossReason::refused));
    a.thread.join();
    EXPECT_EQ(a.end, State::lost);
    EXPECT_EQ(query("SELECT state || ' ' || paused_reason FROM singleton_leases WHERE name = '" +
                    name + "'"),
              "paused integration test");
    std::this_thread::sleep_for(300ms);
    EXPECT_EQ(b.token.load(), 0) << "a standby led while paused";
    EXPECT_TRUE(resume("", "", name));
    ASSERT_TRUE(eventually([&] { return b.token != 0; })) << "resume did not hand the lease over";
    EXPECT_GT(b.token.load(), a.token.load());
    EXPECT_FALSE(resume("", "", name)) << "resume of a lease that is not paused";
    b.stop();
}

INSTANTIATE_TEST_SUITE_P(Sessions, Priorities, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? "two" : "one"; });

// Driven by the caller's own poll() loop: the request shows as
// step_down_requested() while the state stays leader; the application decides
// when to release.
TEST(PriorityPollLoop, TheRequestIsAStateTheLoopSees) {
    REQUIRE_SERVER();
    const std::string name = unique_name("poll");
    ElectorOptions o;
    o.name = name;
    o.ttl = 5s;
    o.second_session = true;
    int callbacks = 0;
    ElectorEvents e;
    e.on_step_down_requested = [&] { ++callbacks; };
    Elector a(o, e);
    const auto step_until = [&](auto done, std::chrono::milliseconds limit) {
        const auto end = Clock::now() + limit;
        while (!done() && Clock::now() < end) {
            pollfd fds[Elector::max_pollfds];
            const int n = a.pollfds(fds);
            const auto wake = std::min(a.next_wakeup(), Clock::now() + 50ms);
            const auto ms = std::chrono::ceil<std::chrono::milliseconds>(wake - Clock::now()).count();
            (void)::poll(fds, static_cast<nfds_t>(n), static_cast<int>(std::max<long long>(ms, 0)));
            a.step(fds, n);
        }
        return done();
    };
    a.start();
    ASSERT_TRUE(step_until([&] { return a.state() == State::leader; }, 20s));
    EXPECT_FALSE(a.step_down_requested());
    Instance b(name, 7, true);
    b.start();
    ASSERT_TRUE(step_until([&] { return a.step_down_requested(); }, 20s));
    EXPECT_EQ(a.state(), State::leader) << "a request is not a loss: the lease is still ours";
    EXPECT_EQ(callbacks, 1);
    // The application stops its work in its own time; the lease stays ours meanwhile.
    ASSERT_FALSE(step_until([&] { return a.state() != State::leader; }, 300ms));
    EXPECT_EQ(b.token.load(), 0);
    const std::int64_t mine = a.token();
    a.release();
    ASSERT_TRUE(step_until([&] { return is_terminal(a.state()); }, 20s));
    EXPECT_EQ(a.state(), State::released);
    ASSERT_TRUE(eventually([&] { return b.token != 0; }));
    EXPECT_GT(b.token.load(), mine);
    EXPECT_EQ(callbacks, 1);
    b.stop();
}

}  // namespace
}  // namespace singleton_lock
