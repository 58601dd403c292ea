//! Nodes and leases: joining, the heartbeat that renews a node's lease and
//! its jobs' leases in one statement, and the rescue of jobs whose lease
//! lapsed (their node died, stopped or was cut off).
//!
//! A lease is a time in the database's clock (`now()` plus the lease
//! length), so no node's clock is ever compared with another's.

use std::time::Duration;

use jiff::Timestamp;
use sqlx::Row;

use super::jobs::epoch_secs;
use super::{decode, encode, query, secs, uuid_of, PgError, PgStore, Result, Session};
use crate::config::OnInterrupted;
use crate::job::{Job, JobId};

/// Where a node is in its life, as `GET /v1/nodes` shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeState {
    /// It heartbeats and claims jobs.
    Up,
    /// It heartbeats but claims no more jobs (it is shutting down).
    Draining,
    /// It left, or its lease lapsed.
    Dead,
}

impl NodeState {
    /// The name the database and the API use.
    pub fn as_str(self) -> &'static str {
        match self {
            NodeState::Up => "up",
            NodeState::Draining => "draining",
            NodeState::Dead => "dead",
        }
    }

    fn parse(s: &str) -> NodeState {
        match s {
            "up" => NodeState::Up,
            "draining" => NodeState::Draining,
            _ => NodeState::Dead,
        }
    }
}

/// One node as the database knows it.
#[derive(Clone, Debug)]
pub struct NodeRow {
    /// Its `[store] node` name.
    pub name: String,
    /// Its life cycle; `Dead` once its lease lapsed, even before a rescue
    /// marked it.
    pub state: NodeState,
    /// Its last heartbeat.
    pub last_seen: Timestamp,
    /// Jobs it ran at its last heartbeat.
    pub running: u32,
    /// Its `workers`.
    pub workers: u32,
    /// Its current session.
    pub epoch: i64,
}

/// What a heartbeat learned.
#[derive(Debug, PartialEq, Eq)]
pub enum Renewal {
    /// The node's lease holds. `lost` are jobs it ran that are no longer
    /// its own (rescued while it was silent): kill them, record nothing.
    /// `cancel` are jobs of its own that someone asked to cancel.
    Alive {
        /// Jobs to kill without recording an end.
        lost: Vec<JobId>,
        /// Jobs to stop and record as cancelled.
        cancel: Vec<JobId>,
    },
    /// The node was declared dead, or another daemon joined under its
    /// name: every job it runs is no longer its own.
    LeaseLost,
}

/// A job whose claim lapsed, as the rescue left it.
#[derive(Debug)]
pub struct Rescued {
    /// The job after the rescue (`queued` again, `failed` or `cancelled`).
    pub job: Job,
    /// The node that had claimed it.
    pub node: String,
}

/// A database time as seconds since the epoch, as a timestamp.
pub(super) fn timestamp(secs: f64) -> Timestamp {
    Timestamp::from_microsecond((secs * 1e6) as i64).unwrap_or(Timestamp::UNIX_EPOCH)
}

impl PgStore {
    /// Starts a session for `node` with a new epoch. A daemon that joins
    /// under the name of a live one takes the name over: the other's next
    /// heartbeat is refused and it stops its jobs. Jobs of an earlier
    /// session are the rescue's ([`PgStore::lapse_earlier_sessions`]).
    pub async fn join(&self, node: &str, workers: u32, lease: Duration) -> Result<Session> {
        let epoch: i64 = sqlx::query_scalar(
            "INSERT INTO jobq_nodes AS n (name, epoch, state, workers, lease_until)
             VALUES ($1, 1, 'up', $2, now() + make_interval(secs => $3))
             ON CONFLICT (name) DO UPDATE SET epoch = n.epoch + 1, state = 'up',
                 workers = EXCLUDED.workers, started_at = now(), last_seen = now(),
                 lease_until = EXCLUDED.lease_until, running = 0
             RETURNING epoch",
        )
        .bind(node)
        .bind(i32::try_from(workers).unwrap_or(i32::MAX))
        .bind(secs(lease))
        .fetch_one(self.pool())
        .await
        .map_err(query("join the cluster"))?;
        Ok(Session {
            node: node.to_owned(),
            epoch,
        })
    }

