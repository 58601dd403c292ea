//! Job output: one append-only file per attempt, `output/<job id>/<attempt>`
//! in the store directory, beside sled (which keeps the job records).
//!
//! A file is a run of frames in production order: a stream tag (`o`/`e`),
//! the length (4 bytes, big-endian), the bytes. So `stream=all` replays
//! stdout and stderr interleaved as they happened, each stream can still be
//! read alone, and a follower's place in an attempt is a byte offset in its
//! file. A reader stops at a frame not yet whole (being written). Every
//! attempt of a job is kept under its id until the job is deleted or pruned.
//!
//! Output went through sled before (store formats 1 to 6, the `output`
//! tree): [`Store::move_output_to_files`] moves it out. Writes reach the
//! page cache at once (a crash of the daemon loses none) and the disk by
//! the end of the attempt ([`OutputFile::sync`], before its end is
//! recorded); output written before a power loss that came before the
//! attempt's end may be lost, like the end itself.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use super::{file_io, io, keys, Result, Store, StoreError};
use crate::job::JobId;

/// A frame's header: stream tag and length.
const FRAME_HEADER: usize = 5;

/// The largest frame a reader takes as sound: far above any chunk the
/// pumps write (64 KiB), so a larger length means a damaged file.
const MAX_FRAME: usize = 16 * 1024 * 1024;

/// Which stream an output chunk came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    /// The job's stdout.
    Stdout,
    /// The job's stderr.
    Stderr,
}

impl Stream {
    /// The stream as a small number, for a store that keeps frames apart
    /// (PostgreSQL): 1 stdout, 2 stderr.
    pub fn number(self) -> i16 {
        match self {
            Stream::Stdout => 1,
            Stream::Stderr => 2,
        }
    }

    /// [`Stream::number`] read back.
    pub fn from_number(n: i16) -> Option<Stream> {
        match n {
            1 => Some(Stream::Stdout),
            2 => Some(Stream::Stderr),
            _ => None,
        }
    }

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

/// A stored chunk's stream and bytes (a value of the format 1-6 `output`
/// tree).
pub(super) fn decode(value: &[u8]) -> Option<(Stream, &[u8])> {
    let (&tag, data) = value.split_first()?;
    Some((Stream::from_tag(tag)?, data))
}

/// The frames of `bytes` that are whole: (end offset, relative to `bytes`,
/// stream, data); a partial frame at the end is left for the next read.
fn frames(bytes: &[u8]) -> impl Iterator<Item = (usize, Stream, &[u8])> {
    let mut at = 0usize;
    std::iter::from_fn(move || {
        let header = bytes.get(at..at + FRAME_HEADER)?;
        let stream = Stream::from_tag(header[0])?;
        let len = u32::from_be_bytes(header[1..].try_into().ok()?) as usize;
        if len > MAX_FRAME {
            return None;
        }
        let data = bytes.get(at + FRAME_HEADER..at + FRAME_HEADER + len)?;
        at += FRAME_HEADER + len;
        Some((at, stream, data))
    })
}

/// How often the daemon puts written output on disk
/// ([`Store::sync_output`], from the engine's output-sync loop): the crash
/// rule is that output written more than this long ago survives a power
/// loss.
pub const OUTPUT_SYNC_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// An output file written since its last sync.
struct Dirty {
    /// The file.
    file: Arc<File>,
    /// Set while it is in the list; cleared just before its sync, so a
    /// write after that puts it back.
    listed: Arc<AtomicBool>,
    /// For errors.
    path: PathBuf,
}

/// The output files written since the last [`Store::sync_output`].
#[derive(Default)]
pub(super) struct DirtyOutput(Mutex<Vec<Dirty>>);

/// One attempt's output file, opened for appending by its writer; made at
/// the first byte, so a job without output costs no file.
pub struct OutputFile {
    /// Where it goes.
    path: PathBuf,
    /// Open once written to.
    file: Option<Arc<File>>,
    /// Set while the file waits in `dirty` for its sync.
    listed: Arc<AtomicBool>,
    /// The store's list of files to sync.
    dirty: Arc<DirtyOutput>,
}

impl OutputFile {
    /// Appends one frame: `data` from `stream`.
    pub fn append(&mut self, stream: Stream, data: &[u8]) -> Result<()> {
        let what = || format!("write {}", self.path.display());
        let file = match &mut self.file {
            Some(file) => file,
            None => {
                if let Some(dir) = self.path.parent() {
                    std::fs::create_dir_all(dir).map_err(file_io(what()))?;
                }
                let file = OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&self.path)
                    .map_err(file_io(what()))?;
                self.file.insert(Arc::new(file))
            }
        };
        let len = u32::try_from(data.len()).map_err(|_| StoreError::Corrupt {
            key: self.path.display().to_string(),
            reason: format!("a chunk of {} bytes", data.len()),
        })?;
        let mut frame = Vec::with_capacity(FRAME_HEADER + data.len());
        frame.push(stream.tag());
        frame.extend_from_slice(&len.to_be_bytes());
        frame.extend_from_slice(data);
        (&**file).write_all(&frame).map_err(file_io(what()))?;
        if !self.listed.swap(true, Ordering::SeqCst) {
            self.dirty
                .0
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(Dirty {
                    file: file.clone(),
                    listed: self.listed.clone(),
                    path: self.path.clone(),
                });
        }
        Ok(())
    }
}

