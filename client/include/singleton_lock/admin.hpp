// Administrative calls (blocking): list leases, force a release.
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace singleton_lock {

// One lease as the view singleton_leases shows it, every column as text ("" for NULL;
// priority and paused_* also "" with extension 1.0).
struct LeaseStatus {
    std::string name, holder, token, state, acquired_at, renewed_at, expires_at, ttl, holder_pid,
        transitions, last_transition, expires_in, priority, paused_reason, paused_by;
};

// Throws ConnectionError / ServerError subclasses.
std::vector<LeaseStatus> list_leases(const std::string& dsn, const std::string& schema,
                                     const std::optional<std::string>& name);

// A session that stands in the way of an administrator's call (pg_stat_activity;
// "" where the server does not show another role's session to this one).
struct BlockingSession {
    int pid = 0;
    std::string application_name, state, xact_age;  // xact_age: "12 s"
};

// For the calls below, which may wait in the server: behind transactions that
// asserted the lease (their fenced work ends before the lease moves) or
// another call on it. on_waiting runs once, when the call has waited
// `notice_after`, with the sessions that block it (looked up over a second
// connection; empty if that failed).
struct AdminWaitHooks {
    std::function<void(const std::vector<BlockingSession>&)> on_waiting;
    std::chrono::milliseconds notice_after{1000};
};

// singleton_force_release(name): true when a lease was freed.
bool force_release(const std::string& dsn, const std::string& schema, const std::string& name,
                   const AdminWaitHooks& hooks = {});

// Extension 1.1. singleton_pause(name, reason): true when it ended a tenure.
bool pause(const std::string& dsn, const std::string& schema, const std::string& name,
           const std::string& reason, const AdminWaitHooks& hooks = {});
// singleton_resume(name): true when the lease was paused.
bool resume(const std::string& dsn, const std::string& schema, const std::string& name,
            const AdminWaitHooks& hooks = {});

// Sends a cancel request for the call above now in flight, if any: the server
// then ends it before it changed anything (QueryCanceledError), unless it had
// already committed. Async-signal-safe (for a SIGINT handler). False when no
// call was in flight: nothing has been sent, nothing will be. (With calls on
// several threads at once: the one started last.)
bool cancel_admin_call() noexcept;

// singleton_lock_version(): the installed extension's version (extension 1.1;
// ExtensionMissingError from 1.0).
std::string server_version(const std::string& dsn, const std::string& schema);

}  // namespace singleton_lock
