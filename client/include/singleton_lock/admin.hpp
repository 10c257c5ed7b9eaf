// Administrative calls (blocking): list leases, force a release.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace singleton_lock {

// One lease as the view singleton_leases shows it, every column as text ("" for NULL).
struct LeaseStatus {
    std::string name, holder, token, state, acquired_at, renewed_at, expires_at, ttl, holder_pid,
        transitions, last_transition, expires_in;
};

// Throws ConnectionError / ServerError subclasses.
std::vector<LeaseStatus> list_leases(const std::string& dsn, const std::string& schema,
                                     const std::optional<std::string>& name);

// singleton_force_release(name): true when a lease was freed.
bool force_release(const std::string& dsn, const std::string& schema, const std::string& name);

}  // namespace singleton_lock
