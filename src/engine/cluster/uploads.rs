//! Uploaded stdin on a cluster: an upload is taken to this node's disk as
//! on a daemon of its own, then copied into the database a piece at a
//! time, so any node can feed it; the node that runs the job copies it
//! back to a file of its own for the runner, and removes it after the run.

use futures_lite::{AsyncReadExt, AsyncWriteExt};

use super::*;
use crate::store::{StdinSource, UploadFile};

/// Bytes of an upload per database row.
const PIECE: usize = 256 * 1024;

/// Pieces read from the database at a time when a run fetches its upload.
const FETCH_PIECES: i64 = 8;

impl Engine {
    /// [`Engine::finish_upload`] on the cluster: the part file's `len`
    /// bytes go to the database, and the file goes.
    pub(in crate::engine) async fn cluster_finish_upload(
        &self,
        cluster: &Cluster,
        mut upload: UploadFile,
        len: u64,
    ) -> Result<JobId, EngineError> {
        let id = upload.id;
        let (upload, file) = blocking::unblock(move || {
            let file = upload.read_back();
            (upload, file)
        })
        .await;
        let read_back = |source| EngineError::LocalFile {
            what: format!("read upload {id} back"),
            source,
        };
        let file = file.map_err(read_back)?;
        let mut file = blocking::Unblock::new(file);
        let mut tx = cluster.pg.begin_upload(id).await?;
        let mut buf = vec![0u8; PIECE];
        let mut copied = 0u64;
        loop {
            let mut filled = 0;
            while filled < buf.len() {
                let n = file.read(&mut buf[filled..]).await.map_err(read_back)?;
                if n == 0 {
                    break;
                }
                filled += n;
            }
            if filled == 0 {
                break;
            }
            cluster.pg.put_upload_piece(&mut tx, &buf[..filled]).await?;
            copied += filled as u64;
        }
        if copied != len {
            return Err(EngineError::LocalFile {
                what: format!("store upload {id}"),
                source: std::io::Error::other(format!(
                    "{copied} bytes on disk, not the {len} received"
                )),
            });
        }
        let id = cluster.pg.finish_upload(tx).await?;
        drop(upload); // its part file goes with it
        Ok(id)
    }

    /// Claims `upload` for the job `job` a submission makes; its length.
    pub(super) async fn cluster_claim_upload(
        &self,
        cluster: &Cluster,
        upload: &JobId,
        job: JobId,
        field: String,
    ) -> Result<u64, EngineError> {
        cluster.pg.claim_upload(upload, &job).await?.ok_or_else(|| {
            FieldError::new(
                field,
                format!("no upload {upload}, or another job claimed it (unclaimed uploads are kept for 1h)"),
            )
            .into()
        })
    }

    /// Copies the upload job `id` claimed to a file of this node's for the
    /// run of `attempt`, a few pieces at a time.
    pub(super) async fn cluster_fetch_upload(
        &self,
        cluster: &Cluster,
        id: JobId,
        attempt: u32,
    ) -> Result<StdinSource, EngineError> {
        let path = fetched_path(&self.inner.store, &id, attempt);
        let dir = self.inner.store.stdin_dir();
        let create = {
            let path = path.clone();
            blocking::unblock(move || {
                std::fs::create_dir_all(&dir)?;
                std::fs::File::create(&path)
            })
        };
        let fail = |source| EngineError::LocalFile {
            what: format!("copy the upload of job {id} to this node"),
            source,
        };
        let mut file = blocking::Unblock::new(create.await.map_err(fail)?);
        let mut from = 0i32;
        loop {
            let pieces = cluster.pg.upload_pieces(&id, from, FETCH_PIECES).await?;
            if pieces.is_empty() {
                break;
            }
            for piece in &pieces {
                file.write_all(piece).await.map_err(fail)?;
            }
            from += pieces.len() as i32;
        }
        file.flush().await.map_err(fail)?;
        Ok(StdinSource::File(path))
    }

    /// Removes the copy of job `id`'s upload its run used, if it had one.
    pub(super) async fn cluster_drop_fetched(&self, id: JobId, attempt: u32) {
        let path = fetched_path(&self.inner.store, &id, attempt);
        if let Err(e) = blocking::unblock(move || std::fs::remove_file(path)).await {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(job = %id, error = %e, "cannot remove the copy of a job's upload");
            }
        }
    }
}

impl Engine {
    /// Removes uploads unclaimed for an hour (as on a daemon of its own),
    /// and claimed ones whose job is gone.
    pub(super) async fn cluster_prune_uploads(&self, cluster: &Cluster) {
        let cutoff = Timestamp::now()
            .checked_sub(super::super::retention::UPLOAD_TTL)
            .unwrap_or(Timestamp::MIN);
        match cluster.pg.prune_uploads(cutoff).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(removed = n, "removed uploads no job claimed"),
            Err(e) => tracing::warn!(error = %e, "cannot remove old uploads"),
        }
    }

    /// Removes the copies of uploads runs of an earlier start left (it
    /// stopped before removing them), at the node's start.
    pub(super) async fn cluster_drop_all_fetched(&self) {
        let dir = self.inner.store.stdin_dir();
        let removed = blocking::unblock(move || -> std::io::Result<()> {
            let entries = match std::fs::read_dir(&dir) {
                Ok(entries) => entries,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(e),
            };
            for entry in entries {
                let entry = entry?;
                if entry.file_name().to_string_lossy().starts_with("fetched-") {
                    std::fs::remove_file(entry.path())?;
                }
            }
            Ok(())
        })
        .await;
        if let Err(e) = removed {
            tracing::warn!(error = %e, "cannot remove copies of uploads from before the start");
        }
    }
}

/// Where a run's copy of its job's upload goes: one per attempt, as the
/// next attempt may start here before the last one's copy is removed.
fn fetched_path(store: &Store, id: &JobId, attempt: u32) -> std::path::PathBuf {
    store.stdin_dir().join(format!("fetched-{id}-{attempt}"))
}
