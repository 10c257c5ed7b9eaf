// Leader election over a singleton_lock lease (PostgreSQL extension).
//
// An Elector waits for the lease NAME as a standby, becomes leader when it
// gets it, heartbeats every ttl/3 on the connection that holds it and reports
// the loss (on_lost) as soon as the lease may no longer be safely assumed: the
// heartbeat is refused, a session is lost, or the local deadline (send time of
// the last confirmed heartbeat + ttl) is closer than grace + a safety margin.
//
// After a loss it keeps its sessions open (state stepping_down): the lease stays
// bound to them, so it cannot pass on while the application is still stopping
// its work. Once the work has stopped, release() frees the lease at once (over
// whichever session still works, or a new one), so the next leader starts in
// milliseconds, never while the old work runs.
//
// Priorities (extension 1.1): a standby of higher priority than the leader's
// asks it to step down. The leader learns it within milliseconds (a
// singleton_watch call kept in flight on the second session, or on the main
// session between heartbeats), reports on_step_down_requested and
// step_down_requested(); once the application has stopped its work, release()
// hands the lease to that standby in the release's own commit. The same watch
// reports a force release or a pause at once (on_lost, LossReason::revoked).
//
// It never blocks on the database: all I/O is non-blocking, so it can be
// driven by any poll() loop (pollfds()/next_wakeup()/step()) or by run().
#pragma once

#include <poll.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "singleton_lock/duration.hpp"
#include "singleton_lock/errors.hpp"
#include "singleton_lock/timing.hpp"

namespace singleton_lock {

struct ElectorOptions {
    std::string name;  // lease name, 1..255 characters
    std::string dsn;   // libpq conninfo or URI; empty: PG* environment
    Duration ttl{std::chrono::seconds(10)};
    std::optional<Duration> grace;  // default ttl/4; must be < ttl/2
    std::string holder;             // empty: default_holder_id()
    std::optional<Duration> wait;   // how long to wait as standby; nullopt: forever
    std::string schema;             // schema of the extension; empty: the one it is installed in
    // Extension 1.1: among standbys the highest priority gets the lease (ties:
    // the longest waiting); a standby of higher priority than the leader's asks
    // it to step down. 0 works with extension 1.0 too.
    int priority = 0;
    // Leader: watch for step-down requests and for the lease ending
    // (singleton_watch, extension 1.1; silently off with 1.0).
    bool watch = true;
    bool listen = true;             // LISTEN singleton_lock: notice a force release at once
    // Bind the lease to a second session too (singleton_bind) before leading:
    // the lease is then orphaned only when both sessions are gone, so losing
    // one of them (its backend terminated, say) is reported while the lease is
    // still held, and release() frees it after the work stopped. One more
    // connection per instance; needs session binding (not behind a transaction pooler).
    bool second_session = false;
    Duration backoff_initial{100};  // reconnect backoff (capped exponential, jittered)
    Duration backoff_max{5000};
    // Failover: the first retry after losing a working connection is immediate;
    // while servers answer but none takes writes, or for failover_window after
    // losing a working connection, delays stay within failover_backoff_max.
    Duration failover_backoff_max{500};
    Duration failover_window{std::chrono::seconds(60)};
};

enum class State {
    idle,           // not started
    connecting,     // no usable connection yet (or backing off after an error)
    standby,        // connected, someone else holds the lease, waiting for it
    leader,         // we hold the lease
    stepping_down,  // lost while leading: stop the work, then call release()
    releasing,      // release() in progress
    // terminal states:
    released,      // released (or release attempted) after leading
    lost,          // the lease was lost while leading (and release() attempted since)
    wait_expired,  // options.wait ran out before the lease was ours
    failed,        // a non-retryable error (extension missing, permission denied, bad name)
    stopped,       // stop() was called
};
const char* to_string(State s);
bool is_terminal(State s);

enum class LossReason {
    refused,          // the heartbeat returned NULL (expired, taken over, force-released)
    deadline,         // no confirmed heartbeat in time: local deadline rule
    connection_lost,  // a session holding the lease broke
    revoked,          // the server reports it ended: force release, pause or takeover (singleton_watch)
};
const char* to_string(LossReason r);

struct LeaseInfo {
    std::string name;
    std::string holder;             // for a standby: the current holder (may be empty)
    std::int64_t token = 0;         // only for our own lease (a token is a capability)
    std::string expires_at;         // server time, as text
    std::vector<int> backend_pids;  // leader: the server processes of the sessions holding it
};

// All callbacks run on the thread that calls step()/run().
struct ElectorEvents {
    std::function<void(const LeaseInfo& current)> on_standby;  // holder changed while waiting
    std::function<void(const LeaseInfo& mine)> on_leader;
    std::function<void(LossReason, const std::string& detail)> on_lost;
    // Leader: a standby of higher priority asks for the lease. Stop the work,
    // then release(): the lease goes to that standby in the release's commit.
    // run() releases as soon as this returns (stop the work inside it).
    std::function<void()> on_step_down_requested;
    std::function<void(bool released)> on_released;  // false: could not confirm the release
    std::function<void()> on_wait_expired;
    // A standby's connection, or a release after a lost session, is retried.
    std::function<void(const std::string& error, Duration retry_in)> on_retry;
    std::function<void(const std::string& error)> on_failed;
    std::function<void(const std::string& message)> on_warning;
    std::function<void(std::chrono::microseconds round_trip)> on_heartbeat;  // each confirmed one
    // Every failed database call or broken session, whatever follows (a retry, a loss).
    std::function<void(const std::string& error)> on_database_error;
};

// "hostname:pid:random" — a holder id is a credential, hence the random part.
std::string default_holder_id();

class Elector {
  public:
    // Throws UsageError for invalid options (a name or holder id the server would
    // refuse: not UTF-8, not 1 to 255 characters, only white space, control
    // characters; ttl < 100ms, grace >= ttl/2; a DSN libpq cannot parse).
    explicit Elector(ElectorOptions options, ElectorEvents events = {});
    ~Elector();
    Elector(const Elector&) = delete;
    Elector& operator=(const Elector&) = delete;

