//! Job records: numbering, insert, read, and the two conditional writes
//! every change goes through — [`PgStore::replace`] for a job no node
//! holds, [`PgStore::settle`] for the attempt a node claimed.

use std::time::Duration;

use sqlx::Row;

use super::{decode, encode, query, uuid_of, PgError, PgStore, Result, Session};
use crate::job::{Job, JobId, State, StateName};

/// What a conditional write found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use = "a refused write changed nothing; the caller must act on it"]
pub enum Fenced {
    /// The stored job was as expected and now is the new record.
    Done,
    /// The stored job had moved on (another node changed it, or the
    /// claim was taken from this node): nothing was written.
    Refused,
}

impl Fenced {
    fn of(rows: i64) -> Fenced {
        if rows > 0 {
            Fenced::Done
        } else {
            Fenced::Refused
        }
    }
}

/// What a listing selects on (docs/api.md, `GET /v1/jobs`).
#[derive(Clone, Copy, Debug, Default)]
pub struct ListFilter<'a> {
    /// Only these states (any when empty).
    pub states: &'a [StateName],
    /// Only this queue.
    pub queue: Option<&'a str>,
    /// Only this owner's.
    pub owner: Option<&'a str>,
    /// Only jobs of this name.
    pub name: Option<&'a str>,
    /// Only jobs with all these labels.
    pub labels: &'a [(String, String)],
}

/// The columns a record is selected by, taken from the record itself so
/// that the two never disagree.
struct Columns {
    state: &'static str,
    attempt: i32,
    run_at: Option<f64>,
    finished_at: Option<f64>,
}

impl Columns {
    fn of(job: &Job) -> Columns {
        Columns {
            state: job.state.name().as_str(),
            attempt: i32::try_from(job.attempt).unwrap_or(i32::MAX),
            run_at: match job.state {
                State::Scheduled { at } => Some(epoch_secs(at)),
                _ => None,
            },
            finished_at: job.state.finished_at().map(epoch_secs),
        }
    }
}

/// A time as the seconds `to_timestamp` takes.
pub(super) fn epoch_secs(at: jiff::Timestamp) -> f64 {
    at.as_microsecond() as f64 / 1e6
}

impl PgStore {
    /// The next submission number, unique across the cluster.
    pub async fn next_seq(&self) -> Result<u64> {
        let seq: i64 = sqlx::query_scalar("SELECT nextval('jobq_job_seq')")
            .fetch_one(self.pool())
            .await
            .map_err(query("number a job"))?;
        Ok(u64::try_from(seq).unwrap_or_default())
    }

    /// The jobs that hold any of `keys` as their idempotency key.
    pub async fn jobs_with_keys(&self, keys: &[&str]) -> Result<Vec<Job>> {
        let rows: Vec<serde_json::Value> =
            sqlx::query_scalar("SELECT doc FROM jobq_jobs WHERE idempotency_key = ANY($1)")
                .bind(keys)
                .fetch_all(self.pool())
                .await
                .map_err(query("read the jobs with idempotency keys"))?;
        rows.into_iter().map(decode).collect()
    }

    /// `n` submission numbers at once, unique across the cluster.
    pub async fn next_seqs(&self, n: usize) -> Result<Vec<u64>> {
        let seqs: Vec<i64> =
            sqlx::query_scalar("SELECT nextval('jobq_job_seq') FROM generate_series(1, $1)")
                .bind(i64::try_from(n).unwrap_or(i64::MAX))
                .fetch_all(self.pool())
                .await
                .map_err(query("number jobs"))?;
        Ok(seqs
            .into_iter()
            .map(|s| u64::try_from(s).unwrap_or_default())
            .collect())
    }

    /// Stores a new job; its queue gets a row if it had none.
    pub async fn insert(&self, job: &Job) -> Result<()> {
        self.insert_all(std::slice::from_ref(job), &[None]).await?;
        Ok(())
    }

    /// Stores new jobs, all or none, in one transaction, each with its
    /// stdin (`stdins[i]`, if given). A job whose idempotency key is live
    /// is not stored: its place in the answer holds the job that has the
    /// key (`None` for each job stored).
    pub async fn insert_all(
        &self,
        jobs: &[Job],
        stdins: &[Option<Vec<u8>>],
    ) -> Result<Vec<Option<Job>>> {
        let mut tx = self
            .pool()
            .begin()
            .await
            .map_err(query("begin a submission"))?;
        let out = insert_in(&mut tx, jobs, stdins).await?;
        tx.commit().await.map_err(query("commit a submission"))?;
        Ok(out)
    }

