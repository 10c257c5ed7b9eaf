// The elector's state machine over one or two non-blocking sessions (main:
// LISTEN, acquire, heartbeats; second: binds the lease too, see
// ElectorOptions::second_session). Timing decisions come from policy.hpp, SQL
// from sql.hpp, error mapping from connection.cpp.
//
//   idle -> connecting -> listen -> acquire (standby waits here, in the server)
//        -> binding (second session binds; a waited acquire is confirmed)
//        -> lead <-> heartbeat -> releasing -> done
//   lead/heartbeat -> stepping_down (lost; sessions kept) -> releasing -> done
//   any standby phase --error--> backoff -> connecting
//
// While leading, a singleton_watch call (extension 1.1) is kept in flight
// beside the phases above, on the second session (else on the main one between
// heartbeats): it reports a step-down request or the lease's end at once.
//
// Split by concern: elector_standby.cpp (connect, acquire, bind),
// elector_leader.cpp (heartbeats, loss), elector_watch.cpp (the watch),
// elector_release.cpp (release, stop), elector_step.cpp (I/O dispatch, timers,
// poll set).
#pragma once

#include <poll.h>

#include <atomic>
#include <optional>
#include <random>
#include <string>

#include "policy.hpp"
#include "session.hpp"
#include "singleton_lock/elector.hpp"
#include "sql.hpp"

namespace singleton_lock {

// The least time between heartbeats asked for by notifications (notified_check).
constexpr std::chrono::milliseconds kNotifiedCheckGap{100};

struct Elector::Impl {
    enum class Phase {
        idle,
        backoff,        // waiting to reconnect after an error
        connecting,     // the session(s) connecting
        listen,         // LISTEN in flight
        acquire,        // acquire in flight (a standby waits inside it)
        binding,        // acquired: bind on the second session and/or confirming heartbeat
        lead,           // leader, no request in flight
        heartbeat,      // leader, heartbeat in flight
        stepping_down,  // lost: sessions kept (the lease stays bound) until release()/stop()
        releasing,      // release in flight, or reconnecting to send it
        done,
    };
    using TimePoint = policy::TimePoint;

    Impl(ElectorOptions o, ElectorEvents e);
    ~Impl();  // (the sessions close with their members: kept after a release until then or stop())

    // --- configuration
    Timing timing;
    ElectorOptions opt;
    ElectorEvents ev;
    Sql sql;  // qualified with the extension's schema as each new session reports it
    pq::ConnectParams params;
    Duration host_timeout;  // per host of the DSN (libpq's non-blocking connect has none)
    std::minstd_rand rng;
    policy::Reconnect reconnect;      // pacing a standby's reconnects
    policy::Backoff release_backoff;  // reconnecting to send a release
    int stop_fd = -1;                 // eventfd of request_stop()
    std::atomic<bool> stop_pending{false};  // request_stop() was called (no new watch then)
    static_assert(std::atomic<bool>::is_always_lock_free, "request_stop() is async-signal-safe");

    // --- sessions
    Session main{"main", Sql::session_setup()};
    Session second{"second", Sql::session_setup()};
    bool use_second = false;  // options.second_session, while the server has singleton_bind
    std::string second_missing;  // the warning without_second owes, said at the first acquire reply

