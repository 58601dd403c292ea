//! The shared state and every operation on it: submit, cancel, retry,
//! remove, list, wait, queue settings; the loops that start queued jobs
//! (dispatcher), make scheduled jobs due (timers) and prune old ones
//! (retention); the bookkeeping of each run.
//!
//! Locking rules (see docs/architecture.md):
//! - `sched` (an async mutex) guards the ready queues, the timers, the queue
//!   limits and the table of running jobs. It is held only across
//!   synchronous work — deciding transitions and writing them to sled's
//!   memory in one atomic batch — never across an await on I/O.
//! - Durability is awaited *after* the lock is released (`store.sync()`), and
//!   only then is the change announced (ready queues, timers, the `changed`
//!   event, the HTTP answer). Nobody learns of a change the store could
//!   still lose, and no process starts for a job the store could lose.
//!   Reads for clients (`get`, `list`, `wait`, `queues`) hold to this too:
//!   what they read that is not on disk yet, they answer after its flush.
//! - Limits are counted under the lock (per queue) and by a semaphore
//!   (global `workers`); wake-ups are events; nothing polls.

mod bulk;
mod cluster;
mod dispatch;
mod output_sync;
mod queues;
mod ready;
mod recovery;
mod repair;
mod retention;
mod schedules;
mod strays;
mod timers;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_channel::{Receiver, Sender};
use async_io::Timer;
use async_lock::{Mutex, Semaphore, SemaphoreGuardArc};
use event_listener::Event;
use futures_lite::future;
use jiff::Timestamp;

use crate::api::{FieldError, JobRef, Stdin};
use crate::auth::{Account, AccountError, Principal};
use crate::config::{Config, OnInterrupted};
use crate::events::{EventFilter, EventHub, Subscription};
use crate::job::{IllegalTransition, Job, JobId, JobSpec, Ownership, State, StateName};
use crate::output::{OutputHub, OutputWriter};
use crate::runner::{self, Launch, StopReason};
use crate::store::{Change, Scope, Store, StoreError, UploadFile};

use crate::api::{QueuePatch, QueueView};
pub use bulk::Selection;
pub(crate) use cluster::Cluster;
use queues::QueueLimits;
use ready::ReadyQueues;

/// Why an operation was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// No job has this id.
    #[error("no job {0}")]
    NotFound(JobId),
    /// No job has this number.
    #[error("no job number {0}")]
    NoNumber(u64),
    /// No schedule has this name.
    #[error("no schedule {0:?}")]
    NoSchedule(String),
    /// No queue has this name: no jobs, stored settings or config entry.
    #[error("no queue {0:?}: no job, stored setting or config entry names it; make it with \"create\": true (jobq queue ... --create)")]
    NoQueue(String),
    /// The queue cannot be removed (it has jobs, or the config declares it).
    #[error("queue {name:?} cannot be removed: {why}")]
    QueueInUse {
        /// The queue.
        name: String,
        /// Why not, in words.
        why: String,
    },
    /// The job's state forbids it.
    #[error(transparent)]
    Conflict(#[from] IllegalTransition),
    /// The principal may not act on this job (it is another's).
    #[error("{0}")]
    Forbidden(String),
    /// A field is wrong in a way only the daemon can tell.
    #[error(transparent)]
    Invalid(#[from] FieldError),
    /// Too many jobs wait to start.
    #[error(
        "the queue is full: {queued} jobs wait to start (config max_queued = {limit}); retry later"
    )]
    QueueFull {
        /// Jobs waiting, scheduled or queued now.
        queued: u64,
        /// The limit.
        limit: u64,
    },
    /// The daemon is shutting down and takes no new work.
    #[error("jobq is shutting down and accepts no new work")]
    ShuttingDown,
    /// The daemon has not finished recovering what it found at start; a
    /// change now could be overwritten by recovery.
    #[error("jobq is still recovering after its start; retry in a moment")]
    Recovering,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The PostgreSQL store failed.
    #[error(transparent)]
    Cluster(#[from] crate::store::postgres::PgError),
    /// A cancel reached the node that runs the job, which has not recorded
    /// the job's end in time.
    #[error("job {0} was asked to stop on the node that runs it, which has not recorded its end yet; ask again, or read the job")]
    CancelPending(JobId),
    /// A node's own file failed it (a cluster node's copy of an upload).
    #[error("cannot {what}: {source}")]
    LocalFile {
        /// What it was doing, in words.
        what: String,
        /// Why it failed.
        source: std::io::Error,
    },
    /// The PostgreSQL store does not do this yet (docs/cluster.md).
    #[error("{0} is not built on the PostgreSQL store yet (docs/cluster.md lists what is); use a daemon on its own sled store for it")]
    NotInCluster(&'static str),
}

/// A queue name in a path must be one (the body's `queue` is checked with
/// the rest of the spec).
fn check_queue_name(name: &str) -> Result<(), FieldError> {
    check_name("queue", name)
}

/// A name in a path (a queue's, a schedule's) must be `[a-z0-9_.-]{1,64}`;
/// `kind` says whose, for the message.
fn check_name(kind: &str, name: &str) -> Result<(), FieldError> {
    if crate::api::is_valid_queue_name(name) {
        Ok(())
    } else {
        Err(FieldError::new(
            "name",
            format!("{name:?} is not a {kind} name: use 1 to 64 of a-z 0-9 _ . -"),
        ))
    }
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
    /// Only jobs of this owner.
    pub owner: Option<String>,
    /// Only jobs with this name.
    pub name: Option<String>,
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

/// How busy the daemon is, from [`Engine::pulse`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pulse {
    /// Jobs running now.
    pub running: usize,
    /// Jobs ready to start, waiting for a worker or their queue's limit.
    pub queued: u64,
    /// Jobs not before a time (a delay or a retry's backoff).
    pub scheduled: u64,
    /// Jobs waiting for their dependencies.
    pub waiting: u64,
}

impl std::fmt::Display for Pulse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} running, {} queued, {} scheduled, {} waiting",
            self.running, self.queued, self.scheduled, self.waiting
        )
    }
}

