-- singleton_lock 1.0 -> 1.1 (also the second half of a fresh install: CREATE
-- EXTENSION runs singleton_lock--1.0.sql, then this): priorities and handoff, singleton_watch,
-- singleton_pause/resume, singleton_lock_version(), paused leases in the view.
-- Leases, tokens and GRANTs are kept.
\echo Use "ALTER EXTENSION singleton_lock UPDATE TO '1.1'" to load this file. \quit

-- Every acquire, heartbeat and release rewrites its lease's row. Room left on
-- each page keeps those updates HOT (the new version on the same page, no new
-- index entry and no second page to write) in a table of many names too.
-- (Rows written before this change get the room once their page is
-- rewritten, e.g. by VACUUM FULL.)
ALTER TABLE @extschema@.singleton_lock_leases SET (fillfactor = 80);

-- singleton_acquire gains `priority` (1.0 calls keep working: it defaults to
-- 0). A function's arguments cannot change in place, so it is replaced and
-- its EXECUTE grants are carried over; roles that may send heartbeats may
-- also watch their leases.
CREATE FUNCTION @extschema@.singleton_lock_copy_execute_grants(source regprocedure, target text)
RETURNS void LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    g record;
BEGIN
    FOR g IN SELECT a.grantee, a.is_grantable
             FROM pg_proc p, aclexplode(p.proacl) a
             WHERE p.oid = source AND a.privilege_type = 'EXECUTE' AND a.grantee <> p.proowner
    LOOP
        EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO %s%s', target,
                       CASE WHEN g.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(g.grantee::regrole::text) END,
                       CASE WHEN g.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END);
    END LOOP;
END $$;

ALTER FUNCTION @extschema@.singleton_acquire(text, interval, text, interval)
    RENAME TO singleton_acquire_1_0;
CREATE FUNCTION @extschema@.singleton_acquire(
    name text, ttl interval, holder text DEFAULT NULL, wait interval DEFAULT '0',
    priority integer DEFAULT 0)
RETURNS TABLE(acquired boolean, token bigint, holder text, expires_at timestamptz)
AS 'MODULE_PATHNAME', 'singleton_acquire'
LANGUAGE C VOLATILE CALLED ON NULL INPUT
SET search_path = pg_catalog, pg_temp;

CREATE FUNCTION @extschema@.singleton_watch(name text, token bigint, wait interval)
RETURNS text
AS 'MODULE_PATHNAME', 'singleton_watch'
LANGUAGE C VOLATILE CALLED ON NULL INPUT
SET search_path = pg_catalog, pg_temp;

CREATE FUNCTION @extschema@.singleton_pause(name text, reason text)
RETURNS boolean
AS 'MODULE_PATHNAME', 'singleton_pause'
LANGUAGE C VOLATILE CALLED ON NULL INPUT
SET search_path = pg_catalog, pg_temp;

CREATE FUNCTION @extschema@.singleton_resume(name text)
RETURNS boolean
AS 'MODULE_PATHNAME', 'singleton_resume'
LANGUAGE C VOLATILE CALLED ON NULL INPUT
SET search_path = pg_catalog, pg_temp;

CREATE FUNCTION @extschema@.singleton_lock_version()
RETURNS text
AS $$ SELECT extversion FROM pg_catalog.pg_extension WHERE extname = 'singleton_lock' $$
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp;

REVOKE EXECUTE ON FUNCTION
    @extschema@.singleton_acquire(text, interval, text, interval, integer),
    @extschema@.singleton_watch(text, bigint, interval),
    @extschema@.singleton_pause(text, text),
    @extschema@.singleton_resume(text)
FROM PUBLIC;
SELECT @extschema@.singleton_lock_copy_execute_grants(
    '@extschema@.singleton_acquire_1_0(text, interval, text, interval)',
    '@extschema@.singleton_acquire(text, interval, text, interval, integer)');
SELECT @extschema@.singleton_lock_copy_execute_grants(
    '@extschema@.singleton_heartbeat(text, bigint, interval)',
    '@extschema@.singleton_watch(text, bigint, interval)');
DROP FUNCTION @extschema@.singleton_acquire_1_0(text, interval, text, interval);
DROP FUNCTION @extschema@.singleton_lock_copy_execute_grants(regprocedure, text);

CREATE OR REPLACE VIEW @extschema@.singleton_leases AS
SELECT l.name, l.holder, l.holder_role::regrole AS holder_role, l.token, s.state,
       l.acquired_at, l.renewed_at, l.expires_at, l.ttl, l.holder_pid,
       l.transitions, l.last_transition,
       CASE s.state
           WHEN 'held' THEN NULL
           WHEN 'orphaned' THEN s.now - l.renewed_at
           WHEN 'paused' THEN s.now - LEAST(l.paused_at, l.expires_at)
           ELSE s.now - l.expires_at
       END AS leaderless_for,
       l.priority, l.paused_reason, l.paused_by::regrole AS paused_by, l.paused_at
FROM @extschema@.singleton_lock_leases l,
     LATERAL (SELECT clock_timestamp() AS now) n,
     LATERAL (SELECT n.now,
                     @extschema@.singleton_lock_state(l.released, l.paused, l.binding_key,
                                                      l.bound_since, l.bound_timeline,
                                                      l.expires_at, l.ttl, n.now) AS state) s;

COMMENT ON FUNCTION @extschema@.singleton_acquire(text, interval, text, interval, integer) IS
    'take or renew lease NAME for TTL; waits up to WAIT for it (the highest PRIORITY waiter first); returns the fencing token';
COMMENT ON FUNCTION @extschema@.singleton_watch(text, bigint, interval) IS
    'holder: wait up to WAIT until a waiter of higher priority asks to step down (step_down) or the lease is lost (lost); else held';
COMMENT ON FUNCTION @extschema@.singleton_pause(text, text) IS
    'administrators: end the current tenure and let no acquire succeed until resumed';
COMMENT ON FUNCTION @extschema@.singleton_resume(text) IS
    'administrators: end a pause and hand the lease to the best waiter at once';
COMMENT ON FUNCTION @extschema@.singleton_lock_version() IS
    'the installed version of the singleton_lock extension';
COMMENT ON VIEW @extschema@.singleton_leases IS
    'administrators: every lease with its state, holder, role and token; leaderless_for says for how long nobody has held it';
