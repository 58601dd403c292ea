//! Schedules on the cluster: their records, the lease of the one node that
//! fires them, and a fire's transaction.
//!
//! A schedule is kept as its JSON record (`doc`, the same
//! [`Schedule`] the sled store keeps) beside `next_run_at` and `paused`,
//! which the firing selects on. Every change is conditional on the record
//! the caller read (as [`PgStore::replace`] is for jobs), so two nodes
//! changing one schedule at once never lose a change: the second is
//! refused and decides again.
//!
//! What a fire does (overlap, missed fires) is the engine's
//! (`engine/cluster/schedules.rs`); this module only makes it atomic.

use std::time::Duration;

use jiff::Timestamp;
use sqlx::Row;

use super::jobs::{epoch_secs, insert_in};
use super::lease::timestamp;
use super::{query, secs, Fenced, PgError, PgStore, Result, Session};
use crate::job::Job;
use crate::schedule::Schedule;

/// A schedule's record as stored.
fn encode(schedule: &Schedule) -> Result<serde_json::Value> {
    serde_json::to_value(schedule).map_err(|e| PgError::ScheduleRecord {
        name: schedule.name.clone(),
        reason: e.to_string(),
    })
}

/// A stored record as a schedule.
fn decode(doc: serde_json::Value) -> Result<Schedule> {
    let name = doc
        .get("name")
        .and_then(|v| v.as_str())
        .unwrap_or("?")
        .to_owned();
    serde_json::from_value(doc).map_err(|e| PgError::ScheduleRecord {
        name,
        reason: e.to_string(),
    })
}

/// `next_run_at` as the column holds it: only while the schedule fires.
fn next_column(schedule: &Schedule) -> Option<f64> {
    schedule
        .next_run_at
        .filter(|_| !schedule.paused)
        .map(epoch_secs)
}

impl PgStore {
    /// Stores `new` if the stored schedule is still `old` (`None`: there
    /// is none of that name). Refused when someone stored, changed, fired
    /// or removed it first: read it again and decide again.
    pub async fn put_schedule(&self, old: Option<&Schedule>, new: &Schedule) -> Result<Fenced> {
        let mut tx = self
            .pool()
            .begin()
            .await
            .map_err(query("begin a schedule's change"))?;
        // Compared as records, not as JSON: a record decoded and encoded
        // again need not be the same bytes. A fire holds the row only for
        // its few statements, so this waits for it.
        let stored = locked(&mut tx, &new.name, Wait::Yes).await?;
        if stored.as_ref() != old {
            return Ok(Fenced::Refused);
        }
        let statement = if old.is_some() {
            UPDATE
        } else {
            // Another request may create it between the read and here.
            "INSERT INTO jobq_schedules (name, doc, next_run_at, paused)
             VALUES ($1, $2, to_timestamp($3), $4) ON CONFLICT (name) DO NOTHING"
        };
        if write_row(&mut tx, statement, new, "store a schedule").await? == 0 {
            return Ok(Fenced::Refused);
        }
        tx.commit()
            .await
            .map_err(query("commit a schedule's change"))?;
        Ok(Fenced::Done)
    }

    /// The schedule named `name`, if there is one.
    pub async fn schedule(&self, name: &str) -> Result<Option<Schedule>> {
        let doc: Option<serde_json::Value> =
            sqlx::query_scalar("SELECT doc FROM jobq_schedules WHERE name = $1")
                .bind(name)
                .fetch_optional(self.pool())
                .await
                .map_err(query("read a schedule"))?;
        doc.map(decode).transpose()
    }

    /// Every schedule, by name.
    pub async fn schedules(&self) -> Result<Vec<Schedule>> {
        let docs: Vec<serde_json::Value> =
            sqlx::query_scalar("SELECT doc FROM jobq_schedules ORDER BY name")
                .fetch_all(self.pool())
                .await
                .map_err(query("list schedules"))?;
        docs.into_iter().map(decode).collect()
    }

