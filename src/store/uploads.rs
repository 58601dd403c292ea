//! Stdin: a job's own bytes given in its spec (small, in sled), and
//! uploads (`POST /v1/uploads`, any size), which are files in the store's
//! `stdin/` directory so that neither taking one nor feeding it to a job
//! holds it in memory.
//!
//! An upload is written to `stdin/<id>.part`, fsynced, renamed to
//! `stdin/<id>` and only then recorded (`u` + id → its length), so a
//! recorded upload is always whole. A job that claims it records `I` + job
//! id → upload id in the batch that stores the job and drops the `u` key;
//! the file stays as long as a job names it. Files nothing names (an upload
//! cut off, a job pruned) are removed by [`Store::sweep_stdin_files`].

use std::collections::HashSet;
use std::io::Write;

use super::*;

/// Where a job's stdin comes from, as the runner feeds it.
#[derive(Debug)]
pub enum StdinSource {
    /// Bytes given in the spec.
    Bytes(Vec<u8>),
    /// An upload's file.
    File(PathBuf),
}

/// An upload being written: its file, until [`Store::finish_upload`]
/// records it. Dropped unfinished, its part file is removed.
#[derive(Debug)]
pub struct UploadFile {
    /// The upload's id.
    pub id: JobId,
    /// The part file.
    pub file: std::fs::File,
    path: PathBuf,
    in_progress: Arc<Mutex<HashSet<JobId>>>,
    finished: bool,
}

impl Drop for UploadFile {
    fn drop(&mut self) {
        if !self.finished {
            let _ = std::fs::remove_file(&self.path);
        }
        self.in_progress
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.id);
    }
}

impl UploadFile {
    /// Appends `bytes` (blocking: call it off the executor).
    pub fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.file.write_all(bytes)
    }

    /// The part file opened again for reading from its start, for a
    /// cluster node that copies the upload to the database (blocking).
    pub fn read_back(&mut self) -> std::io::Result<std::fs::File> {
        self.file.flush()?;
        std::fs::File::open(&self.path)
    }
}

impl Store {
    /// The directory of stdin files.
    pub fn stdin_dir(&self) -> PathBuf {
        self.dir.join("stdin")
    }

    fn stdin_file(&self, upload: &JobId) -> PathBuf {
        self.stdin_dir().join(upload.to_string())
    }

    /// A job's stdin, if it was given any.
    pub fn stdin(&self, id: &JobId) -> Result<Option<StdinSource>> {
        let h = self.h()?;
        let read = io(format!("read stdin of job {id}"));
        if let Some(bytes) = h.main.get(keys::by_id(keys::STDIN, id)).map_err(read)? {
            return Ok(Some(StdinSource::Bytes(bytes.to_vec())));
        }
        let read = io(format!("read stdin of job {id}"));
        let named = h
            .main
            .get(keys::by_id(keys::STDIN_FILE, id))
            .map_err(read)?;
        Ok(named
            .and_then(|v| keys::id_value(&v))
            .map(|upload| StdinSource::File(self.stdin_file(&upload))))
    }

