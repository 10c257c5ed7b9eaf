// The SQL the client sends, in one place (the contract: SPEC.md, "SQL contract").
// Plain parameterized statements, never server-side prepared ones, so that
// transaction poolers work.
#pragma once

#include <string>

#include "connection.hpp"

namespace singleton_lock {

struct Sql {
    explicit Sql(const std::string& schema) {
        const std::string s = schema.empty() ? "" : pq::quote_ident(schema) + ".";
        // $1 name, $2 ttl, $3 holder, $4 wait
        acquire = "SELECT acquired, token, holder, expires_at FROM " + s +
                  "singleton_acquire($1, $2::interval, $3, $4::interval)";
        // $1 name, $2 token, $3 ttl
        heartbeat = "SELECT " + s + "singleton_heartbeat($1, $2::bigint, $3::interval)";
        // $1 name, $2 token
        bind = "SELECT " + s + "singleton_bind($1, $2::bigint)";
        release = "SELECT " + s + "singleton_release($1, $2::bigint)";
        force_release = "SELECT " + s + "singleton_force_release($1)";
        leases =
            "SELECT name, holder, token::text, state, "
            "to_char(acquired_at, 'YYYY-MM-DD HH24:MI:SS.MS TZ'), "
            "to_char(renewed_at, 'YYYY-MM-DD HH24:MI:SS.MS TZ'), "
            "to_char(expires_at, 'YYYY-MM-DD HH24:MI:SS.MS TZ'), ttl::text, holder_pid::text, "
            "transitions::text, last_transition, "
            "CASE WHEN state = 'held' THEN date_trunc('milliseconds', expires_at - "
            "clock_timestamp())::text END "
            "FROM " +
            s + "singleton_leases WHERE $1::text IS NULL OR name = $1 ORDER BY name";
    }
    std::string acquire, heartbeat, bind, release, force_release, leases;
    static constexpr const char* listen = "LISTEN singleton_lock";
};

}  // namespace singleton_lock
