//! Group commit: many writers share one fsync.
//!
//! A writer makes its changes in sled (in memory), then calls
//! [`GroupCommit::wait`]. A dedicated thread takes every waiting request,
//! flushes once, and answers them all. A flush that starts after a write was
//! made covers it, so each waiter is answered by the first flush that began
//! after it asked. While one flush runs, new requests gather for the next:
//! under load the number of fsyncs per second stays near the disk's limit
//! while each one acknowledges many writes.
//!
//! The flusher is a plain thread, not an async task: `fsync` blocks, and a
//! thread of its own keeps it off the executor without borrowing the
//! blocking pool for the daemon's whole life.

use std::sync::Arc;
use std::thread;

use async_channel::{Receiver, Sender};

/// A flush failure, shared by every waiter of that flush.
pub type FlushResult = Result<(), Arc<sled::Error>>;

/// Handle to the flusher thread; cloning shares it. The thread ends when the
/// last handle is dropped.
#[derive(Clone)]
pub struct GroupCommit {
    /// Each request carries the channel its answer goes to.
    requests: Sender<Sender<FlushResult>>,
}

impl GroupCommit {
    /// Starts the flusher thread for `db`.
    pub fn start(db: sled::Db) -> std::io::Result<GroupCommit> {
        let (tx, rx) = async_channel::unbounded();
        thread::Builder::new()
            .name("jobq-flusher".into())
            .spawn(move || flusher(db, rx))?;
        Ok(GroupCommit { requests: tx })
    }

    /// Waits until everything written to the store before this call is on
    /// disk.
    pub async fn wait(&self) -> FlushResult {
        let (tx, rx) = async_channel::bounded(1);
        if self.requests.send(tx).await.is_err() {
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

fn flusher(db: sled::Db, requests: Receiver<Sender<FlushResult>>) {
    let mut batch = Vec::new();
    while let Ok(first) = requests.recv_blocking() {
        batch.push(first);
        while let Ok(more) = requests.try_recv() {
            batch.push(more);
        }
        let result = db.flush().map(drop).map_err(Arc::new);
        if let Err(e) = &result {
            tracing::error!(error = %e, waiters = batch.len(), "store flush failed");
        }
        for waiter in batch.drain(..) {
            let _ = waiter.try_send(result.clone());
        }
    }
}