    const ElectorOptions& options() const;  // holder and grace resolved
    const Timing& timing() const;           // what the elector derived from ttl and grace
    State state() const;
    std::int64_t token() const;  // 0 unless leader
    // Leader: a standby of higher priority asked for the lease (on_step_down_requested);
    // stays true until the elector ends.
    bool step_down_requested() const;
    // Leader: when the deadline rule fires (lease lost) unless a heartbeat is
    // confirmed before; time_point::max() when not leading. Stop acting by then.
    std::chrono::steady_clock::time_point step_down_at() const;
    // When a reply (or a connection) last came from the server; time_point{} before.
    std::chrono::steady_clock::time_point last_contact() const;
    // Leader and stepping_down: the sockets of the sessions the lease is bound
    // to. A supervising process may hold duplicates of them (never read or write
    // them): the server sees those sessions alive while any copy is open.
    std::vector<int> session_sockets() const;

    // --- poll()-loop interface ---------------------------------------------
    static constexpr int max_pollfds = 2;
    void start();
    // Writes the descriptors to poll (at most max_pollfds) and returns how many.
    int pollfds(pollfd* out) const;
    std::chrono::steady_clock::time_point next_wakeup() const;  // call step() by then
    // With what poll() returned for the entries pollfds() wrote (count 0 after a
    // timeout); never blocks.
    void step(const pollfd* fds, int count);

    // Leader: release the lease (asynchronously; on_released reports the end).
    // stepping_down: the work has stopped; release the lease if it is still ours.
    // Otherwise the same as stop(). After a confirmed release the sessions stay
    // open (idle, no longer polled) until stop() or the destructor: closing them
    // at once would make their backends exit while the next leader starts, on
    // the same CPUs; close them a few tens of milliseconds later.
    void release();
    // Stop at once: cancel a request in flight (bounded wait), close the
    // sessions. A held lease is then freed by the server's session binding.
    // After the end (released): closes the sessions kept open.
    void stop();

    // --- blocking interface --------------------------------------------------
    // Runs until a terminal state; after on_lost returns it releases at once.
    // request_stop() (any thread, async-signal-safe) makes a leader release and
    // a standby stop.
    State run();
    void request_stop() noexcept;

  private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace singleton_lock
