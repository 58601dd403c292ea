-- jobq's cluster schema, version 3: finding the jobs that wait for a job.
-- A waiting job's record lists what it still waits for
-- (`doc->'state'->'pending'`, job ids); this index answers "who waits for
-- X" without reading every waiting job.
CREATE INDEX jobq_jobs_pending ON jobq_jobs USING gin ((doc -> 'state' -> 'pending'))
    WHERE state = 'waiting';
