-- singleton_lock 1.1: handoff in one durable commit, priorities, step-down
-- requests (singleton_watch), pause and resume. Waiters are other sessions
-- (dblink connections) whose waiting calls run while this session acts.
CREATE EXTENSION IF NOT EXISTS dblink;
SELECT singleton_lock_version();

-- Room for HOT updates (fillfactor 80): a lease whose page is otherwise full
-- of names is taken, renewed and released with its row staying on that page.
-- (First, while the table is empty: its first page fills with these names.)
SELECT count(*) AS leases_before FROM singleton_lock_leases;
INSERT INTO singleton_lock_leases (name) SELECT 'ff-' || g FROM generate_series(1, 400) g;
CREATE TEMP TABLE ff_page AS
    SELECT (ctid::text::point)[0] AS page FROM singleton_lock_leases WHERE name = 'ff-1';
SET singleton_lock.bind_session = off;
SELECT token AS ff_token FROM singleton_acquire('ff-1', '1 min', 'ff') \gset
SELECT singleton_heartbeat('ff-1', :ff_token) IS NOT NULL AS renewed,
       singleton_release('ff-1', :ff_token) AS released;
RESET singleton_lock.bind_session;
SELECT (ctid::text::point)[0] = (SELECT page FROM ff_page) AS same_page,
       (SELECT count(*) FROM singleton_lock_leases l2
        WHERE (l2.ctid::text::point)[0] = (SELECT page FROM ff_page)) AS names_on_its_page
FROM singleton_lock_leases WHERE name = 'ff-1';
DELETE FROM singleton_lock_leases WHERE name LIKE 'ff-%';

-- Starts `call` in a new connection named `conn` (bind_session as given) and
-- returns once that backend sleeps in the extension's wait.
CREATE FUNCTION start_waiter(conn text, call text, bind boolean DEFAULT true) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    waiter int;
BEGIN
    PERFORM dblink_connect(conn, format('dbname=%s port=%s host=%s', current_database(),
        current_setting('port'), split_part(current_setting('unix_socket_directories'), ',', 1)));
    PERFORM dblink_exec(conn, format('SET singleton_lock.bind_session = %s', bind));
    SELECT p INTO waiter FROM dblink(conn, 'SELECT pg_backend_pid()') AS t(p int);
    PERFORM dblink_send_query(conn, call);
    FOR i IN 1..1000 LOOP
        EXIT WHEN EXISTS (SELECT FROM pg_stat_activity a WHERE a.pid = waiter
                          AND a.wait_event_type = 'Extension');
        PERFORM pg_sleep(0.01);
        PERFORM pg_stat_clear_snapshot();  -- (else the view keeps its first snapshot)
    END LOOP;
    PERFORM set_config('test.pid_' || conn, waiter::text, false);
END $$;
-- The result of a waiting acquire started with start_waiter; closes its
-- connection and returns once that backend has exited.
CREATE FUNCTION acquire_result(conn text, OUT acquired boolean, OUT holder text) LANGUAGE plpgsql AS $$
BEGIN
    SELECT t.acquired, t.holder INTO acquired, holder
    FROM dblink_get_result(conn) AS t(acquired boolean, token bigint, holder text, expires_at timestamptz);
    PERFORM * FROM dblink_get_result(conn) AS t(acquired boolean, token bigint, holder text, expires_at timestamptz);
    PERFORM dblink_disconnect(conn);
    FOR i IN 1..1000 LOOP
        EXIT WHEN NOT EXISTS (SELECT FROM pg_stat_activity
                              WHERE pid = current_setting('test.pid_' || conn)::int);
        PERFORM pg_sleep(0.01);
        PERFORM pg_stat_clear_snapshot();  -- (else the view keeps its first snapshot)
    END LOOP;
END $$;
CREATE FUNCTION waiter_pid(conn text) RETURNS int LANGUAGE sql AS $$
    SELECT current_setting('test.pid_' || conn)::int $$;
