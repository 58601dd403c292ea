//! A job's output log: the runner appends chunks as the process writes them;
//! readers get the bytes of one stream or of both, from a byte offset.
//!
//! Output is stored in chunks in production order (see [`crate::store`]),
//! each tagged with its stream, so `stream=all` replays stdout and stderr
//! interleaved as they happened while each stream can still be read alone.
//!
//! Every attempt's output is kept, apart, until the job is deleted or
//! pruned; a follower goes from one attempt to the next without a gap.
//! Each attempt keeps at most `max_output` bytes: past the cap, the newest
//! output is not kept (the head of a log usually says what went wrong first)
//! and the job is marked `output_truncated`. The pipes are drained all the
//! same, so a flooding job never blocks and never grows memory or disk.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_channel::Sender;
use event_listener::Event;

use crate::job::{Job, JobId};
use crate::store::{OutputFile, Store, StoreError, Stream, StreamFilter};

/// Most bytes a follower reads from the store at a time: bounds its memory
/// whatever the job writes.
pub(crate) const FOLLOW_READ: usize = 256 * 1024;

/// Wakes the followers of a job when its output grows or its state
/// changes. One event per followed job, made when the first follower
/// arrives and dropped when the last leaves, so an unfollowed job costs a
/// map lookup per chunk.
#[derive(Default)]
pub struct OutputHub {
    /// Followed jobs and their events.
    jobs: Mutex<HashMap<JobId, Arc<Event>>>,
}

impl OutputHub {
    /// The event of job `id`, for a new follower.
    fn listen(&self, id: JobId) -> Arc<Event> {
        let mut jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        jobs.entry(id).or_default().clone()
    }

    /// A follower of `id` left.
    fn leave(&self, id: JobId, event: Arc<Event>) {
        let mut jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        drop(event);
        if jobs.get(&id).is_some_and(|e| Arc::strong_count(e) == 1) {
            jobs.remove(&id);
        }
    }

    /// Wakes every follower, to look again: a cluster node that polls
    /// hears of no change in particular.
    pub fn notify_all(&self) {
        let jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        for event in jobs.values() {
            event.notify(usize::MAX);
        }
    }

    /// Job `id` wrote output or changed state.
    pub fn notify(&self, id: &JobId) {
        let jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(event) = jobs.get(id) {
            event.notify(usize::MAX);
        }
    }
}

/// A piece of output on its way to a follower.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Piece {
    /// Which stream it came from.
    pub stream: Stream,
    /// The bytes.
    pub data: Vec<u8>,
    /// Bytes of the followed stream(s) of this attempt sent so far, this
    /// piece included: the position a follower resumes from (SSE `id`,
    /// `offset`).
    pub position: u64,
    /// The attempt whose output this is: positions count per attempt.
    pub attempt: u32,
}

/// What a follower is sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Followed {
    /// Attempt `n` began; its output follows (from position 0).
    Attempt(u32),
    /// Output of the current attempt.
    Output(Piece),
}

/// Where a follower starts: byte `offset` of the chosen stream(s) of
/// `attempt` (the job's current attempt when `None`). Every attempt's
/// output is kept, so a follower that resumes in an attempt that has ended
/// gets the rest of it, then each later attempt whole.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Resume {
    /// Bytes to skip.
    pub offset: u64,
    /// The attempt the offset belongs to.
    pub attempt: Option<u32>,
}

/// Sends job `id`'s output to `tx` from `from` of `filter`: what
/// exists, then each new chunk as it is stored, attempt after attempt,
/// until the job is terminal and everything is sent (or the receiver is
/// gone, or the job deleted).
///
/// Reads from the store, never from the writer's memory, so a slow follower
/// only falls behind itself: it never slows the job or other followers, and
/// it catches up from the store at its own pace. A follower of a job not
/// started yet waits for it. Each attempt it enters (but the one it resumes
/// in) is announced with [`Followed::Attempt`] once it has begun; an
/// attempt is left only once it has ended (its output is then complete),
/// so a quick retry cannot make a follower skip one.
pub async fn follow<E, G, F, C, CF>(
    hub: &OutputHub,
    id: JobId,
    filter: StreamFilter,
    from: Resume,
    tx: Sender<Followed>,
    job_of: G,
    frames_of: C,
) -> Result<(), E>
where
    G: Fn(JobId) -> F,
    F: std::future::Future<Output = Result<Option<Job>, E>>,
    C: Fn(JobId, u32, u64) -> CF,
    CF: std::future::Future<Output = Result<Vec<(u64, Stream, Vec<u8>)>, E>>,
{
    let event = hub.listen(id);
    let result = follow_inner(&event, id, filter, from, &tx, job_of, frames_of).await;
    hub.leave(id, event);
    result
}

