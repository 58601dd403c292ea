//! The dispatcher and each run: which job starts next (the best head of
//! any queue with room, under the global `workers` permit), and one run
//! from spawn to its recorded end, with automatic retries and what the end
//! causes in dependents.

use std::future::Future;
use std::pin::{pin, Pin};
use std::task::Poll;

use super::*;

/// The delay before the retry of a job whose attempt `job.attempt` just
/// failed: `backoff × 2^(attempt−1)`, ±25% jitter (so jobs failing together
/// do not retry together), capped by `max_backoff`.
fn retry_delay(job: &Job, max_backoff: Duration) -> jiff::SignedDuration {
    let doublings = job.attempt.saturating_sub(1).min(62);
    let base = job.spec.backoff.as_secs_f64() * (1u64 << doublings) as f64;
    let jittered = base * (0.75 + fastrand::f64() * 0.5);
    let capped = jittered.min(max_backoff.as_secs_f64());
    jiff::SignedDuration::try_from_secs_f64(capped).unwrap_or(jiff::SignedDuration::MAX)
}

/// How long a run's start may go unrecorded while other runs are in flight.
/// A start recorded on its own costs a sled batch and a flush; a run that
/// ends sooner has its start recorded with its end, in one batch. Short
/// beside any job a person watches; long beside a `true` under load.
const START_RECORD_DELAY: Duration = Duration::from_millis(2);

impl Engine {
    /// How long this run's start may wait to be recorded. Not at all when
    /// it runs alone (nothing to share the batch with, and a follower
    /// should see `running` at once), nor when interrupted jobs are to
    /// fail: a crash before the start is recorded would run the job again.
    fn start_delay(&self) -> Duration {
        let others = self.inner.in_flight.load(Ordering::SeqCst) > 1;
        match self.inner.config.on_interrupted {
            OnInterrupted::Requeue if others => START_RECORD_DELAY,
            OnInterrupted::Requeue | OnInterrupted::Fail => Duration::ZERO,
        }
    }

    /// Starts queued jobs as workers free up, until shutdown. Event-driven:
    /// it sleeps until a job is put in line, a run ends or a queue changes.
    pub async fn run_dispatcher(&self) {
        let inner = &self.inner;
        loop {
            let permit = inner.workers.acquire_arc().await;
            let (id, stop) = loop {
                let listener = inner.wake.listen();
                if self.is_stopping() {
                    return;
                }
                let mut sched = inner.sched.lock().await;
                let Sched {
                    ready,
                    queues,
                    running,
                    ..
                } = &mut *sched;
                if let Some((queue, id)) = ready.pop(|q| queues.has_room(q)) {
                    queues.started(&queue);
                    let (tx, rx) = async_channel::bounded(1);
                    running.insert(id, Running { stop: tx, queue });
                    break (id, rx);
                }
                drop(sched);
                listener.await;
            };
            inner.in_flight.fetch_add(1, Ordering::SeqCst);
            let engine = self.clone();
            crate::rt::spawn(async move {
                engine.run(id, stop, permit).await;
                engine.inner.in_flight.fetch_sub(1, Ordering::SeqCst);
                engine.inner.idle.notify(usize::MAX);
                engine.inner.wake.notify(1);
            });
        }
    }

    /// One run of one job, from spawn to its recorded end. Errors are logged:
    /// there is nobody to return them to. The worker `permit` is given back
    /// as soon as the end is applied, before it is flushed: the next job
    /// need not wait for this one's fsync.
    async fn run(&self, id: JobId, stop: Receiver<StopReason>, permit: SemaphoreGuardArc) {
        if let Err(e) = self.try_run(id, stop, permit).await {
            tracing::error!(job = %id, error = %e, "job run failed in the daemon");
            // Free its queue slot all the same.
            let mut sched = self.inner.sched.lock().await;
            if let Some(r) = sched.running.remove(&id) {
                sched.queues.finished(&r.queue);
            }
        }
    }

