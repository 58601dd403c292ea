//! One claimed job on this node: spawn, record the start, supervise, and
//! record the end — each write fenced by the session that claimed it, so
//! a node that lost its claim records nothing over another node's run.

use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicU64};

use super::*;

/// How long a run goes before its pid is recorded on its own (see
/// `cluster_try_run`): short beside any job a person watches, long beside
/// a `true`.
const START_RECORD_DELAY: Duration = Duration::from_millis(100);

/// How often a run's new output is copied to the database.
const SHIP_EVERY: Duration = Duration::from_millis(250);

/// Most output bytes read for one copy.
const SHIP_READ: usize = 1 << 20;

impl Engine {
    /// Runs `claimed` (as the claim stored it: `running`, pid 0) under
    /// `session`, holding a worker `permit` until its end is recorded.
    pub(super) async fn cluster_run(
        &self,
        cluster: &Cluster,
        session: Session,
        claimed: Job,
        permit: SemaphoreGuardArc,
    ) {
        let id = claimed.id;
        let attempt = claimed.attempt;
        let (tx, rx) = async_channel::bounded(1);
        cluster.run_started(id, attempt, tx);
        cluster.announce(&self.inner.events, &id);
        let has_stdin = claimed.spec.stdin_bytes.is_some();
        if let Err(e) = self.cluster_try_run(cluster, &session, claimed, rx).await {
            tracing::error!(job = %id, error = %e, "job run failed in the daemon");
        }
        if has_stdin {
            self.cluster_drop_fetched(id, attempt).await;
        }
        cluster.run_ended(id, attempt);
        drop(permit);
        cluster.wake.notify(1);
    }

    async fn cluster_try_run(
        &self,
        cluster: &Cluster,
        session: &Session,
        claimed: Job,
        stop: Receiver<StopReason>,
    ) -> Result<(), EngineError> {
        let id = claimed.id;
        // The record as it was before the claim: the transitions below
        // start from `queued`, as a run on a daemon of its own does.
        let mut queued = claimed.clone();
        queued.state = State::Queued;
        // Before a process runs, a failure gives the job back to the queue.
        let prepared = async {
            let out = OutputWriter::new(
                self.inner.store.clone(),
                self.inner.output_hub.clone(),
                id,
                claimed.attempt,
                self.inner.config.max_output,
            )?;
            // Bytes from the spec, else the upload it claimed.
            let stdin = match claimed.spec.stdin_bytes {
                Some(_) => match cluster.pg.stdin(&id).await? {
                    Some(bytes) => Some(crate::store::StdinSource::Bytes(bytes)),
                    None => Some(
                        self.cluster_fetch_upload(cluster, id, claimed.attempt)
                            .await?,
                    ),
                },
                None => None,
            };
            Ok::<_, EngineError>((out, stdin))
        };
        let (out, stdin) = match prepared.await {
            Ok(prepared) => prepared,
            Err(e) => {
                tracing::warn!(job = %id, error = %e, "cannot prepare the job's run; it goes back to the queue");
                Timer::after(Duration::from_secs(1)).await;
                return self
                    .cluster_settle(cluster, session, &claimed, &queued)
                    .await;
            }
        };
        let launch = &self.inner.launch;
        let spawned = self.spawn_as_its_user(&claimed, stdin.is_some()).await;
        let (child, account) = match spawned {
            Ok(spawned) => spawned,
            Err(e) if e.transient => {
                // Not the job's fault: give it back for any node to take.
                tracing::warn!(job = %id, error = %e, "cannot start the job now; it goes back to the queue");
                Timer::after(Duration::from_secs(1)).await;
                return self
                    .cluster_settle(cluster, session, &claimed, &queued)
                    .await;
            }
            Err(e) => {
                let mut failed = queued.clone();
                failed.fail_to_spawn(e.message, Timestamp::now())?;
                return self
                    .cluster_settle(cluster, session, &claimed, &failed)
                    .await;
            }
        };
        let mut running = queued.clone();
        running
            .run_as
            .get_or_insert_with(|| crate::auth::RunAs::from(&account));
        running.start(child.pid(), Timestamp::now())?;
        cluster.run_spawned(id, claimed.attempt, child.pid());
        // The claim's notification is not told here (its node is this
        // one): this is the `running` subscribers see, with its pid.
        self.inner.events.publish(&running);
        record_transition(&running);
        observe_queue_wait(&claimed, now_of(&running));
        // The pid, fenced like every write of the run, once the job has
        // run for START_RECORD_DELAY: the claim already says `running`
        // since when, and a job that ends sooner has its pid recorded with
        // its end, one commit instead of two. A refusal means the claim is
        // gone already: the process is stopped.
        let timeout = claimed.spec.timeout;
        // Set once the start's statement is under way: from then on it is
        // seen through even if the process ends first (its connection is
        // held until it answers, and whether it was written decides the
        // record the end is fenced on).
        let recording = AtomicBool::new(false);
        let mut record = pin!(async {
            Timer::after(START_RECORD_DELAY).await;
            recording.store(true, Ordering::SeqCst);
            match cluster.pg.settle(session, &claimed, &running).await {
                Ok(Fenced::Done) => true,
                Ok(Fenced::Refused) => {
                    cluster.drop_claims(&[(id, claimed.attempt)]);
                    false
                }
                Err(e) => {
                    tracing::error!(job = %id, error = %e, "cannot record the job's start; it runs on");
                    false
                }
            }
        });
        // The output goes to the database as it comes, for followers on
        // other nodes; what is left, before the end is recorded. The
        // shipper is told to stop and finishes the copy it is in: a
        // statement cut off, or a future left unpolled with a connection,
        // would hold a connection of the pool that every run needs.
        let shipped = AtomicU64::new(0);
        let shipping = AtomicBool::new(true);
        let stop_shipping = Event::new();
        let (ended, recorded) = {
            let supervise = pin!(child.supervise(
                stdin,
                &out,
                stop,
                timeout,
                claimed.spec.limits,
                launch.kill_grace,
            ));
            let mut ship = pin!(async {
                while shipping.load(Ordering::SeqCst) {
                    let stopped = stop_shipping.listen();
                    future::or(
                        async {
                            Timer::after(SHIP_EVERY).await;
                        },
                        stopped,
                    )
                    .await;
                    if !shipping.load(Ordering::SeqCst) {
                        break;
                    }
                    self.cluster_ship(cluster, id, claimed.attempt, &shipped)
                        .await;
                }
            });
            let run = pin!(super::super::dispatch::run_alongside(
                supervise,
                record.as_mut()
            ));
            let ((ended, recorded), shipper) =
                super::super::dispatch::run_alongside(run, ship.as_mut()).await;
            shipping.store(false, Ordering::SeqCst);
            stop_shipping.notify(usize::MAX);
            if shipper.is_none() {
                ship.await;
            }
            (ended, recorded)
        };
        let recorded = match recorded {
            None if recording.load(Ordering::SeqCst) => Some(record.await),
            other => other,
        };
        self.cluster_ship(cluster, id, claimed.attempt, &shipped)
            .await;
        let base = if recorded == Some(true) {
            &running
        } else {
            &claimed
        };
        if let Err(e) = out.mark_truncation() {
            tracing::warn!(job = %id, error = %e, "cannot mark the job's output as truncated");
        }
        let stopped = self.process_ended(&claimed, &ended).await;
        if cluster.is_lost(id, claimed.attempt) {
            tracing::warn!(job = %id, "the job's claim was taken from this node; its end is not recorded");
            return Ok(());
        }
        let now = Timestamp::now();
        let mut done = self.ended_run(&running, stopped, &ended, &out)?;
        if done.may_retry() {
            let at = now
                .checked_add(super::super::dispatch::retry_delay(
                    &done,
                    self.inner.config.max_backoff,
                ))
                .unwrap_or(Timestamp::MAX);
            done.retry_at(at)?;
        }
        self.cluster_settle(cluster, session, base, &done).await
    }

