-- singleton_lock: every function, bad input, privileges, the view.
-- Timestamps vary from run to run: the tests compare them instead of printing them.
CREATE FUNCTION try(query text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE query;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END $$;

-- A free lease is taken; the token carries the timeline (1) in its high bits
-- and the WAL position below them (tokens vary from run to run: compared, not printed).
SELECT acquired, token >> 43 AS timeline, token & ((1::bigint << 43) - 1) > 0 AS wal_floor,
       holder, expires_at > now() + '9s' AND expires_at <= clock_timestamp() + '10s' AS ttl_ok
FROM singleton_acquire('job', '10s', 'alpha');
SELECT token AS t1 FROM singleton_lock_leases WHERE name = 'job' \gset

-- Another holder is refused: it sees who holds the lease, never the token.
SELECT acquired, token, holder, expires_at IS NOT NULL AS sees_expiry
FROM singleton_acquire('job', '10 min', 'beta');

-- The same holder gets its own token back (idempotent retry) and a new expiry.
SELECT acquired, token = :t1 AS same_token, holder FROM singleton_acquire('job', '1 min', 'alpha');
SELECT ttl, transitions, state, holder_pid = pg_backend_pid() AS bound_here
FROM singleton_leases WHERE name = 'job';

-- Heartbeat: renews with the current token, keeps or replaces the ttl.
SELECT singleton_heartbeat('job', :t1) > clock_timestamp() + '50s' AS renewed;
SELECT singleton_heartbeat('job', :t1, '20s') <= clock_timestamp() + '20s' AS new_ttl;
SELECT ttl FROM singleton_leases WHERE name = 'job';
SELECT singleton_heartbeat('job', 42) IS NULL AS wrong_token_is_lost;
SELECT singleton_heartbeat('nosuch', :t1) IS NULL AS unknown_lease_is_lost;

-- Assert passes with the token, fails with any other, naming the lease.
SELECT singleton_assert('job', :t1);
SELECT try($$SELECT singleton_assert('job', 7)$$);
SELECT try($$SELECT singleton_assert('nosuch', 7)$$);

-- Release: only with the current token; then the lease is free.
SELECT singleton_release('job', 7) AS released_with_wrong_token;
SELECT singleton_release('job', :t1) AS released;
SELECT singleton_release('job', :t1) AS released_twice;
SELECT state, last_transition, holder_pid FROM singleton_leases WHERE name = 'job';
SELECT singleton_heartbeat('job', :t1) IS NULL AS heartbeat_after_release_is_lost;
SELECT regexp_replace(try(format($$SELECT singleton_assert('job', %s)$$, :t1)), '[0-9]{6,}', 'T') AS assert_after_release;

-- A new tenure gets a strictly greater token.
SELECT acquired, token > :t1 AS greater FROM singleton_acquire('job', '10 min', 'beta');
SELECT transitions, last_transition FROM singleton_leases WHERE name = 'job';

-- An expired lease is taken over with a new token; its old token is dead.
SELECT acquired, token AS s1 FROM singleton_acquire('short', '10ms', 'alpha') \gset
SELECT pg_sleep(0.05);
SELECT state FROM singleton_leases WHERE name = 'short';
SELECT singleton_heartbeat('short', :s1) IS NULL AS lapsed_heartbeat_is_lost;
SELECT acquired, token > :s1 AS greater, holder FROM singleton_acquire('short', '10 min', 'beta');
SELECT token AS s2 FROM singleton_lock_leases WHERE name = 'short' \gset
SELECT transitions, last_transition FROM singleton_leases WHERE name = 'short';
-- Even the same holder starts a new tenure after expiry.
SELECT token AS u1 FROM singleton_acquire('short2', '10ms', 'alpha') \gset
SELECT pg_sleep(0.05);
SELECT acquired, token > :u1 AS new_tenure FROM singleton_acquire('short2', '10 min', 'alpha');

-- Force release frees whoever holds it; the holder's heartbeat then fails.
SELECT singleton_force_release('short') AS forced;
SELECT singleton_force_release('short') AS forced_again;
SELECT singleton_force_release('nosuch') AS forced_unknown;
SELECT state, last_transition FROM singleton_leases WHERE name = 'short';
SELECT singleton_heartbeat('short', :s2) IS NULL AS heartbeat_after_force_is_lost;

-- The default holder is derived from the session and stable within it.
SELECT acquired, holder LIKE 'pg_regress%@local:' || pg_backend_pid() || ':%' AS session_holder,
       token AS d1
FROM singleton_acquire('defaulted', '10 min') \gset
SELECT :'acquired', :'session_holder';
SELECT acquired, token = :d1 AS same_token FROM singleton_acquire('defaulted', '10 min');

-- Waiting: gives up after the wait when the lease stays held.
SELECT acquired, holder LIKE 'pg_regress%' AS sees_holder
FROM singleton_acquire('defaulted', '10s', 'other', '50ms');

-- A waiter wakes at the holder's expiry (no release needed).
SELECT acquired FROM singleton_acquire('expiring', '100ms', 'alpha');
SELECT acquired, holder, clock_timestamp() - statement_timestamp() < '5s' AS woke_before_wait_ran_out
FROM singleton_acquire('expiring', '10 min', 'beta', '5s');

-- statement_timeout and cancel end a wait with their usual error, and leave
-- no waiter registration behind.
SET statement_timeout = '100ms';
SELECT * FROM singleton_acquire('expiring', '10s', 'gamma', '1 min');
RESET statement_timeout;
SELECT count(*) AS waiter_locks_left FROM pg_locks WHERE locktype = 'advisory' AND objsubid = 21325;
SELECT count(*) AS binding_locks_held FROM pg_locks
WHERE locktype = 'advisory' AND objsubid = 21324 AND pid = pg_backend_pid();
SELECT count(*) AS bound_leases FROM singleton_leases WHERE holder_pid = pg_backend_pid();

-- Multibyte names and holders count characters, not bytes.
SELECT acquired FROM singleton_acquire(repeat('é', 255), '1s', repeat('ü', 255));
SELECT try($$SELECT singleton_acquire(repeat('é', 256), '1s', 'x')$$);

-- Bad input: a clear error naming the argument, SQLSTATE 22004 or 22023.
SELECT try($$SELECT singleton_acquire(NULL, '1s')$$);
SELECT try($$SELECT singleton_acquire('', '1s')$$);
SELECT try($$SELECT singleton_acquire(repeat('n', 256), '1s')$$);
SELECT try($$SELECT singleton_acquire('x', NULL)$$);
SELECT try($$SELECT singleton_acquire('x', '0s')$$);
SELECT try($$SELECT singleton_acquire('x', '-1s')$$);
SELECT try($$SELECT singleton_acquire('x', '2 days')$$);
SELECT try($$SELECT singleton_acquire('x', '1s', '')$$);
SELECT try($$SELECT singleton_acquire('x', '1s', repeat('h', 256))$$);
SELECT try($$SELECT singleton_acquire('x', '1s', 'h', NULL)$$);
SELECT try($$SELECT singleton_acquire('x', '1s', 'h', '-1s')$$);
SELECT try($$SELECT singleton_acquire('x', '1s', 'h', '100000000 years')$$);
SELECT try($$SELECT singleton_heartbeat(NULL, 1)$$);
SELECT try($$SELECT singleton_heartbeat('x', NULL)$$);
SELECT try($$SELECT singleton_heartbeat('x', 1, '0s')$$);
SELECT try($$SELECT singleton_heartbeat('x', 1, '3 days')$$);
SELECT try($$SELECT singleton_release(NULL, 1)$$);
SELECT try($$SELECT singleton_release('x', NULL)$$);
SELECT try($$SELECT singleton_release('', 1)$$);
SELECT try($$SELECT singleton_force_release(NULL)$$);
SELECT try($$SELECT singleton_assert(NULL, 1)$$);
SELECT try($$SELECT singleton_assert('x', NULL)$$);
SELECT try($$SELECT singleton_bind(NULL, 1)$$);
SELECT try($$SELECT singleton_bind('x', NULL)$$);
-- Names and holders: not only white space, no control characters.
SELECT try($$SELECT singleton_acquire('   ', '1s', 'h')$$);
SELECT try($$SELECT singleton_acquire(E'\u00a0\u2003', '1s', 'h')$$);
SELECT try($$SELECT singleton_acquire(E'a\tb', '1s', 'h')$$);
SELECT try($$SELECT singleton_acquire(E'a\u0085b', '1s', 'h')$$);
SELECT try($$SELECT singleton_acquire('x', '1s', ' ')$$);
SELECT try($$SELECT singleton_acquire('x', '1s', E'h\n')$$);
SELECT try($$SELECT singleton_heartbeat(E'\x01', 1)$$);
-- ...but inner and surrounding spaces are fine.
SELECT acquired FROM singleton_acquire(' spaced name ', '1s', ' spaced holder ');
-- Nothing was created by the failed calls.
SELECT count(*) FROM singleton_leases WHERE name = 'x';

-- max_ttl is configurable by superusers.
SET singleton_lock.max_ttl = '1h';
SHOW singleton_lock.max_ttl;
SELECT try($$SELECT singleton_acquire('x', '61 min', 'h')$$);
RESET singleton_lock.max_ttl;

-- Unbound leases (for transaction poolers) need an explicit holder.
SET singleton_lock.bind_session = off;
SELECT try($$SELECT singleton_acquire('pooled', '10s')$$);
SELECT acquired FROM singleton_acquire('pooled', '10 min', 'pooled-client');
SELECT state, holder_pid FROM singleton_leases WHERE name = 'pooled';
RESET singleton_lock.bind_session;

-- Heartbeats of session-bound leases commit without waiting for the WAL
-- flush (a crash ends the bound session anyway); unbound ones stay durable.
-- WAL fsyncs (the server runs with fsync on): pg_stat_wal.wal_sync up to PostgreSQL 17,
-- the WAL rows of pg_stat_io from 18 on.
SELECT CASE WHEN current_setting('server_version_num')::int >= 180000
            THEN 'SELECT sum(fsyncs)::bigint AS wal_sync FROM pg_stat_io WHERE object = ''wal'''
            ELSE 'SELECT wal_sync FROM pg_stat_wal' END AS wal_syncs \gset
SELECT token AS quick_token FROM singleton_acquire('quick', '10 min', 'alpha') \gset
SELECT token AS pooled_token FROM singleton_leases WHERE name = 'pooled' \gset
SELECT pg_stat_force_next_flush();
SELECT wal_sync AS syncs_before FROM (:wal_syncs) s \gset
-- \gexec runs each generated call as its own statement (its own transaction).
SELECT format('SELECT singleton_heartbeat(%L, %s) IS NOT NULL AS renewed', 'quick',
              '(SELECT token FROM singleton_lock_leases WHERE name = ''quick'')')
FROM generate_series(1, 20) \gexec
SELECT pg_stat_force_next_flush();
SELECT wal_sync - :syncs_before < 10 AS bound_heartbeats_skip_the_flush FROM (:wal_syncs) s;
SELECT wal_sync AS syncs_before FROM (:wal_syncs) s \gset
SELECT format('SELECT singleton_heartbeat(%L, %s) IS NOT NULL AS renewed', 'pooled',
              '(SELECT token FROM singleton_lock_leases WHERE name = ''pooled'')')
FROM generate_series(1, 10) \gexec
SELECT pg_stat_force_next_flush();
SELECT wal_sync - :syncs_before >= 10 AS unbound_heartbeats_are_flushed FROM (:wal_syncs) s;
-- Binding an already bound session only locks the row: no flush either (it
-- is on the new leader's path to starting its work).
SELECT wal_sync AS syncs_before FROM (:wal_syncs) s \gset
SELECT format('SELECT singleton_bind(%L, %s) AS bound', 'quick',
              '(SELECT token FROM singleton_lock_leases WHERE name = ''quick'')')
FROM generate_series(1, 20) \gexec
SELECT pg_stat_force_next_flush();
SELECT wal_sync - :syncs_before < 10 AS rebinds_skip_the_flush FROM (:wal_syncs) s;
-- With another write in the same transaction, the application's write stays durable.
SELECT wal_sync AS syncs_before FROM (:wal_syncs) s \gset
BEGIN;
SELECT singleton_heartbeat('quick', :quick_token) IS NOT NULL AS renewed;
CREATE TEMP TABLE app_write AS SELECT 1 AS x;
COMMIT;
SELECT pg_stat_force_next_flush();
SELECT wal_sync - :syncs_before >= 1 AS mixed_transaction_is_flushed FROM (:wal_syncs) s;
SHOW synchronous_commit;

-- A waiting acquire needs READ COMMITTED (a fixed snapshot never sees a release).
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT try($$SELECT singleton_acquire('job', '1s', 'gamma', '10ms')$$);
ROLLBACK;

-- In a read-only transaction (default_transaction_read_only for a role or
-- database, say) every function but the watch refuses with 25006 naming the
-- setting, not PostgreSQL's message about our internal SELECT ... FOR UPDATE.
SET default_transaction_read_only = on;
SELECT q AS in_read_only, try(q) FROM unnest(ARRAY[
    $$SELECT singleton_acquire('job', '1s', 'gamma')$$,
    $$SELECT singleton_heartbeat('job', 1)$$,
    $$SELECT singleton_release('job', 1)$$,
    $$SELECT singleton_assert('job', 1)$$,
    $$SELECT singleton_bind('job', 0)$$,
    $$SELECT singleton_force_release('job')$$,
    $$SELECT singleton_pause('job', 'r')$$,
    $$SELECT singleton_resume('job')$$,
    $$SELECT singleton_watch('job', 1, '0')$$]) q;
SELECT singleton_acquire('job', '1s', 'gamma');
RESET default_transaction_read_only;

-- Inside a transaction block the lease is taken as the transaction commits.
BEGIN;
SELECT acquired FROM singleton_acquire('txn', '10s', 'alpha');
ROLLBACK;
SELECT count(*) AS rolled_back FROM singleton_leases WHERE name = 'txn' AND state = 'held';

-- Privileges: nothing for PUBLIC; one GRANT gives an application the API.
CREATE ROLE regress_sl_app;
SET ROLE regress_sl_app;
SELECT try($$SELECT singleton_acquire('app', '10s', 'app')$$);
RESET ROLE;
GRANT EXECUTE ON FUNCTION
    singleton_acquire(text, interval, text, interval, integer), singleton_heartbeat(text, bigint, interval),
    singleton_release(text, bigint), singleton_assert(text, bigint), singleton_bind(text, bigint),
    singleton_watch(text, bigint, interval)
TO regress_sl_app;
SET ROLE regress_sl_app;
SELECT acquired, token AS a1 FROM singleton_acquire('app', '10s', 'app') \gset
SELECT :'acquired';
SELECT singleton_heartbeat('app', :a1) IS NOT NULL AS renewed;
SELECT singleton_assert('app', :a1);
SELECT try($$SELECT singleton_force_release('app')$$);
SELECT try($$SELECT * FROM singleton_leases$$);
SELECT try($$SELECT * FROM singleton_lock_leases$$);
SELECT try($$UPDATE singleton_lock_leases SET token = 0$$);
SELECT try($$DELETE FROM singleton_lock_leases$$);
SELECT try($$SET singleton_lock.max_ttl = '2 days'$$);
SELECT singleton_release('app', :a1) AS released;
RESET ROLE;
DROP OWNED BY regress_sl_app;
DROP ROLE regress_sl_app;

-- Functions pin their search_path, are not STRICT, and run with the
-- caller's rights (they switch to the owner for the table themselves).
SELECT proname, proconfig, proisstrict, prosecdef FROM pg_proc
WHERE proname LIKE 'singleton%' ORDER BY proname;

SELECT name, CASE WHEN holder LIKE 'pg_regress%' THEN '(session default)' ELSE holder END AS holder,
       CASE WHEN holder_role IS NULL THEN NULL WHEN holder_role::text = current_user THEN 'me'
            ELSE 'other' END AS role, state, transitions, last_transition,
       CASE WHEN state = 'held' THEN leaderless_for IS NULL
            ELSE leaderless_for IS NOT NULL OR transitions = 0 END AS leaderless_for_ok
FROM singleton_leases WHERE name NOT LIKE 'é%' ORDER BY name;
