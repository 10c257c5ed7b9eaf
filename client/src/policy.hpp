// Every timing decision of the client, in one place and pure: no I/O, no
// clock reads, no global RNG. Callers pass the current time (and a source of
// randomness), so the rules are unit-tested with a fake clock.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "singleton_lock/duration.hpp"
#include "singleton_lock/timing.hpp"

namespace singleton_lock::policy {

using Clock = std::chrono::steady_clock;
using TimePoint = Clock::time_point;

using singleton_lock::make_timing;
using singleton_lock::Timing;

// The leader's view of its lease: counted from when the last successful
// acquire/heartbeat request was SENT (the server extended the lease after
// that, so sent + ttl is never later than the server's expiry).
class LeaseTimer {
  public:
    explicit LeaseTimer(const Timing& timing) : timing_(timing) {}
    void confirmed(TimePoint sent);  // keeps the latest
    bool valid() const { return has_; }
    TimePoint deadline() const { return sent_ + timing_.ttl; }
    // Step down when the time left falls to grace + safety margin, so that a
    // SIGKILL at the end of the grace still lands before the deadline.
    TimePoint step_down_at() const { return deadline() - timing_.grace - timing_.safety_margin; }
    bool must_step_down(TimePoint now) const { return !has_ || now >= step_down_at(); }
    TimePoint next_heartbeat_at() const { return sent_ + timing_.heartbeat_interval; }

  private:
    Timing timing_;
    TimePoint sent_{};
    bool has_ = false;
};

// After an acquire that waited in the server, the lease is confirmed with an
// immediate heartbeat (a wait can outlast the TTL). COMMAND may start before
// that reply if the lease, counted from the acquire's send time (never later
// than the server's grant), leaves the confirming heartbeat a full heartbeat
// interval before the step-down point; otherwise wait for the confirmation.
bool lead_before_confirmation(const Timing& timing, TimePoint acquire_sent, TimePoint now);

// Capped exponential backoff with "equal jitter": the n-th delay is uniform in
// [base/2, base], base = min(cap, initial * 2^n). random() returns [0, 1).
class Backoff {
  public:
    using Random = std::function<double()>;
    Backoff(Duration initial, Duration max, Random random);
    Duration next() { return next(max_); }
    Duration next(Duration cap);  // this delay capped at `cap` (never below initial)
    void reset() { attempt_ = 0; }

  private:
    Duration initial_, max_;
    Random random_;
    int attempt_ = 0;
};

// Reconnect pacing: capped backoff with jitter, shaped so that a standby finds
// a new primary within `failover_max` of it accepting connections:
//  - the first retry after a working connection broke goes out at once (the
//    DSN's next host may be the new primary already, a restarted server may be
//    back); at most once per `max`, so a connection that keeps breaking right
//    after its first reply cannot turn into a busy loop;
//  - then exponential backoff from `initial`, capped at `failover_max` while a
//    failover looks under way: a server answered but none can take writes
//    (standbys, a server starting up or shutting down), or a working
//    connection broke less than `failover_window` ago (an address with nothing
//    behind it yet: a virtual IP, a proxy); otherwise (an outage) at `max`.
struct ReconnectLimits {
    Duration initial{100};
    Duration max{5000};
    Duration failover_max{500};
    Duration failover_window{60000};
};

class Reconnect {
  public:
    Reconnect(ReconnectLimits limits, Backoff::Random random);
    // A request succeeded: the connection works, its loss will be a failover sign.
    void working();
    // Delay before the next connection attempt, after a failure at `now`.
    Duration next(TimePoint now, bool primary_missing);

  private:
    ReconnectLimits limits_;
    Backoff backoff_;
    bool working_ = false;
    std::optional<TimePoint> lost_at_, immediate_at_;
};

// True when the error shows that a server answered but cannot take writes
// (a standby: SQLSTATE 25006 or libpq's target_session_attrs refusal; a server
// starting up, in recovery or shutting down): a failover is under way.
bool primary_missing(const std::exception& error);

// True when a connection attempt met one of the server's connection limits
// (53300: the role's or database's CONNECTION LIMIT, max_connections, slots
// reserved for others).
bool connection_limit(const std::exception& error);

// Standby waiting: how long the next acquire may wait inside the server.
// wait_until nullopt = wait forever. 0 means "try once, don't wait".
Duration wait_slice(const Timing& timing, TimePoint now, std::optional<TimePoint> wait_until);
bool wait_ran_out(TimePoint now, std::optional<TimePoint> wait_until);

// The longest server-side wait (an acquire's slice, a watch) that the
// session's statement_timeout lets end on its own, with room for the rest of
// the statement: a role whose statement_timeout is shorter than our slices
// would otherwise see every wait cancelled (57014) and the client reconnect.
// statement_timeout 0 (off): `wait` unchanged.
Duration within_statement_timeout(Duration wait, Duration statement_timeout);

// When an in-flight request that may wait `server_wait` in the server is
// considered dead (the connection is then closed).
TimePoint reply_deadline(const Timing& timing, TimePoint sent, Duration server_wait);

// libpq connection parameters derived from the TTL (connect_timeout,
// tcp_user_timeout, keepalives*), client_encoding UTF8, and gssencmode disable
// unless `kerberos_possible` (kerberos_signs.hpp), applied unless the DSN or
// environment sets them.
std::vector<std::pair<std::string, std::string>> connection_defaults(const Timing& timing,
                                                                     bool kerberos_possible);

// Lease names, holder ids and pause reasons are sent as UTF-8 (the server
// refuses anything else). Throws UsageError naming `what` unless `text` is.
void require_utf8(const char* what, const std::string& text);

// Lease names and holder ids follow the server's rules (SPEC, SQL contract):
// UTF-8, 1 to 255 characters, not only white space, no control characters.
// Throws UsageError naming `what` otherwise: a usage error found before any
// connection (the command exits 2), not the server's 22023 after one.
void check_label(const char* what, const std::string& text);

// What to do after a failed database call.
enum class Recovery { retry, fatal };
Recovery recovery_for(const std::exception& error);

}  // namespace singleton_lock::policy
