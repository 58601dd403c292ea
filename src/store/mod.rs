//! The durable model: every job record, the indexes the scheduler and
//! recovery need, each job's stdin and output. The only module that knows
//! sled; another engine could stand in behind the same methods. Output
//! (`output/`) and uploaded stdin (`stdin/`) are files beside sled's.
//!
//! Layout (one sled tree `jobq` for records and indexes, so one atomic batch
//! covers a job and its index entries; one tree `output` for output chunks,
//! which are many and never need to be atomic with anything):
//!
//! | key | value |
//! | --- | --- |
//! | `j` id | the job, JSON |
//! | `r` queue 0 priority seq | id: the ready index (queued jobs only) |
//! | `n` id | process group id: the running index, read by recovery |
//! | `s` time id | (empty): the timer index (scheduled jobs) |
//! | `w` awaited waiting | (empty): dependency edges of waiting jobs |
//! | `f` time id | (empty): the retention index (terminal jobs) |
//! | `k` key | id: idempotency keys |
//! | `c` queue 0 state | count of jobs in that queue and state |
//! | `q` queue | queue settings, JSON |
//! | `S` name | a schedule, JSON (`schedules.rs`) |
//! | `i` id | stdin bytes |
//! | `u` upload id | uploaded stdin not yet claimed by a job |
//! | `m` name | metadata (`format`) |
//! | output: id attempt chunk# | (format 6 and before: moved to `output/`) |
//!
//! Writes land in memory and reach disk at the next flush; callers that
//! promise durability await [`Store::sync`], which shares one fsync among
//! all concurrent callers (see `commit.rs`).
//!
//! This file holds the handles, opening and reopening, flushing and plain
//! reads; the rest is by concern: `format.rs` (versions, migrations),
//! `indexes.rs` (records with their index entries and counts),
//! `listing.rs` (pages of jobs), `output.rs`, `schedules.rs`, `uploads.rs`
//! (stdin).

mod commit;
mod format;
#[cfg(test)]
mod fuzz;
mod indexes;
#[cfg(test)]
mod invariants;
pub mod keys;
mod listing;
mod output;
pub mod postgres;
mod schedules;
mod uploads;

use format::read_marker;
pub use format::FORMAT_VERSION;
pub use indexes::Change;
pub use listing::Scope;
pub use output::{OutputFile, Stream, StreamFilter, OUTPUT_SYNC_INTERVAL};
pub use schedules::ScheduleWrite;
pub use uploads::{StdinSource, UploadFile};

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use jiff::Timestamp;

use crate::config::Durability;
use crate::job::{Job, JobId, State, StateName};
use commit::{Progress, Urgency};

/// sled's page cache: bounds the daemon's memory for the store. 256 MiB
/// keeps a million queued jobs' hot pages while leaving RSS well under 1 GiB.
const CACHE_BYTES: u64 = 256 * 1024 * 1024;

/// How many entries [`Store`]'s table of unflushed writes may hold before
/// the flushed ones are dropped from it.
const UNFLUSHED_PRUNE_AT: usize = 4096;

/// A queue's settings that outlive a restart: changed with
/// `PATCH /v1/queues/{name}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct QueueSettings {
    /// Most jobs of this queue running at once; `None` uses the config.
    #[serde(default)]
    pub concurrency: Option<usize>,
    /// True while no new job of this queue may start.
    #[serde(default)]
    pub paused: bool,
}

/// Why the store could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// sled could not open the directory (permissions, damage).
    #[error("cannot open the store at {path}: {source}; if it is damaged, restore it from a backup or move it aside to start afresh")]
    Open {
        /// The store directory.
        path: PathBuf,
        /// sled's reason.
        source: sled::Error,
    },
    /// Another process holds the store open.
    #[error("the store at {path} is in use by another jobq daemon (stop it first, or use another --data-dir)")]
    Locked {
        /// The store directory.
        path: PathBuf,
    },
    /// The directory holds data that is not a jobq store, or a newer one.
    #[error("{path} {problem}")]
    Foreign {
        /// The store directory.
        path: PathBuf,
        /// What is wrong and what to do.
        problem: String,
    },
    /// A read or write failed.
    #[error("store {action} failed: {source}")]
    Io {
        /// What was being done (`"write job 0192…"`).
        action: String,
        /// sled's reason.
        source: sled::Error,
    },
    /// A file of the store beside sled (an upload) could not be written
    /// or read.
    #[error("store {action} failed: {source}")]
    File {
        /// What was being done (`"write stdin/0192…"`).
        action: String,
        /// The system's reason.
        source: std::io::Error,
    },
    /// A flush failed: the write may not be durable.
    #[error("store flush failed: {0}")]
    Flush(Arc<sled::Error>),
    /// The store is being reopened after an I/O error.
    #[error("the store is being reopened after an I/O error; retry in a moment")]
    Reopening,
    /// A stored record does not decode.
    #[error("stored record {key} is unreadable: {reason}")]
    Corrupt {
        /// Which record.
        key: String,
        /// Why.
        reason: String,
    },
}

