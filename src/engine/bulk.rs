//! Actions on every job that matches a filter (`POST /v1/jobs/clean`,
//! `/cancel`, `/retry`; `jobq clean`, `cancel --queue`, `retry --failed`):
//! one request instead of a loop of them, done a page at a time so the
//! engine lock is never held for long however many jobs match.
//!
//! Each page is read from the listing (state and queue indexes), then, under
//! the lock, every job is read again and acted on only if it still matches:
//! a job that changed in between is left alone, as a single request for it
//! would have been refused.

use super::*;

/// Jobs per page of a bulk action: bounds the lock hold and the batch.
pub(super) const BULK_PAGE: usize = 1000;

/// The jobs a bulk action takes: all that match every filter given.
#[derive(Clone, Debug, Default)]
pub struct Selection {
    /// Only these states; never empty (the action fills in its default).
    pub states: Vec<StateName>,
    /// Only this queue.
    pub queue: Option<String>,
    /// Only jobs that ended (or, if not ended, were submitted) before this.
    pub before: Option<Timestamp>,
    /// Only this owner's jobs (always set for a principal that may act
    /// only on its own).
    pub owner: Option<String>,
}

impl Selection {
    /// True when `job` is one of the selection.
    pub(super) fn matches(&self, job: &Job) -> bool {
        self.states.contains(&job.state.name())
            && self.queue.as_ref().is_none_or(|q| *q == job.spec.queue)
            && self.owner.as_ref().is_none_or(|o| *o == job.owner)
            && self
                .before
                .is_none_or(|cutoff| job.state.finished_at().unwrap_or(job.created_at) < cutoff)
    }
}

impl Engine {
    /// The next page of `selection`, older than `after`; true if more may
    /// follow.
    fn bulk_page(
        &self,
        selection: &Selection,
        after: Option<JobId>,
    ) -> Result<(Vec<Job>, bool), EngineError> {
        let scope = Scope {
            states: &selection.states,
            queue: selection.queue.as_deref(),
        };
        Ok(self
            .inner
            .store
            .list(after, BULK_PAGE, &scope, |job| selection.matches(job))?)
    }

    /// Forgets every terminal job of `selection` and its output; returns
    /// how many.
    pub async fn clean(&self, selection: &Selection) -> Result<u64, EngineError> {
        if let Some(cluster) = self.cluster() {
            return self.cluster_clean(cluster, selection).await;
        }
        self.recovered()?;
        let store = &self.inner.store;
        let mut removed = 0;
        let mut after = None;
        loop {
            let (page, more) = self.bulk_page(selection, after)?;
            after = page.last().map(|j| j.id);
            let sched = self.inner.sched.lock().await;
            let mut doomed = Vec::with_capacity(page.len());
            for job in &page {
                match store.get(&job.id)? {
                    Some(now) if now.state.is_terminal() && selection.matches(&now) => {
                        doomed.push(now)
                    }
                    _ => {}
                }
            }
            let changes: Vec<Change<'_>> = doomed.iter().map(Change::remove).collect();
            store.apply(&changes)?;
            drop(sched);
            for job in &doomed {
                store.remove_output(&job.id)?;
            }
            store.sync().await?;
            removed += doomed.len() as u64;
            if !more {
                break;
            }
        }
        self.inner.changed.notify(usize::MAX);
        Ok(removed)
    }

    /// Cancels every job of `selection` that has not ended: those not
    /// started at once, running ones as `cancel` does (SIGTERM, then
    /// SIGKILL after the grace period). Returns how many, once every one
    /// is terminal.
    pub async fn cancel_all(&self, selection: &Selection) -> Result<u64, EngineError> {
        if let Some(cluster) = self.cluster() {
            return self.cluster_cancel_all(cluster, selection).await;
        }
        self.recovered()?;
        let mut cancelled = 0;
        let mut stopping = Vec::new();
        let mut after = None;
        loop {
            let (page, more) = self.bulk_page(selection, after)?;
            after = page.last().map(|j| j.id);
            let mut sched = self.inner.sched.lock().await;
            let now = Timestamp::now();
            let mut changes = Vec::new();
            for job in &page {
                let Some(job) = self.inner.store.get(&job.id)? else {
                    continue;
                };
                // A cascade earlier in the page may have ended it.
                if job.state.is_terminal() || !selection.matches(&job) {
                    continue;
                }
                if let Some(running) = sched.running.get(&job.id) {
                    let _ = running.stop.try_send(StopReason::Cancel);
                    stopping.push(job.id);
                    continue;
                }
                changes.append(&mut self.cancel_not_running(&mut sched, job, now)?);
                cancelled += 1;
            }
            drop(sched);
            self.inner.store.sync().await?;
            for (_, new) in &changes {
                self.announce(new).await;
            }
            if !more {
                break;
            }
        }
        // Each was sent its stop above: its end is its answer, unless that
        // run ended for a reason of its own and a retry follows, which is
        // cancelled then.
        for id in &stopping {
            let ended = match self.wait_not_running(id).await {
                Ok(job) if job.state.is_terminal() => Ok(job),
                Ok(_) => self.cancel_checked(id).await,
                Err(e) => Err(e),
            };
            match ended {
                Ok(_) | Err(EngineError::NotFound(_)) => cancelled += 1,
                // Its retry ran and ended before this came to it.
                Err(EngineError::Conflict(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(cancelled)
    }

    /// Runs every terminal job of `selection` again (attempt + 1); returns
    /// how many.
    pub async fn retry_all(&self, selection: &Selection) -> Result<u64, EngineError> {
        if let Some(cluster) = self.cluster() {
            return self.cluster_retry_all(cluster, selection).await;
        }
        self.taking_changes()?;
        let store = &self.inner.store;
        let mut retried = 0;
        let mut after = None;
        loop {
            let (page, more) = self.bulk_page(selection, after)?;
            after = page.last().map(|j| j.id);
            let sched = self.inner.sched.lock().await;
            let mut changes = Vec::new();
            for job in &page {
                let Some(job) = store.get(&job.id)? else {
                    continue;
                };
                if !job.state.is_terminal() || !selection.matches(&job) {
                    continue;
                }
                let mut next = job.clone();
                next.retry()?;
                changes.push((job, next));
            }
            apply(store, &changes)?;
            drop(sched);
            store.sync().await?;
            let again: Vec<&Job> = changes.iter().map(|(_, new)| new).collect();
            self.announce_all(&again).await;
            retried += changes.len() as u64;
            if !more {
                break;
            }
        }
        Ok(retried)
    }
}
