//! The engine as a node of a cluster on PostgreSQL (docs/cluster.md):
//! the database holds the jobs and decides who runs what; this node claims
//! what its free workers can take, runs it with the same runner as a
//! daemon on its own, renews its leases, rescues the jobs of nodes that
//! fell silent, and turns the database's notifications into its wake-ups,
//! cancels and events.
//!
//! By concern: this file (the node's state, requests: submit, read,
//! cancel, queues, nodes), `run.rs` (one claimed job, spawn to fenced
//! end), `loops.rs` (claiming, heartbeats, rescue, notifications, drain),
//! `schedules.rs` (schedules, their leader lease and fires).
//!
//! What the PostgreSQL store does not do yet answers 501
//! ([`EngineError::NotInCluster`]); docs/cluster.md lists it.

mod bulk;
mod dependencies;
mod loops;
mod run;
mod schedules;
mod uploads;

use std::collections::{BTreeMap, HashSet};
use std::sync::Mutex as SyncMutex;
use std::time::Instant;

use super::*;
use crate::api::QueueView;
use crate::config::PostgresSettings;
use crate::store::postgres::{Fenced, NodeRow, PgError, PgStore, Session};

/// A node's hold on the cluster.
pub struct Cluster {
    /// The shared database.
    pub(in crate::engine) pg: PgStore,
    /// `[store]`.
    settings: PostgresSettings,
    /// This node's current session; replaced when it rejoins after being
    /// declared dead.
    session: SyncMutex<Session>,
    /// The jobs this node runs: which attempt, and how to stop it. A job's
    /// next attempt may be claimed here while its last run still cleans
    /// up, so every entry of a run is its attempt's.
    running: SyncMutex<HashMap<JobId, Run>>,
    /// Runs (job, attempt) whose claim was taken from this node: their end
    /// is not recorded (the database would refuse it anyway).
    lost: SyncMutex<HashSet<(JobId, u32)>>,
    /// Wakes the claimer: a job became runnable somewhere, or a run here
    /// ended.
    wake: Event,
    /// When a renewal last succeeded, by this node's monotonic clock.
    renewed: SyncMutex<Instant>,
    /// Wakes the promoter: this node scheduled a job (a delay, a retry's
    /// backoff), which may be due before the one it sleeps for.
    due: Event,
    /// Ends of this node's runs it told its subscribers itself, as they
    /// were written: the database's notification of each is not told
    /// again. (The database's copy is read later and may have moved on: a
    /// job that ran for a millisecond would show `succeeded` twice and
    /// never `running`.)
    told: SyncMutex<HashSet<(JobId, StateName)>>,
    /// New jobs this node stored and has not announced yet, as submitted.
    /// Whoever tells of a job first (its submission, its run here, another
    /// node's change of it) announces it first, so that subscribers see
    /// `queued` before `running` even when a worker took the job between
    /// the commit and the submitter's next step.
    unannounced: SyncMutex<HashMap<JobId, Job>>,
    /// Queues whose rows this node made sure of (see
    /// [`Cluster::ensure_queues`]).
    queues: SyncMutex<HashSet<String>>,
    /// This node's part in firing the schedules: the leader lease's
    /// state, the firer's wake-up.
    leader: schedules::Leader,
}

/// One run on this node: its attempt, the way to stop it, its process.
struct Run {
    /// The attempt it runs.
    attempt: u32,
    /// Tells it to stop, and why.
    stop: Sender<StopReason>,
    /// Its process id, from its spawn: the database has a run's pid only
    /// once it ran for a moment (see `run.rs`); this node's answers have
    /// it at once.
    pid: Option<u32>,
}

/// The limit the config gives queue `name` when it has none stored.
fn limit_of(config: &Config, name: &str) -> Option<u32> {
    config
        .queue_concurrency(name)
        .map(|c| u32::try_from(c).unwrap_or(u32::MAX))
}