type Result<T, E = StoreError> = std::result::Result<T, E>;

fn io(action: impl Into<String>) -> impl FnOnce(sled::Error) -> StoreError {
    let action = action.into();
    move |source| StoreError::Io { action, source }
}

fn file_io(action: impl Into<String>) -> impl FnOnce(std::io::Error) -> StoreError {
    let action = action.into();
    move |source| StoreError::File { action, source }
}

/// The open sled handles. Replaced as a whole when the store is reopened
/// after an I/O error (see [`Store::reopen`]).
#[derive(Clone)]
struct Handles {
    /// Kept to reach [`sled::Db::size_on_disk`] and to keep the files open.
    db: sled::Db,
    /// Job records and their indexes (see the module docs).
    main: sled::Tree,
    /// Output chunks.
    output: sled::Tree,
    /// The flusher shared by all writers.
    commit: commit::GroupCommit,
}

/// The durable store. Cheap to clone; clones share the open database.
#[derive(Clone)]
pub struct Store {
    /// The store directory, for reopening.
    dir: PathBuf,
    /// The sled handles; `None` only while [`Store::reopen`] swaps them.
    handles: Arc<RwLock<Option<Handles>>>,
    /// Whether [`Store::sync`] waits for an fsync.
    durability: Durability,
    /// sled's own flush period.
    flush_every_ms: u64,
    /// Mirror of the stored per-queue, per-state counts; its lock also
    /// orders batches that touch counts. A std mutex: never held across an
    /// await.
    counts: Arc<Mutex<BTreeMap<(String, StateName), u64>>>,
    /// Set when a write or flush failed: sled refuses every write after its
    /// first I/O error, until it is reopened.
    broken: Arc<AtomicBool>,
    /// Notified when `broken` is set, to wake the repair loop.
    broke: Arc<event_listener::Event>,
    /// How far writes have reached disk (shared with the flusher).
    progress: Arc<Progress>,
    /// The number of each job's latest write, while it may not be on disk
    /// yet. Locked by [`Store::apply`] from before its batch until the
    /// entries are in, so a reader that saw a write in sled and then looks
    /// here finds its number.
    unflushed: Arc<Mutex<HashMap<JobId, u64>>>,
    /// The next job `seq` to hand out. Stored (as `m next_seq`) with every
    /// batch that inserts a job, so a number is never given twice, even
    /// after the newest job is removed; sled's own id generator would skip
    /// ahead by a million at each restart, and numbers are for typing.
    next_seq: Arc<AtomicU64>,
    /// Uploads being written now, whose part files a sweep leaves.
    uploads_in_progress: Arc<Mutex<std::collections::HashSet<JobId>>>,
    /// Output files written since their last sync.
    dirty_output: Arc<output::DirtyOutput>,
}

impl Store {
    /// The current handles, or an error while the store is being reopened.
    fn h(&self) -> Result<Handles> {
        self.handles
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or(StoreError::Reopening)
    }

    /// True once a write or flush failed: writes fail until
    /// [`Store::reopen`] succeeds.
    pub fn is_broken(&self) -> bool {
        self.broken.load(Ordering::SeqCst)
    }

    /// Resolves when the store next breaks (check [`Store::is_broken`]
    /// after listening, to not miss one).
    pub fn on_broken(&self) -> event_listener::EventListener {
        self.broke.listen()
    }

    fn mark_broken<T>(&self, result: Result<T>) -> Result<T> {
        if let Err(StoreError::Io { .. } | StoreError::Flush(_)) = &result {
            if !self.broken.swap(true, Ordering::SeqCst) {
                tracing::error!(
                    "the store failed a write; refusing writes until it can be reopened"
                );
                self.broke.notify(usize::MAX);
            }
        }
        result
    }