/// A submission's outcome.
#[derive(Clone, Debug)]
pub struct Submitted {
    /// The job.
    pub job: Job,
    /// False when an idempotency key matched an existing job.
    pub created: bool,
}

/// A job that has been handed to a worker.
struct Running {
    /// Asks its runner to stop.
    stop: Sender<StopReason>,
    /// Its queue, whose running count it holds.
    queue: String,
}

/// State guarded by the engine lock.
#[derive(Default)]
struct Sched {
    /// Durable queued jobs waiting for a worker.
    ready: ReadyQueues,
    /// Durable scheduled jobs and schedules' next fires, by due time.
    timers: BTreeSet<(Timestamp, timers::Due)>,
    /// Jobs taken from `ready` whose run has not ended, by id.
    running: HashMap<JobId, Running>,
    /// Per-queue limits, pause flags and running counts.
    queues: QueueLimits,
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
    /// The user a job runs as when its record names none (one from before
    /// owners): the config's `[jobs] user` on a root daemon, else the
    /// daemon's own.
    default_account: Account,
    /// Ready queues, timers, limits and running jobs.
    sched: Mutex<Sched>,
    /// At most `workers` jobs run at once.
    workers: Arc<Semaphore>,
    /// Notified when a job may have become runnable.
    wake: Event,
    /// Notified when the earliest timer may have changed.
    timer_wake: Event,
    /// Notified when terminal jobs may be over `keep_finished`.
    prune_wake: Event,
    /// Notified after any job's change is durable; waiters re-read their job.
    changed: Event,
    /// Wakes followers of a job's output.
    output_hub: Arc<OutputHub>,
    /// Fans job events out to subscribers.
    events: EventHub,
    /// Set once shutdown began: no new submissions, no new starts.
    stopping: AtomicBool,
    /// Set when an attempt ended since the last sweep for strays.
    ended: AtomicBool,
    /// Notified when an attempt ends, to wake the sweep for strays.
    ended_wake: Event,
    /// Set once recovery is done: until then no change is taken.
    recovered: AtomicBool,
    /// Runs in progress; the drain waits for it to reach zero.
    in_flight: AtomicUsize,
    /// The cluster this daemon is a node of, when its store is PostgreSQL
    /// (then the sled store keeps only this node's output and uploads).
    cluster: Option<Cluster>,
    /// Notified when `in_flight` drops.
    idle: Event,
}

impl Engine {
    /// An engine over an opened store, in a daemon running as `daemon`
    /// whose jobs start with umask `job_umask`. Call [`Engine::recover`]
    /// before starting the loops.
    pub fn new(
        store: Store,
        config: Arc<Config>,
        mut daemon: Account,
        inherited: runner::limits::Inherited,
        cluster: Option<Cluster>,
    ) -> Engine {
        // The daemon's own jobs get the HOME it was given, when it was
        // given one: a systemd DynamicUser's home is `/` (read-only there),
        // and the unit gives jobs a writable one (docs/design.md).
        if let Some(home) = std::env::var_os("HOME").filter(|h| !h.is_empty()) {
            daemon.home = home.into();
        }
        let default_account = match &config.jobs.user {
            Some(user) if daemon.is_root() => user.clone(),
            _ => daemon.clone(),
        };
        let launch = Launch {
            shell: config.shell.clone(),
            work_dir: config.work_dir(),
            kill_grace: config.kill_grace,
            base_env: crate::runner::identity::inherited(&config.jobs.inherit_env),
            daemon,
            inherited,
            cgroups: crate::runner::Cgroups::detect(),
        };
        Engine {
            inner: Arc::new(Inner {
                store,
                workers: Arc::new(Semaphore::new(config.workers)),
                sched: Mutex::new(Sched {
                    queues: QueueLimits::new(config.clone()),
                    ..Sched::default()
                }),
                config,
                launch,
                default_account,
                wake: Event::new(),
                timer_wake: Event::new(),
                prune_wake: Event::new(),
                changed: Event::new(),
                output_hub: Arc::default(),
                events: EventHub::default(),
                stopping: AtomicBool::new(false),
                ended: AtomicBool::new(false),
                ended_wake: Event::new(),
                recovered: AtomicBool::new(false),
                in_flight: AtomicUsize::new(0),
                cluster,
                idle: Event::new(),
            }),
        }
    }

    /// The configured limits the metrics show.
    pub fn limits(&self) -> crate::metrics::Limits {
        crate::metrics::Limits {
            workers: self.inner.config.workers,
            max_queued: self.inner.config.max_queued,
        }
    }

