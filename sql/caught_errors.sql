-- Errors raised inside each function while it waits (lock_timeout and
-- statement_timeout while another session holds the lease row, a cancel from
-- another session), caught by the caller: in a PL/pgSQL EXCEPTION block
-- outside and inside an explicit transaction block, and with ROLLBACK TO
-- SAVEPOINT. Afterwards current_user is the caller's, the caller's own writes
-- are kept or rolled back exactly as SQL says, the session works, and nothing
-- of ours is left in pg_locks. The other session is a dblink connection.
CREATE EXTENSION IF NOT EXISTS dblink;
SELECT current_user AS admin \gset
CREATE ROLE regress_err_app LOGIN;
GRANT EXECUTE ON FUNCTION
    singleton_acquire(text, interval, text, interval, integer), singleton_heartbeat(text, bigint, interval),
    singleton_release(text, bigint), singleton_assert(text, bigint), singleton_bind(text, bigint),
    singleton_watch(text, bigint, interval)
TO regress_err_app;
CREATE TABLE err_log (note text);
GRANT ALL ON err_log TO regress_err_app;

-- Another session locks / unlocks a lease row (superuser-owned helpers).
CREATE FUNCTION lock_rows(leases text[]) RETURNS void LANGUAGE plpgsql SECURITY DEFINER AS $$
BEGIN
    IF NOT 'locker' = ANY (COALESCE(dblink_get_connections(), '{}')) THEN
        PERFORM dblink_connect('locker', format('dbname=%s port=%s host=%s', current_database(),
            current_setting('port'), split_part(current_setting('unix_socket_directories'), ',', 1)));
    END IF;
    PERFORM dblink_exec('locker', 'BEGIN');
    PERFORM * FROM dblink('locker', format(
        'SELECT name FROM singleton_lock_leases WHERE name = ANY (%L) FOR UPDATE', leases)) AS t(n text);
END $$;
CREATE FUNCTION unlock_row() RETURNS void LANGUAGE sql SECURITY DEFINER AS $$
    SELECT dblink_exec('locker', 'COMMIT') $$;
-- Another session cancels this one's statement after a delay.
CREATE FUNCTION cancel_me_after(delay float) RETURNS void LANGUAGE plpgsql SECURITY DEFINER AS $$
BEGIN
    IF NOT 'canceller' = ANY (COALESCE(dblink_get_connections(), '{}')) THEN
        PERFORM dblink_connect('canceller', format('dbname=%s port=%s host=%s', current_database(),
            current_setting('port'), split_part(current_setting('unix_socket_directories'), ',', 1)));
    ELSE  -- collect the previous one's result (and the end of results)
        PERFORM * FROM dblink_get_result('canceller') AS t(x text);
        PERFORM * FROM dblink_get_result('canceller') AS t(x text);
    END IF;
    PERFORM dblink_send_query('canceller', format(
        'SELECT pg_sleep(%s)::text UNION ALL SELECT pg_cancel_backend(%s)::text', delay, pg_backend_pid()));
END $$;
GRANT EXECUTE ON FUNCTION lock_rows(text[]), unlock_row(), cancel_me_after(float) TO regress_err_app;