    /// Closes and reopens the database after an I/O error (sled refuses
    /// every write after its first one). What was flushed is what the
    /// reopened store holds; the engine reconciles its own state with it.
    pub fn reopen(&self) -> Result<()> {
        let mut slot = self.handles.write().unwrap_or_else(|e| e.into_inner());
        // Drop the old handles first: sled holds a lock on its files.
        *slot = None;
        let handles = open_handles(&self.dir, self.flush_every_ms, &self.progress)?;
        *slot = Some(handles);
        drop(slot);
        // What the reopened store holds is what was flushed.
        self.progress.settle();
        self.unflushed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        self.check_format(&self.dir, false, read_marker(&self.dir).ok().flatten())?;
        self.counts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        self.load_counts()?;
        self.broken.store(false, Ordering::SeqCst);
        Ok(())
    }

    /// Opens (or creates) the store in `dir`, checking it is ours and of a
    /// format this build reads.
    pub fn open(dir: &Path, durability: Durability, flush_interval: Duration) -> Result<Store> {
        let fresh = std::fs::read_dir(dir).map_or(true, |mut entries| entries.next().is_none());
        let foreign = |problem: String| StoreError::Foreign {
            path: dir.to_owned(),
            problem,
        };
        if !fresh && !dir.join("db").exists() {
            return Err(foreign(
                "is not a jobq store (no sled database in it); point --data-dir at a jobq data directory or an empty one".into(),
            ));
        }
        // Read before sled opens anything: a newer store is refused without
        // a byte of it changed.
        let marked = read_marker(dir).map_err(foreign)?;
        if let Some(found) = marked {
            if found > FORMAT_VERSION {
                return Err(foreign(format!(
                    "holds store format {found}, newer than this jobq reads ({FORMAT_VERSION}); run a newer jobq"
                )));
            }
        }
        let flush_every_ms = match durability {
            Durability::Fsync => 500,
            Durability::Relaxed => flush_interval.as_millis().max(1) as u64,
        };
        let progress = Arc::new(Progress::default());
        let handles = open_handles(dir, flush_every_ms, &progress)?;
        let store = Store {
            dir: dir.to_owned(),
            handles: Arc::new(RwLock::new(Some(handles))),
            durability,
            flush_every_ms,
            counts: Arc::default(),
            broken: Arc::default(),
            broke: Arc::default(),
            progress,
            unflushed: Arc::default(),
            next_seq: Arc::default(),
            uploads_in_progress: Arc::default(),
            dirty_output: Arc::default(),
        };
        store.check_format(dir, fresh, marked)?;
        store.load_counts()?;
        store.load_next_seq()?;
        Ok(store)
    }

    /// Waits until every write made before this call is on disk. Concurrent
    /// callers share one fsync.
    /// With relaxed durability it returns at once: sled's periodic flush
    /// makes the write durable within `flush_interval`.
    pub async fn sync(&self) -> Result<()> {
        self.sync_with(Urgency::Now).await
    }

    /// [`sync`](Self::sync) for a write nobody waits on before it is
    /// announced (a job's start or end): its flush may wait up to 1 ms
    /// after the previous one (`SOON_WINDOW` in `commit.rs`), to be shared
    /// with the next write.
    pub async fn sync_soon(&self) -> Result<()> {
        self.sync_with(Urgency::Soon).await
    }

    async fn sync_with(&self, urgency: Urgency) -> Result<()> {
        let h = self.h()?;
        if self.is_broken() {
            // A flush after a failed write would claim durability sled
            // cannot give.
            return Err(StoreError::Reopening);
        }
        let result = match self.durability {
            Durability::Fsync => h.commit.wait(urgency).await.map_err(StoreError::Flush),
            Durability::Relaxed => Ok(()),
        };
        self.mark_broken(result)
    }

    /// Flushes and fsyncs now, whatever the durability setting: the last
    /// step of a clean shutdown, so a relaxed daemon loses nothing when it
    /// stops cleanly.
    pub async fn flush_now(&self) -> Result<()> {
        let h = self.h()?;
        let result = h.commit.wait(Urgency::Now).await.map_err(StoreError::Flush);
        self.mark_broken(result)
    }

