-- jobq's cluster schema, version 1. docs/cluster.md explains each table.
-- A job is its JSON record (`doc`, what the sled store keeps too) plus the
-- columns that claims, leases, listings and counts select on; the columns
-- are written in the same statement as the record, never apart.

-- One row per daemon that ever joined. `epoch` grows each time the node
-- (re)joins, so a node that lost its lease and came back is a new session
-- whose old claims are not its own.
CREATE TABLE jobq_nodes (
    name        text PRIMARY KEY,
    epoch       bigint      NOT NULL,
    state       text        NOT NULL CHECK (state IN ('up', 'draining', 'dead')),
    workers     integer     NOT NULL CHECK (workers >= 0),
    running     integer     NOT NULL DEFAULT 0,
    started_at  timestamptz NOT NULL DEFAULT now(),
    last_seen   timestamptz NOT NULL DEFAULT now(),
    lease_until timestamptz NOT NULL
);

-- One row per queue that has jobs or settings. `running` is maintained by
-- the claim, finish and rescue statements under this row's lock: it is what
-- makes a concurrency limit hold across nodes.
CREATE TABLE jobq_queues (
    name        text PRIMARY KEY,
    concurrency integer CHECK (concurrency >= 0),
    paused      boolean NOT NULL DEFAULT false,
    running     integer NOT NULL DEFAULT 0 CHECK (running >= 0)
);

-- Submission order (a job's `seq`; its `number` is seq + 1).
CREATE SEQUENCE jobq_job_seq MINVALUE 0 START 0;

CREATE TABLE jobq_jobs (
    id               uuid        PRIMARY KEY,
    seq              bigint      NOT NULL UNIQUE,
    queue            text        NOT NULL,
    state            text        NOT NULL,
    priority         integer     NOT NULL,
    attempt          integer     NOT NULL,
    run_at           timestamptz,
    -- The node and session (epoch) that claimed the current attempt, and
    -- until when that claim holds unless renewed.
    node             text,
    node_epoch       bigint,
    lease_until      timestamptz,
    cancel_requested boolean     NOT NULL DEFAULT false,
    finished_at      timestamptz,
    doc              jsonb       NOT NULL
);

-- What a claim scans: the runnable jobs of one queue in start order.
CREATE INDEX jobq_jobs_runnable ON jobq_jobs (queue, priority DESC, seq)
    WHERE state = 'queued';
-- Running jobs by lease: the rescue's scan, and a node's own jobs.
CREATE INDEX jobq_jobs_running ON jobq_jobs (lease_until)
    WHERE state = 'running';
-- Delayed jobs by when they become queued.
CREATE INDEX jobq_jobs_due ON jobq_jobs (run_at)
    WHERE state = 'scheduled';
-- Finished jobs by age: retention's scan.
CREATE INDEX jobq_jobs_finished ON jobq_jobs (finished_at)
    WHERE finished_at IS NOT NULL;

-- Jobs by queue and state, so that no hot path counts rows (`GET
-- /v1/queues`, `max_queued`). The trigger below appends a delta per change
-- instead of updating a total: a total would be one hot row that every
-- submit, claim and end of a queue waits on, across all nodes. A count is
-- the total plus the deltas; `jobq_fold_counts()` folds the deltas into the
-- totals now and then.
CREATE TABLE jobq_counts (
    queue text   NOT NULL,
    state text   NOT NULL,
    n     bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (queue, state)
);

CREATE TABLE jobq_count_deltas (
    queue text   NOT NULL,
    state text   NOT NULL,
    n     bigint NOT NULL
);

CREATE FUNCTION jobq_fold_counts() RETURNS void LANGUAGE sql AS $$
    WITH folded AS (
        DELETE FROM jobq_count_deltas RETURNING queue, state, n
    )
    INSERT INTO jobq_counts AS c (queue, state, n)
        SELECT queue, state, sum(n) FROM folded GROUP BY queue, state
    ON CONFLICT (queue, state) DO UPDATE SET n = c.n + EXCLUDED.n;
$$;

CREATE VIEW jobq_job_counts AS
    SELECT queue, state, sum(n)::bigint AS n
    FROM (SELECT queue, state, n FROM jobq_counts
          UNION ALL
          SELECT queue, state, n FROM jobq_count_deltas) t
    GROUP BY queue, state;

-- Every change of a job's state is counted and told: `jobq_events` carries
-- "<id> <state>" to every node's event subscribers; `jobq_wake` carries the
-- queue's name when a job became runnable or a running one ended (a slot is
-- free), which wakes claimers. PostgreSQL folds equal payloads sent in one
-- transaction into one, which coalesces a batch's wake-ups.
CREATE FUNCTION jobq_job_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        INSERT INTO jobq_count_deltas VALUES (OLD.queue, OLD.state, -1);
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO jobq_count_deltas VALUES (NEW.queue, NEW.state, 1);
        PERFORM pg_notify('jobq_events', NEW.id::text || ' ' || NEW.state);
        IF NEW.state = 'queued' OR (TG_OP = 'UPDATE' AND OLD.state = 'running') THEN
            PERFORM pg_notify('jobq_wake', NEW.queue);
        END IF;
    ELSE
        PERFORM pg_notify('jobq_events', OLD.id::text || ' removed');
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER jobq_jobs_added_or_removed
    AFTER INSERT OR DELETE ON jobq_jobs
    FOR EACH ROW EXECUTE FUNCTION jobq_job_changed();

CREATE TRIGGER jobq_jobs_moved
    AFTER UPDATE OF state, queue ON jobq_jobs
    FOR EACH ROW
    WHEN (OLD.state IS DISTINCT FROM NEW.state OR OLD.queue IS DISTINCT FROM NEW.queue)
    EXECUTE FUNCTION jobq_job_changed();