    /// Forgets schedule `name`; false when there was none. Its jobs stay.
    pub async fn remove_schedule(&self, name: &str) -> Result<bool> {
        let rows = sqlx::query("DELETE FROM jobq_schedules WHERE name = $1")
            .bind(name)
            .execute(self.pool())
            .await
            .map_err(query("remove a schedule"))?
            .rows_affected();
        Ok(rows > 0)
    }

    /// Schedules not paused whose next fire is at or before `now`, earliest
    /// first, at most `limit`.
    pub async fn due_schedules(&self, now: Timestamp, limit: u32) -> Result<Vec<Schedule>> {
        let docs: Vec<serde_json::Value> = sqlx::query_scalar(
            "SELECT doc FROM jobq_schedules
             WHERE NOT paused AND next_run_at <= to_timestamp($1)
             ORDER BY next_run_at LIMIT $2",
        )
        .bind(epoch_secs(now))
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await
        .map_err(query("find due schedules"))?;
        docs.into_iter().map(decode).collect()
    }

    /// The earliest next fire of any schedule not paused, for the leader's
    /// sleep.
    pub async fn next_schedule_fire(&self) -> Result<Option<Timestamp>> {
        let at: Option<f64> = sqlx::query_scalar(
            "SELECT extract(epoch FROM min(next_run_at))::float8 FROM jobq_schedules
             WHERE NOT paused",
        )
        .fetch_one(self.pool())
        .await
        .map_err(query("find the next schedule fire"))?;
        Ok(at.map(timestamp))
    }

    /// Takes or renews the lease of `role` for `session` until the
    /// database's clock plus `lease`, in one statement: granted when
    /// nobody holds it, when the holder's lease lapsed, when the holder
    /// is this very session, or when the holder's session is over (its
    /// node is no longer `up` under that epoch: it drained, was declared
    /// dead, or restarted under its name). Only a node that is `up` may
    /// hold it. Returns the database's time when granted.
    pub async fn lead(
        &self,
        role: &str,
        session: &Session,
        lease: Duration,
    ) -> Result<Option<Timestamp>> {
        let row = sqlx::query(
            "INSERT INTO jobq_leaders AS l (role, node, epoch, lease_until)
             SELECT $1, $2, $3, now() + make_interval(secs => $4)
             WHERE EXISTS (SELECT 1 FROM jobq_nodes
                           WHERE name = $2 AND epoch = $3 AND state = 'up')
             ON CONFLICT (role) DO UPDATE SET node = EXCLUDED.node, epoch = EXCLUDED.epoch,
                 lease_until = EXCLUDED.lease_until
             WHERE l.lease_until < now()
                OR (l.node = EXCLUDED.node AND l.epoch = EXCLUDED.epoch)
                OR NOT EXISTS (SELECT 1 FROM jobq_nodes n
                               WHERE n.name = l.node AND n.epoch = l.epoch AND n.state = 'up')
             RETURNING extract(epoch FROM now())::float8 AS now",
        )
        .bind(role)
        .bind(&session.node)
        .bind(session.epoch)
        .bind(secs(lease))
        // The lease's own connection, as the heartbeat's: requests that
        // take every connection of the pool must not cost the lease.
        .fetch_optional(self.lease_pool())
        .await
        .map_err(query("take the leader lease"))?;
        Ok(row.map(|r| timestamp(r.get("now"))))
    }

    /// Gives up the lease of `role` if `session` holds it (a node that
    /// drains), so that another node takes it at its next try rather than
    /// once the lease lapses.
    pub async fn resign(&self, role: &str, session: &Session) -> Result<()> {
        sqlx::query("DELETE FROM jobq_leaders WHERE role = $1 AND node = $2 AND epoch = $3")
            .bind(role)
            .bind(&session.node)
            .bind(session.epoch)
            .execute(self.lease_pool())
            .await
            .map_err(query("give up the leader lease"))?;
        Ok(())
    }

