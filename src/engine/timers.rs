//! The timer loop: one timer for the earliest thing due, re-armed when an
//! earlier one arrives. A due scheduled job (a delay or a retry's backoff)
//! becomes `queued`; a due schedule fires (`schedules.rs`).

use super::*;

/// What a timer entry is for.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Due {
    /// A scheduled job to make `queued`.
    Job(JobId),
    /// A schedule to fire, by name.
    Schedule(String),
}

/// A time to the millisecond, as the store's indexes keep it, so that an
/// entry made from a record and one loaded from the store at start are the
/// same entry (a cancel must find and remove either).
fn to_ms(at: Timestamp) -> Timestamp {
    Timestamp::from_millisecond(at.as_millisecond()).unwrap_or(at)
}

/// The timer entry of a job due at `at`.
pub(super) fn timer(at: Timestamp, id: JobId) -> (Timestamp, Due) {
    (to_ms(at), Due::Job(id))
}

/// The timer entry of schedule `name`'s fire at `at`.
pub(super) fn fire_timer(at: Timestamp, name: &str) -> (Timestamp, Due) {
    (to_ms(at), Due::Schedule(name.to_owned()))
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
            let next = self
                .inner
                .sched
                .lock()
                .await
                .timers
                .first()
                .map(|(at, _)| *at);
            let now = Timestamp::now();
            match next {
                None => {
                    listener.await;
                    continue;
                }
                Some(at) if at > now => {
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
        let mut fired = super::schedules::Fired::default();
        while let Some((at, _)) = sched.timers.first() {
            if *at > now {
                break;
            }
            let Some((at, due)) = sched.timers.pop_first() else {
                break;
            };
            let id = match due {
                Due::Job(id) => id,
                Due::Schedule(name) => {
                    self.fire_due(&mut sched, &name, at, now, &mut fired)?;
                    continue;
                }
            };
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
        self.announce_fired(fired).await;
        Ok(())
    }
}
