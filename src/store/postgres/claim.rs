//! Starting jobs: one statement claims a batch for a node.
//!
//! The statement locks the rows of the queues that have runnable jobs and
//! room (`FOR UPDATE`): two nodes claiming from one queue take turns, and
//! the second sees the first's `running` once it has the lock (PostgreSQL
//! re-reads a row it waited for), so a queue's limit holds across nodes.
//! Within each queue it takes the first runnable jobs in start order
//! (priority, then submission) that no other claim has locked (`FOR
//! UPDATE SKIP LOCKED`, over the partial index of queued jobs), no more
//! than the queue's room; over all queues, no more than the node's free
//! workers. The chosen jobs become `running` under the node's name and
//! epoch with a lease, and each queue's `running` grows by what it gave.

use std::time::Duration;

use sqlx::Row;

use super::{decode, query, secs, PgStore, Result, Session};
use crate::job::Job;

/// A job this node now runs: the record as claimed (`running`, pid 0 until
/// the process starts and [`PgStore::settle`] records it).
#[derive(Debug)]
pub struct Claimed {
    /// The job as stored after the claim.
    pub job: Job,
}

/// See the module docs. `$1` node, `$2` epoch, `$3` free workers, `$4`
/// lease in seconds.
const CLAIM: &str = "
WITH me AS (
    SELECT 1 FROM jobq_nodes WHERE name = $1 AND epoch = $2 AND state = 'up'
),
room AS (
    SELECT q.name,
           CASE WHEN q.concurrency IS NULL THEN $3
                ELSE LEAST($3, q.concurrency - q.running) END AS n
    FROM jobq_queues q
    WHERE EXISTS (SELECT 1 FROM me)
      AND NOT q.paused
      AND (q.concurrency IS NULL OR q.running < q.concurrency)
      AND EXISTS (SELECT 1 FROM jobq_jobs j WHERE j.queue = q.name AND j.state = 'queued')
    ORDER BY q.name
    FOR UPDATE OF q
),
picked AS (
    SELECT c.id, c.priority, c.seq
    FROM room CROSS JOIN LATERAL (
        SELECT j.id, j.priority, j.seq
        FROM jobq_jobs j
        WHERE j.queue = room.name AND j.state = 'queued'
        ORDER BY j.priority DESC, j.seq
        LIMIT room.n
        FOR UPDATE OF j SKIP LOCKED
    ) c
    ORDER BY c.priority DESC, c.seq
    LIMIT $3
),
claimed AS (
    UPDATE jobq_jobs j
    SET state = 'running', node = $1, node_epoch = $2, cancel_requested = false,
        lease_until = now() + make_interval(secs => $4),
        doc = jsonb_set(jsonb_set(j.doc, '{state}',
                                  jsonb_build_object('state', 'running', 'pid', 0, 'started_at', now())),
                        '{node}', to_jsonb($1::text))
    FROM picked
    WHERE j.id = picked.id AND j.state = 'queued'
    RETURNING j.queue, j.priority, j.seq, j.doc
),
bump AS (
    UPDATE jobq_queues q SET running = q.running + c.n
    FROM (SELECT queue, count(*)::int AS n FROM claimed GROUP BY queue) c
    WHERE q.name = c.queue
)
SELECT doc FROM claimed ORDER BY priority DESC, seq";

impl PgStore {
    /// Claims up to `free` runnable jobs for `session` (see the module
    /// docs), each with a lease of `lease`. Empty when nothing is
    /// runnable, every queue with work is full or paused, or the session
    /// is no longer the node's.
    pub async fn claim(
        &self,
        session: &Session,
        free: u32,
        lease: Duration,
    ) -> Result<Vec<Claimed>> {
        if free == 0 {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(CLAIM)
            .bind(&session.node)
            .bind(session.epoch)
            .bind(i32::try_from(free).unwrap_or(i32::MAX))
            .bind(secs(lease))
            .fetch_all(self.pool())
            .await
            .map_err(query("claim jobs"))?;
        rows.into_iter()
            .map(|r| decode(r.get("doc")).map(|job| Claimed { job }))
            .collect()
    }
}