impl Store {
    /// The directory of every attempt's output of job `id`.
    fn output_dir(&self, id: &JobId) -> PathBuf {
        self.dir.join("output").join(id.to_string())
    }

    /// The output file of attempt `attempt` of job `id`.
    fn output_path(&self, id: &JobId, attempt: u32) -> PathBuf {
        self.output_dir(id).join(attempt.to_string())
    }

    /// The file attempt `attempt` of job `id` writes its output to, emptied
    /// first: a run whose start a crash undid runs again under the same
    /// attempt number, and must not append to the first run's output.
    pub fn output_file(&self, id: &JobId, attempt: u32) -> Result<OutputFile> {
        self.clear_attempt_output(id, attempt)?;
        Ok(OutputFile {
            path: self.output_path(id, attempt),
            file: None,
            listed: Arc::default(),
            dirty: self.dirty_output.clone(),
        })
    }

    /// Puts every output file written since the last call on disk; returns
    /// how many were synced. Blocking: run it on a blocking thread.
    pub fn sync_output(&self) -> Result<usize> {
        let dirty = std::mem::take(
            &mut *self
                .dirty_output
                .0
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        );
        let n = dirty.len();
        let mut failed = None;
        for d in dirty {
            // Unlisted first: a write from here on lists it again, and one
            // whose sync fails is synced again after its next write.
            d.listed.store(false, Ordering::SeqCst);
            if let Err(e) = d.file.sync_data() {
                failed.get_or_insert(file_io(format!("sync {}", d.path.display()))(e));
            }
        }
        failed.map_or(Ok(n), Err)
    }

