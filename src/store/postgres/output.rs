//! Output in the database: the node that runs a job copies its frames
//! here, so that a follower or a reader on any node gets them (schema
//! version 5). Frames keep the offsets of the node's file: a position is
//! the same on either side.

use sqlx::Row;

use super::{query, uuid_of, PgStore, Result};
use crate::job::JobId;
use crate::store::Stream;

/// Most frames one read returns: a follower reads on.
const READ_FRAMES: i64 = 256;

impl PgStore {
    /// Stores frames of attempt `attempt` (offset after each, stream,
    /// bytes), skipping any stored already, and tells followers on
    /// `jobq_output`.
    pub async fn put_output(
        &self,
        id: &JobId,
        attempt: u32,
        frames: &[(u64, Stream, Vec<u8>)],
    ) -> Result<()> {
        if frames.is_empty() {
            return Ok(());
        }
        let ends: Vec<i64> = frames
            .iter()
            .map(|(e, _, _)| i64::try_from(*e).unwrap_or(i64::MAX))
            .collect();
        let streams: Vec<i16> = frames.iter().map(|(_, s, _)| s.number()).collect();
        let data: Vec<&[u8]> = frames.iter().map(|(_, _, d)| d.as_slice()).collect();
        sqlx::query(
            "WITH put AS (
                 INSERT INTO jobq_output (job_id, attempt, end_at, stream, data)
                 SELECT $1, $2, e, s, d FROM unnest($3::bigint[], $4::smallint[], $5::bytea[]) AS f(e, s, d)
                 ON CONFLICT DO NOTHING
             )
             SELECT pg_notify('jobq_output', $1::text)",
        )
        .bind(uuid_of(id))
        .bind(i32::try_from(attempt).unwrap_or(i32::MAX))
        .bind(&ends)
        .bind(&streams)
        .bind(&data)
        .execute(self.pool())
        .await
        .map_err(query("store output"))?;
        Ok(())
    }

    /// Frames of attempt `attempt` after offset `from`, in order, as
    /// the store of a node gives them from its output file.
    pub async fn read_output_frames(
        &self,
        id: &JobId,
        attempt: u32,
        from: u64,
    ) -> Result<Vec<(u64, Stream, Vec<u8>)>> {
        let rows = sqlx::query(
            "SELECT end_at, stream, data FROM jobq_output
             WHERE job_id = $1 AND attempt = $2 AND end_at > $3
             ORDER BY end_at LIMIT $4",
        )
        .bind(uuid_of(id))
        .bind(i32::try_from(attempt).unwrap_or(i32::MAX))
        .bind(i64::try_from(from).unwrap_or(i64::MAX))
        .bind(READ_FRAMES)
        .fetch_all(self.pool())
        .await
        .map_err(query("read output"))?;
        Ok(rows
            .into_iter()
            .filter_map(|r| {
                let end: i64 = r.get("end_at");
                let stream = Stream::from_number(r.get("stream"))?;
                Some((
                    u64::try_from(end).ok()?,
                    stream,
                    r.get::<Vec<u8>, _>("data"),
                ))
            })
            .collect())
    }
}