async fn follow_inner<E, G, F, C, CF>(
    event: &Event,
    id: JobId,
    filter: StreamFilter,
    from: Resume,
    tx: &Sender<Followed>,
    job_of: G,
    frames_of: C,
) -> Result<(), E>
where
    G: Fn(JobId) -> F,
    F: std::future::Future<Output = Result<Option<Job>, E>>,
    C: Fn(JobId, u32, u64) -> CF,
    CF: std::future::Future<Output = Result<Vec<(u64, Stream, Vec<u8>)>, E>>,
{
    let Some(job) = job_of(id).await? else {
        return Ok(());
    };
    // A resume point names its attempt: the follower knows it already.
    let (mut attempt, mut announced) = match from.attempt {
        Some(a) => (a.clamp(1, job.attempt), true),
        None => (job.attempt, false),
    };
    // Where the next read of the attempt's file starts.
    let mut next_chunk = 0u64;
    let mut skip = from.offset;
    let mut position = from.offset;
    loop {
        let listener = event.listen();
        let Some(job) = job_of(id).await? else {
            return Ok(());
        };
        // Read the state before the chunks: an attempt's end (its record,
        // or the next attempt's number) is stored after its last output, so
        // "ended and nothing more" means this attempt is all sent.
        let current = attempt == job.attempt;
        let ended = !current || job.state.is_terminal();
        // An attempt that never ran has no output: whatever its number
        // holds before its start is a crashed run's, which the start clears.
        let started = job.attempt_started(attempt);
        if started && !announced {
            announced = true;
            if tx.send(Followed::Attempt(attempt)).await.is_err() {
                return Ok(());
            }
        }
        let chunks = if started {
            frames_of(id, attempt, next_chunk).await?
        } else {
            Vec::new()
        };
        if chunks.is_empty() {
            if !ended {
                listener.await;
            } else if current {
                return Ok(());
            } else {
                // On to the next attempt, from its start.
                attempt += 1;
                announced = false;
                next_chunk = 0;
                skip = 0;
                position = 0;
            }
            continue;
        }
        for (end, stream, mut data) in chunks {
            next_chunk = end;
            if !filter.accepts(stream) {
                continue;
            }
            if skip > 0 {
                let cut = skip.min(data.len() as u64) as usize;
                skip -= cut as u64;
                data.drain(..cut);
                if data.is_empty() {
                    continue;
                }
            }
            position += data.len() as u64;
            let piece = Piece {
                stream,
                data,
                position,
                attempt,
            };
            if tx.send(Followed::Output(piece)).await.is_err() {
                return Ok(()); // the follower went away
            }
        }
    }
}

/// Appends one attempt's output to the store. Shared by the stdout and
/// stderr pumps of that attempt.
pub struct OutputWriter {
    /// Whose output this is.
    id: JobId,
    /// The attempt's file; one for both streams, so frame order is
    /// production order.
    file: Mutex<OutputFile>,
    /// Bytes written so far, kept or not.
    kept: AtomicU64,
    /// Bytes stored so far (the truncation line included).
    stored: AtomicU64,
    /// Most bytes kept for this attempt.
    cap: u64,
    /// Wakes followers on each chunk.
    hub: Arc<OutputHub>,
    /// Set once some output was dropped.
    truncated: AtomicBool,
}

impl OutputWriter {
    /// A writer for attempt `attempt` of job `id`; clears what an earlier
    /// run of the same attempt left (one a crash undid).
    pub fn new(
        store: Store,
        hub: Arc<OutputHub>,
        id: JobId,
        attempt: u32,
        cap: u64,
    ) -> Result<OutputWriter, StoreError> {
        let file = store.output_file(&id, attempt)?;
        Ok(OutputWriter {
            id,
            file: Mutex::new(file),
            kept: AtomicU64::new(0),
            stored: AtomicU64::new(0),
            cap,
            hub,
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
        self.store_chunk(stream, keep)
    }

    fn store_chunk(&self, stream: Stream, data: &[u8]) -> Result<(), StoreError> {
        self.file
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .append(stream, data)?;
        self.stored.fetch_add(data.len() as u64, Ordering::SeqCst);
        let stream_name = match stream {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        };
        crate::metrics::metrics()
            .output_bytes
            .get_or_create(&crate::metrics::StreamLabel {
                stream: stream_name,
            })
            .inc_by(data.len() as u64);
        self.hub.notify(&self.id);
        Ok(())
    }

    /// Marks the gap once the attempt is over, if output was dropped: a last
    /// line on stderr saying how much was not kept (beyond the cap, so a
    /// reader of the log sees it where the output stops).
    pub fn mark_truncation(&self) -> Result<(), StoreError> {
        if !self.truncated() {
            return Ok(());
        }
        let written = self.kept.load(Ordering::SeqCst);
        let line = format!(
            "\n[jobq: output truncated: {} of {written} bytes not kept (max_output = {} bytes)]\n",
            written.saturating_sub(self.cap),
            self.cap
        );
        self.store_chunk(Stream::Stderr, line.as_bytes())
    }

    /// True once output past the cap was dropped.
    pub fn truncated(&self) -> bool {
        self.truncated.load(Ordering::SeqCst)
    }

    /// Bytes this attempt has stored, both streams: its `output_bytes`.
    pub fn stored(&self) -> u64 {
        self.stored.load(Ordering::SeqCst)
    }
}
