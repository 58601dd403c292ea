//! Job output in the store: chunks of each attempt, in production order.
//!
//! Key: job id (16 bytes) + attempt (4, big-endian) + chunk number (8,
//! big-endian), in the `output` tree; value: a stream tag (`o`/`e`) and the
//! bytes. So one attempt's chunks are one key range read in order, every
//! attempt of a job is kept under its id until the job is deleted or
//! pruned, and reading attempt 1 after attempt 2 ran is a range scan like
//! any other. Format 2 stores had no attempt in the key (their output was
//! the current attempt's): [`Store::migrate_output_keys`] rewrites them.

use super::{io, keys, Result, Store};
use crate::job::JobId;

/// Which stream an output chunk came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    /// The job's stdout.
    Stdout,
    /// The job's stderr.
    Stderr,
}

impl Stream {
    fn tag(self) -> u8 {
        match self {
            Stream::Stdout => b'o',
            Stream::Stderr => b'e',
        }
    }

    fn from_tag(tag: u8) -> Option<Stream> {
        match tag {
            b'o' => Some(Stream::Stdout),
            b'e' => Some(Stream::Stderr),
            _ => None,
        }
    }
}

/// What a reader of output wants: one stream, or both in production order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamFilter {
    /// stdout only.
    Stdout,
    /// stderr only.
    Stderr,
    /// Both, interleaved as produced.
    All,
}

impl StreamFilter {
    /// True when chunks of `stream` belong to this view.
    pub fn accepts(self, stream: Stream) -> bool {
        match self {
            StreamFilter::All => true,
            StreamFilter::Stdout => stream == Stream::Stdout,
            StreamFilter::Stderr => stream == Stream::Stderr,
        }
    }
}

/// Splits an output key into (attempt, chunk).
fn attempt_and_chunk(key: &[u8]) -> Option<(u32, u64)> {
    let attempt = u32::from_be_bytes(key.get(16..20)?.try_into().ok()?);
    let chunk = u64::from_be_bytes(key.get(20..28)?.try_into().ok()?);
    Some((attempt, chunk))
}

/// A stored chunk's stream and bytes.
pub(super) fn decode(value: &[u8]) -> Option<(Stream, &[u8])> {
    let (&tag, data) = value.split_first()?;
    Some((Stream::from_tag(tag)?, data))
}

impl Store {
    /// Appends chunk number `chunk` of attempt `attempt` of job `id`.
    pub fn append_output(
        &self,
        id: &JobId,
        attempt: u32,
        chunk: u64,
        stream: Stream,
        data: &[u8],
    ) -> Result<()> {
        let h = self.h()?;
        let mut value = Vec::with_capacity(1 + data.len());
        value.push(stream.tag());
        value.extend_from_slice(data);
        let written = h
            .output
            .insert(keys::output(id, attempt, chunk), value)
            .map(drop)
            .map_err(io(format!("write output of job {id}")));
        self.mark_broken(written)
    }

    /// Chunks of attempt `attempt` from number `from` on, about `max_bytes`
    /// of them: (number, stream, bytes).
    pub fn read_chunks(
        &self,
        id: &JobId,
        attempt: u32,
        from: u64,
        max_bytes: usize,
    ) -> Result<Vec<(u64, Stream, Vec<u8>)>> {
        let h = self.h()?;
        let start = keys::output(id, attempt, from);
        let end = keys::output(id, attempt, u64::MAX);
        let mut out = Vec::new();
        let mut total = 0;
        for item in h.output.range(start..=end) {
            let (key, value) = item.map_err(io(format!("read output of job {id}")))?;
            let (Some((_, n)), Some((stream, data))) = (attempt_and_chunk(&key), decode(&value))
            else {
                continue;
            };
            total += data.len();
            out.push((n, stream, data.to_vec()));
            if total >= max_bytes {
                break;
            }
        }
        Ok(out)
    }

