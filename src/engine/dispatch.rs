//! The dispatcher and each run: which job starts next (the best head of
//! any queue with room, under the global `workers` permit), and one run
//! from spawn to its recorded end, with automatic retries and what the end
//! causes in dependents.

use std::future::Future;
use std::pin::{pin, Pin};
use std::task::Poll;

use super::*;
use crate::job::{Exit, FailReason};

/// The delay before the retry of a job whose attempt `job.attempt` just
/// failed: `backoff × 2^(attempt−1)`, ±25% jitter (so jobs failing together
/// do not retry together), capped by `max_backoff`.
pub(super) fn retry_delay(job: &Job, max_backoff: Duration) -> jiff::SignedDuration {
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

/// How long a job the daemon could not start (before any process ran)
/// waits before it is put back in line: long enough not to spin on a
/// store that fails every read, short beside any job's run.
const REQUEUE_PAUSE: Duration = Duration::from_secs(1);

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
            let (job, stop) = loop {
                let listener = inner.wake.listen();
                if self.is_stopping() {
                    return;
                }
                let mut sched = inner.sched.lock().await;
                if let Some(next) = self.next_to_start(&mut sched) {
                    break next;
                }
                drop(sched);
                listener.await;
            };
            inner.in_flight.fetch_add(1, Ordering::SeqCst);
            let engine = self.clone();
            crate::rt::spawn(async move {
                engine.run(job, stop, permit).await;
                engine.inner.in_flight.fetch_sub(1, Ordering::SeqCst);
                engine.inner.idle.notify(usize::MAX);
                engine.inner.wake.notify(1);
            });
        }
    }

    /// The job to start next, taken out of line and entered as running:
    /// the best head of a queue with room that is really `queued`.
    ///
    /// The single gate of every start, under the lock. An entry in line may
    /// be stale: a change is put in line after its flush, so a cancel, a
    /// retry or a second retry in between can leave an entry for a job that
    /// is not queued any more, or two entries for one job. Each is checked
    /// against the table of runs and the stored state before anything
    /// starts; one that fails the check is dropped (the job's own entry, if
    /// it has one, is elsewhere in line).
    fn next_to_start(&self, sched: &mut Sched) -> Option<(Job, Receiver<StopReason>)> {
        let Sched {
            ready,
            queues,
            running,
            ..
        } = sched;
        while let Some((queue, id, since)) = ready.pop(|q| queues.has_room(q)) {
            if running.contains_key(&id) {
                continue;
            }
            match self.current(&id) {
                Ok(job) if job.state == State::Queued => {
                    crate::metrics::metrics()
                        .queue_wait
                        .get_or_create(&crate::metrics::QueueLabel {
                            queue: queue.clone(),
                        })
                        .observe(since.elapsed().as_secs_f64());
                    queues.started(&queue);
                    let (tx, rx) = async_channel::bounded(1);
                    running.insert(id, Running { stop: tx, queue });
                    return Some((job, rx));
                }
                // Removed, or not queued any more.
                Ok(_) | Err(EngineError::NotFound(_)) => {}
                Err(e) => {
                    tracing::error!(job = %id, error = %e, "cannot read a job to start; trying it again later");
                    self.requeue_later(id);
                }
            }
        }
        None
    }

    /// Puts job `id` back in line after [`REQUEUE_PAUSE`], if it is still
    /// queued then: for a job the daemon failed to start before any
    /// process ran (a store read that failed), which must not be stranded
    /// off the line while the store says `queued`.
    fn requeue_later(&self, id: JobId) {
        let engine = self.clone();
        crate::rt::spawn(async move {
            loop {
                Timer::after(REQUEUE_PAUSE).await;
                if engine.is_stopping() {
                    return;
                }
                let mut sched = engine.inner.sched.lock().await;
                if sched.running.contains_key(&id) {
                    return;
                }
                match engine.current(&id) {
                    Ok(job) if job.state == State::Queued => {
                        sched
                            .ready
                            .push(&job.spec.queue, job.spec.priority, job.seq, job.id);
                        drop(sched);
                        engine.inner.wake.notify(1);
                        return;
                    }
                    Ok(_) | Err(EngineError::NotFound(_)) => return,
                    Err(e) => {
                        tracing::warn!(job = %id, error = %e, "cannot read a job to start; trying it again later");
                    }
                }
            }
        });
    }

    /// One run of one job, from spawn to its recorded end. Errors are logged:
    /// there is nobody to return them to. The worker `permit` is given back
    /// as soon as the end is applied, before it is flushed: the next job
    /// need not wait for this one's fsync.
    async fn run(&self, job: Job, stop: Receiver<StopReason>, permit: SemaphoreGuardArc) {
        let id = job.id;
        let started = AtomicBool::new(false);
        if let Err(e) = self.try_run(job, stop, permit, &started).await {
            tracing::error!(job = %id, error = %e, "job run failed in the daemon");
            // Free its queue slot all the same.
            let mut sched = self.inner.sched.lock().await;
            if let Some(r) = sched.running.remove(&id) {
                sched.queues.finished(&r.queue);
            }
            drop(sched);
            if !started.load(Ordering::SeqCst) {
                // No process ran: the job is still queued in the store.
                self.requeue_later(id);
            }
        }
    }

    /// [`run`](Self::run)'s work; sets `spawned` once a process runs.
    async fn try_run(
        &self,
        job: Job,
        stop: Receiver<StopReason>,
        permit: SemaphoreGuardArc,
        spawned: &AtomicBool,
    ) -> Result<(), EngineError> {
        let store = &self.inner.store;
        let id = job.id;
        let out = OutputWriter::new(
            store.clone(),
            self.inner.output_hub.clone(),
            id,
            job.attempt,
            self.inner.config.max_output,
        )?;
        let stdin = match job.spec.stdin_bytes {
            Some(_) => store.stdin(&id)?,
            None => None,
        };
        let launch = &self.inner.launch;
        let (child, account) = match self.spawn_as_its_user(&job, stdin.is_some()).await {
            Ok(spawned) => spawned,
            Err(e) if e.transient => {
                // The daemon is short of descriptors, memory or processes:
                // the job is not at fault and stays queued, back in line
                // after a pause.
                tracing::warn!(job = %id, error = %e, "cannot start the job now; it goes back in line");
                let mut sched = self.inner.sched.lock().await;
                if let Some(r) = sched.running.remove(&id) {
                    sched.queues.finished(&r.queue);
                }
                drop(sched);
                drop(permit);
                self.requeue_later(id);
                return Ok(());
            }
            Err(e) => {
                let mut failed = job.clone();
                failed.fail_to_spawn(e.message, Timestamp::now())?;
                return self.conclude(id, (job, failed), permit, None).await;
            }
        };
        spawned.store(true, Ordering::SeqCst);
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
            let supervise = pin!(child.supervise(
                stdin,
                &out,
                stop,
                timeout,
                job.spec.limits,
                launch.kill_grace
            ));
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

        let stopped = self.process_ended(&job, &ended).await;
        let done = self.ended_run(&running, stopped, &ended, &out)?;
        self.conclude(id, (running, done), permit, unannounced)
            .await
    }

    /// Why the daemon stopped `job`'s process that `ended`, if it did (a
    /// kernel-enforced CPU limit counts), having killed what the attempt
    /// left behind: at once when it was stopped, else by the next sweep.
    /// Shared by both stores' runs.
    pub(super) async fn process_ended(
        &self,
        job: &Job,
        ended: &runner::Ended,
    ) -> Option<StopReason> {
        let stopped = ended
            .stopped
            .or_else(|| cpu_limit_signal(&job.spec.limits, ended));
        match stopped {
            Some(StopReason::Cancel | StopReason::Timeout | StopReason::Limit(_)) => {
                self.kill_strays_of(job.id).await
            }
            _ => self.attempt_ended(),
        }
        stopped
    }

    /// Starts `job`'s process as the user it runs as; an account that
    /// cannot be used is the job's fault, as a failed exec is.
    pub(super) async fn spawn_as_its_user(
        &self,
        job: &Job,
        has_stdin: bool,
    ) -> Result<(runner::Child, Account), runner::SpawnError> {
        match self.account_of(job) {
            Ok(account) => runner::spawn(
                &job.spec,
                &self.inner.launch,
                &job.id.to_string(),
                has_stdin,
                &account,
            )
            .await
            .map(|child| (child, account)),
            Err(e) => Err(runner::SpawnError::of_job(format!(
                "cannot start the job as {}: {e}",
                job.run_as.as_ref().map_or("its user", |r| r.user.as_str())
            ))),
        }
    }

    /// The record of a run that ended, from its record while `running`:
    /// how the process ended (`ended`), why the daemon stopped it if it did
    /// (`stopped`), what output it kept and what it used. Shared by both
    /// stores' runs.
    pub(super) fn ended_run(
        &self,
        running: &Job,
        stopped: Option<StopReason>,
        ended: &runner::Ended,
        out: &OutputWriter,
    ) -> Result<Job, IllegalTransition> {
        let now = Timestamp::now();
        let mut done = running.clone();
        done.output_truncated = out.truncated();
        match stopped {
            None => done.finish(ended.exit, now)?,
            Some(StopReason::Cancel) => done.cancel(Some(ended.exit), now)?,
            Some(StopReason::Timeout) => {
                let limit = humantime::format_duration(running.spec.timeout.unwrap_or_default());
                done.time_out(
                    ended.exit,
                    format!("the job ran longer than its timeout of {limit}"),
                    now,
                )?
            }
            Some(StopReason::Limit(kind)) => done.fail_stopped(
                FailReason::Limit,
                ended.exit,
                running.spec.limits.passed(kind),
                now,
            )?,
            Some(StopReason::Shutdown) => match self.inner.config.on_interrupted {
                OnInterrupted::Requeue => done.requeue_interrupted(now)?,
                OnInterrupted::Fail => done.fail_interrupted(now)?,
            },
        }
        done.note_output(running.attempt, out.stored());
        done.note_usage(running.attempt, ended.usage);
        Ok(done)
    }

    /// Records the end of a run (`old` → `new`):
    /// schedules an automatic retry when one is due, applies what the end
    /// causes in dependents, frees the queue slot and the worker `permit`,
    /// then flushes and announces: first the run's start, if it was never
    /// recorded on its own (`unannounced`), then the end.
    async fn conclude(
        &self,
        id: JobId,
        (old, mut new): (Job, Job),
        permit: SemaphoreGuardArc,
        unannounced: Option<Job>,
    ) -> Result<(), EngineError> {
        let store = &self.inner.store;
        let now = Timestamp::now();
        let mut sched = self.inner.sched.lock().await;
        if let Some(r) = sched.running.remove(&id) {
            sched.queues.finished(&r.queue);
        }
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
pub(super) async fn run_alongside<A: Future, B: Future>(
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

/// A job the kernel stopped for its CPU time: `RLIMIT_CPU`, the per-process
/// backstop of `cpu_time`, sends SIGXCPU at the soft limit and SIGKILL at
/// the hard one. Either, with the CPU time spent, is the limit's doing.
fn cpu_limit_signal(
    limits: &crate::resources::Limits,
    ended: &runner::Ended,
) -> Option<StopReason> {
    let limit = limits.cpu_time?;
    let spent = ended.usage.cpu_user_s + ended.usage.cpu_system_s;
    let by_kernel = match ended.exit {
        Exit::Signal(libc::SIGXCPU) => true,
        Exit::Signal(libc::SIGKILL) => spent >= limit.as_secs_f64(),
        _ => false,
    };
    by_kernel.then_some(StopReason::Limit(crate::resources::LimitKind::CpuTime))
}
