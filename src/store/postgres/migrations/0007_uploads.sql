-- jobq's cluster schema, version 7: uploads (`POST /v1/uploads`), so that
-- a job's uploaded stdin reaches whichever node runs it.
--
-- An upload is its row and its bytes in pieces (`jobq_upload_pieces`),
-- written in one transaction: a visible upload is whole. A submission
-- claims it by naming its job (`job`); a claim is never undone but by the
-- submission that made it. The housekeeper removes unclaimed uploads after
-- an hour, and claimed ones whose job is gone (pruned, or a submission that
-- failed after its claim).
CREATE TABLE jobq_uploads (
    id         uuid        PRIMARY KEY,
    len        bigint      NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    job        uuid
);

CREATE UNIQUE INDEX jobq_uploads_job ON jobq_uploads (job) WHERE job IS NOT NULL;

CREATE TABLE jobq_upload_pieces (
    upload uuid    NOT NULL REFERENCES jobq_uploads (id) ON DELETE CASCADE,
    n      integer NOT NULL,
    bytes  bytea   NOT NULL,
    PRIMARY KEY (upload, n)
);
