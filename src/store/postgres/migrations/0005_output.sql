-- jobq's cluster schema, version 5: output, copied by the node that runs a
-- job (every quarter second, and all of it before the end is recorded), so
-- that any node can serve it. A row is one frame of the node's output
-- file, keyed by the file offset after it: the same positions a follower
-- resumes from on either side.
CREATE TABLE jobq_output (
    job_id  uuid     NOT NULL REFERENCES jobq_jobs (id) ON DELETE CASCADE,
    attempt integer  NOT NULL,
    end_at  bigint   NOT NULL,
    stream  smallint NOT NULL,
    data    bytea    NOT NULL,
    PRIMARY KEY (job_id, attempt, end_at)
);
