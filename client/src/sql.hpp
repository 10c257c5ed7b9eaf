// The SQL the client sends, in one place (the contract: SPEC.md, "SQL contract").
// Plain parameterized statements, never server-side prepared ones, so that
// transaction poolers work.
#pragma once

#include <string>
#include <vector>

#include "connection.hpp"
#include "singleton_lock/errors.hpp"

namespace singleton_lock {

struct Sql {
    explicit Sql(const std::string& schema) {
        const std::string s = schema.empty() ? "" : pq::quote_ident(schema) + ".";
        // $1 name, $2 ttl, $3 holder, $4 wait
        const std::string acquire_select =
            std::string("SELECT acquired, token, holder, expires_at FROM ") + s;
        acquire = acquire_select + "singleton_acquire($1, $2::interval, $3, $4::interval)";
        // $5 priority (1.1; the call above works with 1.0 too)
        acquire_priority =
            acquire_select + "singleton_acquire($1, $2::interval, $3, $4::interval, $5::integer)";
        // $1 name, $2 token, $3 wait (1.1)
        watch = "SELECT " + s + "singleton_watch($1, $2::bigint, $3::interval)";
        pause = "SELECT " + s + "singleton_pause($1, $2)";
        resume = "SELECT " + s + "singleton_resume($1)";
        version = "SELECT " + s + "singleton_lock_version()";
        // $1 name, $2 token, $3 ttl
        heartbeat = "SELECT " + s + "singleton_heartbeat($1, $2::bigint, $3::interval)";
        // $1 name, $2 token
        bind = "SELECT " + s + "singleton_bind($1, $2::bigint)";
        // $1 name. The second session's first call (token 0: binds nothing).
        warm_up = "SELECT " + s + "singleton_bind($1, 0::bigint)";
        release = "SELECT " + s + "singleton_release($1, $2::bigint)";
        force_release = "SELECT " + s + "singleton_force_release($1)";
        leases =
            "SELECT name, holder, token::text, state, "
            "to_char(acquired_at, 'YYYY-MM-DD HH24:MI:SS.MS TZ'), "
            "to_char(renewed_at, 'YYYY-MM-DD HH24:MI:SS.MS TZ'), "
            "to_char(expires_at, 'YYYY-MM-DD HH24:MI:SS.MS TZ'), ttl::text, holder_pid::text, "
            "transitions::text, last_transition, "
            "CASE WHEN state = 'held' THEN date_trunc('milliseconds', expires_at - "
            "clock_timestamp())::text END, "
            // 1.1 columns, read so that a 1.0 view works too
            "to_jsonb(v)->>'priority', to_jsonb(v)->>'paused_reason', to_jsonb(v)->>'paused_by' "
            "FROM " +
            s + "singleton_leases v WHERE $1::text IS NULL OR name = $1 ORDER BY name";
    }
    std::string acquire, acquire_priority, watch, heartbeat, bind, warm_up, release, force_release,
        pause, resume, version, leases;
    static constexpr const char* listen = "LISTEN singleton_lock";
    // The first statement of every session of ours: its transactions' defaults,
    // whatever the role's or database's. READ COMMITTED (under REPEATABLE READ
    // or SERIALIZABLE a snapshot would never see a release: the server refuses a
    // waiting acquire or watch); read-write (every call but the watch writes or
    // locks the lease's row; the server is a primary: a standby refuses anyway,
    // as failover expects); not deferrable. A statement of its own, and a SET:
    // a default applies from the session's next transaction, and with the
    // defaults SERIALIZABLE, READ ONLY and DEFERRABLE together any statement
    // that takes a snapshot (a SELECT, even of constants) first waits for a
    // safe one, as long as the serializable read-write transactions then open
    // run; a SET takes no snapshot.
    static constexpr const char* characteristics =
        "SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL READ COMMITTED, READ WRITE, "
        "NOT DEFERRABLE";
    // The second (Session's setup), before anything that could wait or write. Its first
    // columns: the server's backend pid and the binding setting, which tell a pooler or proxy
    // apart (elector_standby.cpp); its statement_timeout in milliseconds (or
    // transaction_timeout, PostgreSQL 17, if shorter: our transactions are single statements;
    // our waits must stay under it). Then the rest of the session's own settings:
    // idle_session_timeout off (ours are idle by design: the leader's main session between
    // heartbeats, a standby's second one throughout; a server that ended them would end
    // leadership); no lock_timeout (a standby's acquire and a release queue for the lease
    // behind the leader's asserting transactions, whose fenced work must end before the lease
    // moves: a lock_timeout would fail them and lose their place in the queue; our own
    // deadlines bound every call); ISO dates (a role's German or SQL DateStyle would change the
    // times we report), and intervals as PostgreSQL's own style (an iso_8601 one would show a
    // ttl as PT10S). Last, the extension's schema (NULL: not installed here): with no schema
    // given we name it in every call (schema_from_setup), never resolving our functions through
    // the search_path, where a role with CREATE on the database could put a schema named after
    // our role ("$user") whose singleton_acquire would run with our role's rights. Built-ins named
    // pg_catalog's too (a search_path may list pg_catalog after other schemas), and operands of
    // the exact types of pg_catalog's operators: pg_catalog is searched first, but an operator
    // elsewhere that needs no cast (numeric = integer, numeric * integer) would beat one that
    // does.
    static constexpr const char* setup =
        "SELECT pg_catalog.pg_backend_pid(), "
        "pg_catalog.current_setting('singleton_lock.bind_session', true), "
        "coalesce(least(nullif(extract(epoch FROM pg_catalog.current_setting('statement_timeout')"
        "::interval), 0::numeric), nullif(extract(epoch FROM coalesce(pg_catalog.current_setting("
        "'transaction_timeout', true), '0')::interval), 0::numeric)) * 1000::numeric, "
        "0::numeric)::bigint, "
        "pg_catalog.set_config('idle_session_timeout', '0', false), "
        "pg_catalog.set_config('lock_timeout', '0', false), "
        "pg_catalog.set_config('DateStyle', 'ISO', false), "
        "pg_catalog.set_config('IntervalStyle', 'postgres', false), "
        "(SELECT n.nspname FROM pg_catalog.pg_extension e JOIN pg_catalog.pg_namespace n "
        "ON n.oid = e.extnamespace WHERE e.extname = 'singleton_lock')";
    // The schema to name in calls: the given one, else the one setup found.
    // Throws ExtensionMissingError when none is given and the extension is not
    // installed in the database: an unqualified call would find whatever
    // function of that name the search_path offers.
    static std::string schema_from_setup(const std::string& given, const pq::Result& setup_reply) {
        constexpr int column = 7;
        if (!given.empty()) return given;
        if (setup_reply.rows() != 1 || setup_reply.columns() <= column ||
            setup_reply.is_null(0, column))
            throw ExtensionMissingError(
                "the extension singleton_lock is not installed in this database (CREATE "
                "EXTENSION singleton_lock)", "42704");
        return setup_reply.text(0, column);
    }
    // Both, in this order: the first statements of every session of ours.
    static std::vector<std::string> session_setup() { return {characteristics, setup}; }
};

}  // namespace singleton_lock