-- Runs a statement in an EXCEPTION block (cancels too: query_canceled is not
-- part of OTHERS), after writing a row that the block's rollback must undo.
CREATE FUNCTION caught(query text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO err_log VALUES ('inside the failed block: must be rolled back');
    EXECUTE query;
    RETURN 'no error';
EXCEPTION WHEN OTHERS OR query_canceled THEN
    RETURN SQLSTATE || ' ' || SQLERRM;
END $$;
-- Who we are, whether the session works, what of ours is in the lock table.
CREATE FUNCTION after_error() RETURNS text LANGUAGE sql AS $$
    SELECT format('user=%s works=%s waiters=%s bindings=%s', current_user,
        (SELECT count(*) FROM pg_class WHERE relname = 'err_log') = 1,
        (SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objsubid = 21325),
        (SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objsubid = 21324
                                         AND pid = pg_backend_pid()))
$$;
GRANT EXECUTE ON FUNCTION caught(text), after_error() TO PUBLIC;

-- The leases: 'row' is held by the app, 'free' by nobody (the other session
-- locks both rows); 'other' is held by someone else, for waiting acquires.
\c - regress_err_app
SET singleton_lock.bind_session = off;
SELECT token AS row_token FROM singleton_acquire('row', '1 h', 'app') \gset
SELECT acquired FROM singleton_acquire('other', '1 h', 'someone');
SELECT singleton_release('free', token) FROM singleton_acquire('free', '1 h', 'app');
RESET singleton_lock.bind_session;
SET lock_timeout = '100ms';

-- lock_timeout inside each function, outside a transaction block.
SELECT lock_rows('{row,free}');
SELECT caught(q) AS lock_timeout, after_error() FROM unnest(ARRAY[
    $$SELECT singleton_acquire('free', '10s', 'B')$$,
    $$SELECT singleton_acquire('free', '10s', 'B', '5s')$$,
    format($$SELECT singleton_heartbeat('row', %s)$$, :row_token),
    format($$SELECT singleton_release('row', %s)$$, :row_token),
    format($$SELECT singleton_bind('row', %s)$$, :row_token),
    format($$SELECT singleton_assert('row', %s)$$, :row_token)
]) AS q;

-- The same inside a transaction block: earlier writes of the transaction are
-- kept, the failed block's are not, and the transaction commits.
BEGIN;
INSERT INTO err_log VALUES ('before the block: kept');
SELECT caught($$SELECT singleton_acquire('free', '10s', 'B', '5s')$$) AS lock_timeout, after_error();
SELECT caught(format($$SELECT singleton_heartbeat('row', %s)$$, :row_token)) AS lock_timeout,
       after_error();
INSERT INTO err_log VALUES ('after the block: kept');
COMMIT;
SELECT note FROM err_log ORDER BY note;
TRUNCATE err_log;

-- ROLLBACK TO SAVEPOINT after the error (no PL/pgSQL at all).
\set VERBOSITY terse
BEGIN;
INSERT INTO err_log VALUES ('before the savepoint: kept');
SAVEPOINT s;
INSERT INTO err_log VALUES ('after the savepoint: rolled back');
SELECT singleton_acquire('free', '10s', 'B', '5s');
ROLLBACK TO SAVEPOINT s;
SELECT after_error();
SAVEPOINT s;
SELECT singleton_release('row', :row_token);
ROLLBACK TO SAVEPOINT s;
SELECT after_error();
INSERT INTO err_log VALUES ('after the rollback: kept');
COMMIT;
SELECT note FROM err_log ORDER BY note;
TRUNCATE err_log;
\set VERBOSITY default
RESET lock_timeout;

-- statement_timeout while blocked on the row lock.
SET statement_timeout = '150ms';
SELECT caught($$SELECT singleton_acquire('free', '10s', 'B', '5s')$$) AS statement_timeout;
SELECT after_error();
SELECT caught(format($$SELECT singleton_heartbeat('row', %s)$$, :row_token)) AS statement_timeout;
SELECT after_error();
RESET statement_timeout;
SELECT unlock_row();

-- statement_timeout and a cancel while sleeping in the server-side wait
-- (the lease is held by someone else: no row lock involved).
SET statement_timeout = '150ms';
SELECT caught($$SELECT singleton_acquire('other', '10s', 'B', '1 min')$$) AS statement_timeout;
SELECT after_error();
RESET statement_timeout;
SELECT cancel_me_after(0.2);
SELECT caught($$SELECT singleton_acquire('other', '10s', 'B', '1 min')$$) AS cancelled;
SELECT after_error();
BEGIN;
SELECT cancel_me_after(0.2);
SELECT caught($$SELECT singleton_acquire('other', '10s', 'B', '1 min')$$) AS cancelled_in_block;
SELECT after_error();
COMMIT;

-- A cancel while blocked on the row lock, inside the internal subtransaction.
SELECT lock_rows('{row,free}');
SELECT cancel_me_after(0.2);
SELECT caught($$SELECT singleton_acquire('free', '10s', 'B', '1 min')$$) AS cancelled_on_row_lock;
SELECT after_error();
SELECT unlock_row();

-- Nothing of the failed calls is left: the app's lease is intact, nobody else holds it.
\c - :admin
SELECT name, holder, state, token = :row_token AS same_token FROM singleton_leases
WHERE name IN ('row', 'free', 'other') ORDER BY name;
SELECT count(*) AS left_over_rows FROM err_log;

DROP TABLE err_log;
DROP FUNCTION lock_rows(text[]), unlock_row(), cancel_me_after(float), caught(text), after_error();
REVOKE ALL ON FUNCTION
    singleton_acquire(text, interval, text, interval, integer), singleton_heartbeat(text, bigint, interval),
    singleton_release(text, bigint), singleton_assert(text, bigint), singleton_bind(text, bigint),
    singleton_watch(text, bigint, interval)
FROM regress_err_app;
DROP ROLE regress_err_app;
DELETE FROM singleton_lock_leases WHERE name IN ('row', 'free', 'other');
