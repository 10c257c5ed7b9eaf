// Leader election over a singleton_lock lease (PostgreSQL extension).
//
// An Elector waits for the lease NAME as a standby, becomes leader when it
// gets it, heartbeats every ttl/3 on the connection that holds it and steps
// down (on_lost) as soon as the lease may no longer be safely assumed: the
// heartbeat is refused, the connection is lost, or the local deadline (send
// time of the last confirmed heartbeat + ttl) is closer than grace + a safety
// margin. It never blocks on the database: all I/O is non-blocking, so it can
// be driven by any poll() loop (fd()/events()/next_wakeup()/step()) or by the
// blocking run().
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "singleton_lock/duration.hpp"
#include "singleton_lock/errors.hpp"

namespace singleton_lock {

struct ElectorOptions {
    std::string name;  // lease name, 1..255 characters
    std::string dsn;   // libpq conninfo or URI; empty: PG* environment
    Duration ttl{std::chrono::seconds(10)};
    std::optional<Duration> grace;  // default ttl/4; must be < ttl/2
    std::string holder;             // empty: default_holder_id()
    std::optional<Duration> wait;   // how long to wait as standby; nullopt: forever
    std::string schema;             // schema of the extension; empty: search_path
    bool listen = true;             // LISTEN singleton_lock: notice a force release at once
    Duration backoff_initial{100};  // reconnect backoff (capped exponential, jittered)
    Duration backoff_max{5000};
    // Failover: the first retry after losing a working connection is immediate;
    // while servers answer but none takes writes, or for failover_window after
    // losing a working connection, delays stay within failover_backoff_max.
    Duration failover_backoff_max{500};
    Duration failover_window{std::chrono::seconds(60)};
};

enum class State {
    idle,        // not started
    connecting,  // no usable connection yet (or backing off after an error)
    standby,     // connected, someone else holds the lease, waiting for it
    leader,      // we hold the lease
    releasing,   // release() in progress
    // terminal states:
    released,      // released (or release attempted) after leading
    lost,          // the lease was lost while leading
    wait_expired,  // options.wait ran out before the lease was ours
    failed,        // a non-retryable error (extension missing, permission denied, bad name)
    stopped,       // stop() was called
};
const char* to_string(State s);
bool is_terminal(State s);

enum class LossReason {
    refused,          // the heartbeat returned NULL (expired, taken over, force-released)
    deadline,         // no confirmed heartbeat in time: local deadline rule
    connection_lost,  // the holding connection broke (the session binding frees the lease)
};
const char* to_string(LossReason r);

struct LeaseInfo {
    std::string name;
    std::string holder;      // for a standby: the current holder (may be empty)
    std::int64_t token = 0;  // only for our own lease (a token is a capability)
    std::string expires_at;  // server time, as text
};

// All callbacks run on the thread that calls step()/run().
struct ElectorEvents {
    std::function<void(const LeaseInfo& current)> on_standby;  // holder changed while waiting
    std::function<void(const LeaseInfo& mine)> on_leader;
    std::function<void(LossReason, const std::string& detail)> on_lost;
    std::function<void(bool released)> on_released;  // false: could not confirm the release
    std::function<void()> on_wait_expired;
    std::function<void(const std::string& error, Duration retry_in)> on_retry;
    std::function<void(const std::string& error)> on_failed;
};

// "hostname:pid:random" — a holder id is a credential, hence the random part.
std::string default_holder_id();

class Elector {
  public:
    // Throws UsageError for invalid options (empty name, ttl < 100ms, grace >= ttl/2).
    explicit Elector(ElectorOptions options, ElectorEvents events = {});
    ~Elector();
    Elector(const Elector&) = delete;
    Elector& operator=(const Elector&) = delete;

    const ElectorOptions& options() const;  // holder and grace resolved
    State state() const;
    std::int64_t token() const;  // 0 unless leader
    // Leader: when the deadline rule fires (lease lost) unless a heartbeat is
    // confirmed before; time_point::max() when not leading. Stop acting by then.
    std::chrono::steady_clock::time_point step_down_at() const;

    // --- poll()-loop interface ---------------------------------------------
    void start();
    int fd() const;                                             // socket to poll, -1 when none
    short events() const;                                       // POLLIN/POLLOUT wanted on fd()
    std::chrono::steady_clock::time_point next_wakeup() const;  // call step() by then
    void step(short revents);  // revents of fd() (0 on a timeout); never blocks

    // Leader: release the lease (asynchronously; on_released reports the end).
    // Otherwise the same as stop().
    void release();
    // Stop at once: cancel an in-flight request (bounded wait), close the
    // connection. A held lease is then freed by the server's session binding.
    void stop();

    // --- blocking interface --------------------------------------------------
    // Runs until a terminal state. request_stop() (any thread, async-signal-safe)
    // makes a leader release and a standby stop.
    State run();
    void request_stop() noexcept;

  private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace singleton_lock
