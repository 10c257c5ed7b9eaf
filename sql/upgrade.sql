-- The upgrade path: CREATE EXTENSION ... VERSION '1.0', then ALTER EXTENSION
-- UPDATE keeps leases (tokens, holders, bindings) and GRANTs, and ends
-- identical to a fresh install of the newest version.
CREATE ROLE regress_up_app;
DROP EXTENSION singleton_lock;
CREATE EXTENSION singleton_lock VERSION '1.0';
SELECT extversion FROM pg_extension WHERE extname = 'singleton_lock';
GRANT EXECUTE ON FUNCTION
    singleton_acquire(text, interval, text, interval), singleton_heartbeat(text, bigint, interval),
    singleton_release(text, bigint), singleton_assert(text, bigint), singleton_bind(text, bigint)
TO regress_up_app;

-- Leases held across the upgrade: one bound to this session, one unbound.
SET ROLE regress_up_app;
SELECT token AS bound_token FROM singleton_acquire('kept-bound', '1 h', 'app') \gset
SET singleton_lock.bind_session = off;
SELECT token AS pooled_token FROM singleton_acquire('kept-pooled', '1 h', 'pooled') \gset
RESET singleton_lock.bind_session;
RESET ROLE;

ALTER EXTENSION singleton_lock UPDATE;
SELECT singleton_lock_version();
SELECT reloptions FROM pg_class WHERE oid = 'singleton_lock_leases'::regclass;

-- The leases are still held, with their tokens, by their holders.
SELECT name, holder, state, holder_role::text FROM singleton_leases ORDER BY name;
SET ROLE regress_up_app;
SELECT singleton_heartbeat('kept-bound', :bound_token) IS NOT NULL AS renewed,
       singleton_heartbeat('kept-pooled', :pooled_token) IS NOT NULL AS renewed_pooled;
SELECT acquired, token = :bound_token AS same_token FROM singleton_acquire('kept-bound', '1 h', 'app');
SELECT singleton_assert('kept-bound', :bound_token);
RESET ROLE;

-- The GRANTs carried over (acquire was replaced to gain `priority`; roles
-- that may send heartbeats may also watch their leases).
SELECT f, has_function_privilege('regress_up_app', f, 'EXECUTE') AS app_may_execute
FROM unnest(ARRAY['singleton_acquire(text, interval, text, interval, integer)',
                  'singleton_heartbeat(text, bigint, interval)', 'singleton_release(text, bigint)',
                  'singleton_assert(text, bigint)', 'singleton_bind(text, bigint)',
                  'singleton_watch(text, bigint, interval)', 'singleton_force_release(text)',
                  'singleton_pause(text, text)', 'singleton_resume(text)']) AS f;
-- A 1.0 call (four arguments) still works.
SET ROLE regress_up_app;
SELECT acquired FROM singleton_acquire('after-upgrade', '1 min', 'app', '0');
RESET ROLE;

-- The extension's objects, as definitions (without privileges): the upgraded
-- extension must equal a fresh install.
CREATE FUNCTION extension_objects() RETURNS TABLE(object text, definition text)
LANGUAGE sql AS $$
    SELECT pg_describe_object(d.classid, d.objid, d.objsubid),
           CASE d.classid
               WHEN 'pg_proc'::regclass THEN
                   pg_get_functiondef(d.objid) || coalesce(obj_description(d.objid, 'pg_proc'), '')
               WHEN 'pg_class'::regclass THEN
                   (SELECT string_agg(a.attname || ' ' || format_type(a.atttypid, a.atttypmod) ||
                                      CASE WHEN a.attnotnull THEN ' not null' ELSE '' END ||
                                      coalesce(' default ' || pg_get_expr(ad.adbin, ad.adrelid), ''),
                                      ', ' ORDER BY a.attnum)
                    FROM pg_attribute a
                    LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
                    WHERE a.attrelid = d.objid AND a.attnum > 0 AND NOT a.attisdropped)
                   || coalesce(' view: ' || pg_get_viewdef(d.objid), '')
                   || coalesce(' options: ' || (SELECT reloptions::text FROM pg_class
                                                WHERE oid = d.objid), '')
                   || coalesce(' constraints: ' || (SELECT string_agg(pg_get_constraintdef(c.oid), '; '
                                                                       ORDER BY c.conname)
                                                    FROM pg_constraint c WHERE c.conrelid = d.objid), '')
                   || coalesce(' comment: ' || obj_description(d.objid, 'pg_class'), '')
               ELSE ''
           END
    FROM pg_depend d
    WHERE d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'
      AND d.classid <> 'pg_type'::regclass  -- a table's row types: members only on 17+
      AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'singleton_lock')
    UNION ALL
    SELECT 'configuration tables', extconfig::regclass[]::text
    FROM pg_extension WHERE extname = 'singleton_lock'
$$;
CREATE TEMP TABLE upgraded AS SELECT * FROM extension_objects();
DROP EXTENSION singleton_lock;
CREATE EXTENSION singleton_lock;
CREATE TEMP TABLE fresh AS SELECT * FROM extension_objects();
SELECT count(*) AS objects FROM fresh;
SELECT 'only after the upgrade' AS difference, object FROM (TABLE upgraded EXCEPT TABLE fresh) u
UNION ALL
SELECT 'only in a fresh install', object FROM (TABLE fresh EXCEPT TABLE upgraded) f
ORDER BY 1, 2;

DROP FUNCTION extension_objects();
DROP ROLE regress_up_app;
