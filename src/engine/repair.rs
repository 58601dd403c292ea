//! Repair after disk trouble. sled refuses every write after its first I/O
//! error (disk full, read-only file system), for as long as the database
//! is open. This loop waits for the store to break, then tries to reopen
//! it every [`REPAIR_RETRY`] until that works (space is back), and
//! reconciles the engine with what the reopened store holds: what was
//! flushed. Meanwhile submissions get 503 and running jobs keep running.

use std::collections::HashSet;

use super::*;

/// Time between attempts to reopen a broken store: short enough to resume
/// soon after space returns, long enough not to spin on a full disk.
const REPAIR_RETRY: Duration = Duration::from_secs(2);

impl Engine {
    /// Waits for the store to break, then repairs it; until shutdown.
    pub async fn run_repair(&self) {
        let store = &self.inner.store;
        loop {
            let broke = store.on_broken();
            if self.is_stopping() {
                return;
            }
            if !store.is_broken() {
                future::or(broke, async {
                    // Wake now and then to notice shutdown.
                    Timer::after(Duration::from_secs(1)).await;
                })
                .await;
                continue;
            }
            Timer::after(REPAIR_RETRY).await;
            match self.repair().await {
                Ok(requeued) => tracing::info!(requeued, "the store is writable again"),
                Err(e) => tracing::warn!(error = %e, "the store is still unusable; retrying"),
            }
        }
    }

    /// Reopens the store and brings the in-memory queues in line with it.
    /// Runs still in progress keep going; runs whose start or end was not
    /// durable are handled as after a crash (`on_interrupted`). Returns how
    /// many such runs there were.
    async fn repair(&self) -> Result<usize, EngineError> {
        let store = &self.inner.store;
        let now = Timestamp::now();
        let mut sched = self.inner.sched.lock().await;
        store.reopen()?;
        let live: HashSet<JobId> = sched.running.keys().copied().collect();
        // Stored `running` with no run in progress: its end was lost.
        let mut changes = Vec::new();
        for job in store
            .running_jobs()?
            .into_iter()
            .filter(|j| !live.contains(&j.id))
        {
            let mut next = job.clone();
            match self.inner.config.on_interrupted {
                OnInterrupted::Requeue => next.requeue_interrupted(now)?,
                OnInterrupted::Fail => next.fail_interrupted(now)?,
            }
            let mut follow = self.cascade(&next, now)?;
            changes.push((job, next));
            changes.append(&mut follow);
        }
        apply(store, &changes)?;
        sched.ready = ReadyQueues::default();
        for e in store.ready_entries()? {
            if !live.contains(&e.id) {
                sched.ready.push(&e.queue, e.priority, e.seq, e.id);
            }
        }
        sched.timers = store
            .scheduled()?
            .into_iter()
            .map(|(at, id)| timers::timer(at, id))
            .collect();
        sched.timers.extend(self.schedule_timers()?);
        drop(sched);
        store.sync().await?;
        for (_, job) in &changes {
            if job.state != State::Queued {
                self.announce(job).await;
            }
        }
        self.inner.wake.notify(usize::MAX);
        self.inner.timer_wake.notify(usize::MAX);
        Ok(changes.len())
    }
}
