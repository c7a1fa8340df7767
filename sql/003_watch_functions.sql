-- Attach (or detach) the realtime trigger to any table:
--
--     SELECT realtime_watch_v1('violation_humandetections');
--     SELECT realtime_watch_v1('myschema.my_table');
--     SELECT realtime_unwatch_v1('my_table');
--
-- `python manage.py install_triggers TABLE ...` calls the same function.
-- Run by the Django migrations; a DBA can run it with:  psql -f sql/003_watch_functions.sql

CREATE OR REPLACE FUNCTION realtime_watch_v1(target regclass) RETURNS void
LANGUAGE plpgsql
AS $$
BEGIN
    EXECUTE format(
        'CREATE OR REPLACE TRIGGER realtime_notify_v1 '
        'AFTER INSERT OR UPDATE OR DELETE ON %s '
        'FOR EACH ROW EXECUTE FUNCTION realtime_notify_v1()',
        target
    );
END;
$$;

CREATE OR REPLACE FUNCTION realtime_unwatch_v1(target regclass) RETURNS void
LANGUAGE plpgsql
AS $$
BEGIN
    EXECUTE format('DROP TRIGGER IF EXISTS realtime_notify_v1 ON %s', target);
END;
$$;