    /// Starts an upload: a new part file, removed again unless
    /// [`Store::finish_upload`] records it (blocking).
    pub fn begin_upload(&self) -> Result<UploadFile> {
        let id = JobId::new();
        let dir = self.stdin_dir();
        let path = dir.join(format!("{id}.part"));
        let create = || -> std::io::Result<std::fs::File> {
            std::fs::create_dir_all(&dir)?;
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
        };
        let file = create().map_err(file_io(format!("create {}", path.display())))?;
        self.uploads_in_progress
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id);
        Ok(UploadFile {
            id,
            file,
            path,
            in_progress: self.uploads_in_progress.clone(),
            finished: false,
        })
    }

    /// Makes a whole upload of `len` bytes durable and claimable: fsync,
    /// rename, fsync of the directory, then its record (durable at the next
    /// [`Store::sync`]). Blocking.
    pub fn finish_upload(&self, mut upload: UploadFile, len: u64) -> Result<JobId> {
        let target = self.stdin_file(&upload.id);
        let place = || -> std::io::Result<()> {
            upload.file.sync_all()?;
            std::fs::rename(&upload.path, &target)?;
            std::fs::File::open(self.stdin_dir())?.sync_all()
        };
        place().map_err(file_io(format!("store upload {}", upload.id)))?;
        upload.finished = true;
        let h = self.h()?;
        let written = h
            .main
            .insert(keys::by_id(keys::UPLOAD, &upload.id), &len.to_be_bytes())
            .map(drop)
            .map_err(io(format!("record upload {}", upload.id)));
        self.mark_broken(written)?;
        Ok(upload.id)
    }

    /// The length of an upload not claimed yet.
    pub fn upload(&self, id: &JobId) -> Result<Option<u64>> {
        let h = self.h()?;
        Ok(h.main
            .get(keys::by_id(keys::UPLOAD, id))
            .map_err(io(format!("read upload {id}")))?
            .map(|v| decode_len(&v)))
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

    /// Drops an upload's record; its file goes at the next sweep.
    pub fn remove_upload(&self, id: &JobId) -> Result<()> {
        let h = self.h()?;
        let removed = h
            .main
            .remove(keys::by_id(keys::UPLOAD, id))
            .map(drop)
            .map_err(io(format!("remove upload {id}")));
        self.mark_broken(removed)
    }

    /// Removes the stdin files nothing names any more: part files of
    /// uploads no longer in progress, uploads pruned, and those of jobs
    /// removed. Run once what removed their names is durable (a crash
    /// before that would bring a name back without its file). Returns how
    /// many went.
    pub fn sweep_stdin_files(&self) -> Result<u64> {
        let dir = self.stdin_dir();
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(file_io(format!("list {}", dir.display()))(e)),
        };
        let h = self.h()?;
        let mut named: HashSet<JobId> = HashSet::new();
        for item in h.main.scan_prefix([keys::STDIN_FILE]).values() {
            let value = item.map_err(io("read stdin files"))?;
            if let Some(id) = keys::id_value(&value) {
                named.insert(id);
            }
        }
        for item in h.main.scan_prefix([keys::UPLOAD]).keys() {
            let key = item.map_err(io("read uploads"))?;
            if let Some(id) = keys::id_of(&key) {
                named.insert(id);
            }
        }
        let in_progress = self
            .uploads_in_progress
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let mut removed = 0;
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let (stem, part) = match name.strip_suffix(".part") {
                Some(stem) => (stem, true),
                None => (&*name, false),
            };
            let id = stem.parse::<JobId>().ok();
            let keep = match id {
                Some(id) if part => in_progress.contains(&id),
                Some(id) => named.contains(&id),
                None => true, // not ours: left alone
            };
            if !keep && std::fs::remove_file(entry.path()).is_ok() {
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Format 4 → 5: uploads held their bytes in sled; each becomes a file
    /// and its record its length.
    pub(super) fn move_uploads_to_files(&self) -> Result<u64> {
        let h = self.h()?;
        let dir = self.stdin_dir();
        std::fs::create_dir_all(&dir).map_err(file_io(format!("create {}", dir.display())))?;
        let mut moved = 0;
        for item in h.main.scan_prefix([keys::UPLOAD]) {
            let (key, bytes) = item.map_err(io("read uploads"))?;
            let Some(id) = keys::id_of(&key) else {
                continue;
            };
            let path = self.stdin_file(&id);
            let write = || -> std::io::Result<()> {
                let mut file = std::fs::File::create(&path)?;
                file.write_all(&bytes)?;
                file.sync_all()
            };
            write().map_err(file_io(format!("write {}", path.display())))?;
            h.main
                .insert(&key, &(bytes.len() as u64).to_be_bytes())
                .map_err(io(format!("record upload {id}")))?;
            moved += 1;
        }
        if moved > 0 {
            std::fs::File::open(&dir)
                .and_then(|d| d.sync_all())
                .map_err(file_io(format!("sync {}", dir.display())))?;
        }
        Ok(moved)
    }
}

/// An upload record's length; a damaged one reads as 0 (the file says).
fn decode_len(value: &[u8]) -> u64 {
    value.try_into().map(u64::from_be_bytes).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Format 4 kept an unclaimed upload's bytes in its record; the move
    /// to format 5 writes them to `stdin/<id>` and leaves the length.
    #[test]
    fn a_format_4_upload_record_becomes_a_file_and_its_length() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), Durability::Fsync, Duration::from_millis(5)).unwrap();
        let id = JobId::new();
        let bytes = b"bytes of a format-4 upload\n";
        store
            .h()
            .unwrap()
            .main
            .insert(keys::by_id(keys::UPLOAD, &id), &bytes[..])
            .unwrap();
        assert_eq!(store.move_uploads_to_files().unwrap(), 1);
        assert_eq!(store.upload(&id).unwrap(), Some(bytes.len() as u64));
        assert_eq!(std::fs::read(store.stdin_file(&id)).unwrap(), bytes);
    }
}