    /// A fire (or a `run`), in one transaction: locks the schedule's row
    /// (skipping it when another fire or change holds it), checks it is
    /// still `old` and, for a fire, that `leader` still holds the lease of
    /// `role`; stores `jobs` (each with `stdins[i]`) and the schedule as
    /// `new`. Refused, with nothing written, when the row was locked or
    /// changed, the lease is gone, or a job's idempotency key is live
    /// (that fire made its job already): read it again and decide again.
    pub async fn fire_schedule(
        &self,
        leader: Option<(&str, &Session)>,
        old: &Schedule,
        new: &Schedule,
        jobs: &[Job],
        stdins: &[Option<Vec<u8>>],
    ) -> Result<Fenced> {
        let mut tx = self.pool().begin().await.map_err(query("begin a fire"))?;
        match locked(&mut tx, &old.name, Wait::No).await? {
            Some(stored) if stored == *old => {}
            // Rolled back on drop.
            _ => return Ok(Fenced::Refused),
        }
        if let Some((role, session)) = leader {
            // Fencing: a node that lost the lease (it stalled past it, and
            // another took over) fires nothing more.
            let leads: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM jobq_leaders
                                WHERE role = $1 AND node = $2 AND epoch = $3
                                  AND lease_until > now())",
            )
            .bind(role)
            .bind(&session.node)
            .bind(session.epoch)
            .fetch_one(&mut *tx)
            .await
            .map_err(query("check the leader lease"))?;
            if !leads {
                return Ok(Fenced::Refused);
            }
        }
        let existing = insert_in(&mut tx, jobs, stdins).await?;
        if existing.iter().any(Option::is_some) {
            return Ok(Fenced::Refused);
        }
        write_row(&mut tx, UPDATE, new, "advance a schedule").await?;
        tx.commit().await.map_err(query("commit a fire"))?;
        Ok(Fenced::Done)
    }
}

/// Replaces a schedule's row (`$1` its name; `$2` to `$4` its record,
/// `next_run_at`, `paused`).
const UPDATE: &str =
    "UPDATE jobq_schedules SET doc = $2, next_run_at = to_timestamp($3), paused = $4
     WHERE name = $1";

/// Runs `statement` (an insert or [`UPDATE`]) with `schedule`'s row as its
/// parameters in `conn`; returns how many rows it wrote.
async fn write_row(
    conn: &mut sqlx::PgConnection,
    statement: &'static str,
    schedule: &Schedule,
    what: &'static str,
) -> Result<u64> {
    Ok(sqlx::query(statement)
        .bind(&schedule.name)
        .bind(encode(schedule)?)
        .bind(next_column(schedule))
        .bind(schedule.paused)
        .execute(&mut *conn)
        .await
        .map_err(query(what))?
        .rows_affected())
}

/// Whether [`locked`] waits for a row another transaction holds.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Wait {
    /// Wait (a client's change: it must not be lost).
    Yes,
    /// Skip it, as if there were none (a fire: the one holding it is
    /// another fire or a change, after which this fire decides again).
    No,
}

/// Schedule `name`'s record, its row locked by `conn`'s transaction;
/// `None`: there is no such row (or, with [`Wait::No`], another holds it).
async fn locked(conn: &mut sqlx::PgConnection, name: &str, wait: Wait) -> Result<Option<Schedule>> {
    let statement = match wait {
        Wait::Yes => "SELECT doc FROM jobq_schedules WHERE name = $1 FOR UPDATE",
        Wait::No => "SELECT doc FROM jobq_schedules WHERE name = $1 FOR UPDATE SKIP LOCKED",
    };
    let doc: Option<serde_json::Value> = sqlx::query_scalar(statement)
        .bind(name)
        .fetch_optional(&mut *conn)
        .await
        .map_err(query("lock a schedule"))?;
    doc.map(decode).transpose()
}