    /// Copies the frames of the attempt's file past `shipped` to the
    /// database and moves `shipped` on; a failure is logged and tried
    /// again next time (a frame stored twice is stored once).
    async fn cluster_ship(&self, cluster: &Cluster, id: JobId, attempt: u32, shipped: &AtomicU64) {
        loop {
            let from = shipped.load(Ordering::SeqCst);
            let frames = match self.inner.store.read_chunks(&id, attempt, from, SHIP_READ) {
                Ok(f) => f,
                Err(e) => {
                    tracing::warn!(job = %id, error = %e, "cannot read output to copy to the database");
                    return;
                }
            };
            let Some(&(end, _, _)) = frames.last() else {
                return;
            };
            if let Err(e) = cluster.pg.put_output(&id, attempt, &frames).await {
                tracing::warn!(job = %id, error = %e, "cannot copy output to the database");
                return;
            }
            shipped.store(end, Ordering::SeqCst);
        }
    }

    /// Records `new` over the claimed attempt `old`; a refusal is logged:
    /// the claim was taken from this node, and the run's end is not its to
    /// record.
    async fn cluster_settle(
        &self,
        cluster: &Cluster,
        session: &Session,
        old: &Job,
        new: &Job,
    ) -> Result<(), EngineError> {
        // A run's end must not be dropped on a failed statement: the job
        // would stay `running` unrenewed, be rescued, and run again. The
        // run stays in the node's table (its lease renewed) while this
        // tries again, until the end is written, refused, or the claim is
        // known lost (the heartbeat gave it up).
        let mut pause = Duration::from_millis(50);
        cluster.telling(new, true);
        loop {
            match cluster.pg.settle(session, old, new).await {
                Ok(Fenced::Done) => {
                    if new.state.name() == StateName::Scheduled {
                        cluster.due.notify(1);
                    }
                    self.inner.events.publish(new);
                    record_transition(new);
                    self.cluster_cascade(cluster, new).await;
                    return Ok(());
                }
                Ok(Fenced::Refused) => {
                    cluster.telling(new, false);
                    tracing::warn!(job = %new.id, "the database refused the end of a run this node no longer holds; not recorded");
                    return Ok(());
                }
                Err(e) => {
                    if cluster.is_lost(new.id, old.attempt) {
                        cluster.telling(new, false);
                        return Err(e.into());
                    }
                    tracing::warn!(job = %new.id, error = %e, "cannot record what became of a run; trying again");
                    Timer::after(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(2));
                }
            }
        }
    }
}

/// When a running job started, by its record.
fn now_of(running: &Job) -> Timestamp {
    match running.state {
        State::Running { started_at, .. } => started_at,
        _ => Timestamp::now(),
    }
}

/// Counts how long the claimed job waited in its queue
/// (`jobq_queue_wait_seconds`): since its previous attempt ended, else
/// since it was submitted or due. The database holds no moment it became
/// queued, so a job that waited on dependencies counts that wait too.
fn observe_queue_wait(claimed: &Job, started: Timestamp) {
    let since = match claimed.attempts.last() {
        Some(last) => last.finished_at,
        None => claimed
            .spec
            .run_at
            .map_or(claimed.created_at, |at| at.max(claimed.created_at)),
    };
    let waited = started.duration_since(since).as_secs_f64().max(0.0);
    crate::metrics::metrics()
        .queue_wait
        .get_or_create(&crate::metrics::QueueLabel {
            queue: claimed.spec.queue.clone(),
        })
        .observe(waited);
}
