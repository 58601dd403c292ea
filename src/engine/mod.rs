//! The shared state and every operation on it: submit, cancel, retry,
//! remove, list, wait; the dispatcher that starts queued jobs under the
//! worker limit; the bookkeeping of each running job.
//!
//! Locking rules (see docs/architecture.md):
//! - `sched` (an async mutex) guards the ready queues and the table of running
//!   jobs. It is held only across synchronous work — deciding a transition
//!   and writing it to sled's memory — never across an await on I/O.
//! - Durability is awaited *after* the lock is released (`store.sync()`), and
//!   only then is the change announced (the `changed` event, the ready
//!   queues, the HTTP answer). So nobody learns of a change the store could
//!   still lose.
//! - The global worker limit is a semaphore; wake-ups are events; nothing
//!   sleeps in a loop to poll.

mod ready;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_channel::{Receiver, Sender};
use async_io::Timer;
use async_lock::{Mutex, Semaphore, SemaphoreGuardArc};
use event_listener::Event;
use futures_lite::future;
use jiff::Timestamp;

use crate::api::FieldError;
use crate::config::{Config, OnInterrupted};
use crate::job::{IllegalTransition, Job, JobId, JobSpec, State, StateName};
use crate::output::OutputWriter;
use crate::runner::{self, Launch, StopReason};
use crate::store::{Store, StoreError};

use ready::ReadyQueues;