    /// Attempt `attempt`'s output from byte `offset` of the chosen
    /// stream(s), at most `max` bytes.
    pub fn read_output(
        &self,
        id: &JobId,
        attempt: u32,
        filter: StreamFilter,
        offset: u64,
        max: usize,
    ) -> Result<Vec<u8>> {
        let h = self.h()?;
        let mut skip = offset;
        let mut out = Vec::new();
        for item in h.output.scan_prefix(keys::output_prefix(id, attempt)) {
            let (_, value) = item.map_err(io(format!("read output of job {id}")))?;
            let Some((stream, mut data)) = decode(&value) else {
                continue;
            };
            if !filter.accepts(stream) {
                continue;
            }
            if skip > 0 {
                let n = skip.min(data.len() as u64);
                skip -= n;
                data = &data[n as usize..];
            }
            let room = max - out.len();
            out.extend_from_slice(&data[..data.len().min(room)]);
            if out.len() == max {
                break;
            }
        }
        Ok(out)
    }

    /// How many bytes of output attempt `attempt` kept, both streams.
    pub fn output_len(&self, id: &JobId, attempt: u32) -> Result<u64> {
        let h = self.h()?;
        let mut total = 0;
        for item in h.output.scan_prefix(keys::output_prefix(id, attempt)) {
            let (_, value) = item.map_err(io(format!("read output of job {id}")))?;
            total += value.len().saturating_sub(1) as u64;
        }
        Ok(total)
    }

    /// Drops what an earlier run of the same attempt left: a run whose start
    /// a crash undid runs again under the same attempt number, and must not
    /// append to the first run's chunks.
    pub fn clear_attempt_output(&self, id: &JobId, attempt: u32) -> Result<()> {
        self.remove_prefix(id, &keys::output_prefix(id, attempt))
    }

    /// Drops the output of every attempt of job `id`.
    pub fn remove_output(&self, id: &JobId) -> Result<()> {
        self.remove_prefix(id, id.as_bytes())
    }

    fn remove_prefix(&self, id: &JobId, prefix: &[u8]) -> Result<()> {
        let h = self.h()?;
        let mut batch = sled::Batch::default();
        let mut any = false;
        for key in h.output.scan_prefix(prefix).keys() {
            batch.remove(key.map_err(io(format!("read output of job {id}")))?);
            any = true;
        }
        if !any {
            // Most runs start with no earlier output. An empty batch is not
            // free in sled: every batch seals the log buffer and hands a
            // write to sled's I/O threads.
            return Ok(());
        }
        let removed = h
            .output
            .apply_batch(batch)
            .map_err(io(format!("remove output of job {id}")));
        self.mark_broken(removed)
    }

    /// Format 2 → 3: gives every chunk the attempt it belongs to. A format-2
    /// chunk (`id` + chunk number, 24 bytes) is the output of the job's
    /// current attempt, the only one format 2 kept. One batch per job;
    /// returns how many chunks moved.
    pub(super) fn migrate_output_keys(&self) -> Result<u64> {
        let h = self.h()?;
        let mut moved = 0;
        let mut job: Option<(JobId, u32, sled::Batch)> = None;
        let flush = |job: Option<(JobId, u32, sled::Batch)>| -> Result<()> {
            if let Some((id, _, batch)) = job {
                h.output
                    .apply_batch(batch)
                    .map_err(io(format!("move the output of job {id}")))?;
            }
            Ok(())
        };
        for item in h.output.iter() {
            let (key, value) = item.map_err(io("read the output tree"))?;
            if key.len() != 24 {
                continue;
            }
            let id = JobId::from_bytes(key[..16].try_into().expect("16 bytes"));
            let chunk = u64::from_be_bytes(key[16..24].try_into().expect("8 bytes"));
            if job.as_ref().is_none_or(|(j, _, _)| *j != id) {
                flush(job.take())?;
                let attempt = self.get(&id)?.map_or(1, |j| j.attempt);
                job = Some((id, attempt, sled::Batch::default()));
            }
            let (_, attempt, batch) = job.as_mut().expect("set above");
            batch.remove(&key);
            batch.insert(&keys::output(&id, *attempt, chunk), value);
            moved += 1;
        }
        flush(job)?;
        Ok(moved)
    }
}