    /// The first retry delay for specs that give none (config `backoff`).
    pub fn default_backoff(&self) -> Duration {
        self.inner.config.backoff
    }

    /// The hub that wakes output followers.
    pub fn output_hub(&self) -> &OutputHub {
        &self.inner.output_hub
    }

    /// Subscribes to job events (`GET /v1/events`).
    pub fn subscribe(&self, filter: EventFilter) -> Subscription {
        self.inner.events.subscribe(filter)
    }

    /// Starts an upload (`POST /v1/uploads`): a part file the caller
    /// writes, then hands to [`Engine::finish_upload`].
    pub fn begin_upload(&self) -> Result<UploadFile, EngineError> {
        self.taking_changes()?;
        Ok(self.inner.store.begin_upload()?)
    }

    /// Makes a written upload of `len` bytes claimable by a later
    /// submission; returns its id once it is durable.
    pub async fn finish_upload(&self, upload: UploadFile, len: u64) -> Result<JobId, EngineError> {
        self.taking_changes()?;
        if let Some(cluster) = self.cluster() {
            return self.cluster_finish_upload(cluster, upload, len).await;
        }
        let store = self.inner.store.clone();
        let id = blocking::unblock(move || store.finish_upload(upload, len)).await?;
        self.inner.store.sync().await?;
        Ok(id)
    }

    /// The store, for readers that need no engine state (output).
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Accepts one job from `principal`, who owns it and decides the user
    /// it runs as. Returns once the job is on disk.
    pub async fn submit(
        &self,
        spec: JobSpec,
        stdin: Stdin,
        principal: &Principal,
    ) -> Result<Submitted, EngineError> {
        let mut all = self.submit_all(vec![(spec, stdin)], principal).await?;
        Ok(all.remove(0))
    }

    /// Accepts several jobs from `principal`, all or nothing, in one atomic
    /// write and one flush. A job whose idempotency key is live returns the
    /// existing job.
    pub async fn submit_all(
        &self,
        specs: Vec<(JobSpec, Stdin)>,
        principal: &Principal,
    ) -> Result<Vec<Submitted>, EngineError> {
        let ownership = Ownership {
            owner: principal.owner(),
            run_as: principal.runs_as.clone(),
        };
        self.taking_changes()?;
        if let Some(cluster) = self.cluster() {
            return self.cluster_submit(cluster, specs, ownership).await;
        }
        let store = &self.inner.store;
        let now = Timestamp::now();
        let many = specs.len() > 1;
        let field = |i: usize, name: &str| {
            if many {
                format!("jobs[{i}].{name}")
            } else {
                name.to_owned()
            }
        };
        let sched = self.inner.sched.lock().await;
        let mut out: Vec<Submitted> = Vec::with_capacity(specs.len());
        let mut stdins: Vec<Option<Vec<u8>>> = Vec::with_capacity(specs.len());
        let mut claims: Vec<Option<JobId>> = Vec::with_capacity(specs.len());
        // Lookups into what this batch made so far, so that a 10,000-job
        // batch stays linear under the lock: its keys (→ index in `out`)
        // and the uploads it claimed.
        let mut keyed: HashMap<String, usize> = HashMap::new();
        let mut claimed: HashSet<JobId> = HashSet::new();
        let mut fresh = 0u64;
        for (i, (mut spec, stdin)) in specs.into_iter().enumerate() {
            if let Some(key) = &spec.idempotency_key {
                if let Some(&i) = keyed.get(key) {
                    out.push(Submitted {
                        job: out[i].job.clone(),
                        created: false,
                    });
                    stdins.push(None);
                    claims.push(None);
                    continue;
                }
                if let Some(id) = store.job_with_key(key)? {
                    if let Some(job) = store.get(&id)? {
                        out.push(Submitted {
                            job,
                            created: false,
                        });
                        stdins.push(None);
                        claims.push(None);
                        continue;
                    }
                }
            }
            let (stdin, claim) = match stdin {
                Stdin::None => (None, None),
                Stdin::Bytes(bytes) => (Some(bytes), None),
                Stdin::Upload(upload) => {
                    if !claimed.insert(upload) {
                        return Err(FieldError::new(
                            field(i, "stdin_upload"),
                            format!("upload {upload} is claimed twice"),
                        )
                        .into());
                    }
                    let len = store.upload(&upload)?.ok_or_else(|| {
                        FieldError::new(
                            field(i, "stdin_upload"),
                            format!("no upload {upload} (unclaimed uploads are kept for 1h)"),
                        )
                    })?;
                    spec.stdin_bytes = Some(len);
                    (None, Some(upload))
                }
            };
            if let Some(bytes) = &stdin {
                spec.stdin_bytes = Some(bytes.len() as u64);
            } else if claim.is_none() {
                spec.stdin_bytes = None;
            }
            self.cap_limits(&mut spec)
                .map_err(|e| FieldError::new(field(i, &e.field), e.message))?;
            let mut pending = Vec::new();
            let mut failed_dep = None;
            for dep in &spec.after {
                let Some(d) = store.get(dep)? else {
                    return Err(FieldError::new(field(i, "after"), format!("no job {dep}")).into());
                };
                match d.state.name() {
                    StateName::Succeeded => {}
                    StateName::Failed | StateName::Cancelled => {
                        failed_dep = Some((*dep, d.state.name()))
                    }
                    _ => pending.push(*dep),
                }
            }
            let mut job = Job::new(
                JobId::new(),
                store.next_seq()?,
                spec,
                ownership.clone(),
                pending,
                now,
            );
            if let Some((dep, state)) = failed_dep {
                // Record it waiting on the failed job, then fail it: the job
                // exists (its id was asked for) but will never run.
                job.state = State::Waiting { pending: vec![dep] };
                job.dependency_failed(&dep, state, now)?;
            }
            if !job.state.is_terminal() {
                fresh += 1;
            }
            if let Some(key) = &job.spec.idempotency_key {
                keyed.insert(key.clone(), out.len());
            }
            out.push(Submitted { job, created: true });
            stdins.push(stdin);
            claims.push(claim);
        }
        let waiting = not_started(store);
        if fresh > 0 && waiting + fresh > self.inner.config.max_queued {
            return Err(EngineError::QueueFull {
                queued: waiting,
                limit: self.inner.config.max_queued,
            });
        }
        let changes: Vec<Change<'_>> = out
            .iter()
            .zip(stdins.iter().zip(&claims))
            .filter(|(s, _)| s.created)
            .map(|(s, (stdin, claim))| Change {
                claims_upload: *claim,
                ..Change::insert(&s.job, stdin.as_deref())
            })
            .collect();
        store.apply(&changes)?;
        drop(sched);
        store.sync().await?;
        let created: Vec<&Job> = out.iter().filter(|s| s.created).map(|s| &s.job).collect();
        created
            .iter()
            .for_each(|job| schedules::count_submitted(job));
        self.announce_all(&created).await;
        Ok(out)
    }

