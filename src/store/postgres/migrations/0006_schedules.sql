-- jobq's cluster schema, version 6: schedules, and the lease of the one
-- node that fires them.
--
-- A schedule is its JSON record (`doc`, the same record the sled store
-- keeps) beside the columns the firing selects on. A fire locks its
-- schedule's row, inserts its job (keyed `schedule:<name>:<fire time>`,
-- so a fire makes one job whatever happens) and advances the record, in
-- one transaction.
CREATE TABLE jobq_schedules (
    name        text        PRIMARY KEY,
    doc         jsonb       NOT NULL,
    next_run_at timestamptz,
    paused      boolean     NOT NULL DEFAULT false
);

-- Due schedules, earliest first: the leader's only scan.
CREATE INDEX jobq_schedules_due ON jobq_schedules (next_run_at)
    WHERE NOT paused AND next_run_at IS NOT NULL;

-- One row per role a single node plays at a time (`schedules`): which node
-- and session holds it, until when (the database's clock).
CREATE TABLE jobq_leaders (
    role        text        PRIMARY KEY,
    node        text        NOT NULL,
    epoch       bigint      NOT NULL,
    lease_until timestamptz NOT NULL
);

-- A schedule stored, changed, paused or fired tells the leader at once
-- (`jobq_schedules` with its name): it sleeps until the earliest fire it
-- knows of, and a schedule put on another node may fire sooner.
CREATE FUNCTION jobq_schedule_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('jobq_schedules', NEW.name);
    RETURN NULL;
END $$;

CREATE TRIGGER jobq_schedules_changed
    AFTER INSERT OR UPDATE ON jobq_schedules
    FOR EACH ROW EXECUTE FUNCTION jobq_schedule_changed();