impl Cluster {
    /// Connects, migrates, declares the config's queues and `default`,
    /// and joins as `settings.node` with `config.workers`.
    pub(crate) async fn open(
        settings: &PostgresSettings,
        config: &Config,
    ) -> Result<Cluster, PgError> {
        let workers = config.workers;
        // Connections: one the listener holds for good, one per run in
        // flight (its start, output and end), and some for the claimer,
        // the heartbeat, the housekeeper and requests. A pool too small
        // makes a heartbeat wait; one that waits past the lease stops jobs.
        let pool = u32::try_from((workers + 8).min(64)).unwrap_or(64);
        let pg = PgStore::open(settings.url.expose(), pool).await?;
        for (name, queue) in &config.queues {
            pg.declare_queue(name, queue.concurrency.map(|c| c as u32))
                .await?;
        }
        pg.ensure_queue("default", limit_of(config, "default"))
            .await?;
        let session = pg
            .join(
                &settings.node,
                u32::try_from(workers).unwrap_or(u32::MAX),
                settings.lease,
            )
            .await?;
        tracing::info!(node = %session.node, epoch = session.epoch, lease = ?settings.lease, "joined the cluster");
        Ok(Cluster {
            pg,
            settings: settings.clone(),
            session: SyncMutex::new(session),
            running: SyncMutex::default(),
            lost: SyncMutex::default(),
            wake: Event::new(),
            renewed: SyncMutex::new(Instant::now()),
            due: Event::new(),
            told: SyncMutex::default(),
            unannounced: SyncMutex::default(),
            queues: SyncMutex::default(),
            leader: schedules::Leader::default(),
        })
    }

    /// Makes the rows of the queues `jobs` name that this node has not
    /// seen yet, with the limit the config gives a new queue
    /// (`default_concurrency`): the submission's insert makes a missing
    /// row with no limit.
    async fn ensure_queues(&self, config: &Config, jobs: &[Job]) -> Result<(), PgError> {
        let new: Vec<&str> = {
            let seen = self.queues.lock().unwrap_or_else(|e| e.into_inner());
            let mut new: Vec<&str> = jobs
                .iter()
                .map(|j| j.spec.queue.as_str())
                .filter(|q| !seen.contains(*q))
                .collect();
            new.sort_unstable();
            new.dedup();
            new
        };
        for name in new {
            self.pg.ensure_queue(name, limit_of(config, name)).await?;
            self.queues
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(name.to_owned());
        }
        Ok(())
    }

    fn session(&self) -> Session {
        self.session
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The runs of this node now: (job, attempt).
    fn running_claims(&self) -> Vec<(JobId, u32)> {
        self.running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(id, run)| (*id, run.attempt))
            .collect()
    }

