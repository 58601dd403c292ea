//! The durable model: every job record, the indexes the scheduler and
//! recovery need, each job's stdin and output. The only module that knows
//! sled; another engine could stand in behind the same methods.
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
//! | `i` id | stdin bytes |
//! | `u` upload id | uploaded stdin not yet claimed by a job |
//! | `m` name | metadata (`format`) |
//! | output: id attempt chunk# | stream byte + data (`output.rs`) |
//!
//! Writes land in memory and reach disk at the next flush; callers that
//! promise durability await [`Store::sync`], which shares one fsync among
//! all concurrent callers (see `commit.rs`).

mod commit;
#[cfg(test)]
mod invariants;
pub mod keys;
mod output;

pub use output::{Stream, StreamFilter};

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use jiff::Timestamp;

use crate::config::Durability;
use crate::job::{Job, JobId, State, StateName};
use commit::{Progress, Urgency};

/// The on-disk format this build writes. Bump it with a migration in
/// `Store::migrate` when the layout or the record encoding changes.
///
/// - 1: the first.
/// - 2: job records name their `owner` and the user they run as
///   (`run_as`). A format-1 record reads as owner `anonymous` with no
///   user, which its next start fills in; the records themselves need no
///   rewrite. The version still moves so that an older jobq, which would
///   drop both fields when it rewrites a record (and with them who may act
///   on the job), refuses the store instead.
/// - 3: output chunks are keyed by attempt too, so every attempt's output
///   is kept; the migration moves format-2 chunks under their job's
///   current attempt.
pub const FORMAT_VERSION: u32 = 3;
/// sled's page cache: bounds the daemon's memory for the store. 256 MiB
/// keeps a million queued jobs' hot pages while leaving RSS well under 1 GiB.
const CACHE_BYTES: u64 = 256 * 1024 * 1024;

/// How many entries [`Store`]'s table of unflushed writes may hold before
/// the flushed ones are dropped from it.
const UNFLUSHED_PRUNE_AT: usize = 4096;

/// One job's change, for [`Store::apply`]: insert (no `old`), update, or
/// removal (no `new`).
#[derive(Clone, Copy, Debug)]
pub struct Change<'a> {
    /// The record as stored before, if any.
    pub old: Option<&'a Job>,
    /// The record to store, if any.
    pub new: Option<&'a Job>,
    /// Stdin bytes of a new job.
    pub stdin: Option<&'a [u8]>,
    /// An upload the new job claims as its stdin (removed in the same batch).
    pub claims_upload: Option<JobId>,
}

impl<'a> Change<'a> {
    /// A new job.
    pub fn insert(job: &'a Job, stdin: Option<&'a [u8]>) -> Change<'a> {
        Change {
            old: None,
            new: Some(job),
            stdin,
            claims_upload: None,
        }
    }

    /// A job that moved from `old` to `new`.
    pub fn update(old: &'a Job, new: &'a Job) -> Change<'a> {
        Change {
            old: Some(old),
            new: Some(new),
            stdin: None,
            claims_upload: None,
        }
    }

    /// A job forgotten.
    pub fn remove(old: &'a Job) -> Change<'a> {
        Change {
            old: Some(old),
            new: None,
            stdin: None,
            claims_upload: None,
        }
    }

    fn id(&self) -> JobId {
        self.new.or(self.old).map(|j| j.id).unwrap_or_default()
    }
}

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

