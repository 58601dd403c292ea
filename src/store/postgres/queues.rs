//! Queue settings in the cluster: a queue's limit and paused flag live in
//! its row, beside the `running` count the claim keeps, so that a change
//! from any node applies to every node's next claim.

use sqlx::Row;

use super::{query, PgStore, Result};

/// A queue's row.
#[derive(Clone, Debug)]
pub struct QueueRow {
    /// Its name.
    pub name: String,
    /// Its limit across the cluster, if any.
    pub concurrency: Option<u32>,
    /// True while no node starts its jobs.
    pub paused: bool,
    /// Its jobs running now, on all nodes.
    pub running: u32,
}

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

    /// Sets the limit a node's config declares for a queue (`[queues.NAME]
    /// concurrency`), keeping its paused flag: every node applies its
    /// config at start, so nodes should agree on it.
    pub async fn declare_queue(&self, name: &str, concurrency: Option<u32>) -> Result<()> {
        let concurrency = concurrency.map(|c| i32::try_from(c).unwrap_or(i32::MAX));
        sqlx::query(
            "INSERT INTO jobq_queues AS q (name, concurrency) VALUES ($1, $2)
             ON CONFLICT (name) DO UPDATE SET concurrency = EXCLUDED.concurrency",
        )
        .bind(name)
        .bind(concurrency)
        .execute(self.pool())
        .await
        .map_err(query("declare a queue"))?;
        Ok(())
    }

    /// Makes a queue's row with limit `concurrency` unless it has one: a
    /// queue's first use, or `default` at a node's start.
    pub async fn ensure_queue(&self, name: &str, concurrency: Option<u32>) -> Result<()> {
        let concurrency = concurrency.map(|c| i32::try_from(c).unwrap_or(i32::MAX));
        sqlx::query(
            "INSERT INTO jobq_queues (name, concurrency) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(name)
        .bind(concurrency)
        .execute(self.pool())
        .await
        .map_err(query("make a queue"))?;
        Ok(())
    }

    /// Every queue's row, by name.
    pub async fn queue_rows(&self) -> Result<Vec<QueueRow>> {
        let rows =
            sqlx::query("SELECT name, concurrency, paused, running FROM jobq_queues ORDER BY name")
                .fetch_all(self.pool())
                .await
                .map_err(query("read queues"))?;
        Ok(rows
            .into_iter()
            .map(|r| QueueRow {
                name: r.get("name"),
                concurrency: r
                    .get::<Option<i32>, _>("concurrency")
                    .map(|c| u32::try_from(c).unwrap_or(0)),
                paused: r.get("paused"),
                running: u32::try_from(r.get::<i32, _>("running")).unwrap_or(0),
            })
            .collect())
    }

    /// Forgets a queue's row if no job of any state names it (by the
    /// maintained counts); false when some do.
    pub async fn remove_queue(&self, name: &str) -> Result<bool> {
        let rows = sqlx::query(
            "DELETE FROM jobq_queues WHERE name = $1 AND NOT EXISTS (
                 SELECT 1 FROM jobq_job_counts WHERE queue = $1 AND n > 0)",
        )
        .bind(name)
        .execute(self.pool())
        .await
        .map_err(query("remove a queue"))?
        .rows_affected();
        Ok(rows > 0)
    }

    /// Gives every queue with queued jobs a row again: a queue removed
    /// while a submission to it was in flight would otherwise hold jobs no
    /// claim looks at (claims go through the rows).
    pub async fn restore_queue_rows(&self) -> Result<()> {
        sqlx::query(
            "INSERT INTO jobq_queues (name)
             SELECT DISTINCT queue FROM jobq_jobs WHERE state = 'queued'
             ON CONFLICT DO NOTHING",
        )
        .execute(self.pool())
        .await
        .map_err(query("restore queue rows"))?;
        Ok(())
    }
}