    /// Puts a spec's limits under its queue's and the daemon's, or says
    /// which of its own is above them.
    fn cap_limits(&self, spec: &mut JobSpec) -> Result<(), FieldError> {
        let ceiling = self.inner.config.queue_limits(&spec.queue);
        let whose = match self.inner.config.queues.get(&spec.queue) {
            Some(q) if q.limits.is_some() => format!("queue {:?}", spec.queue),
            _ => "the daemon's [jobs] limits".to_owned(),
        };
        spec.limits = spec.limits.under(ceiling, &whose)?;
        Ok(())
    }

    /// The id of the job `r` names (a number is looked up; an id is taken
    /// as it is, and found or not by what the caller does with it).
    pub async fn resolve(&self, r: &JobRef) -> Result<JobId, EngineError> {
        match *r {
            JobRef::Id(id) => Ok(id),
            JobRef::Number(n) if self.cluster().is_some() => {
                let cluster = self.cluster().expect("checked");
                self.cluster_resolve(cluster, n).await
            }
            JobRef::Number(n) => self
                .inner
                .store
                .job_with_number(n)?
                .ok_or(EngineError::NoNumber(n)),
        }
    }

    /// One job as the store holds it this moment, on disk or not yet: for
    /// deciding a transition under the lock.
    fn current(&self, id: &JobId) -> Result<Job, EngineError> {
        self.inner.store.get(id)?.ok_or(EngineError::NotFound(*id))
    }

    /// One job as a client may see it. If its last change is not on disk
    /// yet, this waits for the flush that puts it there: nobody is shown a
    /// state a crash could still undo.
    pub async fn get(&self, id: &JobId) -> Result<Job, EngineError> {
        if let Some(cluster) = self.cluster() {
            return self.cluster_get(cluster, id).await;
        }
        let job = self.current(id)?;
        self.flushed([id]).await?;
        Ok(job)
    }

    /// The job as an output follower reads it between chunks: the store's
    /// record this moment (a follower sees output, not promises), from the
    /// database on a cluster; `None` once it is gone.
    pub async fn job_for_follower(&self, id: JobId) -> Result<Option<Job>, EngineError> {
        match self.cluster() {
            Some(cluster) => Ok(cluster.pg.get(&id).await?),
            None => Ok(self.inner.store.get(&id)?),
        }
    }

    /// The frames of attempt `attempt` after file offset `at`, for a
    /// follower: from this node's file when it has one, else (a job another
    /// node of a cluster runs) from the database.
    pub async fn frames_for_follower(
        &self,
        id: JobId,
        attempt: u32,
        at: u64,
    ) -> Result<Vec<(u64, crate::store::Stream, Vec<u8>)>, EngineError> {
        match self.cluster() {
            Some(cluster) if !self.inner.store.has_output(&id, attempt) => {
                Ok(cluster.pg.read_output_frames(&id, attempt, at).await?)
            }
            _ => Ok(self
                .inner
                .store
                .read_chunks(&id, attempt, at, crate::output::FOLLOW_READ)?),
        }
    }

    /// Attempt `attempt`'s output from byte `offset` of the chosen
    /// stream(s), at most `max` bytes (`GET /v1/jobs/{id}/output`): from
    /// this node's file when it has one, else from the database.
    pub async fn read_output(
        &self,
        id: &JobId,
        attempt: u32,
        filter: crate::store::StreamFilter,
        offset: u64,
        max: usize,
    ) -> Result<Vec<u8>, EngineError> {
        let Some(cluster) = self
            .cluster()
            .filter(|_| !self.inner.store.has_output(id, attempt))
        else {
            return Ok(self
                .inner
                .store
                .read_output(id, attempt, filter, offset, max)?);
        };
        let (mut at, mut skip, mut out) = (0u64, offset, Vec::new());
        loop {
            let frames = cluster.pg.read_output_frames(id, attempt, at).await?;
            if frames.is_empty() {
                return Ok(out);
            }
            for (end, stream, data) in frames {
                at = end;
                if !filter.accepts(stream) {
                    continue;
                }
                let mut data = data.as_slice();
                if skip > 0 {
                    let n = skip.min(data.len() as u64);
                    skip -= n;
                    data = &data[n as usize..];
                }
                let room = max - out.len();
                out.extend_from_slice(&data[..data.len().min(room)]);
                if out.len() >= max {
                    return Ok(out);
                }
            }
        }
    }

