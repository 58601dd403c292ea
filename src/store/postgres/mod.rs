//! The PostgreSQL store: several daemons on one database behave as one
//! jobq (docs/cluster.md). The only module that knows SQL.
//!
//! A job is kept as its JSON record (`doc`, the same [`Job`] the sled store
//! keeps) beside the columns that claims, leases and listings select on;
//! every statement that changes one changes the other. Time is the
//! database's (`now()`): leases never compare two machines' clocks.
//!
//! A daemon is a *node* with a *session*: [`PgStore::join`] gives it a new
//! epoch, and every claim it makes carries its name and epoch. A node that
//! lost its lease (declared dead while it was stopped or cut off) finds its
//! renewals and ends refused ([`Renewal::LeaseLost`], [`Fenced::Refused`])
//! and must kill what it still runs: a job ends only with the attempt, node
//! and epoch it was claimed with.
//!
//! By concern: `migrate.rs` (the schema and its versions), `jobs.rs`
//! (records: insert, read, replace), `claim.rs` (starting jobs),
//! `lease.rs` (nodes, heartbeats, rescue of dead nodes' jobs), `queues.rs`
//! (limits and pauses), `output.rs` (output any node can serve),
//! `uploads.rs` (uploaded stdin any node can feed), `schedules.rs`
//! (schedules, the leader lease, a fire's transaction).

mod claim;
mod jobs;
mod lease;
mod migrate;
mod output;
mod queues;
mod schedules;
mod uploads;

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;

pub use claim::Claimed;
pub use jobs::{Fenced, ListFilter};
pub use lease::{NodeRow, NodeState, Renewal, Rescued};
pub use migrate::SCHEMA_VERSION;
pub use queues::QueueRow;

use crate::job::{Job, JobId};

/// Why the PostgreSQL store could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    /// The URL is not a PostgreSQL URL, or does not parse.
    #[error("store url is not a PostgreSQL URL (postgres://user@host/db): {0}")]
    Url(String),
    /// The database could not be reached or refused the login.
    #[error("cannot connect to the PostgreSQL store: {0}")]
    Connect(sqlx::Error),
    /// The schema could not be brought to this daemon's version, or the
    /// database holds a newer one.
    #[error("{0}")]
    Schema(String),
    /// A statement failed.
    #[error("PostgreSQL store: {what} failed: {source}")]
    Query {
        /// What was being done (`"claim jobs"`).
        what: &'static str,
        /// sqlx's reason.
        source: sqlx::Error,
    },
    /// A stored record does not decode, or a record does not encode.
    #[error("PostgreSQL store: job record {id} is unreadable: {reason}")]
    Record {
        /// Which job.
        id: String,
        /// Why.
        reason: String,
    },
    /// A stored schedule record does not decode, or a schedule does not
    /// encode.
    #[error("PostgreSQL store: schedule record {name:?} is unreadable: {reason}")]
    ScheduleRecord {
        /// Which schedule.
        name: String,
        /// Why.
        reason: String,
    },
    /// A statement took longer than its caller could wait.
    #[error("PostgreSQL store: {0} took too long")]
    Timeout(&'static str),
    /// This node's session ended: another daemon joined under its name, or
    /// the cluster declared it dead.
    #[error("node {node:?} lost its session (epoch {epoch}): it was declared dead or another daemon joined under its name")]
    SessionLost {
        /// The node's name.
        node: String,
        /// The epoch it held.
        epoch: i64,
    },
}

type Result<T, E = PgError> = std::result::Result<T, E>;

/// `map_err` for a statement: names what failed.
fn query(what: &'static str) -> impl FnOnce(sqlx::Error) -> PgError {
    move |source| PgError::Query { what, source }
}

/// A job's record as stored.
fn encode(job: &Job) -> Result<serde_json::Value> {
    serde_json::to_value(job).map_err(|e| PgError::Record {
        id: job.id.to_string(),
        reason: e.to_string(),
    })
}

/// A stored record as a job.
fn decode(doc: serde_json::Value) -> Result<Job> {
    let id = doc
        .get("id")
        .and_then(|v| v.as_str())
        .unwrap_or("?")
        .to_owned();
    serde_json::from_value(doc).map_err(|e| PgError::Record {
        id,
        reason: e.to_string(),
    })
}

/// A job id as PostgreSQL's `uuid`.
fn uuid_of(id: &JobId) -> uuid::Uuid {
    uuid::Uuid::from_bytes(*id.as_bytes())
}

/// A lease length as the seconds `make_interval` takes.
fn secs(lease: Duration) -> f64 {
    lease.as_secs_f64()
}

/// A node's claim on the jobs it runs: its name and the epoch
/// [`PgStore::join`] gave it. Every claim, renewal and end carries both.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    /// The node's name (`[store] node`).
    pub node: String,
    /// Grows each time a daemon joins under this name.
    pub epoch: i64,
}

/// The open pools, shared by a node's tasks. Cheap to clone.
#[derive(Clone, Debug)]
pub struct PgStore {
    /// Claims, ends, requests, followers: everything but the lease.
    pool: PgPool,
    /// The lease's own connection: a node whose requests took every
    /// connection of `pool` (a hundred followers, a burst of submits) must
    /// still renew its lease, or it loses its running jobs.
    lease_pool: PgPool,
}

impl PgStore {
    /// Connects with a pool of `connections` and brings the schema to this
    /// daemon's version; refuses a database whose schema is newer.
    pub async fn open(url: &str, connections: u32) -> Result<PgStore> {
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(PgError::Url("it must start with postgres://".to_owned()));
        }
        let options: PgConnectOptions = url
            .parse()
            .map_err(|e: sqlx::Error| PgError::Url(e.to_string()))?;
        let options = options.application_name("jobq");
        let pool = PgPoolOptions::new()
            .max_connections(connections.max(1))
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options.clone())
            .await
            .map_err(PgError::Connect)?;
        migrate::run(&pool).await?;
        let lease_pool = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await
            .map_err(PgError::Connect)?;
        Ok(PgStore { pool, lease_pool })
    }

    /// The pool, for the modules that add statements.
    fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The lease's pool, for the heartbeat, the node's own row and the
    /// schedules' leader lease.
    fn lease_pool(&self) -> &PgPool {
        &self.lease_pool
    }

    /// Closes the pools: waits for connections in use to come back.
    pub async fn close(&self) {
        self.pool.close().await;
        self.lease_pool.close().await;
    }
}