    /// Notes the run of `attempt` of `id` on this node.
    fn run_started(&self, id: JobId, attempt: u32, stop: Sender<StopReason>) {
        self.running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                id,
                Run {
                    attempt,
                    stop,
                    pid: None,
                },
            );
    }

    /// Notes the process of the run of `attempt` of `id`.
    fn run_spawned(&self, id: JobId, attempt: u32, pid: u32) {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(run) = running.get_mut(&id).filter(|r| r.attempt == attempt) {
            run.pid = Some(pid);
        }
    }

    /// Forgets the run of `attempt` of `id`, and what was noted of it,
    /// unless a later attempt of the job runs here by now.
    fn run_ended(&self, id: JobId, attempt: u32) {
        {
            let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
            if running.get(&id).is_some_and(|r| r.attempt == attempt) {
                running.remove(&id);
            }
        }
        self.lost
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&(id, attempt));
    }

    /// Whether the claim of `attempt` of `id` was taken from this node.
    fn is_lost(&self, id: JobId, attempt: u32) -> bool {
        self.lost
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&(id, attempt))
    }

    /// Asks the run of `id` on this node, if there is one, to stop.
    fn stop(&self, id: &JobId, why: StopReason) -> bool {
        let running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        match running.get(id) {
            Some(run) => {
                let _ = run.stop.try_send(why);
                true
            }
            None => false,
        }
    }

    /// Fills in the pid of a job this node runs whose record does not
    /// have it yet.
    fn with_local_pid(&self, mut job: Job) -> Job {
        if let State::Running { pid: pid @ 0, .. } = &mut job.state {
            if let Some(local) = self
                .running
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&job.id)
                .filter(|run| run.attempt == job.attempt)
                .and_then(|run| run.pid)
            {
                *pid = local;
            }
        }
        job
    }

    /// Notes (`true`) or forgets that this node tells the change of `job`
    /// to its state itself.
    fn telling(&self, job: &Job, on: bool) {
        let key = (job.id, job.state.name());
        let mut told = self.told.lock().unwrap_or_else(|e| e.into_inner());
        if on {
            told.insert(key);
        } else {
            told.remove(&key);
        }
    }

    /// Notes (`true`) or forgets new `jobs` that this node announces
    /// itself (see `Cluster::unannounced`): the database's notification
    /// of them is not told.
    fn to_announce(&self, jobs: &[Job], on: bool) {
        jobs.iter().for_each(|job| self.telling(job, on));
        let mut pending = self.unannounced.lock().unwrap_or_else(|e| e.into_inner());
        for job in jobs {
            if on {
                pending.insert(job.id, job.clone());
            } else {
                pending.remove(&job.id);
            }
        }
    }

    /// After the write of new `jobs` noted with [`Cluster::to_announce`]:
    /// announces them if it stored them, else forgets them.
    fn settle_announce<E>(
        &self,
        events: &crate::events::EventHub,
        jobs: &[Job],
        done: &Result<Fenced, E>,
    ) {
        if matches!(done, Ok(Fenced::Done)) {
            jobs.iter().for_each(|job| self.announce(events, &job.id));
        } else {
            self.to_announce(jobs, false);
        }
    }

    /// Tells `events` of the new job `id` if it was not announced yet:
    /// called before any later change of it is told.
    pub(in crate::engine) fn announce(&self, events: &crate::events::EventHub, id: &JobId) {
        let job = self
            .unannounced
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
        if let Some(job) = job {
            events.publish(&job);
        }
    }

    /// Whether this node told the change of `id` to `state` itself (once).
    fn was_told(&self, id: JobId, state: StateName) -> bool {
        self.told
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&(id, state))
    }

    /// Whether this node runs `id` now.
    pub(in crate::engine) fn runs_here(&self, id: &JobId) -> bool {
        self.running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(id)
    }

    /// Stops runs (job, attempt) whose claim this node no longer holds,
    /// recording nothing. A run that ended meanwhile is left alone, and
    /// so is a later attempt of the job that runs here now.
    fn drop_claims(&self, claims: &[(JobId, u32)]) {
        let running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        let dropped: Vec<&(JobId, u32)> = claims
            .iter()
            .filter(|(id, attempt)| running.get(id).is_some_and(|r| r.attempt == *attempt))
            .collect();
        if dropped.is_empty() {
            return;
        }
        tracing::warn!(jobs = dropped.len(), "this node lost its claim on running jobs (its lease lapsed); stopping them without recording an end");
        let mut lost = self.lost.lock().unwrap_or_else(|e| e.into_inner());
        for (id, attempt) in dropped {
            lost.insert((*id, *attempt));
            if let Some(run) = running.get(id) {
                let _ = run.stop.try_send(StopReason::Shutdown);
            }
        }
    }
}

impl Engine {
    /// The cluster this engine is a node of, if its store is PostgreSQL.
    pub(crate) fn cluster(&self) -> Option<&Cluster> {
        self.inner.cluster.as_ref()
    }

    /// [`Engine::submit_all`] on the cluster: each job is one insert; the
    /// database's trigger wakes the nodes and tells every node's
    /// subscribers.
    pub(in crate::engine) async fn cluster_submit(
        &self,
        cluster: &Cluster,
        specs: Vec<(JobSpec, Stdin)>,
        ownership: Ownership,
    ) -> Result<Vec<Submitted>, EngineError> {
        // Uploads are claimed as the batch is read; a batch that is not
        // stored gives them back.
        let mut claims = Vec::new();
        let submitted = self
            .cluster_submit_claiming(cluster, specs, ownership, &mut claims)
            .await;
        let unused: Vec<JobId> = match &submitted {
            Ok(out) => claims
                .into_iter()
                .filter(|id| !out.iter().any(|s| s.created && s.job.id == *id))
                .collect(),
            Err(_) => claims,
        };
        if !unused.is_empty() {
            if let Err(e) = cluster.pg.release_uploads(&unused).await {
                tracing::warn!(error = %e, "cannot give back the uploads of a submission that was not stored; they go in an hour");
            }
        }
        submitted
    }

