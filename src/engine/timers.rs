//! The timer loop: one timer for the earliest scheduled job (a delay or a
//! retry's backoff), re-armed when an earlier one arrives; due jobs become
//! `queued`.

use super::*;

/// The timer entry of a job due at `at`: to the millisecond, as the store's
/// timer index keeps it, so that an entry made from a job's state and one
/// loaded from the store at start are the same entry (a cancel must find
/// and remove either).
pub(super) fn timer(at: Timestamp, id: JobId) -> (Timestamp, JobId) {
    let ms = Timestamp::from_millisecond(at.as_millisecond()).unwrap_or(at);
    (ms, id)
}

impl Engine {
    /// Makes scheduled jobs `queued` when they are due. One timer, for the
    /// earliest job; re-armed when an earlier one arrives.
    pub async fn run_timers(&self) {
        loop {
            let listener = self.inner.timer_wake.listen();
            if self.is_stopping() {
                return;
            }
            let next = self.inner.sched.lock().await.timers.first().copied();
            let now = Timestamp::now();
            match next {
                None => {
                    listener.await;
                    continue;
                }
                Some((at, _)) if at > now => {
                    let wait = at.duration_since(now).unsigned_abs();
                    future::or(listener, async {
                        Timer::after(wait).await;
                    })
                    .await;
                    continue;
                }
                Some(_) => {}
            }
            if let Err(e) = self.make_due(now).await {
                tracing::error!(error = %e, "cannot start due jobs; retrying in 1s");
                Timer::after(Duration::from_secs(1)).await;
            }
        }
    }

    async fn make_due(&self, now: Timestamp) -> Result<(), EngineError> {
        let store = &self.inner.store;
        let mut sched = self.inner.sched.lock().await;
        let mut changes = Vec::new();
        while let Some(&(at, id)) = sched.timers.first() {
            if at > now {
                break;
            }
            sched.timers.pop_first();
            let Some(job) = store.get(&id)? else { continue };
            let State::Scheduled { at: due } = job.state else {
                continue;
            };
            // An entry can be stale, from an earlier schedule of this job
            // (cancelled, or retried since): only the job's own due time
            // counts, and that entry is elsewhere on the timers.
            if timer(due, id).0 > now {
                continue;
            }
            let mut next = job.clone();
            next.make_due()?;
            changes.push((job, next));
        }
        apply(store, &changes)?;
        drop(sched);
        store.sync().await?;
        for (_, new) in &changes {
            self.announce(new).await;
        }
        Ok(())
    }
}