    /// A page of jobs, newest first (by id: ids grow with time), older
    /// than `before` when given, `limit` at most; and whether more follow.
    /// Filters are the API's; those the columns do not hold (owner, name,
    /// labels) are tested on the record, so a rare match among many jobs
    /// reads many.
    pub async fn list(
        &self,
        filter: &ListFilter<'_>,
        before: Option<&JobId>,
        limit: usize,
    ) -> Result<(Vec<Job>, bool)> {
        let states: Option<Vec<&str>> =
            (!filter.states.is_empty()).then(|| filter.states.iter().map(|s| s.as_str()).collect());
        let labels = (!filter.labels.is_empty()).then(|| {
            serde_json::Value::Object(
                filter
                    .labels
                    .iter()
                    .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
                    .collect(),
            )
        });
        let rows = sqlx::query(
            "SELECT doc FROM jobq_jobs
             WHERE ($1::text[] IS NULL OR state = ANY($1))
               AND ($2::text IS NULL OR queue = $2)
               AND ($3::text IS NULL OR doc->>'owner' = $3)
               AND ($4::text IS NULL OR doc->'spec'->>'name' = $4)
               AND ($5::jsonb IS NULL OR doc->'spec'->'labels' @> $5)
               AND ($6::uuid IS NULL OR id < $6)
             ORDER BY id DESC LIMIT $7",
        )
        .bind(states)
        .bind(filter.queue)
        .bind(filter.owner)
        .bind(filter.name)
        .bind(labels)
        .bind(before.map(uuid_of))
        .bind(i64::try_from(limit.saturating_add(1)).unwrap_or(i64::MAX))
        .fetch_all(self.pool())
        .await
        .map_err(query("list jobs"))?;
        let more = rows.len() > limit;
        let jobs = rows
            .into_iter()
            .take(limit)
            .map(|r| decode(r.get("doc")))
            .collect::<Result<Vec<_>>>()?;
        Ok((jobs, more))
    }

    /// A job's stdin, if it was given one.
    pub async fn stdin(&self, id: &JobId) -> Result<Option<Vec<u8>>> {
        sqlx::query_scalar("SELECT bytes FROM jobq_stdin WHERE id = $1")
            .bind(uuid_of(id))
            .fetch_optional(self.pool())
            .await
            .map_err(query("read a job's stdin"))
    }

    /// The jobs waiting for `id` (its dependents that have not been
    /// released or failed yet).
    pub async fn waiting_on(&self, id: &JobId) -> Result<Vec<Job>> {
        let rows = sqlx::query(
            "SELECT doc FROM jobq_jobs
             WHERE state = 'waiting' AND doc->'state'->'pending' @> jsonb_build_array($1::text)",
        )
        .bind(id.to_string())
        .fetch_all(self.pool())
        .await
        .map_err(query("find the jobs waiting for a job"))?;
        rows.into_iter().map(|r| decode(r.get("doc"))).collect()
    }

    /// Waiting jobs that still list a dependency which has ended, with
    /// that dependency's id and state: what a release missed (its node
    /// died between a job's end and the release, or the dependency ended
    /// while the waiting job was being submitted). At most `limit`.
    pub async fn missed_releases(&self, limit: u32) -> Result<Vec<(Job, JobId, StateName)>> {
        let rows = sqlx::query(
            "SELECT w.doc, j.id AS dep, j.state AS dep_state
             FROM jobq_jobs w
             CROSS JOIN LATERAL jsonb_array_elements_text(w.doc->'state'->'pending') p(id)
             JOIN jobq_jobs j ON j.id = p.id::uuid
             WHERE w.state = 'waiting' AND j.state IN ('succeeded', 'failed', 'cancelled')
             LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await
        .map_err(query("find missed releases"))?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let dep: uuid::Uuid = r.get("dep");
            let state: String = r.get("dep_state");
            let state = match state.as_str() {
                "succeeded" => StateName::Succeeded,
                "failed" => StateName::Failed,
                _ => StateName::Cancelled,
            };
            out.push((
                decode(r.get("doc"))?,
                JobId::from_bytes(*dep.as_bytes()),
                state,
            ));
        }
        Ok(out)
    }