    /// [`Engine::cluster_submit`], noting in `claims` the jobs whose
    /// uploads it claimed.
    async fn cluster_submit_claiming(
        &self,
        cluster: &Cluster,
        specs: Vec<(JobSpec, Stdin)>,
        ownership: Ownership,
        claims: &mut Vec<JobId>,
    ) -> Result<Vec<Submitted>, EngineError> {
        let limit = self.inner.config.max_queued;
        let waiting = self.cluster_waiting(cluster).await?;
        if waiting + specs.len() as u64 > limit {
            return Err(EngineError::QueueFull {
                queued: waiting,
                limit,
            });
        }
        let now = Timestamp::now();
        // Jobs whose key is live are answered as they are, before anything
        // is checked or numbered: numbers go to new jobs only (a key two
        // submissions race for still costs the loser its number).
        let keys: Vec<&str> = specs
            .iter()
            .filter_map(|(spec, _)| spec.idempotency_key.as_deref())
            .collect();
        let mut known: HashMap<String, Job> = if keys.is_empty() {
            HashMap::new()
        } else {
            cluster
                .pg
                .jobs_with_keys(&keys)
                .await?
                .into_iter()
                .filter_map(|job| Some((job.spec.idempotency_key.clone()?, job)))
                .collect()
        };
        let many = specs.len() > 1;
        let mut jobs = Vec::with_capacity(specs.len());
        let mut stdins = Vec::with_capacity(specs.len());
        // Per spec: the live job of its key, or the index of its new job.
        let mut entries: Vec<Result<Job, usize>> = Vec::with_capacity(specs.len());
        for (i, (mut spec, stdin)) in specs.into_iter().enumerate() {
            if let Some(job) = spec.idempotency_key.as_ref().and_then(|k| known.get(k)) {
                entries.push(Ok(job.clone()));
                continue;
            }
            let field = |name: &str| {
                if many {
                    format!("jobs[{i}].{name}")
                } else {
                    name.to_owned()
                }
            };
            let id = JobId::new();
            spec.stdin_bytes = match &stdin {
                Stdin::Bytes(bytes) => Some(bytes.len() as u64),
                Stdin::None => None,
                Stdin::Upload(upload) => Some(
                    self.cluster_claim_upload(cluster, upload, id, field("stdin_upload"))
                        .await?,
                ),
            };
            if matches!(stdin, Stdin::Upload(_)) {
                claims.push(id);
            }
            let stdin = match stdin {
                Stdin::Bytes(bytes) => Some(bytes),
                Stdin::None | Stdin::Upload(_) => None,
            };
            self.cap_limits(&mut spec)
                .map_err(|e| FieldError::new(field(&e.field), e.message))?;
            stdins.push(stdin);
            let (pending, failed) = self
                .cluster_pending(cluster, &spec.after, field("after"))
                .await?;
            let mut job = Job::new(id, 0, spec, ownership.clone(), pending, now);
            if let Some((dep, state)) = failed {
                // Recorded waiting on the failed job, then failed: it
                // exists (its id was asked for) but will never run.
                job.state = State::Waiting { pending: vec![dep] };
                job.dependency_failed(&dep, state, now)?;
            }
            entries.push(Err(jobs.len()));
            jobs.push(job);
        }
        known.clear();
        let seqs = if jobs.is_empty() {
            Vec::new()
        } else {
            cluster.pg.next_seqs(jobs.len()).await?
        };
        for (job, seq) in jobs.iter_mut().zip(seqs) {
            job.seq = seq;
        }
        let existing = if jobs.is_empty() {
            Vec::new()
        } else {
            cluster.ensure_queues(&self.inner.config, &jobs).await?;
            // This node tells its subscribers of the new jobs itself, as
            // sled does: a job claimed at once would be `running` by the
            // time the notification's record is read.
            cluster.to_announce(&jobs, true);
            let existing = cluster.pg.insert_all(&jobs, &stdins).await;
            if existing.is_err() {
                cluster.to_announce(&jobs, false);
            }
            existing?
        };
        if jobs.iter().any(|j| j.state.name() == StateName::Scheduled) {
            cluster.due.notify(1);
        }
        let mut made: Vec<Option<Submitted>> = jobs
            .into_iter()
            .zip(existing)
            .map(|(job, existing)| {
                Some(match existing {
                    Some(existing) => {
                        cluster.to_announce(std::slice::from_ref(&job), false);
                        Submitted {
                            job: existing,
                            created: false,
                        }
                    }
                    None => {
                        cluster.announce(&self.inner.events, &job.id);
                        record_transition(&job);
                        super::schedules::count_submitted(&job);
                        Submitted { job, created: true }
                    }
                })
            })
            .collect();
        Ok(entries
            .into_iter()
            .filter_map(|entry| match entry {
                Ok(job) => Some(Submitted {
                    job,
                    created: false,
                }),
                Err(i) => made[i].take(),
            })
            .collect())
    }

