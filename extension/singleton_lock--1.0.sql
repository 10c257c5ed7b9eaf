-- singleton_lock 1.0: leases, fencing tokens and the administrators' view.
\echo Use "CREATE EXTENSION singleton_lock" to load this file. \quit

-- The lease state. Rows are never deleted: a free lease keeps its last token
-- so that tokens of a name only ever grow. Only the functions below write it.
CREATE TABLE @extschema@.singleton_lock_leases (
    name            text PRIMARY KEY,
    holder          text,
    token           bigint NOT NULL DEFAULT 0,
    released        boolean NOT NULL DEFAULT true,
    acquired_at     timestamptz,
    renewed_at      timestamptz,
    expires_at      timestamptz,
    ttl             interval,
    holder_pid      integer,
    holder_started  timestamptz,
    transitions     bigint NOT NULL DEFAULT 0,
    last_transition text
);
REVOKE ALL ON @extschema@.singleton_lock_leases FROM PUBLIC;

CREATE FUNCTION @extschema@.singleton_acquire(
    name text, ttl interval, holder text DEFAULT NULL, wait interval DEFAULT '0')
RETURNS TABLE(acquired boolean, token bigint, holder text, expires_at timestamptz)
AS 'MODULE_PATHNAME', 'singleton_acquire'
LANGUAGE C VOLATILE CALLED ON NULL INPUT SECURITY DEFINER
SET search_path = pg_catalog, pg_temp;

CREATE FUNCTION @extschema@.singleton_heartbeat(name text, token bigint, ttl interval DEFAULT NULL)
RETURNS timestamptz
AS 'MODULE_PATHNAME', 'singleton_heartbeat'
LANGUAGE C VOLATILE CALLED ON NULL INPUT SECURITY DEFINER
SET search_path = pg_catalog, pg_temp;

CREATE FUNCTION @extschema@.singleton_release(name text, token bigint)
RETURNS boolean
AS 'MODULE_PATHNAME', 'singleton_release'
LANGUAGE C VOLATILE CALLED ON NULL INPUT SECURITY DEFINER
SET search_path = pg_catalog, pg_temp;

CREATE FUNCTION @extschema@.singleton_force_release(name text)
RETURNS boolean
AS 'MODULE_PATHNAME', 'singleton_force_release'
LANGUAGE C VOLATILE CALLED ON NULL INPUT SECURITY DEFINER
SET search_path = pg_catalog, pg_temp;

CREATE FUNCTION @extschema@.singleton_assert(name text, token bigint)
RETURNS void
AS 'MODULE_PATHNAME', 'singleton_assert'
LANGUAGE C VOLATILE CALLED ON NULL INPUT SECURITY DEFINER
SET search_path = pg_catalog, pg_temp;

-- Internal: the lease state machine's verdict on a stored row at `now`
-- (used by the view and inside the functions' own queries). It runs no SQL,
-- so it needs no pinned search_path (which would cost a GUC save/restore per row).
CREATE FUNCTION @extschema@.singleton_lock_state(
    released boolean, holder_pid integer, holder_started timestamptz,
    expires_at timestamptz, now timestamptz)
RETURNS text
AS 'MODULE_PATHNAME', 'singleton_lock_state'
LANGUAGE C VOLATILE CALLED ON NULL INPUT;

CREATE VIEW @extschema@.singleton_leases AS
SELECT l.name, l.holder, l.token,
       @extschema@.singleton_lock_state(l.released, l.holder_pid, l.holder_started,
                                        l.expires_at, clock_timestamp()) AS state,
       l.acquired_at, l.renewed_at, l.expires_at, l.ttl, l.holder_pid,
       l.transitions, l.last_transition
FROM @extschema@.singleton_lock_leases l;

-- Nothing for PUBLIC: the README shows the one GRANT an application role needs.
REVOKE ALL ON @extschema@.singleton_leases FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION
    @extschema@.singleton_acquire(text, interval, text, interval),
    @extschema@.singleton_heartbeat(text, bigint, interval),
    @extschema@.singleton_release(text, bigint),
    @extschema@.singleton_force_release(text),
    @extschema@.singleton_assert(text, bigint),
    @extschema@.singleton_lock_state(boolean, integer, timestamptz, timestamptz, timestamptz)
FROM PUBLIC;

COMMENT ON FUNCTION @extschema@.singleton_acquire(text, interval, text, interval) IS
    'take or renew lease NAME for TTL; waits up to WAIT for it; returns the fencing token';
COMMENT ON FUNCTION @extschema@.singleton_heartbeat(text, bigint, interval) IS
    'renew a lease held with TOKEN; NULL when the lease is lost';
COMMENT ON FUNCTION @extschema@.singleton_release(text, bigint) IS
    'free a lease held with TOKEN and wake its waiters';
COMMENT ON FUNCTION @extschema@.singleton_force_release(text) IS
    'administrators: free a lease whoever holds it';
COMMENT ON FUNCTION @extschema@.singleton_assert(text, bigint) IS
    'fence the current transaction: error unless TOKEN holds lease NAME until commit';
COMMENT ON VIEW @extschema@.singleton_leases IS
    'administrators: every lease with its state, holder and token';