    /// Returns once every change to `ids` read before the call is on disk
    /// (at once when it already is).
    async fn flushed<'a>(
        &self,
        ids: impl IntoIterator<Item = &'a JobId>,
    ) -> Result<(), EngineError> {
        if self.inner.store.any_unflushed(ids) {
            self.inner.store.sync().await?;
        }
        Ok(())
    }

    /// Returns once every count read before the call is on disk.
    async fn counts_flushed(&self) -> Result<(), EngineError> {
        if !self.inner.store.all_flushed() {
            self.inner.store.sync().await?;
        }
        Ok(())
    }

    /// Waits until the job is terminal or `limit` has passed, then returns it
    /// as it is (on disk, as [`Engine::get`]).
    pub async fn wait(&self, id: &JobId, limit: Duration) -> Result<Job, EngineError> {
        if self.cluster().is_some() {
            return self.cluster_wait(id, limit).await;
        }
        let wait = async {
            loop {
                let listener = self.inner.changed.listen();
                let job = self.current(id)?;
                if job.state.is_terminal() {
                    self.flushed([id]).await?;
                    return Ok(job);
                }
                listener.await;
            }
        };
        future::or(wait, async {
            Timer::after(limit).await;
            self.get(id).await
        })
        .await
    }

    /// A page of jobs, newest first, each as on disk (see [`Engine::get`]).
    pub async fn list(&self, q: &ListQuery) -> Result<Page, EngineError> {
        if let Some(cluster) = self.cluster() {
            return self.cluster_list(cluster, q).await;
        }
        let scope = Scope {
            states: &q.states,
            queue: q.queue.as_deref(),
        };
        let (jobs, more) = self.inner.store.list(q.before, q.limit, &scope, |job| {
            (q.states.is_empty() || q.states.contains(&job.state.name()))
                && q.queue.as_ref().is_none_or(|name| *name == job.spec.queue)
                && q.labels
                    .iter()
                    .all(|(k, v)| job.spec.labels.get(k) == Some(v))
                && q.owner.as_ref().is_none_or(|owner| *owner == job.owner)
                && q.name
                    .as_ref()
                    .is_none_or(|name| job.spec.name.as_ref() == Some(name))
        })?;
        let next = if more {
            jobs.last().map(|j| j.id)
        } else {
            None
        };
        self.flushed(jobs.iter().map(|j| &j.id)).await?;
        Ok(Page { jobs, next })
    }

    /// Cancels a job: one not started never starts (and its dependents fail);
    /// a running one is stopped (SIGTERM to its group, SIGKILL after the
    /// grace period). Returns the job once it is terminal.
    pub async fn cancel(&self, id: &JobId, principal: &Principal) -> Result<Job, EngineError> {
        if let Some(cluster) = self.cluster() {
            return self.cluster_cancel(cluster, id, principal).await;
        }
        self.recovered()?;
        let job = self.current(id)?;
        may_act(principal, &job, "cancel")?;
        self.cancel_checked(id).await
    }

    /// Cancels job `id`, whose principal may. A running job is stopped and
    /// its end waited for; if that run ended for a reason of its own at the
    /// same moment (it exited, or timed out, before the stop was read) and
    /// the job goes on to a retry, the retry is cancelled too, so a cancel
    /// never waits out a job's retries.
    pub(crate) async fn cancel_checked(&self, id: &JobId) -> Result<Job, EngineError> {
        loop {
            let sched = self.inner.sched.lock().await;
            let job = self.current(id)?;
            if let Some(running) = sched.running.get(id) {
                let _ = running.stop.try_send(StopReason::Cancel);
                drop(sched);
                let job = self.wait_not_running(id).await?;
                if job.state.is_terminal() {
                    self.flushed([id]).await?;
                    return Ok(job);
                }
                continue;
            }
            // An ended job is a conflict (cancel_not_running says so).
            return self.cancel_idle(sched, job).await;
        }
    }

    /// Job `id` once no run of it is going on: terminal, or waiting for a
    /// retry.
    pub(crate) async fn wait_not_running(&self, id: &JobId) -> Result<Job, EngineError> {
        loop {
            let listener = self.inner.changed.listen();
            // The record first: the lock only once it says the run ended.
            if self.current(id)?.state.name() != StateName::Running {
                let sched = self.inner.sched.lock().await;
                if !sched.running.contains_key(id) {
                    return self.current(id);
                }
            }
            listener.await;
        }
    }

    /// Cancels `job`, which is not running, under `sched`.
    async fn cancel_idle(
        &self,
        mut sched: async_lock::MutexGuard<'_, Sched>,
        job: Job,
    ) -> Result<Job, EngineError> {
        let changes = self.cancel_not_running(&mut sched, job, Timestamp::now())?;
        drop(sched);
        self.inner.store.sync().await?;
        for (_, new) in &changes {
            self.announce(new).await;
        }
        Ok(changes[0].1.clone())
    }

    /// Cancels `job`, which is not running, under the engine lock: it
    /// leaves the ready queue or the timers, and the jobs waiting for it
    /// fail. Returns the changes, the job's first, written but not synced.
    fn cancel_not_running(
        &self,
        sched: &mut Sched,
        job: Job,
        now: Timestamp,
    ) -> Result<Vec<(Job, Job)>, EngineError> {
        let changes = self.cancel_changes(sched, job, now)?;
        apply(&self.inner.store, &changes)?;
        Ok(changes)
    }

    /// [`cancel_not_running`](Self::cancel_not_running)'s changes, not yet
    /// written: for a caller that writes them in a batch of its own.
    fn cancel_changes(
        &self,
        sched: &mut Sched,
        job: Job,
        now: Timestamp,
    ) -> Result<Vec<(Job, Job)>, EngineError> {
        let mut next = job.clone();
        next.cancel(None, now)?;
        match job.state {
            State::Queued => {
                sched
                    .ready
                    .remove(&job.spec.queue, job.spec.priority, job.seq, job.id);
            }
            State::Scheduled { at } => {
                sched.timers.remove(&timers::timer(at, job.id));
            }
            _ => {}
        }
        let mut changes = vec![(job, next.clone())];
        changes.append(&mut self.cascade(&next, now)?);
        Ok(changes)
    }

    /// Runs a terminal job again, attempt + 1.
    pub async fn retry(&self, id: &JobId, principal: &Principal) -> Result<Job, EngineError> {
        if let Some(cluster) = self.cluster() {
            return self.cluster_retry(cluster, id, principal).await;
        }
        self.taking_changes()?;
        let sched = self.inner.sched.lock().await;
        let job = self.current(id)?;
        may_act(principal, &job, "retry")?;
        let mut next = job.clone();
        next.retry()?;
        self.inner.store.update(&job, &next)?;
        drop(sched);
        self.inner.store.sync().await?;
        self.announce(&next).await;
        Ok(next)
    }

    /// Forgets a terminal job and its output; its idempotency key is free
    /// again.
    pub async fn remove(&self, id: &JobId, principal: &Principal) -> Result<(), EngineError> {
        if let Some(cluster) = self.cluster() {
            return self.cluster_remove(cluster, id, principal).await;
        }
        self.recovered()?;
        let sched = self.inner.sched.lock().await;
        let job = self.current(id)?;
        may_act(principal, &job, "delete")?;
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

    /// Jobs by queue and state now, cluster-wide on a cluster (the
    /// `jobq_jobs` gauge).
    pub async fn job_counts(
        &self,
    ) -> Result<std::collections::BTreeMap<(String, StateName), u64>, EngineError> {
        match self.cluster() {
            Some(cluster) => self.cluster_job_counts(cluster).await,
            None => Ok(self.inner.store.counts()),
        }
    }

    /// The daemon's pulse for systemd's watchdog and status line, read as
    /// requests read: the engine's lock is taken (a deadlock stops the
    /// pulse) and the store is read (an unresponsive store fails it).
    pub async fn pulse(&self) -> Result<Pulse, EngineError> {
        if let Some(cluster) = self.cluster() {
            return self.cluster_pulse(cluster).await;
        }
        let running = self.inner.sched.lock().await.running.len();
        self.inner.store.probe()?;
        let counts = self.inner.store.counts();
        let sum = |state: StateName| -> u64 {
            counts
                .iter()
                .filter(|((_, s), _)| *s == state)
                .map(|(_, n)| n)
                .sum()
        };
        Ok(Pulse {
            running,
            queued: sum(StateName::Queued),
            scheduled: sum(StateName::Scheduled),
            waiting: sum(StateName::Waiting),
        })
    }

    /// Every known queue: its limit, pause flag and counts by state (as on
    /// disk, like [`Engine::get`]).
    pub async fn queues(&self) -> Result<Vec<QueueView>, EngineError> {
        if let Some(cluster) = self.cluster() {
            return self.cluster_queues(cluster).await;
        }
        let views = {
            let sched = self.inner.sched.lock().await;
            sched.queues.views(&self.inner.store.counts())
        };
        self.counts_flushed().await?;
        Ok(views)
    }

    /// Changes a queue's limit or pause flag, durably.
    pub async fn patch_queue(
        &self,
        name: &str,
        patch: QueuePatch,
    ) -> Result<QueueView, EngineError> {
        check_queue_name(name)?;
        if let Some(cluster) = self.cluster() {
            return self.cluster_patch_queue(cluster, name, patch).await;
        }
        self.recovered()?;
        let mut sched = self.inner.sched.lock().await;
        if !patch.create && !sched.queues.knows(name, &self.inner.store.counts()) {
            return Err(EngineError::NoQueue(name.to_owned()));
        }
        let settings = sched.queues.patch(name, patch);
        self.inner.store.put_queue_settings(name, &settings)?;
        drop(sched);
        self.inner.store.sync().await?;
        // A resumed queue or a raised limit may let jobs start.
        self.inner.wake.notify(usize::MAX);
        let view = {
            let sched = self.inner.sched.lock().await;
            sched.queues.view(name, &self.inner.store.counts())
        };
        self.counts_flushed().await?;
        Ok(view)
    }

    /// Forgets a queue's stored settings (`DELETE /v1/queues/{name}`): only
    /// for a queue with no jobs in any state that the config does not
    /// declare, so nothing is listed under it afterwards.
    pub async fn remove_queue(&self, name: &str) -> Result<(), EngineError> {
        check_queue_name(name)?;
        if let Some(cluster) = self.cluster() {
            return self.cluster_remove_queue(cluster, name).await;
        }
        self.recovered()?;
        let mut sched = self.inner.sched.lock().await;
        let counts = self.inner.store.counts();
        if !sched.queues.knows(name, &counts) {
            return Err(EngineError::NoQueue(name.to_owned()));
        }
        if let Err(why) = sched.queues.remove(name, &counts) {
            return Err(EngineError::QueueInUse {
                name: name.to_owned(),
                why,
            });
        }
        self.inner.store.remove_queue_settings(name)?;
        drop(sched);
        self.inner.store.sync().await?;
        Ok(())
    }

    /// Makes a durable change visible: a queued job goes in line and wakes
    /// the dispatcher; a scheduled one goes on the timers; waiters re-check.
    async fn announce(&self, job: &Job) {
        self.announce_all(&[job]).await;
    }

    /// [`announce`](Self::announce) for many jobs at once (a batch): one
    /// lock for the ready queues and timers and one wake-up of each loop,
    /// not one per job.
    async fn announce_all(&self, jobs: &[&Job]) {
        let (mut queued, mut scheduled, mut ended) = (false, false, false);
        if jobs
            .iter()
            .any(|j| matches!(j.state, State::Queued | State::Scheduled { .. }))
        {
            let mut sched = self.inner.sched.lock().await;
            for job in jobs {
                match job.state {
                    State::Queued => {
                        sched
                            .ready
                            .push(&job.spec.queue, job.spec.priority, job.seq, job.id);
                        queued = true;
                    }
                    State::Scheduled { at } => {
                        sched.timers.insert(timers::timer(at, job.id));
                        scheduled = true;
                    }
                    _ => {}
                }
            }
        }
        for job in jobs {
            ended |= job.state.is_terminal();
            record_transition(job);
            self.inner.events.publish(job);
            self.inner.output_hub.notify(&job.id);
        }
        if queued {
            self.inner.wake.notify(1);
        }
        if scheduled {
            self.inner.timer_wake.notify(1);
        }
        if ended {
            self.inner.prune_wake.notify(1);
        }
        self.inner.changed.notify(usize::MAX);
    }

    /// The transitions a job's end causes in the jobs waiting for it:
    /// success releases them (once all they wait for succeeded); failure or
    /// cancellation fails them with reason `dependency`, and theirs in turn.
    /// O(dependents), through the store's edge index. Called under the lock.
    fn cascade(&self, done: &Job, now: Timestamp) -> Result<Vec<(Job, Job)>, EngineError> {
        let store = &self.inner.store;
        let mut changes: Vec<(Job, Job)> = Vec::new();
        // Each job's latest change in `changes`: a fan of 10,000 dependents
        // stays linear.
        let mut latest: HashMap<JobId, usize> = HashMap::new();
        let mut ended = vec![done.clone()];
        while let Some(parent) = ended.pop() {
            let parent_state = parent.state.name();
            if !parent_state.is_terminal() {
                continue;
            }
            for id in store.dependents(&parent.id)? {
                // A job changed earlier in this cascade is taken as changed.
                let current = match latest.get(&id) {
                    Some(&i) => changes[i].1.clone(),
                    None => match store.get(&id)? {
                        Some(job) => job,
                        None => continue,
                    },
                };
                if !matches!(current.state, State::Waiting { .. }) {
                    continue;
                }
                let mut next = current.clone();
                if parent_state == StateName::Succeeded {
                    next.dependency_succeeded(&parent.id, now)?;
                } else {
                    next.dependency_failed(&parent.id, parent_state, now)?;
                    ended.push(next.clone());
                }
                latest.insert(id, changes.len());
                changes.push((current, next));
            }
        }
        Ok(changes)
    }

    /// The drain: takes no new work, lets running jobs go on for up to
    /// `shutdown_grace`, then stops the rest (recorded as interrupted, per
    /// `on_interrupted`), and returns once every run has been recorded and
    /// flushed.
    pub async fn shutdown(&self) {
        self.inner.stopping.store(true, Ordering::SeqCst);
        if let Some(cluster) = self.cluster() {
            self.cluster_shutdown(cluster).await;
            self.sync_output().await;
            self.inner.events.close();
            return;
        }
        self.inner.wake.notify(usize::MAX);
        self.inner.timer_wake.notify(usize::MAX);
        self.inner.prune_wake.notify(usize::MAX);
        let grace = self.inner.config.shutdown_grace;
        let finished = self.runs_end_within(grace).await;
        if !finished {
            let sched = self.inner.sched.lock().await;
            tracing::info!(
                running = sched.running.len(),
                "shutdown grace over: stopping running jobs"
            );
            for running in sched.running.values() {
                let _ = running.stop.try_send(StopReason::Shutdown);
            }
            drop(sched);
            self.runs_ended().await;
        }
        self.sync_output().await;
        if let Err(e) = self.inner.store.flush_now().await {
            tracing::error!(error = %e, "final flush failed");
        }
        self.inner.events.close();
    }

    /// True if every run in progress ended within `grace`: the drain's
    /// first part, on either store.
    async fn runs_end_within(&self, grace: Duration) -> bool {
        future::or(
            async {
                self.runs_ended().await;
                true
            },
            async {
                Timer::after(grace).await;
                false
            },
        )
        .await
    }

    /// Waits until no run is in progress.
    async fn runs_ended(&self) {
        loop {
            let listener = self.inner.idle.listen();
            if self.inner.in_flight.load(Ordering::SeqCst) == 0 {
                return;
            }
            listener.await;
        }
    }

    /// True once shutdown began.
    pub fn is_stopping(&self) -> bool {
        self.inner.stopping.load(Ordering::SeqCst)
    }

    /// Refuses a change until recovery is done: recovery decides every
    /// interrupted job's fate from what it read, and a change made before
    /// it is done could be overwritten by it.
    fn recovered(&self) -> Result<(), EngineError> {
        if self.inner.recovered.load(Ordering::SeqCst) {
            Ok(())
        } else {
            Err(EngineError::Recovering)
        }
    }

    /// Refuses new work during recovery and once shutdown began.
    fn taking_changes(&self) -> Result<(), EngineError> {
        self.recovered()?;
        if self.is_stopping() {
            return Err(EngineError::ShuttingDown);
        }
        Ok(())
    }
}