    /// One real read of the store (its format marker), for the watchdog:
    /// proves sled answers, not merely that the process runs.
    pub fn probe(&self) -> Result<()> {
        let h = self.h()?;
        h.main
            .get(keys::named(keys::META, "format"))
            .map(drop)
            .map_err(io("read the store"))
    }

    /// A number that grows with every job submitted, across restarts (a
    /// job's `number` is this plus one; see [`Job::number`]).
    pub fn next_seq(&self) -> Result<u64> {
        self.h()?;
        Ok(self.next_seq.fetch_add(1, Ordering::SeqCst))
    }

    /// Forgets a job, its stdin and the output of every attempt.
    pub fn remove(&self, job: &Job) -> Result<()> {
        self.apply(&[Change::remove(job)])?;
        self.remove_output(&job.id)
    }

    /// Stored settings of every queue that has any.
    pub fn queue_settings(&self) -> Result<Vec<(String, QueueSettings)>> {
        let h = self.h()?;
        let mut out = Vec::new();
        for item in h.main.scan_prefix([keys::QUEUE]) {
            let (key, value) = item.map_err(io("read queue settings"))?;
            let name = String::from_utf8_lossy(&key[1..]).into_owned();
            let settings = serde_json::from_slice(&value).map_err(|e| StoreError::Corrupt {
                key: format!("queue {name}"),
                reason: e.to_string(),
            })?;
            out.push((name, settings));
        }
        Ok(out)
    }

    /// Forgets a queue's settings (durable at the next [`Store::sync`]).
    pub fn remove_queue_settings(&self, name: &str) -> Result<()> {
        let h = self.h()?;
        let written = h
            .main
            .remove(keys::named(keys::QUEUE, name))
            .map(drop)
            .map_err(io(format!("remove settings of queue {name}")));
        self.mark_broken(written)
    }

    /// Stores a queue's settings (durable at the next [`Store::sync`]).
    pub fn put_queue_settings(&self, name: &str, settings: &QueueSettings) -> Result<()> {
        let h = self.h()?;
        let value = serde_json::to_vec(settings).map_err(|e| StoreError::Corrupt {
            key: format!("queue {name}"),
            reason: e.to_string(),
        })?;
        let written = h
            .main
            .insert(keys::named(keys::QUEUE, name), value)
            .map(drop)
            .map_err(io(format!("write settings of queue {name}")));
        self.mark_broken(written)
    }

    /// One job, if it exists.
    pub fn get(&self, id: &JobId) -> Result<Option<Job>> {
        let h = self.h()?;
        let key = keys::by_id(keys::JOB, id);
        match h.main.get(key).map_err(io(format!("read job {id}")))? {
            Some(bytes) => decode(id, &bytes).map(Some),
            None => Ok(None),
        }
    }

    /// Bytes the store occupies on disk.
    pub fn size_on_disk(&self) -> Result<u64> {
        let h = self.h()?;
        h.db.size_on_disk().map_err(io("measure the store"))
    }
}

/// Opens sled in `dir` with the trees and the flusher thread. sled's own
/// periodic flush (`flush_every_ms`) is a backstop with fsync durability and
/// the only flush with relaxed durability.
fn open_handles(dir: &Path, flush_every_ms: u64, progress: &Arc<Progress>) -> Result<Handles> {
    let db = sled::Config::new()
        .path(dir)
        .cache_capacity(CACHE_BYTES)
        .flush_every_ms(Some(flush_every_ms))
        .open()
        .map_err(|source| match &source {
            sled::Error::Io(e)
                if e.to_string().contains("lock") || e.kind() == std::io::ErrorKind::WouldBlock =>
            {
                StoreError::Locked {
                    path: dir.to_owned(),
                }
            }
            _ => StoreError::Open {
                path: dir.to_owned(),
                source,
            },
        })?;
    let main = db.open_tree("jobq").map_err(io("open tree jobq"))?;
    let output = db.open_tree("output").map_err(io("open tree output"))?;
    let commit =
        commit::GroupCommit::start(db.clone(), progress.clone()).map_err(|e| StoreError::Io {
            action: "start the flusher thread".into(),
            source: sled::Error::Io(e),
        })?;
    Ok(Handles {
        db,
        main,
        output,
        commit,
    })
}

fn decode(id: &JobId, bytes: &[u8]) -> Result<Job> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        key: id.to_string(),
        reason: e.to_string(),
    })
}