CREATE FUNCTION token_of(lease text) RETURNS bigint LANGUAGE sql AS $$
    SELECT token FROM singleton_lock_leases WHERE name = lease $$;

-- A release hands the lease to the waiter inside its own transaction: the
-- new tenure is written by the releaser (xmin), and the waiter returns
-- without a commit of its own, already bound to its session.
SET singleton_lock.bind_session = off;
SELECT acquired FROM singleton_acquire('h', '1 min', 'old');
SELECT start_waiter('w', $$SELECT * FROM singleton_acquire('h', '1 min', 'new', '1 min')$$);
BEGIN;
SELECT txid_current() AS releaser \gset
SELECT singleton_release('h', token_of('h'));
SELECT holder, state FROM singleton_leases WHERE name = 'h';
COMMIT;
SELECT * FROM acquire_result('w');
SELECT holder, xmin::text = :'releaser' AS written_by_the_release, transitions, last_transition
FROM singleton_lock_leases WHERE name = 'h';
-- (the waiter's session has ended with acquire_result: its binding with it)
SELECT state FROM singleton_leases WHERE name = 'h';

-- Among waiters the highest priority gets the lease; ties go to the longest waiting.
SELECT acquired FROM singleton_acquire('p', '1 min', 'old');
SELECT start_waiter('low', $$SELECT * FROM singleton_acquire('p', '1 min', 'low', '1 min', 1)$$);
SELECT start_waiter('high', $$SELECT * FROM singleton_acquire('p', '1 min', 'high', '1 min', 5)$$);
SELECT start_waiter('high2', $$SELECT * FROM singleton_acquire('p', '1 min', 'high2', '1 min', 5)$$);
SELECT singleton_release('p', token_of('p'));
-- Ending the session of 'high' orphans the lease: the best remaining waiter,
-- woken by that session's end, takes it.
SELECT * FROM acquire_result('high');
SELECT * FROM acquire_result('high2');
SELECT * FROM acquire_result('low');  -- (woken when high2's session ended)
SELECT transitions, last_transition FROM singleton_lock_leases WHERE name = 'p';

-- A standby waits in slices, one waiting call after another on its session:
-- its place among equal priorities is kept from one slice to the next (the
-- next one starting within 1 s), so a later waiter does not overtake it when
-- a slice runs out.
CREATE FUNCTION slice_result(conn text, OUT acquired boolean, OUT holder text) LANGUAGE plpgsql AS $$
BEGIN
    SELECT t.acquired, t.holder INTO acquired, holder
    FROM dblink_get_result(conn) AS t(acquired boolean, token bigint, holder text, expires_at timestamptz);
    PERFORM * FROM dblink_get_result(conn) AS t(acquired boolean, token bigint, holder text, expires_at timestamptz);
END $$;
CREATE FUNCTION next_slice(conn text, call text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM dblink_send_query(conn, call);
    FOR i IN 1..1000 LOOP
        EXIT WHEN EXISTS (SELECT FROM pg_stat_activity a WHERE a.pid = waiter_pid(conn)
                          AND a.wait_event_type = 'Extension');
        PERFORM pg_sleep(0.01);
        PERFORM pg_stat_clear_snapshot();
    END LOOP;
END $$;
SELECT acquired FROM singleton_acquire('s', '1 min', 'old');
SELECT start_waiter('sliced', $$SELECT * FROM singleton_acquire('s', '1 min', 'sliced', '1 s')$$);
SELECT start_waiter('later', $$SELECT * FROM singleton_acquire('s', '1 min', 'later', '1 min')$$);
SELECT * FROM slice_result('sliced');  -- its first slice runs out
SELECT next_slice('sliced', $$SELECT * FROM singleton_acquire('s', '1 min', 'sliced', '3 s')$$);
SELECT singleton_release('s', token_of('s'));
SELECT * FROM acquire_result('sliced');  -- handed the lease: it has waited longest
SELECT * FROM acquire_result('later');   -- (woken when the session of 'sliced' ended)
-- The same when the next slice runs in another session of the same holder
-- id: behind a transaction pooler each slice may run in a different server
-- session, and a client may reconnect between slices.
SELECT acquired FROM singleton_acquire('m', '1 min', 'old');
SELECT start_waiter('moved', $$SELECT * FROM singleton_acquire('m', '1 min', 'moved', '1 s')$$);
SELECT start_waiter('later2', $$SELECT * FROM singleton_acquire('m', '1 min', 'later2', '1 min')$$);
SELECT * FROM acquire_result('moved');  -- its first slice runs out; its session ends
SELECT start_waiter('moved2', $$SELECT * FROM singleton_acquire('m', '1 min', 'moved', '3 s')$$);
SELECT singleton_release('m', token_of('m'));
SELECT * FROM acquire_result('moved2');  -- handed the lease: it has waited longest
SELECT * FROM acquire_result('later2');  -- (woken when the session of 'moved2' ended)

-- A waiter gone before the release commits: the lease is orphaned at once
-- and the next waiter takes it.
SELECT acquired FROM singleton_acquire('g', '1 min', 'old');
SELECT start_waiter('gone', $$SELECT * FROM singleton_acquire('g', '1 min', 'gone', '1 min', 9)$$);
SELECT start_waiter('next', $$SELECT * FROM singleton_acquire('g', '1 min', 'next', '1 min')$$);
BEGIN;
SELECT singleton_release('g', token_of('g'));
SELECT holder FROM singleton_lock_leases WHERE name = 'g';
SELECT pg_terminate_backend(waiter_pid('gone'), 10000);
COMMIT;
SELECT * FROM acquire_result('next');
SELECT holder, last_transition FROM singleton_lock_leases WHERE name = 'g';
SELECT dblink_disconnect('gone');

-- A waiter cancelled before the release commits: likewise.
SELECT acquired FROM singleton_acquire('c', '1 min', 'old');
SELECT start_waiter('cancelled', $$SELECT * FROM singleton_acquire('c', '1 min', 'cancelled', '1 min', 9)$$);
SELECT start_waiter('next', $$SELECT * FROM singleton_acquire('c', '1 min', 'next', '1 min')$$);
BEGIN;
SELECT singleton_release('c', token_of('c'));
SELECT holder FROM singleton_lock_leases WHERE name = 'c';
SELECT pg_cancel_backend(waiter_pid('cancelled'));
SELECT pg_sleep(0.2);
COMMIT;
SELECT * FROM acquire_result('next');
SELECT holder, last_transition FROM singleton_lock_leases WHERE name = 'c';
SELECT dblink_disconnect('cancelled');

-- Unbound (pooled) waiters are not handed leases: woken, they take it with
-- their own commit.
SELECT acquired FROM singleton_acquire('u', '1 min', 'old');
SELECT start_waiter('pooled', $$SELECT * FROM singleton_acquire('u', '1 min', 'pooled', '1 min')$$, false);
BEGIN;
SELECT txid_current() AS releaser \gset
SELECT singleton_release('u', token_of('u'));
COMMIT;
SELECT * FROM acquire_result('pooled');
SELECT holder, xmin::text = :'releaser' AS written_by_the_release FROM singleton_lock_leases WHERE name = 'u';

-- A better unbound waiter is not passed over for a bound one: nobody is
-- handed the lease, and the unbound waiter takes it; the next release hands
-- it to the bound one.
SELECT acquired FROM singleton_acquire('ub', '1 min', 'old');
SELECT start_waiter('bound_low', $$SELECT * FROM singleton_acquire('ub', '1 min', 'bound_low', '1 min', 1)$$);
SELECT start_waiter('pooled_high', $$SELECT * FROM singleton_acquire('ub', '1 min', 'pooled_high', '1 min', 5)$$, false);
SELECT singleton_release('ub', token_of('ub'));
SELECT * FROM acquire_result('pooled_high');
SELECT singleton_release('ub', token_of('ub'));
SELECT * FROM acquire_result('bound_low');

-- Two releases race: the second waits for the first and finds nothing to release.
SELECT acquired FROM singleton_acquire('r', '1 min', 'old');
SELECT dblink_connect('second', format('dbname=%s port=%s host=%s', current_database(),
    current_setting('port'), split_part(current_setting('unix_socket_directories'), ',', 1)));
BEGIN;
SELECT singleton_release('r', token_of('r'));
SELECT dblink_send_query('second', format('SELECT singleton_release(%L, %s)', 'r', token_of('r')));
SELECT pg_sleep(0.2);
COMMIT;
SELECT * FROM dblink_get_result('second') AS t(released boolean);
SELECT dblink_disconnect('second');

-- A waiter of higher priority asks the holder to step down: the holder's
-- singleton_watch returns at once. Equal or lower priorities do not.
SELECT acquired FROM singleton_acquire('s', '1 min', 'leader', priority => 3);
SELECT singleton_watch('s', token_of('s'), '10ms') AS alone;
SELECT start_waiter('equal', $$SELECT * FROM singleton_acquire('s', '1 min', 'equal', '1 min', 3)$$);
SELECT singleton_watch('s', token_of('s'), '50ms') AS with_an_equal_waiter;
SELECT clock_timestamp() AS t0 \gset
SELECT dblink_connect('watch', format('dbname=%s port=%s host=%s', current_database(),
    current_setting('port'), split_part(current_setting('unix_socket_directories'), ',', 1)));
SELECT dblink_send_query('watch', format('SELECT singleton_watch(%L, %s, %L)', 's', token_of('s'), '1 min'));
SELECT start_waiter('better', $$SELECT * FROM singleton_acquire('s', '1 min', 'better', '1 min', 4)$$);
SELECT * FROM dblink_get_result('watch') AS t(outcome text);
SELECT clock_timestamp() - :'t0' < '1 min' AS before_the_watch_ran_out;
SELECT dblink_disconnect('watch');
-- The holder steps down: the better waiter gets the lease.
SELECT singleton_release('s', token_of('s'));
SELECT * FROM acquire_result('better');
SELECT * FROM acquire_result('equal');
SELECT singleton_watch('s', 42, '1 min') AS with_a_stale_token;

-- Pause: ends the tenure (the holder's watch and heartbeat see it lost), no
-- acquire succeeds, waiters keep waiting; resume hands the lease over at once.
SELECT acquired FROM singleton_acquire('m', '1 min', 'leader');
SELECT token_of('m') AS paused_token \gset
SELECT dblink_connect('watch', format('dbname=%s port=%s host=%s', current_database(),
    current_setting('port'), split_part(current_setting('unix_socket_directories'), ',', 1)));
SELECT dblink_send_query('watch', format('SELECT singleton_watch(%L, %s, %L)', 'm', :paused_token, '1 min'));
SELECT pg_sleep(0.1);
SELECT singleton_pause('m', 'database maintenance');
SELECT * FROM dblink_get_result('watch') AS t(outcome text);
SELECT dblink_disconnect('watch');
SELECT singleton_heartbeat('m', :paused_token) IS NULL AS heartbeat_lost;
SELECT acquired, holder FROM singleton_acquire('m', '1 min', 'someone');
SELECT start_waiter('patient', $$SELECT * FROM singleton_acquire('m', '1 min', 'patient', '1 min')$$);
SELECT name, state, paused_reason, paused_by::text = current_user AS paused_by_me,
       last_transition, leaderless_for IS NOT NULL AS leaderless
FROM singleton_leases WHERE name = 'm';
SELECT singleton_resume('m');
SELECT * FROM acquire_result('patient');
SELECT singleton_resume('m') AS resumed_again;
-- Pausing a lease nobody ever took works too.
SELECT singleton_pause('never-taken', NULL);
SELECT state FROM singleton_leases WHERE name = 'never-taken';
SELECT singleton_resume('never-taken');

-- A lower-priority caller leaves a free lease to a better waiter: from the
-- lease's expiry until that waiter has it, every attempt of the other is refused.
SELECT acquired FROM singleton_acquire('y', '300ms', 'old');
SELECT start_waiter('best', $$SELECT * FROM singleton_acquire('y', '1 min', 'best', '1 min', 7)$$);
SELECT pg_sleep(0.3);
DO $$
DECLARE got boolean;
BEGIN
    FOR i IN 1..200 LOOP
        SELECT acquired INTO got FROM singleton_acquire('y', '1 min', 'pushy', priority => 1);
        IF got THEN RAISE EXCEPTION 'a lower priority took the lease from a waiting better one'; END IF;
        EXIT WHEN (SELECT holder FROM singleton_lock_leases WHERE name = 'y') = 'best';
        PERFORM pg_sleep(0.01);
        PERFORM pg_stat_clear_snapshot();  -- (else the view keeps its first snapshot)
    END LOOP;
END $$;
SELECT * FROM acquire_result('best');

-- Bad input and privileges.
CREATE FUNCTION try11(query text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN EXECUTE query; RETURN 'ok';
EXCEPTION WHEN OTHERS THEN RETURN SQLSTATE || ': ' || SQLERRM; END $$;
SELECT try11($$SELECT singleton_acquire('x', '1s', 'h', '0', NULL)$$);
SELECT try11(format($$SELECT singleton_pause('x', %L)$$, repeat('r', 1001)));
SELECT try11($$SELECT singleton_pause(NULL, 'r')$$);
SELECT try11($$SELECT singleton_resume('')$$);
SELECT try11($$SELECT singleton_watch('x', 1, NULL)$$);
SELECT try11($$SELECT singleton_watch('x', 1, '-1s')$$);
-- A waiting watch needs READ COMMITTED, like a waiting acquire (a fixed
-- snapshot never sees the lease taken over); one that does not wait may run
-- in any transaction.
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT try11($$SELECT singleton_watch('x', 1, '10ms')$$);
SELECT singleton_watch('x', 1, '0') AS without_waiting;
ROLLBACK;
-- singleton_assert works under any isolation: a lease force-released after the
-- transaction's snapshot fails it with 40001 (the retry then learns why). (An
-- assert before the release would hold it off until the transaction ends.)
SELECT acquired FROM singleton_acquire('iso', '1 min', 'leader');
SELECT token_of('iso') AS iso_token \gset
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT count(*) AS snapshot_taken FROM singleton_lock_leases WHERE name = 'iso';
SELECT * FROM dblink(format('dbname=%s port=%s host=%s', current_database(), current_setting('port'),
    split_part(current_setting('unix_socket_directories'), ',', 1)),
    $$SELECT singleton_force_release('iso')$$) AS t(force_released boolean);
SELECT try11(format('SELECT singleton_assert(%L, %s)', 'iso', :iso_token));
ROLLBACK;
SELECT regexp_replace(try11(format('SELECT singleton_assert(%L, %s)', 'iso', :iso_token)),
                      'token \d+', 'token N') AS after_the_retry;
CREATE ROLE regress_v11_app;
GRANT EXECUTE ON FUNCTION singleton_acquire(text, interval, text, interval, integer),
    singleton_watch(text, bigint, interval) TO regress_v11_app;
SET ROLE regress_v11_app;
SELECT try11($$SELECT singleton_pause('x', 'r')$$);
SELECT try11($$SELECT singleton_resume('x')$$);
SELECT singleton_lock_version();
RESET ROLE;
DROP OWNED BY regress_v11_app;
DROP ROLE regress_v11_app;
DROP FUNCTION try11(text), start_waiter(text, text, boolean), acquire_result(text), waiter_pid(text),
    token_of(text);
DELETE FROM singleton_lock_leases WHERE name IN ('h', 'p', 'g', 'c', 'u', 'ub', 'r', 's', 'm', 'y', 'iso',
                                                 'never-taken');
RESET singleton_lock.bind_session;