/// Why an operation was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// No job has this id.
    #[error("no job {0}")]
    NotFound(JobId),
    /// The job's state forbids it.
    #[error(transparent)]
    Conflict(#[from] IllegalTransition),
    /// A field is wrong in a way only the daemon can tell.
    #[error(transparent)]
    Invalid(#[from] FieldError),
    /// The daemon is shutting down and takes no new work.
    #[error("jobq is shutting down and accepts no new work")]
    ShuttingDown,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A listing request, already validated.
#[derive(Clone, Debug, Default)]
pub struct ListQuery {
    /// Only these states (any when empty).
    pub states: Vec<StateName>,
    /// Only this queue.
    pub queue: Option<String>,
    /// Only jobs with all of these labels.
    pub labels: Vec<(String, String)>,
    /// Jobs older than this one (the previous page's `next_cursor`).
    pub before: Option<JobId>,
    /// Page size.
    pub limit: usize,
}

/// A page of jobs and where the next one starts.
#[derive(Clone, Debug)]
pub struct Page {
    /// Newest first.
    pub jobs: Vec<Job>,
    /// The id to pass as `before` for the next page.
    pub next: Option<JobId>,
}

/// A job that has been handed to a worker.
struct Running {
    /// Asks its runner to stop.
    stop: Sender<StopReason>,
}

/// State guarded by the engine lock.
#[derive(Default)]
struct Sched {
    /// Durable queued jobs waiting for a worker.
    ready: ReadyQueues,
    /// Jobs taken from `ready` whose run has not ended, by id.
    running: HashMap<JobId, Running>,
}

/// The engine. Cheap to clone; all clones share one state.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    /// Durable records.
    store: Store,
    /// Settings (immutable while running).
    config: Arc<Config>,
    /// How the runner starts processes.
    launch: Launch,
    /// Ready queues and running jobs.
    sched: Mutex<Sched>,
    /// At most `workers` jobs run at once.
    workers: Arc<Semaphore>,
    /// Notified when a job may have become runnable.
    wake: Event,
    /// Notified after any job's change is durable; waiters re-read their job.
    changed: Event,
    /// Set once shutdown began: no new submissions, no new starts.
    stopping: AtomicBool,
    /// Runs in progress; the drain waits for it to reach zero.
    in_flight: AtomicUsize,
    /// Notified when `in_flight` drops.
    idle: Event,
}

impl Engine {
    /// An engine over an opened store. Call [`Engine::recover`] before
    /// [`Engine::run_dispatcher`].
    pub fn new(store: Store, config: Arc<Config>) -> Engine {
        let launch = Launch {
            shell: config.shell.clone(),
            work_dir: config.work_dir(),
            kill_grace: config.kill_grace,
        };
        Engine {
            inner: Arc::new(Inner {
                store,
                workers: Arc::new(Semaphore::new(config.workers)),
                config,
                launch,
                sched: Mutex::new(Sched::default()),
                wake: Event::new(),
                changed: Event::new(),
                stopping: AtomicBool::new(false),
                in_flight: AtomicUsize::new(0),
                idle: Event::new(),
            }),
        }
    }

    /// The first retry delay for specs that give none (config `backoff`).
    pub fn default_backoff(&self) -> Duration {
        self.inner.config.backoff
    }

    /// The store, for readers that need no engine state (output).
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Brings the store to a consistent state after a start: jobs that were
    /// running when the daemon died are handled by policy; queued jobs are
    /// put back in line. Returns how many interrupted jobs were found.
    pub async fn recover(&self) -> Result<usize, EngineError> {
        let store = &self.inner.store;
        let now = Timestamp::now();
        let interrupted = store.running_jobs()?;
        for job in &interrupted {
            // Rule: a job recorded `running` has no supervisor any more. Its
            // process group, if it survived us, is killed first so the job
            // never runs twice at the same time.
            if let State::Running { pid, .. } = job.state {
                kill_orphaned_group(pid, &job.id);
            }
            let mut next = job.clone();
            match self.inner.config.on_interrupted {
                // Rule (default): run it again, attempt + 1.
                OnInterrupted::Requeue => next.requeue_interrupted()?,
                // Rule: give up, `failed` with reason `interrupted`.
                OnInterrupted::Fail => next.fail_interrupted(now)?,
            }
            store.update(job, &next)?;
            tracing::info!(job = %job.id, policy = ?self.inner.config.on_interrupted, "job was running when jobq stopped");
        }
        store.sync().await?;
        // Rule: queued jobs (including the ones re-queued above) go back in
        // line in their original order.
        let entries = store.ready_entries()?;
        let mut sched = self.inner.sched.lock().await;
        for e in &entries {
            sched.ready.push(&e.queue, e.priority, e.seq, e.id);
        }
        drop(sched);
        tracing::info!(
            queued = entries.len(),
            interrupted = interrupted.len(),
            "recovered"
        );
        Ok(interrupted.len())
    }

    /// Accepts a job: stores it durably, then puts it in line. Returns once
    /// the job is on disk.
    pub async fn submit(&self, spec: JobSpec, stdin: Option<Vec<u8>>) -> Result<Job, EngineError> {
        if self.inner.stopping.load(Ordering::SeqCst) {
            return Err(EngineError::ShuttingDown);
        }
        refuse_unsupported(&spec)?;
        let store = &self.inner.store;
        let job = Job::new(JobId::new(), store.next_seq()?, spec, Timestamp::now());
        store.insert(&job, stdin.as_deref())?;
        store.sync().await?;
        self.announce(&job).await;
        Ok(job)
    }

    /// One job.
    pub fn get(&self, id: &JobId) -> Result<Job, EngineError> {
        self.inner.store.get(id)?.ok_or(EngineError::NotFound(*id))
    }

    /// Waits until the job is terminal or `limit` has passed, then returns it
    /// as it is.
    pub async fn wait(&self, id: &JobId, limit: Duration) -> Result<Job, EngineError> {
        let deadline = Timer::after(limit);
        let wait = async {
            loop {
                let listener = self.inner.changed.listen();
                let job = self.get(id)?;
                if job.state.is_terminal() {
                    return Ok(job);
                }
                listener.await;
            }
        };
        future::or(wait, async {
            deadline.await;
            self.get(id)
        })
        .await
    }

    /// A page of jobs, newest first.
    pub fn list(&self, q: &ListQuery) -> Result<Page, EngineError> {
        let (jobs, more) = self.inner.store.list(q.before, q.limit, |job| {
            (q.states.is_empty() || q.states.contains(&job.state.name()))
                && q.queue.as_ref().is_none_or(|name| *name == job.spec.queue)
                && q.labels
                    .iter()
                    .all(|(k, v)| job.spec.labels.get(k) == Some(v))
        })?;
        let next = if more {
            jobs.last().map(|j| j.id)
        } else {
            None
        };
        Ok(Page { jobs, next })
    }

    /// Cancels a job: one not started never starts; a running one is stopped
    /// (SIGTERM to its group, SIGKILL after the grace period). Returns the
    /// job once it is terminal.
    pub async fn cancel(&self, id: &JobId) -> Result<Job, EngineError> {
        let mut sched = self.inner.sched.lock().await;
        if let Some(running) = sched.running.get(id) {
            let _ = running.stop.try_send(StopReason::Cancel);
            drop(sched);
            // The run ends by itself now; its end is the answer.
            return self.wait(id, Duration::MAX).await;
        }
        let job = self.get(id)?;
        let mut next = job.clone();
        next.cancel(None, Timestamp::now())?;
        if job.state == State::Queued {
            sched
                .ready
                .remove(&job.spec.queue, job.spec.priority, job.seq, job.id);
        }
        self.inner.store.update(&job, &next)?;
        drop(sched);
        self.inner.store.sync().await?;
        self.announce(&next).await;
        Ok(next)
    }

    /// Runs a terminal job again, attempt + 1.
    pub async fn retry(&self, id: &JobId) -> Result<Job, EngineError> {
        if self.inner.stopping.load(Ordering::SeqCst) {
            return Err(EngineError::ShuttingDown);
        }
        let sched = self.inner.sched.lock().await;
        let job = self.get(id)?;
        let mut next = job.clone();
        next.retry()?;
        self.inner.store.update(&job, &next)?;
        drop(sched);
        self.inner.store.sync().await?;
        self.announce(&next).await;
        Ok(next)
    }

    /// Forgets a terminal job and its output.
    pub async fn remove(&self, id: &JobId) -> Result<(), EngineError> {
        let sched = self.inner.sched.lock().await;
        let job = self.get(id)?;
        if !job.state.is_terminal() {
            return Err(IllegalTransition {
                id: job.id,
                state: job.state.name(),
                action: "delete it (cancel it first)",
            }
            .into());
        }
        self.inner.store.remove(&job)?;
        drop(sched);
        self.inner.store.sync().await?;
        self.inner.changed.notify(usize::MAX);
        Ok(())
    }

    /// Makes a durable change visible: a queued job goes in line and wakes
    /// the dispatcher; waiters re-check.
    async fn announce(&self, job: &Job) {
        if job.state == State::Queued {
            let mut sched = self.inner.sched.lock().await;
            sched
                .ready
                .push(&job.spec.queue, job.spec.priority, job.seq, job.id);
            drop(sched);
            self.inner.wake.notify(1);
        }
        tracing::debug!(job = %job.id, state = %job.state.name(), attempt = job.attempt, "job changed");
        self.inner.changed.notify(usize::MAX);
    }

    /// Starts queued jobs as workers free up, until shutdown. Event-driven:
    /// it sleeps until a job is put in line or a run ends.
    pub async fn run_dispatcher(&self) {
        let inner = &self.inner;
        loop {
            let permit = inner.workers.acquire_arc().await;
            let next = loop {
                let listener = inner.wake.listen();
                if inner.stopping.load(Ordering::SeqCst) {
                    return;
                }
                let mut sched = inner.sched.lock().await;
                if let Some((_queue, id)) = sched.ready.pop(|_| true) {
                    let (tx, rx) = async_channel::bounded(1);
                    sched.running.insert(id, Running { stop: tx });
                    break Some((id, rx));
                }
                drop(sched);
                listener.await;
            };
            let Some((id, stop)) = next else { return };
            inner.in_flight.fetch_add(1, Ordering::SeqCst);
            let engine = self.clone();
            crate::rt::spawn(async move {
                engine.run(id, stop, permit).await;
                engine.inner.sched.lock().await.running.remove(&id);
                engine.inner.in_flight.fetch_sub(1, Ordering::SeqCst);
                engine.inner.idle.notify(usize::MAX);
                engine.inner.wake.notify(1);
            });
        }
    }

    /// One run of one job, from spawn to its recorded end. Errors are logged:
    /// there is nobody to return them to.
    async fn run(&self, id: JobId, stop: Receiver<StopReason>, _permit: SemaphoreGuardArc) {
        if let Err(e) = self.try_run(id, stop).await {
            tracing::error!(job = %id, error = %e, "job run failed in the daemon");
        }
    }

    async fn try_run(&self, id: JobId, stop: Receiver<StopReason>) -> Result<(), EngineError> {
        let store = &self.inner.store;
        let Some(job) = store.get(&id)? else {
            return Ok(()); // removed while in line
        };
        if job.state != State::Queued {
            return Ok(()); // cancelled between its flush and its turn
        }
        let out = OutputWriter::new(store.clone(), id, self.inner.config.max_output)?;
        let stdin = match job.spec.stdin_bytes {
            Some(_) => store.stdin(&id)?,
            None => None,
        };
        let launch = &self.inner.launch;
        let child = match runner::spawn(&job.spec, launch, &id.to_string(), stdin.is_some()) {
            Ok(child) => child,
            Err(e) => {
                let mut failed = job.clone();
                failed.fail_to_spawn(e.0, Timestamp::now())?;
                store.update(&job, &failed)?;
                store.sync().await?;
                self.announce(&failed).await;
                return Ok(());
            }
        };
        let mut running = job.clone();
        running.start(child.pid(), Timestamp::now())?;
        store.update(&job, &running)?;
        let timeout = job.spec.timeout;
        // The start is announced once durable, while the job already runs:
        // waiting for the flush before pumping would only stall the pipes.
        let (ended, synced) = future::zip(
            child.supervise(stdin, &out, stop, timeout, launch.kill_grace),
            store.sync(),
        )
        .await;
        synced?;
        self.announce(&running).await;

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
                OnInterrupted::Requeue => done.requeue_interrupted()?,
                OnInterrupted::Fail => done.fail_interrupted(now)?,
            },
        }
        store.update(&running, &done)?;
        store.sync().await?;
        if done.state == State::Queued {
            // Re-queued by shutdown: it goes back in line at the next start,
            // from the store; announcing it now would start it again.
            self.inner.changed.notify(usize::MAX);
        } else {
            self.announce(&done).await;
        }
        Ok(())
    }

    /// Stops taking work and stops running jobs (recorded as interrupted,
    /// per `on_interrupted`), then waits until every run has been recorded.
    pub async fn shutdown(&self) {
        self.inner.stopping.store(true, Ordering::SeqCst);
        self.inner.wake.notify(usize::MAX);
        {
            let sched = self.inner.sched.lock().await;
            for running in sched.running.values() {
                let _ = running.stop.try_send(StopReason::Shutdown);
            }
        }
        loop {
            let listener = self.inner.idle.listen();
            if self.inner.in_flight.load(Ordering::SeqCst) == 0 {
                break;
            }
            listener.await;
        }
        if let Err(e) = self.inner.store.sync().await {
            tracing::error!(error = %e, "final flush failed");
        }
    }

    /// True once shutdown began.
    pub fn is_stopping(&self) -> bool {
        self.inner.stopping.load(Ordering::SeqCst)
    }
}