    /// Jobs not started yet, cluster-wide, which `max_queued` bounds.
    pub(in crate::engine) async fn cluster_waiting(
        &self,
        cluster: &Cluster,
    ) -> Result<u64, EngineError> {
        Ok(cluster
            .pg
            .counts()
            .await?
            .iter()
            .filter(|(_, s, _)| matches!(s.as_str(), "waiting" | "scheduled" | "queued"))
            .map(|(_, _, n)| n)
            .sum())
    }

    /// A page of jobs, newest first, from the database.
    pub(in crate::engine) async fn cluster_list(
        &self,
        cluster: &Cluster,
        q: &ListQuery,
    ) -> Result<Page, EngineError> {
        let filter = crate::store::postgres::ListFilter {
            states: &q.states,
            queue: q.queue.as_deref(),
            owner: q.owner.as_deref(),
            name: q.name.as_deref(),
            labels: &q.labels,
        };
        let (jobs, more) = cluster.pg.list(&filter, q.before.as_ref(), q.limit).await?;
        let jobs: Vec<Job> = jobs
            .into_iter()
            .map(|j| cluster.with_local_pid(j))
            .collect();
        let next = if more {
            jobs.last().map(|j| j.id)
        } else {
            None
        };
        Ok(Page { jobs, next })
    }

    /// Runs a terminal job again (attempt + 1), on whichever node claims it.
    pub(in crate::engine) async fn cluster_retry(
        &self,
        cluster: &Cluster,
        id: &JobId,
        principal: &Principal,
    ) -> Result<Job, EngineError> {
        let job = self.cluster_get(cluster, id).await?;
        may_act(principal, &job, "retry")?;
        self.cluster_retry_checked(cluster, id).await
    }

    /// Runs job `id` again, whose principal may (see `cluster_retry`).
    pub(in crate::engine) async fn cluster_retry_checked(
        &self,
        cluster: &Cluster,
        id: &JobId,
    ) -> Result<Job, EngineError> {
        loop {
            let job = self.cluster_get(cluster, id).await?;
            let mut next = job.clone();
            next.retry()?;
            next.node = None;
            if cluster.pg.replace(&job, &next).await? == Fenced::Done {
                return Ok(next);
            }
        }
    }

    /// Forgets a terminal job, and its output where this node has it.
    pub(in crate::engine) async fn cluster_remove(
        &self,
        cluster: &Cluster,
        id: &JobId,
        principal: &Principal,
    ) -> Result<(), EngineError> {
        loop {
            let job = self.cluster_get(cluster, id).await?;
            may_act(principal, &job, "delete")?;
            if !job.state.is_terminal() {
                return Err(IllegalTransition {
                    id: job.id,
                    state: job.state.name(),
                    action: "delete it (cancel it first)",
                }
                .into());
            }
            if cluster.pg.remove(&job).await? == Fenced::Done {
                self.inner.store.remove_output(id)?;
                return Ok(());
            }
        }
    }

    /// A job as the database holds it.
    pub(in crate::engine) async fn cluster_get(
        &self,
        cluster: &Cluster,
        id: &JobId,
    ) -> Result<Job, EngineError> {
        let job = cluster
            .pg
            .get(id)
            .await?
            .ok_or(EngineError::NotFound(*id))?;
        Ok(cluster.with_local_pid(job))
    }

    /// A job's id from its number, in the database.
    pub(in crate::engine) async fn cluster_resolve(
        &self,
        cluster: &Cluster,
        number: u64,
    ) -> Result<JobId, EngineError> {
        let seq = number.checked_sub(1).ok_or(EngineError::NoNumber(number))?;
        cluster
            .pg
            .job_with_seq(seq)
            .await?
            .ok_or(EngineError::NoNumber(number))
    }

