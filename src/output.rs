//! A job's output log: the runner appends chunks as the process writes them;
//! readers get the bytes of one stream or of both, from a byte offset.
//!
//! Output is stored in chunks in production order (see [`crate::store`]),
//! each tagged with its stream, so `stream=all` replays stdout and stderr
//! interleaved as they happened while each stream can still be read alone.
//!
//! Each attempt keeps at most `max_output` bytes: past the cap, the newest
//! output is not kept (the head of a log usually says what went wrong first)
//! and the job is marked `output_truncated`. The pipes are drained all the
//! same, so a flooding job never blocks and never grows memory or disk.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::job::JobId;
use crate::store::{Store, StoreError, Stream};

/// Appends one attempt's output to the store. Shared by the stdout and
/// stderr pumps of that attempt.
pub struct OutputWriter {
    /// Where chunks go.
    store: Store,
    /// Whose output this is.
    id: JobId,
    /// Number of the next chunk: one counter for both streams, so chunk order
    /// is production order.
    next_chunk: AtomicU64,
    /// Bytes kept so far.
    kept: AtomicU64,
    /// Most bytes kept for this attempt.
    cap: u64,
    /// Set once some output was dropped.
    truncated: AtomicBool,
}

impl OutputWriter {
    /// A writer for a new attempt of job `id`; clears what an earlier
    /// attempt left.
    pub fn new(store: Store, id: JobId, cap: u64) -> Result<OutputWriter, StoreError> {
        store.clear_output(&id)?;
        Ok(OutputWriter {
            store,
            id,
            next_chunk: AtomicU64::new(0),
            kept: AtomicU64::new(0),
            cap,
            truncated: AtomicBool::new(false),
        })
    }

    /// Keeps `data` from `stream`, or the part of it under the cap.
    pub fn append(&self, stream: Stream, data: &[u8]) -> Result<(), StoreError> {
        let before = self.kept.fetch_add(data.len() as u64, Ordering::SeqCst);
        let room = self.cap.saturating_sub(before);
        let keep = &data[..data.len().min(room as usize)];
        if keep.len() < data.len() {
            self.truncated.store(true, Ordering::SeqCst);
        }
        if keep.is_empty() {
            return Ok(());
        }
        let chunk = self.next_chunk.fetch_add(1, Ordering::SeqCst);
        self.store.append_output(&self.id, chunk, stream, keep)
    }

    /// True once output past the cap was dropped.
    pub fn truncated(&self) -> bool {
        self.truncated.load(Ordering::SeqCst)
    }
}