    async fn try_run(
        &self,
        id: JobId,
        stop: Receiver<StopReason>,
        permit: SemaphoreGuardArc,
    ) -> Result<(), EngineError> {
        let store = &self.inner.store;
        let job = match store.get(&id)? {
            Some(job) if job.state == State::Queued => job,
            // Removed or cancelled between its flush and its turn.
            _ => return self.conclude(id, None, permit, None).await,
        };
        let out = OutputWriter::new(
            store.clone(),
            self.inner.output_hub.clone(),
            id,
            self.inner.config.max_output,
        )?;
        let stdin = match job.spec.stdin_bytes {
            Some(_) => store.stdin(&id)?,
            None => None,
        };
        let launch = &self.inner.launch;
        let spawned = match self.account_of(&job) {
            Ok(account) => runner::spawn(
                &job.spec,
                launch,
                &id.to_string(),
                stdin.is_some(),
                &account,
            )
            .await
            .map(|child| (child, account)),
            Err(e) => Err(runner::SpawnError(format!(
                "cannot start the job as {}: {e}",
                job.run_as.as_ref().map_or("its user", |r| r.user.as_str())
            ))),
        };
        let (child, account) = match spawned {
            Ok(spawned) => spawned,
            Err(e) => {
                let mut failed = job.clone();
                failed.fail_to_spawn(e.0, Timestamp::now())?;
                return self.conclude(id, Some((job, failed)), permit, None).await;
            }
        };
        let mut running = job.clone();
        running
            .run_as
            .get_or_insert_with(|| crate::auth::RunAs::from(&account));
        running.start(child.pid(), Timestamp::now())?;
        let timeout = job.spec.timeout;
        // From here on the process runs: a store failure must not leave it
        // unsupervised. It is logged, and the run goes on; the end is
        // recorded against whatever the store then holds.
        let delay = self.start_delay();
        let written = AtomicBool::new(false);
        let (ended, recorded, unannounced) = {
            let mut record = pin!(async {
                if !delay.is_zero() {
                    Timer::after(delay).await;
                }
                written.store(true, Ordering::Relaxed);
                store.update(&job, &running)?;
                store.sync_soon().await?;
                self.announce(&running).await;
                Ok::<_, StoreError>(())
            });
            let supervise = pin!(child.supervise(stdin, &out, stop, timeout, launch.kill_grace));
            let (ended, recorded) = run_alongside(supervise, record.as_mut()).await;
            match recorded {
                Some(result) => (ended, result, None),
                // Written but not yet flushed: see it through, so that nobody
                // learns of the end before the start.
                None if written.load(Ordering::Relaxed) => (ended, record.await, None),
                // Never written: the end's record carries the start, which is
                // announced just before the end.
                None => (ended, Ok(()), Some(running.clone())),
            }
        };
        if let Err(e) = recorded {
            tracing::error!(job = %id, error = %e, "cannot record the job's start; it runs on");
        }
        if let Err(e) = out.mark_truncation() {
            tracing::warn!(job = %id, error = %e, "cannot mark the job's output as truncated");
        }

        let now = Timestamp::now();
        let mut done = running.clone();
        done.output_truncated = out.truncated();
        match ended.stopped {
            None => done.finish(ended.exit, now)?,
            Some(StopReason::Cancel) => done.cancel(Some(ended.exit), now)?,
            Some(StopReason::Timeout) => {
                let limit = humantime::format_duration(timeout.unwrap_or_default());
                done.time_out(
                    ended.exit,
                    format!("the job ran longer than its timeout of {limit}"),
                    now,
                )?
            }
            Some(StopReason::Shutdown) => match self.inner.config.on_interrupted {
                OnInterrupted::Requeue => done.requeue_interrupted(now)?,
                OnInterrupted::Fail => done.fail_interrupted(now)?,
            },
        }
        self.conclude(id, Some((running, done)), permit, unannounced)
            .await
    }

    /// Records the end of a run (`old` → `new`, if there was a transition):
    /// schedules an automatic retry when one is due, applies what the end
    /// causes in dependents, frees the queue slot and the worker `permit`,
    /// then flushes and announces: first the run's start, if it was never
    /// recorded on its own (`unannounced`), then the end.
    async fn conclude(
        &self,
        id: JobId,
        transition: Option<(Job, Job)>,
        permit: SemaphoreGuardArc,
        unannounced: Option<Job>,
    ) -> Result<(), EngineError> {
        let store = &self.inner.store;
        let now = Timestamp::now();
        let mut sched = self.inner.sched.lock().await;
        if let Some(r) = sched.running.remove(&id) {
            sched.queues.finished(&r.queue);
        }
        let Some((old, mut new)) = transition else {
            return Ok(());
        };
        // The transition is applied against the record as stored, which may
        // differ from `old` if writing the start failed.
        let old = store.get(&id)?.unwrap_or(old);
        if new.may_retry() {
            let at = now
                .checked_add(retry_delay(&new, self.inner.config.max_backoff))
                .unwrap_or(Timestamp::MAX);
            new.retry_at(at)?;
        }
        let interrupted = new.state == State::Queued;
        let mut changes = vec![(old, new.clone())];
        changes.append(&mut self.cascade(&new, now)?);
        apply(store, &changes)?;
        drop(sched);
        drop(permit);
        store.sync_soon().await?;
        if let Some(start) = &unannounced {
            self.announce(start).await;
        }
        for (_, job) in &changes {
            if interrupted && job.id == id {
                // Re-queued by shutdown: it goes back in line at the next
                // start, from the store; putting it in line now would start
                // it again during the drain.
                self.inner.changed.notify(usize::MAX);
            } else {
                self.announce(job).await;
            }
        }
        Ok(())
    }
}

/// Polls `main` to its end and `side` alongside it while `side` lasts;
/// returns what `main` gave, and what `side` gave if it ended first. `side`
/// is left as it is otherwise: the caller may finish it or drop it.
async fn run_alongside<A: Future, B: Future>(
    mut main: Pin<&mut A>,
    mut side: Pin<&mut B>,
) -> (A::Output, Option<B::Output>) {
    let mut side_out = None;
    let out = future::poll_fn(|cx| {
        if side_out.is_none() {
            if let Poll::Ready(v) = side.as_mut().poll(cx) {
                side_out = Some(v);
            }
        }
        main.as_mut().poll(cx)
    })
    .await;
    (out, side_out)
}
