//! Stdin bytes: a job's own, and uploads (`POST /v1/uploads`) not yet
//! claimed by a job.

use super::*;

impl Store {
    /// A job's stdin bytes, if it was given any.
    pub fn stdin(&self, id: &JobId) -> Result<Option<Vec<u8>>> {
        let h = self.h()?;
        let key = keys::by_id(keys::STDIN, id);
        Ok(h.main
            .get(key)
            .map_err(io(format!("read stdin of job {id}")))?
            .map(|v| v.to_vec()))
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
}
