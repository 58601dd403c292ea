-- jobq's cluster schema, version 4: a job's stdin, given inline in its
-- submission, kept apart from the record (listings never read it) and
-- removed with the job.
CREATE TABLE jobq_stdin (
    id    uuid  PRIMARY KEY REFERENCES jobq_jobs (id) ON DELETE CASCADE,
    bytes bytea NOT NULL
);
