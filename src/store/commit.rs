//! Group commit: many writers share one fsync.
//!
//! A writer makes its changes in sled (in memory), then asks the dedicated
//! flusher thread for durability. The thread takes every waiting request,
//! flushes once, and answers them all. A flush that starts after a write was
//! made covers it, so each waiter is answered by the first flush that began
//! after it asked. While one flush runs, new requests gather for the next:
//! under load the number of fsyncs per second stays near the disk's limit
//! while each one acknowledges many writes.
//!
//! Requests come in two kinds ([`Urgency`]). A *now* request (a submission
//! whose client waits for its answer) is flushed at once. A *soon* request
//! (a job's start or end, which nobody waits on before it is announced) may
//! wait up to [`SOON_WINDOW`] after the previous flush, so that it shares a
//! flush with whatever comes next. On an idle daemon the previous flush is
//! long past and a *soon* request is flushed at once too; while jobs drain,
//! a job's start rides along with the next job's end instead of costing a
//! flush of its own. Each flush is worth saving: sled hands every log write
//! to its I/O thread pool, which wakes all of its idle threads.
//!
//! The flusher is a plain thread, not an async task: `fsync` blocks, and a
//! thread of its own keeps it off the executor without borrowing the
//! blocking pool for the daemon's whole life.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// A flush failure, shared by every waiter of that flush.
pub type FlushResult = Result<(), Arc<sled::Error>>;

/// How long after the previous flush a [`Urgency::Soon`] request may wait
/// for company. Short against a job's life and a follower's patience; long
/// against the gap between two starts or ends while jobs drain.
pub const SOON_WINDOW: Duration = Duration::from_millis(1);

/// How soon a request wants its flush.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Urgency {
    /// Flush at once: somebody is waiting for the answer.
    Now,
    /// Flush within [`SOON_WINDOW`] of the previous flush, sharing it with
    /// later requests if they come.
    Soon,
}

/// How far writes have reached disk, counted in writes: each write to the
/// store takes the next number once it is in sled's memory
/// ([`Progress::wrote`]), and each flush raises `flushed` to the last number
/// taken before it began. A write is on disk once `flushed` has reached its
/// number. Lets readers tell a state they may show from one a crash could
/// still undo.
#[derive(Debug, Default)]
pub struct Progress {
    written: AtomicU64,
    flushed: AtomicU64,
}

impl Progress {
    /// Counts a write that is now in sled's memory; returns its number.
    pub fn wrote(&self) -> u64 {
        self.written.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// True when write number `n` is on disk.
    pub fn is_flushed(&self, n: u64) -> bool {
        self.flushed.load(Ordering::SeqCst) >= n
    }

    /// True when every write so far is on disk.
    pub fn all_flushed(&self) -> bool {
        self.is_flushed(self.written.load(Ordering::SeqCst))
    }

    /// Counts everything written so far as on disk: after the store was
    /// reopened, what it holds is what was flushed.
    pub fn settle(&self) {
        self.flushed
            .fetch_max(self.written.load(Ordering::SeqCst), Ordering::SeqCst);
    }
}

/// One request: how urgent it is and where its answer goes.
struct Request {
    urgency: Urgency,
    answer: async_channel::Sender<FlushResult>,
}

/// Handle to the flusher thread; cloning shares it. When the last handle
/// is dropped the thread is told to end and waited for, so that the
/// database it holds is closed (and its file lock released) when the drop
/// returns: [`crate::store::Store::reopen`] opens it again right after.
#[derive(Clone)]
pub struct GroupCommit {
    inner: Arc<Flusher>,
}

/// The flusher thread and the way to it.
struct Flusher {
    /// Requests to the thread; taken (closed) when the last handle goes.
    requests: Option<mpsc::Sender<Request>>,
    /// The thread, joined when the last handle goes.
    thread: Option<thread::JoinHandle<()>>,
}

impl Drop for Flusher {
    fn drop(&mut self) {
        // Closing the channel ends the thread after the flush it may be in.
        self.requests.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl GroupCommit {
    /// Starts the flusher thread for `db`, reporting each flush to
    /// `progress`.
    pub fn start(db: sled::Db, progress: Arc<Progress>) -> std::io::Result<GroupCommit> {
        let (tx, rx) = mpsc::channel();
        let thread = thread::Builder::new()
            .name("jobq-flusher".into())
            .spawn(move || flusher(db, rx, &progress))?;
        Ok(GroupCommit {
            inner: Arc::new(Flusher {
                requests: Some(tx),
                thread: Some(thread),
            }),
        })
    }

    /// Waits until everything written to the store before this call is on
    /// disk, flushed as `urgency` allows.
    pub async fn wait(&self, urgency: Urgency) -> FlushResult {
        let (answer, rx) = async_channel::bounded(1);
        // Unbounded: sending never blocks the executor.
        let sent = self
            .inner
            .requests
            .as_ref()
            .is_some_and(|r| r.send(Request { urgency, answer }).is_ok());
        if !sent {
            return Err(Arc::new(sled::Error::ReportableBug(
                "the flusher thread is gone".into(),
            )));
        }
        rx.recv().await.unwrap_or_else(|_| {
            Err(Arc::new(sled::Error::ReportableBug(
                "the flusher thread dropped a request".into(),
            )))
        })
    }
}

fn flusher(db: sled::Db, requests: mpsc::Receiver<Request>, progress: &Progress) {
    let mut batch: Vec<Request> = Vec::new();
    // When the previous flush ended; the first request never waits.
    let mut last_flush: Option<Instant> = None;
    while let Ok(first) = requests.recv() {
        batch.push(first);
        batch.extend(requests.try_iter());
        let due = last_flush.map_or_else(Instant::now, |at| at + SOON_WINDOW);
        while batch.iter().all(|r| r.urgency == Urgency::Soon) {
            let Some(left) = due.checked_duration_since(Instant::now()) else {
                break;
            };
            match requests.recv_timeout(left) {
                Ok(more) => {
                    batch.push(more);
                    batch.extend(requests.try_iter());
                }
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
            }
        }
        // Every write numbered by now is in sled's memory: this flush
        // covers it.
        let covers = progress.written.load(Ordering::SeqCst);
        let started = Instant::now();
        let result = db.flush().map(drop).map_err(Arc::new);
        crate::metrics::metrics()
            .store_flush
            .observe(started.elapsed().as_secs_f64());
        last_flush = Some(Instant::now());
        match &result {
            Ok(()) => {
                progress.flushed.fetch_max(covers, Ordering::SeqCst);
            }
            Err(e) => tracing::error!(error = %e, waiters = batch.len(), "store flush failed"),
        }
        for request in batch.drain(..) {
            let _ = request.answer.try_send(result.clone());
        }
    }
}