    /// Lets the claims of `session`'s node from its earlier sessions lapse
    /// now, for the next rescue: the daemon that held them is gone (this
    /// one joined under its name, which refuses its heartbeats and ends),
    /// and a restarted daemon recovers its own jobs at once rather than a
    /// lease later. Returns how many there were.
    pub async fn lapse_earlier_sessions(&self, session: &Session) -> Result<u64> {
        let rows = sqlx::query(
            "UPDATE jobq_jobs SET lease_until = now() - interval '1 microsecond'
             WHERE state = 'running' AND node = $1 AND node_epoch < $2",
        )
        .bind(&session.node)
        .bind(session.epoch)
        .execute(self.pool())
        .await
        .map_err(query("let an earlier session's claims lapse"))?
        .rows_affected();
        Ok(rows)
    }

    /// The heartbeat: renews the node's lease and the leases of `running`
    /// (the jobs it runs) in one statement, and says which of those are no
    /// longer its own and which were asked to stop.
    pub async fn renew(
        &self,
        session: &Session,
        running: &[JobId],
        lease: Duration,
    ) -> Result<Renewal> {
        let ids: Vec<uuid::Uuid> = running.iter().map(uuid_of).collect();
        let row = sqlx::query(
            "WITH me AS (
                 UPDATE jobq_nodes SET last_seen = now(),
                     lease_until = now() + make_interval(secs => $3),
                     running = cardinality($4::uuid[])
                 WHERE name = $1 AND epoch = $2 AND state <> 'dead'
                 RETURNING 1
             ), kept AS (
                 UPDATE jobq_jobs SET lease_until = now() + make_interval(secs => $3)
                 WHERE id = ANY($4) AND state = 'running' AND node = $1 AND node_epoch = $2
                     AND EXISTS (SELECT 1 FROM me)
                 RETURNING id, cancel_requested
             )
             SELECT EXISTS (SELECT 1 FROM me) AS alive,
                    ARRAY(SELECT id FROM kept) AS kept,
                    ARRAY(SELECT id FROM kept WHERE cancel_requested) AS cancel",
        )
        .bind(&session.node)
        .bind(session.epoch)
        .bind(secs(lease))
        .bind(&ids)
        .fetch_one(self.lease_pool())
        .await
        .map_err(query("renew the lease"))?;
        if !row.get::<bool, _>("alive") {
            return Ok(Renewal::LeaseLost);
        }
        let kept: Vec<uuid::Uuid> = row.get("kept");
        let cancel: Vec<uuid::Uuid> = row.get("cancel");
        let to_id = |u: &uuid::Uuid| JobId::from_bytes(*u.as_bytes());
        Ok(Renewal::Alive {
            lost: ids
                .iter()
                .filter(|u| !kept.contains(u))
                .map(to_id)
                .collect(),
            cancel: cancel.iter().map(to_id).collect(),
        })
    }

    /// Marks the node `draining` (it claims no more) or, on a clean exit,
    /// `dead` with its lease ended, so that nobody waits for it to lapse.
    pub async fn set_node_state(&self, session: &Session, state: NodeState) -> Result<()> {
        let rows = sqlx::query(
            "UPDATE jobq_nodes SET state = $3, last_seen = now(),
                 lease_until = CASE WHEN $3 = 'dead' THEN now() ELSE lease_until END
             WHERE name = $1 AND epoch = $2 AND state <> 'dead'",
        )
        .bind(&session.node)
        .bind(session.epoch)
        .bind(state.as_str())
        .execute(self.lease_pool())
        .await
        .map_err(query("change the node's state"))?
        .rows_affected();
        if rows == 0 {
            return Err(PgError::SessionLost {
                node: session.node.clone(),
                epoch: session.epoch,
            });
        }
        Ok(())
    }

    /// Every node that ever joined, by name.
    pub async fn nodes(&self) -> Result<Vec<NodeRow>> {
        let rows = sqlx::query(
            "SELECT name, epoch, workers, running,
                    CASE WHEN lease_until < now() THEN 'dead' ELSE state END AS state,
                    extract(epoch FROM last_seen)::float8 AS last_seen
             FROM jobq_nodes ORDER BY name",
        )
        .fetch_all(self.pool())
        .await
        .map_err(query("list nodes"))?;
        Ok(rows
            .into_iter()
            .map(|r| NodeRow {
                name: r.get("name"),
                state: NodeState::parse(r.get("state")),
                last_seen: timestamp(r.get("last_seen")),
                running: u32::try_from(r.get::<i32, _>("running")).unwrap_or(0),
                workers: u32::try_from(r.get::<i32, _>("workers")).unwrap_or(0),
                epoch: r.get("epoch"),
            })
            .collect())
    }

    /// Rescues up to `limit` running jobs whose lease lapsed: each gets an
    /// attempt with reason `interrupted` and follows `policy` (a job
    /// someone asked to cancel is cancelled instead). Nodes whose lease
    /// lapsed are marked dead. One transaction: a job is rescued by one
    /// node only, and never while its node still renews it.
    pub async fn rescue(
        &self,
        policy: OnInterrupted,
        limit: u32,
        now: Timestamp,
    ) -> Result<Vec<Rescued>> {
        let mut tx = self.pool().begin().await.map_err(query("begin a rescue"))?;
        sqlx::query(
            "UPDATE jobq_nodes SET state = 'dead' WHERE state <> 'dead' AND lease_until < now()",
        )
        .execute(&mut *tx)
        .await
        .map_err(query("mark dead nodes"))?;
        let rows = sqlx::query(
            "SELECT doc, node, node_epoch, cancel_requested FROM jobq_jobs
             WHERE state = 'running' AND lease_until < now()
             ORDER BY lease_until LIMIT $1
             FOR UPDATE SKIP LOCKED",
        )
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await
        .map_err(query("find lapsed claims"))?;
        let mut rescued = Vec::with_capacity(rows.len());
        for row in rows {
            let old = decode(row.get("doc"))?;
            let node: String = row.get("node");
            let mut job = old.clone();
            let cancelled: bool = row.get("cancel_requested");
            let moved = if cancelled {
                job.cancel(None, now)
            } else {
                match policy {
                    OnInterrupted::Requeue => job.requeue_interrupted(now),
                    OnInterrupted::Fail => job.fail_interrupted(now),
                }
            };
            if moved.is_err() {
                continue;
            }
            let why = format!("node {node} stopped renewing its lease while the job ran");
            if let Some(last) = job.attempts.last_mut() {
                if last.attempt == old.attempt && last.error.is_some() {
                    last.error = Some(why.clone());
                }
            }
            if let crate::job::State::Failed { error, .. } = &mut job.state {
                *error = Some(why);
            }
            let state = job.state.name().as_str();
            sqlx::query(
                "WITH moved AS (
                     UPDATE jobq_jobs SET state = $5, attempt = $6, finished_at = to_timestamp($7),
                         doc = $8, lease_until = NULL
                     WHERE id = $1 AND state = 'running' AND attempt = $2
                         AND node = $3 AND node_epoch = $4
                     RETURNING queue
                 )
                 UPDATE jobq_queues q SET running = q.running - 1
                 FROM moved WHERE q.name = moved.queue",
            )
            .bind(uuid_of(&old.id))
            .bind(i32::try_from(old.attempt).unwrap_or(i32::MAX))
            .bind(&node)
            .bind(row.get::<i64, _>("node_epoch"))
            .bind(state)
            .bind(i32::try_from(job.attempt).unwrap_or(i32::MAX))
            .bind(job.state.finished_at().map(epoch_secs))
            .bind(encode(&job)?)
            .execute(&mut *tx)
            .await
            .map_err(query("rescue a job"))?;
            rescued.push(Rescued { job, node });
        }
        tx.commit().await.map_err(query("commit a rescue"))?;
        Ok(rescued)
    }
}