    // --- state
    Phase phase = Phase::idle;
    State state = State::idle;
    policy::LeaseTimer timer;
    TimePoint due{};                        // backoff: reconnect at; releasing: give up at
    TimePoint retry_at = TimePoint::max();  // releasing: reconnect at
    Session* release_on = nullptr;          // releasing: the session the release went out on
    std::optional<TimePoint> wait_until;
    TimePoint last_contact{};
    TimePoint next_heartbeat{};
    bool first_attempt = true;  // the main session's first acquire: never waits
    bool waited = false;
    // A NOTIFY on our lease's name from another backend asks for a heartbeat at
    // once (someone may have ended our tenure): due then, at most one per
    // kNotifiedCheckGap (any role may NOTIFY the channel: a loop of them made a
    // leader heartbeat 2,400 times a second). max(): none due.
    TimePoint notified_check = TimePoint::max();
    TimePoint last_beat_sent{};
    bool release_requested = false;
    bool awaiting_bind = false;
    bool awaiting_confirm = false;
    bool was_lost = false;
    // The watch (elector_watch.cpp): the session it is in flight on, if any.
    Session* watching = nullptr;
    bool watch_supported = true;  // false: the server has no singleton_watch for us
    bool watch_cancelled = false; // we cancelled it to send a release on its session
    // A release queued behind the watch: cancel the watch if it has not ended by then.
    TimePoint release_yield_by = TimePoint::max();
    bool cancelled_for_release = false;  // this release sent a cancel (it may hit the release)
    TimePoint watch_retry_at{};  // after a failed watch: not before this
    bool step_down = false;       // a standby of higher priority asked for the lease
    bool warming_watch = false;   // the second session's singleton_watch warm-up is in flight
    std::int64_t token = 0;
    std::string expires_at;
    std::string seen_holder;
    bool seen_any = false;
    bool warned_pooler = false;  // check_direct() said it once
    Duration statement_timeout{0};  // the server's, for our sessions (0: off); learn_limits()

    // --- standby side (elector_standby.cpp)
    void start();
    void begin_connect();
    void on_connected(const Session& s);
    void check_direct(const pq::Result& r, const Session& s);
    void learn_limits(const pq::Result& r);
    void on_warmed_up();
    void on_watch_warmed(const std::exception* error);
    void send_acquire();
    void on_acquire_reply(const pq::Result& r);
    void on_standby_reply(const pq::Result& r);
    void begin_binding();
    void on_bind_reply(const pq::Result& r);
    void on_confirm_reply(const pq::Result& r);
    void maybe_lead();
    void on_standby_error(Session& s, const std::exception& e);
    bool lacks_bind(const std::exception& e) const;
    void without_second(const std::exception& e);
    void back_off(const std::exception& e);

    // --- leader side (elector_leader.cpp)
    void become_leader();
    void send_heartbeat();
    void on_heartbeat_reply(const pq::Result& r);
    void on_leader_error(Session& s, const std::exception& e);
    void lose(LossReason reason, const std::string& detail);
    void leader_timers(TimePoint now);
    void notifications();

    // --- the watch (elector_watch.cpp)
    Session& watch_session() { return use_second ? second : main; }
    void maybe_watch(TimePoint now);
    void on_watch_reply(const pq::Result& r);
    void on_watch_error(Session& s, const std::exception& e);
    bool queue_behind_watch(Session& s, const pq::Params& args);
    bool free_for_release(Session& s);
    void hurry_watch(TimePoint now);
    bool disable_watch_if_unsupported(const std::exception& e);

    // --- release and stop (elector_release.cpp)
    void release();
    void begin_release();
    void try_release();
    void on_release_reply(const pq::Result& r);
    void on_release_error(Session& s, const std::exception& e);
    void release_timers(TimePoint now);
    void finish(State s, bool close_sessions = true);
    void close_all();
    void stop();

    // --- the step (elector_step.cpp)
    template <typename F>
    void guarded(Session& s, F&& f) {
        try {
            f();
        } catch (const std::exception& e) {
            on_error(s, e);
        }
    }
    void step(const pollfd* fds, int count);
    void io_all(Session& s, short revents);
    void io(Session& s, short revents);
    void on_reply(Session& s, const pq::Result& r);
    void on_error(Session& s, const std::exception& e);
    void timers();
    void check_deadlines(TimePoint now);
    int pollfds(pollfd* out) const;
    TimePoint next_wakeup() const;
    TimePoint watch_wakeup() const;
    State run();
};

}  // namespace singleton_lock