    /// Prunes terminal jobs, oldest first: those that ended more than
    /// `retention` ago, and beyond `keep_finished` terminal jobs (counted
    /// from the maintained counts), at most `batch`. One node at a time
    /// (an advisory lock; another node's turn comes next round), so two
    /// nodes never both prune the same excess. Returns the ids removed.
    pub async fn prune(
        &self,
        retention: std::time::Duration,
        keep_finished: u64,
        batch: u32,
    ) -> Result<Vec<JobId>> {
        let mut tx = self.pool().begin().await.map_err(query("begin a prune"))?;
        let mine: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock(7711001)")
            .fetch_one(&mut *tx)
            .await
            .map_err(query("take the prune lock"))?;
        if !mine {
            return Ok(Vec::new());
        }
        let terminal: i64 = sqlx::query_scalar(
            "SELECT coalesce(sum(n), 0)::bigint FROM jobq_job_counts
             WHERE state IN ('succeeded', 'failed', 'cancelled')",
        )
        .fetch_one(&mut *tx)
        .await
        .map_err(query("count terminal jobs"))?;
        let excess = u64::try_from(terminal)
            .unwrap_or(0)
            .saturating_sub(keep_finished);
        let ids: Vec<uuid::Uuid> = sqlx::query_scalar(
            "WITH doomed AS (
                 SELECT id FROM jobq_jobs WHERE finished_at IS NOT NULL
                 ORDER BY finished_at
                 LIMIT $2
             ), aged AS (
                 SELECT id FROM jobq_jobs
                 WHERE finished_at < now() - make_interval(secs => $1)
                 ORDER BY finished_at LIMIT $3
             )
             DELETE FROM jobq_jobs j
             WHERE j.id IN (SELECT id FROM doomed UNION SELECT id FROM aged)
             RETURNING j.id",
        )
        .bind(retention.as_secs_f64().min(1e15))
        .bind(i64::try_from(excess.min(u64::from(batch))).unwrap_or(0))
        .bind(i64::from(batch))
        .fetch_all(&mut *tx)
        .await
        .map_err(query("prune old jobs"))?;
        tx.commit().await.map_err(query("commit a prune"))?;
        Ok(ids
            .iter()
            .map(|u| JobId::from_bytes(*u.as_bytes()))
            .collect())
    }

    /// Which of `ids` are stored.
    pub async fn existing(&self, ids: &[JobId]) -> Result<Vec<JobId>> {
        let ids: Vec<uuid::Uuid> = ids.iter().map(uuid_of).collect();
        let found: Vec<uuid::Uuid> =
            sqlx::query_scalar("SELECT id FROM jobq_jobs WHERE id = ANY($1)")
                .bind(&ids)
                .fetch_all(self.pool())
                .await
                .map_err(query("find jobs"))?;
        Ok(found
            .iter()
            .map(|u| JobId::from_bytes(*u.as_bytes()))
            .collect())
    }

    /// Forgets `old` if it is still stored as it is (a terminal job the
    /// caller checked); its idempotency key is free again.
    pub async fn remove(&self, old: &Job) -> Result<Fenced> {
        let was = Columns::of(old);
        let rows =
            sqlx::query("DELETE FROM jobq_jobs WHERE id = $1 AND state = $2 AND attempt = $3")
                .bind(uuid_of(&old.id))
                .bind(was.state)
                .bind(was.attempt)
                .execute(self.pool())
                .await
                .map_err(query("remove a job"))?
                .rows_affected();
        Ok(Fenced::of(i64::try_from(rows).unwrap_or(i64::MAX)))
    }

    /// The job with this id, if there is one.
    pub async fn get(&self, id: &JobId) -> Result<Option<Job>> {
        let row = sqlx::query("SELECT doc FROM jobq_jobs WHERE id = $1")
            .bind(uuid_of(id))
            .fetch_optional(self.pool())
            .await
            .map_err(query("read a job"))?;
        row.map(|r| decode(r.get("doc"))).transpose()
    }

    /// The job with this submission number (`seq`), if there is one.
    pub async fn job_with_seq(&self, seq: u64) -> Result<Option<JobId>> {
        let id: Option<uuid::Uuid> = sqlx::query_scalar("SELECT id FROM jobq_jobs WHERE seq = $1")
            .bind(i64::try_from(seq).unwrap_or(i64::MAX))
            .fetch_optional(self.pool())
            .await
            .map_err(query("find a job by number"))?;
        Ok(id.map(|u| JobId::from_bytes(*u.as_bytes())))
    }

    /// Makes scheduled jobs whose time came `queued` (delays, retries'
    /// backoff) and says how long until the next one is due, by the
    /// database's clock. Any node may run it at any time: a job moves once.
    pub async fn promote_due(&self) -> Result<Option<Duration>> {
        // A data-modifying WITH runs whether or not it is read, and the
        // statement's snapshot is from before it: the next due job is the
        // earliest of those it leaves scheduled.
        let next: Option<f64> = sqlx::query_scalar(
            "WITH moved AS (
                 UPDATE jobq_jobs SET state = 'queued', run_at = NULL,
                     doc = jsonb_set(doc, '{state}', '{\"state\": \"queued\"}')
                 WHERE state = 'scheduled' AND run_at <= now()
                 RETURNING 1
             )
             SELECT extract(epoch FROM min(run_at) - now())::float8 FROM jobq_jobs
             WHERE state = 'scheduled' AND run_at > now()",
        )
        .fetch_one(self.pool())
        .await
        .map_err(query("make due jobs queued"))?;
        Ok(next.map(|secs| Duration::from_secs_f64(secs.max(0.0))))
    }

    /// Folds the appended count deltas into the totals (see the schema).
    pub async fn fold_counts(&self) -> Result<()> {
        sqlx::query("SELECT jobq_fold_counts()")
            .execute(self.pool())
            .await
            .map_err(query("fold counts"))?;
        Ok(())
    }

    /// A connection that listens on `channels` (LISTEN), for the node's
    /// wake-ups, cancels and events.
    pub async fn listen(&self, channels: &[&str]) -> Result<sqlx::postgres::PgListener> {
        let mut listener = sqlx::postgres::PgListener::connect_with(self.pool())
            .await
            .map_err(query("open a listening connection"))?;
        listener
            .listen_all(channels.iter().copied())
            .await
            .map_err(query("listen"))?;
        Ok(listener)
    }

    /// Replaces `old` by `new` if the stored job is still in `old`'s state
    /// (its data too: a waiting job's pending list, say) and attempt and no
    /// node holds it: for changes no claim is behind
    /// (cancelling a job that does not run, a retry, a dependency's
    /// release). Refused when someone changed it first: read it again and
    /// decide again.
    pub async fn replace(&self, old: &Job, new: &Job) -> Result<Fenced> {
        let was = Columns::of(old);
        let cols = Columns::of(new);
        let rows = sqlx::query(
            "UPDATE jobq_jobs SET state = $4, attempt = $5, run_at = to_timestamp($6),
                 finished_at = to_timestamp($7), doc = $8, cancel_requested = false
             WHERE id = $1 AND state = $2 AND attempt = $3 AND state <> 'running'
                 AND doc->'state' = $9",
        )
        .bind(uuid_of(&old.id))
        .bind(was.state)
        .bind(was.attempt)
        .bind(cols.state)
        .bind(cols.attempt)
        .bind(cols.run_at)
        .bind(cols.finished_at)
        .bind(encode(new)?)
        .bind(
            serde_json::to_value(&old.state).map_err(|e| PgError::Record {
                id: old.id.to_string(),
                reason: e.to_string(),
            })?,
        )
        .execute(self.pool())
        .await
        .map_err(query("change a job"))?
        .rows_affected();
        Ok(Fenced::of(i64::try_from(rows).unwrap_or(i64::MAX)))
    }

    /// Records what became of an attempt `session` claimed: its process
    /// started (still `running`, now with a pid) or it ended in any way.
    /// Refused unless the job is still running that attempt under this
    /// node and epoch — a node that lost its claim must not record an end
    /// over the attempt another node now runs. Leaving `running` frees the
    /// queue's slot in the same statement.
    pub async fn settle(&self, session: &Session, old: &Job, new: &Job) -> Result<Fenced> {
        let was = Columns::of(old);
        let cols = Columns::of(new);
        let rows: i64 = sqlx::query_scalar(
            "WITH done AS (
                 UPDATE jobq_jobs SET state = $5, attempt = $6, run_at = to_timestamp($7),
                     finished_at = to_timestamp($8), doc = $9,
                     lease_until = CASE WHEN $5 = 'running' THEN lease_until END
                 WHERE id = $1 AND state = 'running' AND attempt = $2
                     AND node = $3 AND node_epoch = $4
                 RETURNING queue
             ), freed AS (
                 UPDATE jobq_queues q SET running = q.running - 1
                 FROM done WHERE q.name = done.queue AND $5 <> 'running'
             )
             SELECT count(*) FROM done",
        )
        .bind(uuid_of(&old.id))
        .bind(was.attempt)
        .bind(&session.node)
        .bind(session.epoch)
        .bind(cols.state)
        .bind(cols.attempt)
        .bind(cols.run_at)
        .bind(cols.finished_at)
        .bind(encode(new)?)
        .fetch_one(self.pool())
        .await
        .map_err(query("record a claimed attempt"))?;
        Ok(Fenced::of(rows))
    }

    /// Asks the node running `id` to stop it (cancel from any node): sets
    /// the job's flag, which that node's renewals report, and tells it at
    /// once on `jobq_cancel`. False when the job is not running.
    pub async fn request_cancel(&self, id: &JobId) -> Result<bool> {
        let rows: i64 = sqlx::query_scalar(
            "WITH c AS (
                 UPDATE jobq_jobs SET cancel_requested = true
                 WHERE id = $1 AND state = 'running' RETURNING id
             ), told AS (
                 SELECT pg_notify('jobq_cancel', id::text) FROM c
             )
             SELECT count(*) FROM told",
        )
        .bind(uuid_of(id))
        .fetch_one(self.pool())
        .await
        .map_err(query("request a cancel"))?;
        Ok(rows > 0)
    }

    /// Counts of jobs by queue and state, as the trigger keeps them.
    pub async fn counts(&self) -> Result<Vec<(String, String, u64)>> {
        let rows = sqlx::query("SELECT queue, state, n FROM jobq_job_counts WHERE n > 0")
            .fetch_all(self.pool())
            .await
            .map_err(query("read counts"))?;
        Ok(rows
            .into_iter()
            .map(|r| {
                let n: i64 = r.get("n");
                (
                    r.get("queue"),
                    r.get("state"),
                    u64::try_from(n).unwrap_or(0),
                )
            })
            .collect())
    }
}