    /// The frames of attempt `attempt` from byte `from` of its file on,
    /// about `max_bytes` of them: (the offset after the frame, stream,
    /// bytes). Only whole frames: one being written comes at the next read.
    pub fn read_chunks(
        &self,
        id: &JobId,
        attempt: u32,
        from: u64,
        max_bytes: usize,
    ) -> Result<Vec<(u64, Stream, Vec<u8>)>> {
        let path = self.output_path(id, attempt);
        let what = || format!("read {}", path.display());
        let mut file = match File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(file_io(what())(e)),
        };
        let len = file.metadata().map_err(file_io(what()))?.len();
        if len <= from {
            return Ok(Vec::new());
        }
        // At least one whole frame of the largest size the pumps write.
        let window = (len - from).min(max_bytes.max(FRAME_HEADER + (1 << 20)) as u64);
        let mut bytes = vec![0u8; window as usize];
        file.seek(SeekFrom::Start(from)).map_err(file_io(what()))?;
        file.read_exact(&mut bytes).map_err(file_io(what()))?;
        Ok(frames(&bytes)
            .map(|(end, stream, data)| (from + end as u64, stream, data.to_vec()))
            .collect())
    }

    /// Calls `f` with each frame of attempt `attempt`, in order, until it
    /// returns false or the file ends.
    fn each_frame(
        &self,
        id: &JobId,
        attempt: u32,
        mut f: impl FnMut(Stream, &[u8]) -> bool,
    ) -> Result<()> {
        let mut at = 0u64;
        loop {
            let chunks = self.read_chunks(id, attempt, at, 4 << 20)?;
            if chunks.is_empty() {
                return Ok(());
            }
            for (end, stream, data) in chunks {
                at = end;
                if !f(stream, &data) {
                    return Ok(());
                }
            }
        }
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
        let mut skip = offset;
        let mut out = Vec::new();
        self.each_frame(id, attempt, |stream, mut data| {
            if !filter.accepts(stream) {
                return true;
            }
            if skip > 0 {
                let n = skip.min(data.len() as u64);
                skip -= n;
                data = &data[n as usize..];
            }
            let room = max - out.len();
            out.extend_from_slice(&data[..data.len().min(room)]);
            out.len() < max
        })?;
        Ok(out)
    }

    /// True when this store has an output file for attempt `attempt` (on a
    /// cluster: this node ran it).
    pub fn has_output(&self, id: &JobId, attempt: u32) -> bool {
        self.output_path(id, attempt).exists()
    }

    /// How many bytes of output attempt `attempt` kept, both streams.
    pub fn output_len(&self, id: &JobId, attempt: u32) -> Result<u64> {
        let mut total = 0;
        self.each_frame(id, attempt, |_, data| {
            total += data.len() as u64;
            true
        })?;
        Ok(total)
    }

    /// Drops what an earlier run of the same attempt left.
    pub fn clear_attempt_output(&self, id: &JobId, attempt: u32) -> Result<()> {
        let path = self.output_path(id, attempt);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(file_io(format!("remove {}", path.display()))(e))
            }
            _ => Ok(()),
        }
    }

    /// Drops the output of every attempt of job `id`.
    pub fn remove_output(&self, id: &JobId) -> Result<()> {
        let dir = self.output_dir(id);
        match std::fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(file_io(format!("remove {}", dir.display()))(e))
            }
            _ => Ok(()),
        }
    }

    /// The jobs that have output here (one directory each under `output/`):
    /// for a node of a cluster, whose records are in PostgreSQL, to find
    /// the output of jobs another node pruned.
    pub fn output_job_ids(&self) -> Result<Vec<JobId>> {
        let dir = self.dir.join("output");
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(file_io(format!("list {}", dir.display()))(e)),
        };
        Ok(entries
            .flatten()
            .filter_map(|e| e.file_name().to_string_lossy().parse::<JobId>().ok())
            .collect())
    }

    /// Removes the output of jobs the store no longer has (a crash between
    /// a job's removal and its output's). Returns how many went.
    pub fn sweep_output_dirs(&self) -> Result<u64> {
        let dir = self.dir.join("output");
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(file_io(format!("list {}", dir.display()))(e)),
        };
        let mut removed = 0;
        for entry in entries.flatten() {
            let Ok(id) = entry.file_name().to_string_lossy().parse::<JobId>() else {
                continue; // not ours: left alone
            };
            if self.get(&id)?.is_none() && self.remove_output(&id).is_ok() {
                removed += 1;
            }
        }
        Ok(removed)
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

    /// Format 6 → 7: output moves from sled's `output` tree to files, one
    /// per attempt, each synced before the chunks are removed from the
    /// tree (a crash in between moves them again, into emptied files).
    /// Returns how many chunks moved.
    pub(super) fn move_output_to_files(&self) -> Result<u64> {
        let h = self.h()?;
        let mut moved = 0;
        let mut current: Option<((JobId, u32), OutputFile, sled::Batch)> = None;
        let finish = |current: Option<((JobId, u32), OutputFile, sled::Batch)>| -> Result<()> {
            if let Some(((id, _), _, batch)) = current {
                self.sync_output()?;
                h.output
                    .apply_batch(batch)
                    .map_err(io(format!("move the output of job {id}")))?;
            }
            Ok(())
        };
        for item in h.output.iter() {
            let (key, value) = item.map_err(io("read the output tree"))?;
            let (Some(id), Some(attempt)) = (
                key.get(..16).and_then(keys::id_value),
                key.get(16..20)
                    .and_then(|a| <[u8; 4]>::try_from(a).ok())
                    .map(u32::from_be_bytes),
            ) else {
                continue;
            };
            if current
                .as_ref()
                .is_none_or(|(at, _, _)| *at != (id, attempt))
            {
                finish(current.take())?;
                current = Some((
                    (id, attempt),
                    self.output_file(&id, attempt)?,
                    sled::Batch::default(),
                ));
            }
            let (_, file, batch) = current.as_mut().expect("set above");
            if let Some((stream, data)) = decode(&value) {
                file.append(stream, data)?;
                moved += 1;
            }
            batch.remove(&key);
        }
        finish(current)?;
        if moved > 0 {
            let dir = self.dir.join("output");
            File::open(&dir)
                .and_then(|d| d.sync_all())
                .map_err(file_io(format!("sync {}", dir.display())))?;
        }
        Ok(moved)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Durability;
    use std::time::Duration;

    #[test]
    fn frames_are_read_whole_by_offset_and_by_stream() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(
            &dir.path().join("store"),
            Durability::Fsync,
            Duration::from_millis(10),
        )
        .unwrap();
        let id = JobId::new();
        let mut file = store.output_file(&id, 1).unwrap();
        assert!(
            store.read_chunks(&id, 1, 0, 1024).unwrap().is_empty(),
            "no file until the first byte"
        );
        file.append(Stream::Stdout, b"out1\n").unwrap();
        file.append(Stream::Stderr, b"err\n").unwrap();
        file.append(Stream::Stdout, b"out2\n").unwrap();
        let chunks = store.read_chunks(&id, 1, 0, 1024).unwrap();
        let ends: Vec<u64> = chunks.iter().map(|c| c.0).collect();
        assert_eq!(ends, [10, 19, 29]);
        assert_eq!(store.read_chunks(&id, 1, 10, 1024).unwrap()[0].2, b"err\n");
        assert_eq!(
            store
                .read_output(&id, 1, StreamFilter::All, 0, 100)
                .unwrap(),
            b"out1\nerr\nout2\n"
        );
        assert_eq!(
            store
                .read_output(&id, 1, StreamFilter::Stdout, 2, 100)
                .unwrap(),
            b"t1\nout2\n"
        );
        assert_eq!(store.output_len(&id, 1).unwrap(), 14);
        // A frame being written (its header and part of its bytes) is not
        // read until it is whole.
        let path = store.output_path(&id, 1);
        let mut raw = OpenOptions::new().append(true).open(&path).unwrap();
        raw.write_all(&[b'o', 0, 0, 0, 9, b'p', b'a']).unwrap();
        assert_eq!(store.read_chunks(&id, 1, 0, 1024).unwrap().len(), 3);
        raw.write_all(b"rtial!!").unwrap();
        assert_eq!(
            store.read_chunks(&id, 1, 29, 1024).unwrap()[0].2,
            b"partial!!"
        );
        assert_eq!(store.sync_output().unwrap(), 1, "one file written since");
        assert_eq!(store.sync_output().unwrap(), 0);
        // A new run of the attempt starts empty; removal takes every attempt.
        store.output_file(&id, 1).unwrap();
        assert!(store.read_chunks(&id, 1, 0, 1024).unwrap().is_empty());
        store
            .output_file(&id, 2)
            .unwrap()
            .append(Stream::Stdout, b"x")
            .unwrap();
        store.remove_output(&id).unwrap();
        assert!(!store.output_dir(&id).exists());
        store.remove_output(&id).unwrap();
    }
}
