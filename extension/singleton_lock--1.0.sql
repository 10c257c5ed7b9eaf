-- singleton_lock 1.0: leases, fencing tokens and the administrators' view.
\echo Use "CREATE EXTENSION singleton_lock" to load this file. \quit

-- The lease state. Rows are never deleted by the functions: a free lease keeps
-- its last token so that tokens of a name only ever grow. Only the functions
-- below write it (they switch to the extension owner for exactly that).
CREATE TABLE @extschema@.singleton_lock_leases (
    name            text PRIMARY KEY,
    holder          text,
    holder_role     oid,
    token           bigint NOT NULL DEFAULT 0,
    released        boolean NOT NULL DEFAULT true,
    acquired_at     timestamptz,
    renewed_at      timestamptz,
    expires_at      timestamptz,
    ttl             interval,
    holder_pid      integer,
    binding_key     bigint,
    bound_since     timestamptz,
    bound_timeline  integer,
    priority        integer NOT NULL DEFAULT 0,
    paused          boolean NOT NULL DEFAULT false,
    paused_reason   text,
    paused_by       oid,
    paused_at       timestamptz,
    transitions     bigint NOT NULL DEFAULT 0,
    last_transition text
);
REVOKE ALL ON @extschema@.singleton_lock_leases FROM PUBLIC;
-- pg_dump keeps the rows (and with them the tokens) of an extension's table.
SELECT pg_catalog.pg_extension_config_dump('@extschema@.singleton_lock_leases', '');
COMMENT ON TABLE @extschema@.singleton_lock_leases IS
    'internal: lease state, written only by the singleton_lock functions';

-- The functions run with the caller's rights (so they know which role calls:
-- authority over a lease is scoped to the role that acquired it) and switch to
-- the extension owner only around their own reads and writes of the table.
-- search_path is pinned: no object of the caller's is ever resolved.
CREATE FUNCTION @extschema@.singleton_acquire(
    name text, ttl interval, holder text DEFAULT NULL, wait interval DEFAULT '0')
RETURNS TABLE(acquired boolean, token bigint, holder text, expires_at timestamptz)
AS 'MODULE_PATHNAME', 'singleton_acquire'
LANGUAGE C VOLATILE CALLED ON NULL INPUT
SET search_path = pg_catalog, pg_temp;

CREATE FUNCTION @extschema@.singleton_heartbeat(name text, token bigint, ttl interval DEFAULT NULL)
RETURNS timestamptz
AS 'MODULE_PATHNAME', 'singleton_heartbeat'
LANGUAGE C VOLATILE CALLED ON NULL INPUT
SET search_path = pg_catalog, pg_temp;

CREATE FUNCTION @extschema@.singleton_release(name text, token bigint)
RETURNS boolean
AS 'MODULE_PATHNAME', 'singleton_release'
LANGUAGE C VOLATILE CALLED ON NULL INPUT
SET search_path = pg_catalog, pg_temp;

CREATE FUNCTION @extschema@.singleton_force_release(name text)
RETURNS boolean
AS 'MODULE_PATHNAME', 'singleton_force_release'
LANGUAGE C VOLATILE CALLED ON NULL INPUT
SET search_path = pg_catalog, pg_temp;

CREATE FUNCTION @extschema@.singleton_assert(name text, token bigint)
RETURNS void
AS 'MODULE_PATHNAME', 'singleton_assert'
LANGUAGE C VOLATILE CALLED ON NULL INPUT
SET search_path = pg_catalog, pg_temp;

CREATE FUNCTION @extschema@.singleton_bind(name text, token bigint)
RETURNS boolean
AS 'MODULE_PATHNAME', 'singleton_bind'
LANGUAGE C VOLATILE CALLED ON NULL INPUT
SET search_path = pg_catalog, pg_temp;

-- Internal: the lease state machine's verdict on a stored row at `now`
-- (used by the view and inside the functions' own queries). It runs no SQL,
-- so it needs no pinned search_path (which would cost a GUC save/restore per row).
CREATE FUNCTION @extschema@.singleton_lock_state(
    released boolean, paused boolean, binding_key bigint, bound_since timestamptz,
    bound_timeline integer, expires_at timestamptz, ttl interval, now timestamptz)
RETURNS text
AS 'MODULE_PATHNAME', 'singleton_lock_state'
LANGUAGE C VOLATILE CALLED ON NULL INPUT;

CREATE VIEW @extschema@.singleton_leases AS
SELECT l.name, l.holder, l.holder_role::regrole AS holder_role, l.token, s.state,
       l.acquired_at, l.renewed_at, l.expires_at, l.ttl, l.holder_pid,
       l.transitions, l.last_transition,
       CASE s.state
           WHEN 'held' THEN NULL
           WHEN 'orphaned' THEN s.now - l.renewed_at
           ELSE s.now - l.expires_at
       END AS leaderless_for
FROM @extschema@.singleton_lock_leases l,
     LATERAL (SELECT clock_timestamp() AS now) n,
     LATERAL (SELECT n.now,
                     @extschema@.singleton_lock_state(l.released, l.paused, l.binding_key,
                                                      l.bound_since, l.bound_timeline,
                                                      l.expires_at, l.ttl, n.now) AS state) s;

-- Nothing for PUBLIC: the README shows the one GRANT an application role needs.
REVOKE ALL ON @extschema@.singleton_leases FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION
    @extschema@.singleton_acquire(text, interval, text, interval),
    @extschema@.singleton_heartbeat(text, bigint, interval),
    @extschema@.singleton_release(text, bigint),
    @extschema@.singleton_force_release(text),
    @extschema@.singleton_assert(text, bigint),
    @extschema@.singleton_bind(text, bigint),
    @extschema@.singleton_lock_state(boolean, boolean, bigint, timestamptz, integer, timestamptz,
                                     interval, timestamptz)
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
COMMENT ON FUNCTION @extschema@.singleton_bind(text, bigint) IS
    'bind the calling session too to the lease held with TOKEN: it is orphaned only when every bound session has ended';
COMMENT ON FUNCTION @extschema@.singleton_lock_state(boolean, boolean, bigint, timestamptz, integer,
                                                     timestamptz, interval, timestamptz) IS
    'internal: state of a stored lease row at NOW (paused, free, orphaned, expired, held)';
COMMENT ON VIEW @extschema@.singleton_leases IS
    'administrators: every lease with its state, holder, role and token; leaderless_for says for how long nobody has held it';