    /// Cancels a job wherever it runs: a job no node runs is cancelled in
    /// the database; a running one is asked to stop (here, or on its node
    /// through the database), and the answer waits for its recorded end.
    pub(in crate::engine) async fn cluster_cancel(
        &self,
        cluster: &Cluster,
        id: &JobId,
        principal: &Principal,
    ) -> Result<Job, EngineError> {
        let job = self.cluster_get(cluster, id).await?;
        may_act(principal, &job, "cancel")?;
        self.cluster_cancel_checked(cluster, id).await
    }

    /// Cancels job `id`, whose principal may (see `cluster_cancel`).
    pub(in crate::engine) async fn cluster_cancel_checked(
        &self,
        cluster: &Cluster,
        id: &JobId,
    ) -> Result<Job, EngineError> {
        let deadline = Instant::now() + self.inner.config.kill_grace + WAIT_FOR_CANCEL;
        let mut asked = false;
        loop {
            let listener = self.inner.changed.listen();
            let job = self.cluster_get(cluster, id).await?;
            match job.state {
                // The run this cancel stopped has ended (cancelled, or it
                // ended by itself meanwhile).
                _ if asked && job.state.is_terminal() => return Ok(job),
                State::Running { .. } => {
                    asked = true;
                    if !cluster.stop(id, StopReason::Cancel) {
                        cluster.pg.request_cancel(id).await?;
                    }
                    if Instant::now() > deadline {
                        return Err(EngineError::CancelPending(*id));
                    }
                    // Woken by the job's next event, or polled.
                    future::or(
                        async {
                            listener.await;
                        },
                        async {
                            Timer::after(Duration::from_millis(200)).await;
                        },
                    )
                    .await;
                }
                _ => {
                    let mut cancelled = job.clone();
                    cancelled.cancel(None, Timestamp::now())?;
                    match cluster.pg.replace(&job, &cancelled).await? {
                        Fenced::Done => {
                            self.cluster_cascade(cluster, &cancelled).await;
                            return Ok(cancelled);
                        }
                        // Changed meanwhile (claimed, say): decide again.
                        Fenced::Refused => continue,
                    }
                }
            }
        }
    }

    /// Queues with their limits, flags and counts, cluster-wide.
    pub(in crate::engine) async fn cluster_queues(
        &self,
        cluster: &Cluster,
    ) -> Result<Vec<QueueView>, EngineError> {
        let rows = cluster.pg.queue_rows().await?;
        let counts = cluster.pg.counts().await?;
        Ok(rows
            .into_iter()
            .map(|row| {
                let counts = counts
                    .iter()
                    .filter(|(q, _, _)| *q == row.name)
                    .filter_map(|(_, s, n)| Some((state_name(s)?, *n)))
                    .collect();
                QueueView {
                    name: row.name,
                    concurrency: row.concurrency.map(|c| c as usize),
                    paused: row.paused,
                    running: row.running as usize,
                    counts,
                }
            })
            .collect())
    }

    /// Changes a queue's limit or paused flag for every node.
    pub(in crate::engine) async fn cluster_patch_queue(
        &self,
        cluster: &Cluster,
        name: &str,
        patch: QueuePatch,
    ) -> Result<QueueView, EngineError> {
        let rows = cluster.pg.queue_rows().await?;
        let current = rows.iter().find(|r| r.name == name);
        if current.is_none() && !patch.create {
            return Err(EngineError::NoQueue(name.to_owned()));
        }
        // No limit of its own: the config's, as on a daemon of its own.
        let concurrency = match patch.concurrency {
            Some(Some(c)) => Some(u32::try_from(c).unwrap_or(u32::MAX)),
            Some(None) => limit_of(&self.inner.config, name),
            None => current.and_then(|r| r.concurrency),
        };
        let paused = patch
            .paused
            .unwrap_or_else(|| current.is_some_and(|r| r.paused));
        cluster.pg.put_queue(name, concurrency, paused).await?;
        cluster.wake.notify(1);
        self.cluster_queues(cluster)
            .await?
            .into_iter()
            .find(|q| q.name == name)
            .ok_or_else(|| EngineError::NoQueue(name.to_owned()))
    }