/// A ready-index entry, as loaded at start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadyEntry {
    /// The queue.
    pub queue: String,
    /// Its priority.
    pub priority: i32,
    /// Its submission order.
    pub seq: u64,
    /// The job.
    pub id: JobId,
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
        };
        store.check_format(dir, fresh, marked)?;
        store.load_counts()?;
        Ok(store)
    }

    /// Checks the format version inside sled against the marker file beside
    /// it. sled recovers from a damaged log by dropping what follows the
    /// damage, which can make a store look empty; the marker tells such a
    /// store from a new one.
    fn check_format(&self, dir: &Path, fresh: bool, marked: Option<u32>) -> Result<()> {
        let h = self.h()?;
        let key = meta_key("format");
        let stored = h.main.get(&key).map_err(io("read the format version"))?;
        let found = match stored {
            Some(v) => Some(
                <[u8; 4]>::try_from(v.as_ref())
                    .map(u32::from_be_bytes)
                    .map_err(|_| StoreError::Foreign {
                        path: dir.to_owned(),
                        problem: "has an unreadable format version; it is not a jobq store".into(),
                    })?,
            ),
            None => None,
        };
        match (found, marked) {
            (Some(found), _) if found > FORMAT_VERSION => Err(StoreError::Foreign {
                path: dir.to_owned(),
                problem: format!(
                    "holds store format {found}, newer than this jobq reads ({FORMAT_VERSION}); run a newer jobq"
                ),
            }),
            (Some(found), _) => {
                if marked.is_none() {
                    write_marker(dir, found)?;
                }
                self.migrate(found)
            }
            (None, Some(_)) => Err(StoreError::Foreign {
                path: dir.to_owned(),
                problem: "is damaged: it was a jobq store, but sled recovered no jobq data from it; restore it from a backup, or move it aside to start afresh".into(),
            }),
            (None, None) if fresh => {
                h.main
                    .insert(key, &FORMAT_VERSION.to_be_bytes())
                    .map_err(io("write the format version"))?;
                h.db.flush().map_err(io("flush the new store"))?;
                write_marker(dir, FORMAT_VERSION)
            }
            (None, None) => Err(StoreError::Foreign {
                path: dir.to_owned(),
                problem: "holds a sled database without a jobq format version; it is not a jobq store (or it is damaged); point --data-dir elsewhere".into(),
            }),
        }
    }

    fn load_counts(&self) -> Result<()> {
        let h = self.h()?;
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        for item in h.main.scan_prefix([keys::COUNT]) {
            let (key, value) = item.map_err(io("read job counts"))?;
            let bad = || StoreError::Corrupt {
                key: format!("{key:?}"),
                reason: "malformed count".into(),
            };
            let slot = keys::parse_count(&key).ok_or_else(bad)?;
            let n = <[u8; 8]>::try_from(value.as_ref()).map_err(|_| bad())?;
            counts.insert(slot, u64::from_be_bytes(n));
        }
        Ok(())
    }

    /// Upgrades a store written in format `from` to [`FORMAT_VERSION`],
    /// one step at a time, each made durable before the version says so.
    fn migrate(&self, from: u32) -> Result<()> {
        debug_assert!(from <= FORMAT_VERSION);
        if from == FORMAT_VERSION {
            return Ok(());
        }
        // 1 → 2: nothing to rewrite (see FORMAT_VERSION).
        // 2 → 3: output chunks get their attempt.
        let moved = self.migrate_output_keys()?;
        let h = self.h()?;
        h.main
            .insert(meta_key("format"), &FORMAT_VERSION.to_be_bytes())
            .map_err(io("write the format version"))?;
        h.db.flush()
            .map_err(io("flush the store's new format version"))?;
        write_marker(&self.dir, FORMAT_VERSION)?;
        tracing::info!(
            from,
            to = FORMAT_VERSION,
            output_chunks_moved = moved,
            "store format upgraded"
        );
        Ok(())
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

    /// A number that grows with every job submitted, across restarts.
    pub fn next_seq(&self) -> Result<u64> {
        let h = self.h()?;
        h.db.generate_id().map_err(io("generate a sequence number"))
    }

    /// Stores a new job (and its stdin) with its index entries, atomically.
    pub fn insert(&self, job: &Job, stdin: Option<&[u8]>) -> Result<()> {
        self.apply(&[Change::insert(job, stdin)])
    }

    /// Stores `job`, which was `old` before, moving its index entries with
    /// its state, atomically.
    pub fn update(&self, old: &Job, job: &Job) -> Result<()> {
        self.apply(&[Change::update(old, job)])
    }

    /// Forgets a job, its stdin and the output of every attempt.
    pub fn remove(&self, job: &Job) -> Result<()> {
        self.apply(&[Change::remove(job)])?;
        self.remove_output(&job.id)
    }

    /// Writes several changes as one atomic batch: records, index entries
    /// and per-queue counts move together, so a crash never leaves a job
    /// without its index entry or a count that disagrees with the records.
    pub fn apply(&self, changes: &[Change<'_>]) -> Result<()> {
        let h = self.h()?;
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let mut unflushed = self.unflushed.lock().unwrap_or_else(|e| e.into_inner());
        let mut batch = sled::Batch::default();
        let mut touched: BTreeMap<(String, StateName), u64> = BTreeMap::new();
        for change in changes {
            let old_entries = change.old.map(index_entries).unwrap_or_default();
            let new_entries = change.new.map(index_entries).unwrap_or_default();
            for (key, _) in &old_entries {
                if !new_entries.iter().any(|(k, _)| k == key) {
                    batch.remove(key.as_slice());
                }
            }
            for (key, value) in new_entries {
                batch.insert(key, value);
            }
            match change.new {
                Some(job) => {
                    let record = serde_json::to_vec(job).map_err(|e| StoreError::Corrupt {
                        key: job.id.to_string(),
                        reason: format!("cannot encode: {e}"),
                    })?;
                    batch.insert(&keys::by_id(keys::JOB, &job.id), record);
                }
                None => {
                    if let Some(old) = change.old {
                        batch.remove(&keys::by_id(keys::JOB, &old.id));
                        batch.remove(&keys::by_id(keys::STDIN, &old.id));
                    }
                }
            }
            if let (Some(job), Some(bytes)) = (change.new, change.stdin) {
                batch.insert(&keys::by_id(keys::STDIN, &job.id), bytes);
            }
            if let Some(upload) = &change.claims_upload {
                batch.remove(&keys::by_id(keys::UPLOAD, upload));
            }
            let mut bump = |job: &Job, up: bool| {
                let slot = (job.spec.queue.clone(), job.state.name());
                let now = touched
                    .get(&slot)
                    .copied()
                    .unwrap_or_else(|| counts.get(&slot).copied().unwrap_or(0));
                touched.insert(slot, if up { now + 1 } else { now.saturating_sub(1) });
            };
            if let Some(old) = change.old {
                bump(old, false);
            }
            if let Some(new) = change.new {
                bump(new, true);
            }
        }
        for ((queue, state), n) in &touched {
            let key = keys::count(queue, *state);
            if *n == 0 {
                batch.remove(key);
            } else {
                batch.insert(key, &n.to_be_bytes());
            }
        }
        let written = h.main.apply_batch(batch).map_err(io(match changes {
            [one] => format!("write job {}", one.id()),
            _ => format!("write {} jobs", changes.len()),
        }));
        self.mark_broken(written)?;
        let number = self.progress.wrote();
        if unflushed.len() >= UNFLUSHED_PRUNE_AT {
            unflushed.retain(|_, n| !self.progress.is_flushed(*n));
        }
        unflushed.extend(changes.iter().map(|c| (c.id(), number)));
        drop(unflushed);
        for (slot, n) in touched {
            if n == 0 {
                counts.remove(&slot);
            } else {
                counts.insert(slot, n);
            }
        }
        Ok(())
    }

    /// True when a change to one of `ids` read from this store may not be
    /// on disk yet: [`Store::sync`] puts it there. Always false with
    /// relaxed durability, which promises nothing between flushes.
    pub fn any_unflushed<'a>(&self, ids: impl IntoIterator<Item = &'a JobId>) -> bool {
        if self.durability == Durability::Relaxed {
            return false;
        }
        let unflushed = self.unflushed.lock().unwrap_or_else(|e| e.into_inner());
        ids.into_iter().any(|id| {
            unflushed
                .get(id)
                .is_some_and(|n| !self.progress.is_flushed(*n))
        })
    }

    /// True when every change made so far (and so every count read before)
    /// is on disk. Always true with relaxed durability.
    pub fn all_flushed(&self) -> bool {
        self.durability == Durability::Relaxed || self.progress.all_flushed()
    }

    /// Jobs per queue and state, as the records say.
    pub fn counts(&self) -> BTreeMap<(String, StateName), u64> {
        self.counts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The job holding idempotency key `key`, if any.
    pub fn job_with_key(&self, key: &str) -> Result<Option<JobId>> {
        let h = self.h()?;
        let found = h
            .main
            .get(keys::named(keys::IDEMPOTENCY, key))
            .map_err(io("read an idempotency key"))?;
        Ok(found.and_then(|v| <[u8; 16]>::try_from(v.as_ref()).ok().map(JobId::from_bytes)))
    }

    /// The jobs waiting for `id`.
    pub fn dependents(&self, id: &JobId) -> Result<Vec<JobId>> {
        let h = self.h()?;
        let mut prefix = vec![keys::DEPENDENT];
        prefix.extend_from_slice(id.as_bytes());
        let mut out = Vec::new();
        for item in h.main.scan_prefix(&prefix).keys() {
            let key = item.map_err(io(format!("read dependents of job {id}")))?;
            if let Ok(bytes) = <[u8; 16]>::try_from(&key[17..]) {
                out.push(JobId::from_bytes(bytes));
            }
        }
        Ok(out)
    }

    /// Every scheduled job with its due time, earliest first.
    pub fn scheduled(&self) -> Result<Vec<(Timestamp, JobId)>> {
        let h = self.h()?;
        h.main
            .scan_prefix([keys::SCHEDULED])
            .keys()
            .map(|item| {
                let key = item.map_err(io("read the timer index"))?;
                keys::parse_by_time(&key).ok_or_else(|| StoreError::Corrupt {
                    key: format!("{key:?}"),
                    reason: "malformed timer-index entry".into(),
                })
            })
            .collect()
    }

    /// Up to `limit` terminal jobs, the longest finished first.
    pub fn oldest_finished(&self, limit: usize) -> Result<Vec<(Timestamp, JobId)>> {
        let h = self.h()?;
        h.main
            .scan_prefix([keys::FINISHED])
            .keys()
            .take(limit)
            .map(|item| {
                let key = item.map_err(io("read the retention index"))?;
                keys::parse_by_time(&key).ok_or_else(|| StoreError::Corrupt {
                    key: format!("{key:?}"),
                    reason: "malformed retention-index entry".into(),
                })
            })
            .collect()
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

    /// A job's stdin bytes, if it was given any.
    pub fn stdin(&self, id: &JobId) -> Result<Option<Vec<u8>>> {
        let h = self.h()?;
        let key = keys::by_id(keys::STDIN, id);
        Ok(h.main
            .get(key)
            .map_err(io(format!("read stdin of job {id}")))?
            .map(|v| v.to_vec()))
    }

    /// Up to `limit` jobs older than `before` (all when `None`) that `keep`
    /// accepts, newest first, and whether more may follow. `scope` tells
    /// what `keep` asks at least (states, queue). Nothing loads every job:
    /// when the scope holds few jobs, their ids come from the state indexes
    /// and only their records are read; otherwise records are read newest
    /// first until the page is full.
    pub fn list(
        &self,
        before: Option<JobId>,
        limit: usize,
        scope: &Scope<'_>,
        mut keep: impl FnMut(&Job) -> bool,
    ) -> Result<(Vec<Job>, bool)> {
        let mut jobs = Vec::new();
        let mut take = |job: Job, jobs: &mut Vec<Job>| {
            if !keep(&job) {
                return false;
            }
            if jobs.len() == limit {
                return true;
            }
            jobs.push(job);
            false
        };
        if self.index_is_cheaper(scope, limit) {
            let mut ids = self.index_ids(scope)?;
            if let Some(before) = before {
                ids.retain(|id| *id < before);
            }
            for id in ids {
                if let Some(job) = self.get(&id)? {
                    if take(job, &mut jobs) {
                        return Ok((jobs, true));
                    }
                }
            }
            return Ok((jobs, false));
        }
        let h = self.h()?;
        let start = vec![keys::JOB];
        let end = match before {
            Some(id) => keys::by_id(keys::JOB, &id).to_vec(),
            None => vec![keys::JOB + 1],
        };
        for item in h.main.range(start..end).rev() {
            let (key, value) = item.map_err(io("list jobs"))?;
            let id = keys::id_of(&key).ok_or_else(|| StoreError::Corrupt {
                key: format!("{key:?}"),
                reason: "a job key without an id".into(),
            })?;
            if take(decode(&id, &value)?, &mut jobs) {
                return Ok((jobs, true));
            }
        }
        Ok((jobs, false))
    }

    /// Whether listing `scope` through the state indexes reads fewer
    /// entries than walking the records would, by the stored counts: the
    /// indexes hold every job of a state (terminal states share one index;
    /// only the ready index is per queue), while a walk reads about
    /// `total × limit / matching` records to fill a page, or all of them
    /// when nothing matches.
    fn index_is_cheaper(&self, scope: &Scope<'_>, limit: usize) -> bool {
        if scope.states.is_empty() && scope.queue.is_none() {
            return false;
        }
        let states = scope.states_or_all();
        let counts = self.counts();
        let sum = |wanted: &dyn Fn(&str, StateName) -> bool| -> u64 {
            counts
                .iter()
                .filter(|((q, s), _)| wanted(q, *s))
                .map(|(_, n)| *n)
                .sum()
        };
        let in_queue = |q: &str| scope.queue.is_none_or(|want| want == q);
        let total = sum(&|_, _| true);
        let matching = sum(&|q, s| in_queue(q) && states.contains(&s));
        let terminal = states.iter().any(|s| s.is_terminal());
        let indexed = sum(&|q, s| match s {
            StateName::Queued => states.contains(&s) && in_queue(q),
            _ => states.contains(&s) || (terminal && s.is_terminal()),
        });
        let walk = total.min(total.saturating_mul(limit as u64 + 1) / matching.max(1));
        indexed < walk
    }

    /// The ids of every job in `scope`'s states (and queue, for queued
    /// jobs), newest first, from the state indexes; a terminal state reads
    /// the whole retention index. A superset: the caller checks each record.
    fn index_ids(&self, scope: &Scope<'_>) -> Result<Vec<JobId>> {
        let h = self.h()?;
        let mut prefixes: BTreeMap<Vec<u8>, IdOf> = BTreeMap::new();
        for state in scope.states_or_all() {
            let (prefix, id_of) = state_index(state);
            let mut prefix = vec![prefix];
            if let (StateName::Queued, Some(queue)) = (state, scope.queue) {
                // The ready index is per queue: `r` + queue + 0 + ….
                prefix.extend_from_slice(queue.as_bytes());
                prefix.push(0);
            }
            prefixes.insert(prefix, id_of);
        }
        let mut ids = Vec::new();
        for (prefix, id_of) in prefixes {
            for item in h.main.scan_prefix(prefix) {
                let (key, value) = item.map_err(io("read a state index"))?;
                ids.push(id_of(&key, &value).ok_or_else(|| StoreError::Corrupt {
                    key: format!("{key:?}"),
                    reason: "malformed index entry".into(),
                })?);
            }
        }
        ids.sort_unstable_by(|a, b| b.cmp(a));
        ids.dedup();
        Ok(ids)
    }

    /// Every ready-index entry, in index order (queue, priority, FIFO).
    pub fn ready_entries(&self) -> Result<Vec<ReadyEntry>> {
        let h = self.h()?;
        let mut out = Vec::new();
        for item in h.main.scan_prefix([keys::READY]) {
            let (key, value) = item.map_err(io("read the ready index"))?;
            let bad = || StoreError::Corrupt {
                key: format!("{key:?}"),
                reason: "malformed ready-index entry".into(),
            };
            let (queue, priority, seq) = keys::parse_ready(&key).ok_or_else(bad)?;
            let id = JobId::from_bytes(value.as_ref().try_into().map_err(|_| bad())?);
            out.push(ReadyEntry {
                queue,
                priority,
                seq,
                id,
            });
        }
        Ok(out)
    }

    /// Every job the running index lists: the jobs that were running when
    /// the daemon last stopped.
    pub fn running_jobs(&self) -> Result<Vec<Job>> {
        let h = self.h()?;
        let mut out = Vec::new();
        for item in h.main.scan_prefix([keys::RUNNING]) {
            let (key, _) = item.map_err(io("read the running index"))?;
            let Some(id) = keys::id_of(&key) else {
                continue;
            };
            if let Some(job) = self.get(&id)? {
                out.push(job);
            }
        }
        Ok(out)
    }

    /// Keeps uploaded stdin bytes until a submission claims them
    /// (`stdin_upload`). Durable at the next [`Store::sync`].
    pub fn put_upload(&self, id: &JobId, bytes: &[u8]) -> Result<()> {
        let h = self.h()?;
        let written = h
            .main
            .insert(keys::by_id(keys::UPLOAD, id), bytes)
            .map(drop)
            .map_err(io(format!("store upload {id}")));
        self.mark_broken(written)
    }

    /// The bytes of an upload not claimed yet.
    pub fn upload(&self, id: &JobId) -> Result<Option<Vec<u8>>> {
        let h = self.h()?;
        Ok(h.main
            .get(keys::by_id(keys::UPLOAD, id))
            .map_err(io(format!("read upload {id}")))?
            .map(|v| v.to_vec()))
    }

    /// Uploads older than `cutoff` (never claimed), to prune.
    pub fn stale_uploads(&self, cutoff: Timestamp) -> Result<Vec<JobId>> {
        let h = self.h()?;
        let mut out = Vec::new();
        for item in h.main.scan_prefix([keys::UPLOAD]).keys() {
            let key = item.map_err(io("read uploads"))?;
            if let Some(id) = keys::id_of(&key) {
                // Upload ids are UUIDv7: their first 48 bits are the time.
                if id.created_ms() < cutoff.as_millisecond() {
                    out.push(id);
                }
            }
        }
        Ok(out)
    }

    /// Drops an upload.
    pub fn remove_upload(&self, id: &JobId) -> Result<()> {
        let h = self.h()?;
        let removed = h
            .main
            .remove(keys::by_id(keys::UPLOAD, id))
            .map(drop)
            .map_err(io(format!("remove upload {id}")));
        self.mark_broken(removed)
    }

    /// Bytes the store occupies on disk.
    pub fn size_on_disk(&self) -> Result<u64> {
        let h = self.h()?;
        h.db.size_on_disk().map_err(io("measure the store"))
    }
}

/// What a listing asks for at least, so that [`Store::list`] can read
/// indexes instead of every record: jobs in one of `states` (empty: any)
/// and, if set, in `queue`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Scope<'a> {
    /// The states asked for; empty for every state.
    pub states: &'a [StateName],
    /// The queue asked for, if any.
    pub queue: Option<&'a str>,
}

impl Scope<'_> {
    fn states_or_all(&self) -> Vec<StateName> {
        if self.states.is_empty() {
            StateName::ALL.to_vec()
        } else {
            self.states.to_vec()
        }
    }
}

