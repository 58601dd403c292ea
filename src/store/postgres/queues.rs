//! Queue settings in the cluster: a queue's limit and paused flag live in
//! its row, beside the `running` count the claim keeps, so that a change
//! from any node applies to every node's next claim.

use super::{query, PgStore, Result};

impl PgStore {
    /// Sets a queue's concurrency limit (`None`: only each node's
    /// `workers` bound it) and paused flag, making its row if needed. A
    /// lower limit stops new claims; jobs already running go on.
    pub async fn put_queue(
        &self,
        name: &str,
        concurrency: Option<u32>,
        paused: bool,
    ) -> Result<()> {
        let concurrency = concurrency.map(|c| i32::try_from(c).unwrap_or(i32::MAX));
        sqlx::query(
            "INSERT INTO jobq_queues AS q (name, concurrency, paused) VALUES ($1, $2, $3)
             ON CONFLICT (name) DO UPDATE SET concurrency = EXCLUDED.concurrency,
                 paused = EXCLUDED.paused",
        )
        .bind(name)
        .bind(concurrency)
        .bind(paused)
        .execute(self.pool())
        .await
        .map_err(query("change a queue"))?;
        Ok(())
    }
}
