//! Retention: terminal jobs past `retention` or beyond `keep_finished` are
//! pruned, oldest first, with their output; unclaimed uploads after an
//! hour. The loop sleeps until the oldest job expires or a job ends.

use super::*;

/// Most terminal jobs pruned in one batch: keeps each batch (and the lock
/// hold) short while a large backlog is pruned.
const PRUNE_BATCH: usize = 1000;

/// How long an upload waits for a submission to claim it: long enough for
/// a client to upload, then submit, with retries.
pub(super) const UPLOAD_TTL: jiff::SignedDuration = jiff::SignedDuration::from_hours(1);

/// Terminal jobs, for `keep_finished`.
fn terminal_count(store: &Store) -> u64 {
    store
        .counts()
        .iter()
        .filter(|((_, state), _)| state.is_terminal())
        .map(|(_, n)| n)
        .sum()
}

impl Engine {
    /// Prunes terminal jobs older than `retention` or beyond
    /// `keep_finished`, oldest first. Sleeps until the oldest expires or a
    /// finish pushes the count over the limit.
    pub async fn run_retention(&self) {
        loop {
            let listener = self.inner.prune_wake.listen();
            if self.is_stopping() {
                return;
            }
            let next = match self.prune().await {
                Ok(next) => next,
                Err(e) => {
                    tracing::error!(error = %e, "pruning old jobs failed; retrying in 1m");
                    Some(Duration::from_secs(60))
                }
            };
            match next {
                Some(wait) => {
                    future::or(listener, async {
                        Timer::after(wait).await;
                    })
                    .await
                }
                None => listener.await,
            }
        }
    }

    /// Prunes what is due; returns how long until the oldest remaining
    /// terminal job expires.
    async fn prune(&self) -> Result<Option<Duration>, EngineError> {
        let store = &self.inner.store;
        let config = &self.inner.config;
        loop {
            let now = Timestamp::now();
            let retention = jiff::SignedDuration::try_from(config.retention)
                .unwrap_or(jiff::SignedDuration::MAX);
            let cutoff = now.checked_sub(retention).unwrap_or(Timestamp::MIN);
            let excess = terminal_count(store).saturating_sub(config.keep_finished);
            // Usually nothing is due: reading the one past the excess tells
            // whether age prunes more. (A job's end wakes this loop, so
            // reading a whole batch every time was a scan per job.)
            let want = usize::try_from(excess)
                .unwrap_or(PRUNE_BATCH)
                .saturating_add(1)
                .min(PRUNE_BATCH);
            let mut oldest = store.oldest_finished(want)?;
            if want < PRUNE_BATCH && oldest.last().is_some_and(|(at, _)| *at <= cutoff) {
                oldest = store.oldest_finished(PRUNE_BATCH)?;
            }
            let doomed: Vec<JobId> = oldest
                .iter()
                .enumerate()
                .take_while(|(i, (at, _))| (*i as u64) < excess || *at <= cutoff)
                .map(|(_, (_, id))| *id)
                .collect();
            if doomed.is_empty() {
                self.prune_uploads(now).await?;
                return Ok(oldest.first().map(|(at, _)| {
                    let expires = at.checked_add(retention).unwrap_or(Timestamp::MAX);
                    expires.duration_since(now).unsigned_abs() + Duration::from_millis(10)
                }));
            }
            let sched = self.inner.sched.lock().await;
            let jobs: Vec<Job> = doomed
                .iter()
                .filter_map(|id| store.get(id).transpose())
                .collect::<Result<_, _>>()?;
            let jobs: Vec<Job> = jobs.into_iter().filter(|j| j.state.is_terminal()).collect();
            let changes: Vec<Change<'_>> = jobs.iter().map(Change::remove).collect();
            store.apply(&changes)?;
            drop(sched);
            for job in &jobs {
                store.remove_output(&job.id)?;
            }
            store.sync().await?;
            sweep(store).await;
            tracing::debug!(pruned = jobs.len(), "pruned finished jobs");
        }
    }

    /// Drops uploads no submission claimed within [`UPLOAD_TTL`].
    async fn prune_uploads(&self, now: Timestamp) -> Result<(), EngineError> {
        let store = &self.inner.store;
        let cutoff = now.checked_sub(UPLOAD_TTL).unwrap_or(Timestamp::MIN);
        let stale = store.stale_uploads(cutoff)?;
        if stale.is_empty() {
            return Ok(());
        }
        let sched = self.inner.sched.lock().await;
        for id in &stale {
            store.remove_upload(id)?;
        }
        drop(sched);
        store.sync().await?;
        sweep(store).await;
        Ok(())
    }
}

/// Removes the stdin files of uploads and jobs now gone (their removal is
/// durable: the callers synced first). A failure is logged: the files wait
/// for the next sweep.
pub(super) async fn sweep(store: &Store) {
    let store = store.clone();
    match blocking::unblock(move || store.sweep_stdin_files()).await {
        Ok(0) => {}
        Ok(n) => tracing::debug!(removed = n, "removed stdin files no job or upload names"),
        Err(e) => tracing::warn!(error = %e, "cannot remove old stdin files"),
    }
}
