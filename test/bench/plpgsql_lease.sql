-- A PL/pgSQL implementation of the singleton_lock SQL contract, written only as
-- the comparison point of the benchmark (test/bench/run.sh). It is a faithful,
-- reasonably efficient version of what a team would hand-write:
--   * acquire: one row lock (SELECT ... FOR UPDATE; the row is created on first
--     use), stale detection by expiry on the server clock, a fencing token that
--     grows by one per tenure, renewal for the same holder (same token), refusal
--     otherwise (token hidden), NOTIFY on every change of holder;
--   * heartbeat: one UPDATE guarded by token + "still live", returns the expiry;
--   * release: one UPDATE guarded the same way, NOTIFY;
--   * arguments are checked (NULL, lengths, ttl > 0) like the extension does.
-- Not implemented (and said so in the report): session binding (a crashed
-- holder's lease is free only at expiry), the server-side wait (callers poll or
-- LISTEN), timeline bits in the token, the administrators' view.
-- Every commit is durable through the ordinary synchronous_commit = on.
SET client_min_messages = warning;
DROP SCHEMA IF EXISTS plpgsql_lease CASCADE;
CREATE SCHEMA plpgsql_lease;

CREATE TABLE plpgsql_lease.leases (
    name            text PRIMARY KEY,
    holder          text,
    token           bigint NOT NULL DEFAULT 0,
    released        boolean NOT NULL DEFAULT true,
    acquired_at     timestamptz,
    renewed_at      timestamptz,
    expires_at      timestamptz,
    ttl             interval,
    transitions     bigint NOT NULL DEFAULT 0,
    last_transition text
);

CREATE FUNCTION plpgsql_lease.acquire(p_name text, p_ttl interval, p_holder text)
RETURNS TABLE(acquired boolean, token bigint, holder text, expires_at timestamptz)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_now timestamptz := clock_timestamp();
    r plpgsql_lease.leases%ROWTYPE;
BEGIN
    IF p_name IS NULL OR p_ttl IS NULL OR p_holder IS NULL THEN
        RAISE EXCEPTION 'acquire: arguments must not be NULL' USING ERRCODE = '22004';
    END IF;
    IF length(p_name) NOT BETWEEN 1 AND 255 OR length(p_holder) NOT BETWEEN 1 AND 255 THEN
        RAISE EXCEPTION 'acquire: name and holder must be 1 to 255 characters' USING ERRCODE = '22023';
    END IF;
    IF p_ttl <= interval '0' OR p_ttl > interval '1 day' THEN
        RAISE EXCEPTION 'acquire: ttl out of range' USING ERRCODE = '22023';
    END IF;

    SELECT * INTO r FROM plpgsql_lease.leases l WHERE l.name = p_name FOR UPDATE;
    IF NOT FOUND THEN
        INSERT INTO plpgsql_lease.leases (name) VALUES (p_name) ON CONFLICT DO NOTHING;
        SELECT * INTO r FROM plpgsql_lease.leases l WHERE l.name = p_name FOR UPDATE;
    END IF;
    v_now := clock_timestamp();  -- the lock may have waited

    IF NOT r.released AND v_now < r.expires_at THEN
        IF r.holder = p_holder THEN          -- renewal: same token
            UPDATE plpgsql_lease.leases l
               SET renewed_at = v_now, expires_at = v_now + p_ttl, ttl = p_ttl
             WHERE l.name = p_name;
            RETURN QUERY SELECT true, r.token, p_holder, v_now + p_ttl;
        ELSE                                  -- held by someone else
            RETURN QUERY SELECT false, NULL::bigint, r.holder, r.expires_at;
        END IF;
        RETURN;
    END IF;

    -- free, released or expired: a new tenure with a new token
    UPDATE plpgsql_lease.leases l
       SET holder = p_holder, token = r.token + 1, released = false,
           acquired_at = v_now, renewed_at = v_now, expires_at = v_now + p_ttl, ttl = p_ttl,
           transitions = l.transitions + 1,
           last_transition = CASE WHEN r.released THEN l.last_transition ELSE 'expired' END
     WHERE l.name = p_name;
    PERFORM pg_notify('plpgsql_lease', p_name);
    RETURN QUERY SELECT true, r.token + 1, p_holder, v_now + p_ttl;
END
$$;

CREATE FUNCTION plpgsql_lease.heartbeat(p_name text, p_token bigint, p_ttl interval DEFAULT NULL)
RETURNS timestamptz
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_now timestamptz := clock_timestamp();
    v_expiry timestamptz;
BEGIN
    IF p_name IS NULL OR p_token IS NULL THEN
        RAISE EXCEPTION 'heartbeat: arguments must not be NULL' USING ERRCODE = '22004';
    END IF;
    IF p_ttl IS NOT NULL AND (p_ttl <= interval '0' OR p_ttl > interval '1 day') THEN
        RAISE EXCEPTION 'heartbeat: ttl out of range' USING ERRCODE = '22023';
    END IF;
    UPDATE plpgsql_lease.leases l
       SET renewed_at = v_now, expires_at = v_now + COALESCE(p_ttl, l.ttl),
           ttl = COALESCE(p_ttl, l.ttl)
     WHERE l.name = p_name AND l.token = p_token AND NOT l.released AND v_now < l.expires_at
    RETURNING l.expires_at INTO v_expiry;
    RETURN v_expiry;   -- NULL when the lease is lost
END
$$;

CREATE FUNCTION plpgsql_lease.release(p_name text, p_token bigint)
RETURNS boolean
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_now timestamptz := clock_timestamp();
BEGIN
    IF p_name IS NULL OR p_token IS NULL THEN
        RAISE EXCEPTION 'release: arguments must not be NULL' USING ERRCODE = '22004';
    END IF;
    UPDATE plpgsql_lease.leases l
       SET released = true, expires_at = v_now, last_transition = 'released'
     WHERE l.name = p_name AND l.token = p_token AND NOT l.released AND v_now < l.expires_at;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    PERFORM pg_notify('plpgsql_lease', p_name);
    RETURN true;
END
$$;
