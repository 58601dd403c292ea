-- jobq's cluster schema, version 2: idempotency keys. A key is live while
-- its job is stored; a second submission with it gets the first job.
ALTER TABLE jobq_jobs ADD COLUMN idempotency_key text;
CREATE UNIQUE INDEX jobq_jobs_idempotency ON jobq_jobs (idempotency_key)
    WHERE idempotency_key IS NOT NULL;