/// One info line per durable change of a job, so `journalctl -u jobq`
/// shows the activity: which job, where it is, how it ended. Its target is
/// `jobq::jobs`, so `log = "info,jobq::jobs=warn"` turns it off. Never the
/// command, env or stdin: they may hold secrets. An end is counted in the
/// metrics too.
fn record_transition(job: &Job) {
    if job.state.is_terminal() {
        let ran = match &job.state {
            State::Succeeded {
                started_at,
                finished_at,
            } => Some((*started_at, *finished_at)),
            State::Failed {
                started_at: Some(s),
                finished_at,
                ..
            }
            | State::Cancelled {
                started_at: Some(s),
                finished_at,
                ..
            } => Some((*s, *finished_at)),
            _ => None,
        };
        let ran = ran.map(|(s, f)| f.duration_since(s).unsigned_abs());
        crate::metrics::metrics().job_ended(&job.spec.queue, job.state.name(), ran);
    }
    let state = job.state.name();
    let (reason, exit) = match &job.state {
        State::Failed { reason, exit, .. } => (Some(*reason), *exit),
        State::Cancelled { exit, .. } => (None, *exit),
        _ => (None, None),
    };
    tracing::info!(
        target: "jobq::jobs",
        job = %job.id,
        number = job.number(),
        queue = %job.spec.queue,
        attempt = job.attempt,
        state = %state,
        reason = reason.map(|r| format!("{r:?}").to_lowercase()),
        exit_code = exit.and_then(crate::job::Exit::code),
        signal = exit.and_then(crate::job::Exit::signal).map(crate::job::signal_name),
        exit = job.wait_exit_code(),
        "job {} {state}",
        job.number()
    );
}