/// Refuses spec fields whose scheduling is not built yet, rather than
/// accepting a job and silently ignoring what was asked.
fn refuse_unsupported(spec: &JobSpec) -> Result<(), FieldError> {
    let not_yet = |field: &str| {
        Err(FieldError::new(
            field,
            "is not supported by this jobq version yet",
        ))
    };
    if spec.run_at.is_some() {
        return not_yet("run_at");
    }
    if spec.retries > 0 {
        return not_yet("retries");
    }
    if !spec.after.is_empty() {
        return not_yet("after");
    }
    if spec.idempotency_key.is_some() {
        return not_yet("idempotency_key");
    }
    Ok(())
}

/// Kills what is left of a job's process group after a crash of the daemon.
///
/// A recorded pid may have been reused since (after a reboot, say), so a
/// group is killed only if one of its processes carries this job's
/// `JOBQ_JOB_ID` in its environment: the runner sets it in every job.
fn kill_orphaned_group(pgid: u32, id: &JobId) {
    let marker = format!("JOBQ_JOB_ID={id}");
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return;
    };
    let ours = entries.flatten().any(|entry| {
        let path = entry.path();
        let in_group = std::fs::read_to_string(path.join("stat"))
            .ok()
            .and_then(|stat| {
                // Field 5 (pgrp) follows the parenthesised command name.
                let after = stat.rsplit_once(')')?.1;
                after.split_whitespace().nth(2)?.parse::<u32>().ok()
            })
            == Some(pgid);
        in_group
            && std::fs::read(path.join("environ"))
                .map(|env| env.split(|b| *b == 0).any(|var| var == marker.as_bytes()))
                .unwrap_or(false)
    });
    if ours {
        tracing::warn!(job = %id, pgid, "killing the process group a crashed jobq left running");
        runner::signal_group(pgid, rustix::process::Signal::KILL);
    }
}
