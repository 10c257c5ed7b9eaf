-- singleton_lock security: an error raised inside any of our functions and
-- caught by the caller leaves the session exactly as PostgreSQL would; a role
-- with the documented GRANT cannot escalate, and cannot act on another role's
-- leases.
-- The roles log in themselves (with SET ROLE from a superuser's session,
-- SET ROLE and SET SESSION AUTHORIZATION would be allowed anyway).
SELECT current_user AS admin \gset
CREATE ROLE regress_sec_app LOGIN;
CREATE ROLE regress_sec_other LOGIN;
CREATE ROLE regress_sec_nobody LOGIN;
GRANT EXECUTE ON FUNCTION
    singleton_acquire(text, interval, text, interval, integer), singleton_heartbeat(text, bigint, interval),
    singleton_release(text, bigint), singleton_assert(text, bigint), singleton_bind(text, bigint),
    singleton_watch(text, bigint, interval)
TO regress_sec_app, regress_sec_other;
CREATE TABLE sec_log (who text, note text);
GRANT ALL ON sec_log TO PUBLIC;

-- Runs a statement in a PL/pgSQL EXCEPTION block; returns SQLSTATE and
-- message (or 'ok') and who we are afterwards.
CREATE FUNCTION sec_try(query text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE query;
    RETURN 'ok as ' || current_user;
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM || ' -- then current_user = ' || current_user;
END $$;
-- The same, with only the SQLSTATE (messages vary between PostgreSQL versions).
CREATE FUNCTION sec_state(query text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE query;
    RETURN 'ok as ' || current_user;
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ' -- then current_user = ' || current_user;
END $$;
-- What of ours is left in the lock table: waiter registrations (21325), and
-- bindings (21324) of this session beyond those its held leases need.
CREATE FUNCTION sec_leftovers() RETURNS text LANGUAGE sql AS $$
    SELECT format('waiters=%s bindings=%s',
        (SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objsubid = 21325),
        (SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objsubid = 21324
                                         AND pid = pg_backend_pid()))
$$;
GRANT EXECUTE ON FUNCTION sec_try(text), sec_state(text), sec_leftovers() TO PUBLIC;

-- A lease whose tokens are exhausted: acquiring it raises inside our
-- internal subtransaction (a waiting acquire, or one in a transaction block).
INSERT INTO singleton_lock_leases (name, token) VALUES ('exhausted', 9223372036854775807);

\c - regress_sec_app
-- The reported escalation: the error was caught, the session kept running as
-- the extension owner (a superuser) and the ALTER ROLE succeeded.
BEGIN;
DO $$ BEGIN PERFORM singleton_acquire('exhausted', '10s', 'B', wait => '1 s');
       EXCEPTION WHEN OTHERS THEN INSERT INTO sec_log VALUES (current_user, SQLERRM); END $$;
SELECT current_user;
SELECT sec_state('ALTER ROLE regress_sec_app SUPERUSER');
COMMIT;
SELECT * FROM sec_log;
SELECT current_user, sec_leftovers();

-- The same outside a transaction block, without a wait, and via a savepoint.
SELECT sec_try($$SELECT singleton_acquire('exhausted', '10s', 'B')$$);
SELECT sec_try($$SELECT singleton_acquire('exhausted', '10s', 'B', '10ms')$$);
BEGIN;
INSERT INTO sec_log VALUES ('kept', 'written before the savepoint');
SAVEPOINT s;
INSERT INTO sec_log VALUES ('lost', 'written after the savepoint');
SELECT singleton_acquire('exhausted', '10s', 'B', '10ms');
ROLLBACK TO SAVEPOINT s;
SELECT current_user;
INSERT INTO sec_log VALUES ('kept', 'written after the rollback');
COMMIT;
SELECT who, note FROM sec_log WHERE who <> 'regress_sec_app' ORDER BY note;
SELECT current_user, sec_leftovers();

-- Every bad-input error of every function, caught: the session stays the caller's.
SELECT sec_try(q) FROM unnest(ARRAY[
    $$SELECT singleton_acquire(NULL, '1s')$$,
    $$SELECT singleton_acquire('', '1s')$$,
    $$SELECT singleton_acquire(repeat('n', 256), '1s')$$,
    $$SELECT singleton_acquire(E'\t', '1s')$$,
    $$SELECT singleton_acquire(' ', '1s')$$,
    $$SELECT singleton_acquire('x', NULL)$$,
    $$SELECT singleton_acquire('x', '0s')$$,
    $$SELECT singleton_acquire('x', '2 days')$$,
    $$SELECT singleton_acquire('x', '1s', '')$$,
    $$SELECT singleton_acquire('x', '1s', E'h\n')$$,
    $$SELECT singleton_acquire('x', '1s', 'h', NULL)$$,
    $$SELECT singleton_acquire('x', '1s', 'h', '-1s')$$,
    $$SELECT singleton_heartbeat(NULL, 1)$$,
    $$SELECT singleton_heartbeat('x', NULL)$$,
    $$SELECT singleton_heartbeat('x', 1, '0s')$$,
    $$SELECT singleton_release(NULL, 1)$$,
    $$SELECT singleton_release('x', NULL)$$,
    $$SELECT singleton_assert(NULL, 1)$$,
    $$SELECT singleton_assert('x', NULL)$$,
    $$SELECT singleton_assert('x', 1)$$,
    $$SELECT singleton_bind(NULL, 1)$$,
    $$SELECT singleton_bind('x', NULL)$$,
    $$SELECT singleton_force_release('x')$$,
    $$SELECT * FROM singleton_leases$$
]) AS q;
SELECT current_user, sec_leftovers();

-- After those errors, every escalation attempt is refused with 42501.
SELECT q, sec_state(q) FROM unnest(ARRAY[
    $$ALTER ROLE regress_sec_app SUPERUSER$$,
    $$SET ROLE pg_write_all_data$$,
    $$SET SESSION AUTHORIZATION pg_write_all_data$$,
    $$UPDATE singleton_lock_leases SET token = 0$$,
    $$INSERT INTO singleton_lock_leases (name) VALUES ('planted')$$,
    $$DELETE FROM singleton_lock_leases$$,
    $$SELECT * FROM singleton_lock_leases$$,
    $$SET singleton_lock.max_ttl = '2 days'$$,
    $$SET singleton_lock.max_bound_leases = 100000$$,
    $$SELECT singleton_force_release('exhausted')$$,
    $$SELECT singleton_lock_state(false, false, 1, now(), 1, now(), '1s', now())$$,
    $$CREATE TABLE singleton_lock_leases (x int)$$
]) AS q;

-- A role with no grant at all gets 42501 from every function.
\c - regress_sec_nobody
SELECT sec_state($$SELECT singleton_acquire('x', '1s', 'h')$$);
SELECT sec_state($$SELECT singleton_release('x', 1)$$);

-- Authority is scoped to the role that acquired. (Unbound: the lease stays
-- held while this test switches sessions.)
\c - regress_sec_app
SET singleton_lock.bind_session = off;
SELECT acquired FROM singleton_acquire('svc', '1 min', 'app-holder');
SELECT token AS app_token FROM singleton_acquire('svc', '1 min', 'app-holder') \gset
\c - regress_sec_other
-- Another role sees which role holds the lease, never the holder id.
SELECT acquired, token, holder FROM singleton_acquire('svc', '1 min', 'other-holder');
-- Presenting the holder id (seen in a log, say) does not make it the holder.
SELECT acquired, token, holder FROM singleton_acquire('svc', '1 min', 'app-holder');
-- Even with the real token, nothing acts on someone else's lease.
SELECT singleton_heartbeat('svc', :app_token) IS NULL AS heartbeat_refused;
SELECT singleton_release('svc', :app_token) AS released;
SELECT singleton_bind('svc', :app_token) AS bound;
SELECT regexp_replace(sec_try(format($$SELECT singleton_assert('svc', %s)$$, :app_token)),
                      '[0-9]{6,}', 'T', 'g') AS assert_refused;
-- Guessing tokens near it frees nothing.
SELECT count(*) AS guessed_releases FROM generate_series(:app_token - 1000, :app_token + 1000) t
WHERE singleton_release('svc', t);
\c - :admin
SELECT holder, state, token = :app_token AS same_tenure FROM singleton_leases WHERE name = 'svc';
-- The acquiring role keeps full authority, from any session.
\c - regress_sec_app
SELECT singleton_heartbeat('svc', :app_token) IS NOT NULL AS renewed;
SELECT acquired, token = :app_token AS same_token FROM singleton_acquire('svc', '1 min', 'app-holder');
SELECT singleton_release('svc', :app_token) AS released;
\c - :admin

-- Too many bindings for one session: a clear error, nothing left behind
-- (the two bindings are those of the two held leases).
SET singleton_lock.max_bound_leases = 2;
SELECT count(*) FROM (SELECT singleton_acquire('many-' || i, '1 min', 'h') FROM generate_series(1, 2) i) s;
SELECT sec_try($$SELECT singleton_acquire('many-3', '1 min', 'h')$$);
SELECT state FROM singleton_leases WHERE name = 'many-3';
SELECT sec_leftovers();
RESET singleton_lock.max_bound_leases;
SELECT singleton_release('many-' || i, token) FROM generate_series(1, 2) i
JOIN singleton_lock_leases ON name = 'many-' || i;

-- A binding made in a rolled-back savepoint is undone with it.
BEGIN;
SAVEPOINT s;
SELECT acquired FROM singleton_acquire('undone', '1 min', 'h');
ROLLBACK TO SAVEPOINT s;
SELECT sec_leftovers();
COMMIT;
SELECT state FROM singleton_leases WHERE name = 'undone';

-- pg_advisory_unlock_all() and DISCARD ALL end this session's bindings (the
-- lease is orphaned at once and its waiters are woken: test/specs/binding_end.spec).
SELECT acquired FROM singleton_acquire('unlocked', '1 min', 'h');
SELECT pg_advisory_unlock_all();
SELECT state FROM singleton_leases WHERE name = 'unlocked';
SELECT acquired FROM singleton_acquire('discarded', '1 min', 'h');
DISCARD ALL;
SELECT state FROM singleton_leases WHERE name = 'discarded';
SELECT sec_leftovers();

-- A transaction that changed a lease cannot be prepared (two-phase commit).
BEGIN;
SELECT acquired FROM singleton_acquire('prepared', '1 min', 'h');
PREPARE TRANSACTION 'sl_prepared';
SELECT state FROM singleton_leases WHERE name = 'prepared';
SELECT sec_leftovers();

-- Tokens never go backwards when the extension is dropped and created again,
-- and the functions of an existing backend follow the extension to its new
-- schema (a planted table in the old one is never used).
SELECT max(token) AS max_token FROM singleton_lock_leases WHERE name <> 'exhausted' \gset
DROP EXTENSION singleton_lock;
CREATE TABLE public.singleton_lock_leases (name text, token bigint);
CREATE FUNCTION planted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN INSERT INTO sec_log VALUES ('PLANTED', TG_OP); RETURN NEW; END $$;
CREATE TRIGGER planted BEFORE INSERT OR UPDATE ON public.singleton_lock_leases
    FOR EACH ROW EXECUTE FUNCTION planted();
CREATE SCHEMA sl_other;
CREATE EXTENSION singleton_lock SCHEMA sl_other;
SELECT acquired, token > :max_token AS above_every_earlier_token
FROM sl_other.singleton_acquire('fresh', '1 min', 'h');
SELECT count(*) AS planted_fired FROM sec_log WHERE who = 'PLANTED';
SELECT count(*) AS planted_rows FROM public.singleton_lock_leases;
DROP EXTENSION singleton_lock;
DROP SCHEMA sl_other;
DROP TABLE public.singleton_lock_leases;
DROP FUNCTION planted();
CREATE EXTENSION singleton_lock;
SELECT acquired, token > :max_token AS above_every_earlier_token
FROM singleton_acquire('fresh', '1 min', 'h');
SELECT singleton_release('fresh', token) FROM singleton_lock_leases WHERE name = 'fresh';
DELETE FROM singleton_lock_leases WHERE name = 'fresh';

-- pg_dump keeps the lease table's rows (and with them the tokens).
SELECT extconfig::regclass[] FROM pg_extension WHERE extname = 'singleton_lock';

DROP TABLE sec_log;
DROP FUNCTION sec_try(text);
DROP FUNCTION sec_state(text);
DROP FUNCTION sec_leftovers();
DROP ROLE regress_sec_app, regress_sec_other, regress_sec_nobody;
