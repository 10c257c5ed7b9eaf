// Administrative calls (blocking): list leases, force a release.
#pragma once

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

// singleton_force_release(name): true when a lease was freed.
bool force_release(const std::string& dsn, const std::string& schema, const std::string& name);

// Extension 1.1. singleton_pause(name, reason): true when it ended a tenure.
bool pause(const std::string& dsn, const std::string& schema, const std::string& name,
           const std::string& reason);
// singleton_resume(name): true when the lease was paused.
bool resume(const std::string& dsn, const std::string& schema, const std::string& name);

// singleton_lock_version(): the installed extension's version (extension 1.1;
// ExtensionMissingError from 1.0).
std::string server_version(const std::string& dsn, const std::string& schema);

}  // namespace singleton_lock