/// Where an index entry keeps its job's id: in its key or its value.
type IdOf = fn(key: &[u8], value: &[u8]) -> Option<JobId>;

/// The index that holds every job of `state` (the terminal states share
/// one), and how to read a job's id from its entries. Follows
/// [`index_entries`].
fn state_index(state: StateName) -> (u8, IdOf) {
    match state {
        StateName::Queued => (keys::READY, |_, value| {
            Some(JobId::from_bytes(value.try_into().ok()?))
        }),
        StateName::Running => (keys::RUNNING, |key, _| keys::id_of(key)),
        StateName::Scheduled => (keys::SCHEDULED, |key, _| {
            keys::parse_by_time(key).map(|(_, id)| id)
        }),
        // `w` + awaited + waiting: the waiting job is the second id.
        StateName::Waiting => (keys::DEPENDENT, |key, _| {
            Some(JobId::from_bytes(key.get(17..33)?.try_into().ok()?))
        }),
        StateName::Succeeded | StateName::Failed | StateName::Cancelled => {
            (keys::FINISHED, |key, _| {
                keys::parse_by_time(key).map(|(_, id)| id)
            })
        }
    }
}

/// The index entries a job has in its state: (key, value) pairs. The one
/// place that knows which state has which entries.
fn index_entries(job: &Job) -> Vec<(Vec<u8>, Vec<u8>)> {
    let id = job.id.as_bytes().to_vec();
    let mut out = Vec::new();
    match &job.state {
        State::Queued => out.push((
            keys::ready(&job.spec.queue, job.spec.priority, job.seq),
            id.clone(),
        )),
        State::Running { pid, .. } => out.push((
            keys::by_id(keys::RUNNING, &job.id).to_vec(),
            pid.to_be_bytes().to_vec(),
        )),
        State::Scheduled { at } => {
            out.push((keys::by_time(keys::SCHEDULED, *at, &job.id), Vec::new()))
        }
        State::Waiting { pending } => {
            for dep in pending {
                out.push((keys::dependent(dep, &job.id), Vec::new()));
            }
        }
        State::Succeeded { finished_at, .. }
        | State::Failed { finished_at, .. }
        | State::Cancelled { finished_at, .. } => out.push((
            keys::by_time(keys::FINISHED, *finished_at, &job.id),
            Vec::new(),
        )),
    }
    if let Some(key) = &job.spec.idempotency_key {
        out.push((keys::named(keys::IDEMPOTENCY, key), id));
    }
    out
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

/// The marker file beside sled's files: `jobq-store <version>`.
const MARKER: &str = "JOBQ_FORMAT";

fn read_marker(dir: &Path) -> Result<Option<u32>, String> {
    let text = match std::fs::read_to_string(dir.join(MARKER)) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("has an unreadable {MARKER} file: {e}")),
    };
    text.trim()
        .strip_prefix("jobq-store ")
        .and_then(|v| v.parse().ok())
        .map(Some)
        .ok_or_else(|| {
            format!("has a {MARKER} file that jobq did not write; it is not a jobq store")
        })
}

fn write_marker(dir: &Path, version: u32) -> Result<()> {
    let write = || -> std::io::Result<()> {
        let tmp = dir.join(format!("{MARKER}.tmp"));
        let mut f = std::fs::File::create(&tmp)?;
        std::io::Write::write_all(&mut f, format!("jobq-store {version}\n").as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, dir.join(MARKER))?;
        std::fs::File::open(dir)?.sync_all()
    };
    write().map_err(|e| StoreError::Io {
        action: format!("write {}", dir.join(MARKER).display()),
        source: sled::Error::Io(e),
    })
}

fn meta_key(name: &str) -> Vec<u8> {
    keys::named(keys::META, name)
}

fn decode(id: &JobId, bytes: &[u8]) -> Result<Job> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        key: id.to_string(),
        reason: e.to_string(),
    })
}