    /// Forgets a queue no job names and the config does not declare.
    pub(in crate::engine) async fn cluster_remove_queue(
        &self,
        cluster: &Cluster,
        name: &str,
    ) -> Result<(), EngineError> {
        let in_use = |why: String| EngineError::QueueInUse {
            name: name.to_owned(),
            why,
        };
        if !cluster
            .pg
            .queue_rows()
            .await?
            .iter()
            .any(|q| q.name == name)
        {
            return Err(EngineError::NoQueue(name.to_owned()));
        }
        if name == "default" {
            return Err(in_use("it is the default queue".to_owned()));
        }
        if self.inner.config.queues.contains_key(name) {
            return Err(in_use(format!(
                "the config file declares it ([queues.{name}]); remove it there"
            )));
        }
        if !cluster.pg.remove_queue(name).await? {
            let jobs: u64 = cluster
                .pg
                .counts()
                .await?
                .iter()
                .filter(|(q, _, _)| q == name)
                .map(|(_, _, n)| n)
                .sum();
            return Err(in_use(format!(
                "it has {} jobs (remove them first, e.g. with `jobq clean --queue {name}`)",
                jobs.max(1)
            )));
        }
        cluster
            .queues
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
        Ok(())
    }

    /// Jobs by queue and state, from the database's maintained counts.
    pub(in crate::engine) async fn cluster_job_counts(
        &self,
        cluster: &Cluster,
    ) -> Result<BTreeMap<(String, StateName), u64>, EngineError> {
        Ok(cluster
            .pg
            .counts()
            .await?
            .into_iter()
            .filter_map(|(q, s, n)| Some(((q, state_name(&s)?), n)))
            .collect())
    }

    /// The pulse of a node: its own running jobs, the cluster's counts
    /// (a query, so a database that does not answer fails the pulse and
    /// the watchdog sees it).
    pub(in crate::engine) async fn cluster_pulse(
        &self,
        cluster: &Cluster,
    ) -> Result<Pulse, EngineError> {
        let running = cluster.running_claims().len();
        let counts = cluster.pg.counts().await?;
        let sum = |state: &str| -> u64 {
            counts
                .iter()
                .filter(|(_, s, _)| s == state)
                .map(|(_, _, n)| n)
                .sum()
        };
        Ok(Pulse {
            running,
            queued: sum("queued"),
            scheduled: sum("scheduled"),
            waiting: sum("waiting"),
        })
    }

    /// Every node of the cluster; on a daemon of its own, just itself.
    pub async fn nodes(&self) -> Result<Vec<NodeRow>, EngineError> {
        match self.cluster() {
            Some(cluster) => Ok(cluster.pg.nodes().await?),
            None => {
                let running = self.inner.sched.lock().await.running.len();
                Ok(vec![NodeRow {
                    name: rustix::system::uname()
                        .nodename()
                        .to_string_lossy()
                        .into_owned(),
                    state: if self.is_stopping() {
                        crate::store::postgres::NodeState::Draining
                    } else {
                        crate::store::postgres::NodeState::Up
                    },
                    last_seen: Timestamp::now(),
                    running: running as u32,
                    workers: self.inner.config.workers as u32,
                    epoch: 1,
                }])
            }
        }
    }
}

/// How long a cancel waits for a running job's end beyond `kill_grace`:
/// its node must see the request (at once by NOTIFY, at worst at its next
/// heartbeat) and record the end.
const WAIT_FOR_CANCEL: Duration = Duration::from_secs(30);

impl Engine {
    /// [`Engine::wait`] on the cluster: woken by every job event the
    /// listener passes on, and polled behind it.
    pub(in crate::engine) async fn cluster_wait(
        &self,
        id: &JobId,
        limit: Duration,
    ) -> Result<Job, EngineError> {
        let cluster = self.cluster().expect("a cluster engine");
        let deadline = Instant::now() + limit;
        loop {
            let listener = self.inner.changed.listen();
            let job = self.cluster_get(cluster, id).await?;
            if job.state.is_terminal() || Instant::now() >= deadline {
                return Ok(job);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            future::or(
                async {
                    listener.await;
                },
                async {
                    Timer::after(left.min(Duration::from_secs(1))).await;
                },
            )
            .await;
        }
    }
}

/// A state's name as the database writes it.
fn state_name(s: &str) -> Option<StateName> {
    serde_json::from_value(serde_json::Value::String(s.to_owned())).ok()
}
