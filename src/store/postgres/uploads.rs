//! Uploaded stdin in the cluster: an upload's bytes live in the database in
//! pieces, so whichever node claims its job can feed it; neither storing
//! nor reading one holds more than a piece in memory.

use jiff::Timestamp;
use sqlx::Row;

use super::{query, uuid_of, PgStore, Result};
use crate::job::JobId;

/// An upload being written: its transaction, committed by
/// [`PgStore::finish_upload`] (dropped unfinished, nothing of it stays).
pub struct UploadTx {
    tx: sqlx::Transaction<'static, sqlx::Postgres>,
    id: JobId,
    pieces: i32,
    len: u64,
}

impl PgStore {
    /// Starts storing upload `id`.
    pub async fn begin_upload(&self, id: JobId) -> Result<UploadTx> {
        let mut tx = self
            .pool()
            .begin()
            .await
            .map_err(query("begin storing an upload"))?;
        // Its length comes at the end; nobody sees it before.
        sqlx::query("INSERT INTO jobq_uploads (id, len) VALUES ($1, 0)")
            .bind(uuid_of(&id))
            .execute(&mut *tx)
            .await
            .map_err(query("record an upload"))?;
        Ok(UploadTx {
            tx,
            id,
            pieces: 0,
            len: 0,
        })
    }

    /// Appends the next piece of an upload.
    pub async fn put_upload_piece(&self, upload: &mut UploadTx, bytes: &[u8]) -> Result<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        sqlx::query("INSERT INTO jobq_upload_pieces (upload, n, bytes) VALUES ($1, $2, $3)")
            .bind(uuid_of(&upload.id))
            .bind(upload.pieces)
            .bind(bytes)
            .execute(&mut *upload.tx)
            .await
            .map_err(query("store a piece of an upload"))?;
        upload.pieces += 1;
        upload.len += bytes.len() as u64;
        Ok(())
    }

    /// Records the upload and commits it: from now on a submission may
    /// claim it.
    pub async fn finish_upload(&self, mut upload: UploadTx) -> Result<JobId> {
        sqlx::query("UPDATE jobq_uploads SET len = $2 WHERE id = $1")
            .bind(uuid_of(&upload.id))
            .bind(i64::try_from(upload.len).unwrap_or(i64::MAX))
            .execute(&mut *upload.tx)
            .await
            .map_err(query("record an upload's length"))?;
        upload
            .tx
            .commit()
            .await
            .map_err(query("commit an upload"))?;
        Ok(upload.id)
    }

    /// Claims upload `id` for job `job`; its length, or `None` when there
    /// is no such upload or another job claimed it.
    pub async fn claim_upload(&self, id: &JobId, job: &JobId) -> Result<Option<u64>> {
        let len: Option<i64> = sqlx::query_scalar(
            "UPDATE jobq_uploads SET job = $2 WHERE id = $1 AND job IS NULL RETURNING len",
        )
        .bind(uuid_of(id))
        .bind(uuid_of(job))
        .fetch_optional(self.pool())
        .await
        .map_err(query("claim an upload"))?;
        Ok(len.map(|n| u64::try_from(n).unwrap_or(0)))
    }

    /// Gives back the uploads `jobs` claimed, for a submission that did
    /// not store them.
    pub async fn release_uploads(&self, jobs: &[JobId]) -> Result<()> {
        let ids: Vec<uuid::Uuid> = jobs.iter().map(uuid_of).collect();
        sqlx::query("UPDATE jobq_uploads SET job = NULL WHERE job = ANY($1)")
            .bind(&ids)
            .execute(self.pool())
            .await
            .map_err(query("give back claimed uploads"))?;
        Ok(())
    }

    /// Pieces of the upload job `job` claimed, from piece `from` on, at
    /// most `most` of them: empty past the end (or with no upload).
    pub async fn upload_pieces(&self, job: &JobId, from: i32, most: i64) -> Result<Vec<Vec<u8>>> {
        let rows = sqlx::query(
            "SELECT p.bytes FROM jobq_uploads u JOIN jobq_upload_pieces p ON p.upload = u.id
             WHERE u.job = $1 AND p.n >= $2 ORDER BY p.n LIMIT $3",
        )
        .bind(uuid_of(job))
        .bind(from)
        .bind(most)
        .fetch_all(self.pool())
        .await
        .map_err(query("read an upload"))?;
        Ok(rows.into_iter().map(|r| r.get("bytes")).collect())
    }

    /// Removes uploads nobody claimed since `cutoff`, and claimed ones
    /// older than it whose job is gone. Returns how many.
    pub async fn prune_uploads(&self, cutoff: Timestamp) -> Result<u64> {
        let rows = sqlx::query(
            "DELETE FROM jobq_uploads u WHERE created_at < to_timestamp($1)
                 AND (job IS NULL OR NOT EXISTS (SELECT 1 FROM jobq_jobs j WHERE j.id = u.job))",
        )
        .bind(cutoff.as_millisecond() as f64 / 1000.0)
        .execute(self.pool())
        .await
        .map_err(query("remove old uploads"))?
        .rows_affected();
        Ok(rows)
    }
}