/// Refuses `principal` an `action` on `job` unless it is an admin or the
/// job's owner.
fn may_act(principal: &Principal, job: &Job, action: &str) -> Result<(), EngineError> {
    may_act_on(
        principal,
        &job.owner,
        &format!("job {}", job.id),
        "jobs",
        action,
    )
}

/// Refuses `principal` an `action` on `thing` (`job 0192…`, `schedule
/// "nightly"`), owned by `owner`, unless it is an admin or the owner;
/// `things` names the kind for the message.
fn may_act_on(
    principal: &Principal,
    owner: &str,
    thing: &str,
    things: &str,
    action: &str,
) -> Result<(), EngineError> {
    if principal.may_act_on(owner) {
        return Ok(());
    }
    Err(EngineError::Forbidden(format!(
        "{thing} is owned by {owner}; {} may {action} only its own {things} (the admin role may act on any)",
        principal.owner()
    )))
}

impl Engine {
    /// The account job `job` runs as: the one its record names (looked up
    /// again, as login would), or the default for a record from before
    /// owners.
    fn account_of(&self, job: &Job) -> Result<Account, AccountError> {
        let daemon = &self.inner.launch.daemon;
        match &job.run_as {
            Some(r) if r.uid == daemon.uid => Ok(daemon.clone()),
            Some(r) => Account::by_uid(r.uid),
            None => Ok(self.inner.default_account.clone()),
        }
    }
}

/// Writes (old, new) pairs as one atomic batch.
fn apply(store: &Store, changes: &[(Job, Job)]) -> Result<(), StoreError> {
    if changes.is_empty() {
        return Ok(());
    }
    let batch: Vec<Change<'_>> = changes
        .iter()
        .map(|(old, new)| Change::update(old, new))
        .collect();
    store.apply(&batch)
}

/// Jobs not started yet (waiting, scheduled, queued), for `max_queued`.
fn not_started(store: &Store) -> u64 {
    store
        .counts()
        .iter()
        .filter(|((_, state), _)| {
            matches!(
                state,
                StateName::Waiting | StateName::Scheduled | StateName::Queued
            )
        })
        .map(|(_, n)| n)
        .sum()
}