/// [`PgStore::insert_all`]'s inserts, in the caller's transaction (a
/// submission's own, or a schedule's fire): each job is stored unless its
/// idempotency key is live, in which case its place in the answer holds
/// the job that has the key (`None` for each job stored).
pub(super) async fn insert_in(
    conn: &mut sqlx::PgConnection,
    jobs: &[Job],
    stdins: &[Option<Vec<u8>>],
) -> Result<Vec<Option<Job>>> {
    let mut out = Vec::with_capacity(jobs.len());
    for (i, job) in jobs.iter().enumerate() {
        let cols = Columns::of(job);
        let key = job.spec.idempotency_key.as_deref();
        let stored: Option<uuid::Uuid> = sqlx::query_scalar(
            "WITH q AS (INSERT INTO jobq_queues (name) VALUES ($2) ON CONFLICT DO NOTHING)
             INSERT INTO jobq_jobs (id, seq, queue, state, priority, attempt, run_at, doc,
                                    idempotency_key, finished_at)
             VALUES ($1, $3, $2, $4, $5, $6, to_timestamp($7), $8, $9, to_timestamp($10))
             ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
             RETURNING id",
        )
        .bind(uuid_of(&job.id))
        .bind(&job.spec.queue)
        .bind(i64::try_from(job.seq).unwrap_or(i64::MAX))
        .bind(cols.state)
        .bind(job.spec.priority)
        .bind(cols.attempt)
        .bind(cols.run_at)
        .bind(encode(job)?)
        .bind(key)
        .bind(cols.finished_at)
        .fetch_optional(&mut *conn)
        .await
        .map_err(query("insert a job"))?;
        if stored.is_some() {
            if let Some(Some(bytes)) = stdins.get(i) {
                sqlx::query("INSERT INTO jobq_stdin (id, bytes) VALUES ($1, $2)")
                    .bind(uuid_of(&job.id))
                    .bind(bytes.as_slice())
                    .execute(&mut *conn)
                    .await
                    .map_err(query("store a job's stdin"))?;
            }
            out.push(None);
            continue;
        }
        let doc: serde_json::Value =
            sqlx::query_scalar("SELECT doc FROM jobq_jobs WHERE idempotency_key = $1")
                .bind(key)
                .fetch_one(&mut *conn)
                .await
                .map_err(query("read the job with an idempotency key"))?;
        out.push(Some(decode(doc)?));
    }
    Ok(out)
}
