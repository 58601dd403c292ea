//! Which store the suite's daemons run on: `JOBQ_TEST_STORE=sled` (the
//! default) or `JOBQ_TEST_STORE=postgres`. On PostgreSQL, one throw-away
//! server serves the whole test process (started at the first daemon,
//! stopped when the process exits) and every [`TestDaemon`] gets a database
//! of its own, so tests share nothing but the server.
//!
//! Tests of what only one store has (sled's files, a cluster of several
//! daemons) live in modules the other run leaves out by name
//! (`--skip sled_only::` in `.ci/run`), so nothing skips itself quietly.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use super::TestPostgres;

/// The store the daemons of this run use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TestStore {
    /// The embedded store in the data dir.
    Sled,
    /// A database on the run's shared PostgreSQL server.
    Postgres,
}

/// The store named by `JOBQ_TEST_STORE`; any other value fails the run
/// rather than quietly testing sled.
pub fn test_store() -> TestStore {
    match std::env::var("JOBQ_TEST_STORE").as_deref() {
        Err(_) | Ok("") | Ok("sled") => TestStore::Sled,
        Ok("postgres") => TestStore::Postgres,
        Ok(other) => panic!("JOBQ_TEST_STORE={other:?}: expected sled or postgres"),
    }
}

/// The lease of a test daemon on PostgreSQL: short, so that a daemon
/// restarted after kill -9 takes its jobs back within seconds (see
/// docs/cluster.md "Restarting a node"), yet several heartbeats long so a
/// loaded runner does not lose a lease.
const TEST_LEASE: &str = "6s";

static SHARED: OnceLock<TestPostgres> = OnceLock::new();
static NEXT_DB: AtomicU64 = AtomicU64::new(0);

/// The run's shared server, started on first use.
pub fn shared_postgres() -> &'static TestPostgres {
    SHARED.get_or_init(|| {
        let pg = TestPostgres::start();
        // A static is never dropped: a watcher stops the server once this
        // process is gone, however it ended.
        pg.stop_after(std::process::id());
        pg
    })
}

/// A `[store]` table for a new daemon on PostgreSQL (a fresh database on
/// the shared server), or `None` on sled.
pub fn store_table() -> Option<toml::Table> {
    if test_store() != TestStore::Postgres {
        return None;
    }
    let pg = shared_postgres();
    let db = format!(
        "jobq_{}_{}",
        std::process::id(),
        NEXT_DB.fetch_add(1, Ordering::Relaxed)
    );
    pg.psql("postgres", &format!("CREATE DATABASE {db}"));
    let mut table = toml::Table::new();
    table.insert("backend".into(), "postgres".into());
    table.insert("url".into(), pg.url(&db).into());
    table.insert("node".into(), "test".into());
    table.insert("lease".into(), TEST_LEASE.into());
    Some(table)
}
