//! A node's loops: the claimer (as many jobs as free workers, woken by the
//! database's `jobq_wake` and by local ends, with a slow poll behind
//! both), the heartbeat (lease renewal, lost claims, cancels), the
//! housekeeper (rescue of lapsed claims, due jobs, count folding, missed
//! releases of waiting jobs, retention, output of pruned jobs), the
//! listener (notifications into wake-ups, cancels and events), the
//! schedules' lease keeper and firer (`schedules.rs`), and the drain at
//! shutdown.

use super::*;
use crate::store::postgres::{NodeState, Renewal};

/// Most jobs one claim takes: a batch is one statement, and a node
/// should not hoard work another node's free workers could start.
const CLAIM_BATCH: usize = 32;

/// How often the claimer looks without being woken: the fallback when a
/// notification is lost (a dropped listener, a pooler without LISTEN).
const POLL: Duration = Duration::from_secs(1);

/// How often due jobs are made queued, lapsed claims rescued and counts
/// folded.
const HOUSEKEEPING: Duration = Duration::from_secs(1);

/// Most jobs one prune removes; a backlog goes in several.
const PRUNE_BATCH: u32 = 1000;

/// The channels a node listens on (see the schema).
const CHANNELS: [&str; 5] = [
    "jobq_wake",
    "jobq_cancel",
    "jobq_events",
    "jobq_output",
    "jobq_schedules",
];

impl Engine {
    /// Runs the node until shutdown: claims, heartbeats, housekeeping and
    /// notifications, side by side.
    pub async fn run_cluster(&self) {
        let Some(cluster) = self.cluster() else {
            return;
        };
        future::zip(
            self.cluster_claimer(cluster),
            future::zip(
                self.cluster_heartbeat(cluster),
                future::zip(
                    self.cluster_housekeeper(cluster),
                    future::zip(
                        self.cluster_promoter(cluster),
                        future::zip(
                            self.cluster_listener(cluster),
                            future::zip(
                                self.cluster_schedule_lease(cluster),
                                self.cluster_schedule_firer(cluster),
                            ),
                        ),
                    ),
                ),
            ),
        )
        .await;
    }

    async fn cluster_claimer(&self, cluster: &Cluster) {
        let inner = &self.inner;
        loop {
            let first = inner.workers.acquire_arc().await;
            let mut permits = vec![first];
            while permits.len() < CLAIM_BATCH {
                match inner.workers.try_acquire_arc() {
                    Some(p) => permits.push(p),
                    None => break,
                }
            }
            let listener = cluster.wake.listen();
            if self.is_stopping() {
                return;
            }
            let session = cluster.session();
            let free = u32::try_from(permits.len()).unwrap_or(u32::MAX);
            let claimed = match cluster
                .pg
                .claim(&session, free, cluster.settings.lease)
                .await
            {
                Ok(claimed) => claimed,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot claim jobs; trying again");
                    Vec::new()
                }
            };
            if claimed.is_empty() {
                drop(permits);
                future::or(
                    async {
                        listener.await;
                    },
                    async {
                        Timer::after(POLL).await;
                    },
                )
                .await;
                continue;
            }
            for c in claimed {
                let Some(permit) = permits.pop() else { break };
                inner.in_flight.fetch_add(1, Ordering::SeqCst);
                let engine = self.clone();
                let session = session.clone();
                crate::rt::spawn(async move {
                    let cluster = engine.cluster().expect("a cluster engine");
                    engine.cluster_run(cluster, session, c.job, permit).await;
                    engine.inner.in_flight.fetch_sub(1, Ordering::SeqCst);
                    engine.inner.idle.notify(usize::MAX);
                });
            }
        }
    }

    async fn cluster_heartbeat(&self, cluster: &Cluster) {
        let lease = cluster.settings.lease;
        let every = lease / 3;
        loop {
            Timer::after(every).await;
            if self.is_stopping() && self.inner.in_flight.load(Ordering::SeqCst) == 0 {
                return;
            }
            let session = cluster.session();
            let claims = cluster.running_claims();
            let ids: Vec<JobId> = claims.iter().map(|(id, _)| *id).collect();
            // A renewal that has not answered within a third of the lease
            // counts as failed: the check of the lease below must run on
            // time even while the database does not answer.
            let renewal = future::or(
                async { Some(cluster.pg.renew(&session, &ids, lease).await) },
                async {
                    Timer::after(every).await;
                    None
                },
            )
            .await
            .unwrap_or_else(|| Err(crate::store::postgres::PgError::Timeout("renew the lease")));
            match renewal {
                Ok(Renewal::Alive { lost, cancel }) => {
                    *cluster.renewed.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
                    // Of the runs renewed: a run that ended since (its job
                    // moved on) is not dropped, nor its next attempt.
                    let lost: Vec<(JobId, u32)> = claims
                        .iter()
                        .filter(|(id, _)| lost.contains(id))
                        .copied()
                        .collect();
                    cluster.drop_claims(&lost);
                    for id in cancel {
                        cluster.stop(&id, StopReason::Cancel);
                    }
                }
                Ok(Renewal::LeaseLost) => {
                    tracing::error!(node = %session.node, epoch = session.epoch, "this node's lease lapsed or another daemon joined under its name: stopping its jobs");
                    cluster.drop_claims(&claims);
                    self.rejoin(cluster, &session).await;
                }
                Err(e) => {
                    let silent = cluster
                        .renewed
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .elapsed();
                    tracing::warn!(error = %e, silent = ?silent, "cannot renew the lease");
                    if silent >= lease {
                        // Others may be rescuing these jobs by now.
                        cluster.drop_claims(&claims);
                    }
                }
            }
        }
    }

    /// After a lost lease: a node that was declared dead joins again with
    /// a new epoch; one whose name another daemon took stops claiming.
    async fn rejoin(&self, cluster: &Cluster, old: &Session) {
        let taken = match cluster.pg.nodes().await {
            Ok(nodes) => nodes
                .iter()
                .any(|n| n.name == old.node && n.epoch > old.epoch && n.state != NodeState::Dead),
            Err(_) => false,
        };
        if taken {
            tracing::error!(node = %old.node, "another daemon joined under this node's name; this one takes no more jobs (give each daemon its own [store] node)");
            self.inner.stopping.store(true, Ordering::SeqCst);
            cluster.wake.notify(usize::MAX);
            return;
        }
        let workers = u32::try_from(self.inner.config.workers).unwrap_or(u32::MAX);
        match cluster
            .pg
            .join(&old.node, workers, cluster.settings.lease)
            .await
        {
            Ok(session) => {
                tracing::info!(node = %session.node, epoch = session.epoch, "joined the cluster again");
                *cluster.session.lock().unwrap_or_else(|e| e.into_inner()) = session;
                *cluster.renewed.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
                cluster.wake.notify(1);
            }
            Err(e) => tracing::error!(error = %e, "cannot join the cluster again"),
        }
    }

    /// Makes due jobs queued when they are due: it sleeps until the
    /// database's next due job, at most [`HOUSEKEEPING`] (another node may
    /// schedule an earlier one), and wakes early when this node schedules
    /// one.
    async fn cluster_promoter(&self, cluster: &Cluster) {
        while !self.is_stopping() {
            let listener = cluster.due.listen();
            let pause = match cluster.pg.promote_due().await {
                Ok(next) => next.map_or(HOUSEKEEPING, |n| n.min(HOUSEKEEPING)),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot make due jobs queued");
                    HOUSEKEEPING
                }
            };
            future::or(listener, async {
                Timer::after(pause).await;
            })
            .await;
        }
    }

    /// A cluster node's recovery at its start: the jobs its earlier
    /// session ran are rescued now (their daemon is gone: this one took
    /// its name), and the processes they left behind are killed. Returns
    /// how many jobs were interrupted.
    pub(in crate::engine) async fn cluster_recover(
        &self,
        cluster: &Cluster,
    ) -> Result<usize, EngineError> {
        let lapsed = cluster
            .pg
            .lapse_earlier_sessions(&cluster.session())
            .await?;
        if lapsed > 0 {
            self.cluster_rescue(cluster).await;
        }
        self.cluster_drop_all_fetched().await;
        let found = blocking::unblock(crate::runner::strays::job_processes).await;
        for process in self.cluster_strays(cluster, found).await {
            tracing::info!(job = %process.job, pid = process.pid, "killing a process of a job that ran before the restart");
            crate::runner::strays::kill(&process);
        }
        self.cluster_recover_schedules(cluster).await;
        Ok(usize::try_from(lapsed).unwrap_or(usize::MAX))
    }

    /// Rescues a batch of lapsed claims, with what their new state causes
    /// in their dependents.
    pub(super) async fn cluster_rescue(&self, cluster: &Cluster) {
        match cluster
            .pg
            .rescue(self.inner.config.on_interrupted, 100, Timestamp::now())
            .await
        {
            Ok(rescued) => {
                for r in &rescued {
                    tracing::warn!(job = %r.job.id, node = %r.node, state = %r.job.state.name().as_str(), "rescued a job whose node stopped renewing its lease");
                    self.cluster_cascade(cluster, &r.job).await;
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot rescue lapsed claims"),
        }
    }

    async fn cluster_housekeeper(&self, cluster: &Cluster) {
        let mut rounds: u64 = 0;
        while !self.is_stopping() {
            Timer::after(HOUSEKEEPING).await;
            rounds += 1;
            self.cluster_rescue(cluster).await;
            if rounds.is_multiple_of(5) {
                if let Err(e) = cluster.pg.fold_counts().await {
                    tracing::warn!(error = %e, "cannot fold counts");
                }
                self.cluster_missed_releases(cluster).await;
                self.cluster_prune(cluster).await;
                if let Err(e) = cluster.pg.restore_queue_rows().await {
                    tracing::warn!(error = %e, "cannot restore queue rows");
                }
            }
            if rounds.is_multiple_of(60) {
                self.cluster_sweep_output(cluster).await;
                self.cluster_prune_uploads(cluster).await;
            }
        }
    }

    /// Retention on the cluster: terminal jobs past `retention` or beyond
    /// `keep_finished` go, oldest first, with their output on this node
    /// (other nodes' output of them goes at their next sweep).
    async fn cluster_prune(&self, cluster: &Cluster) {
        let config = &self.inner.config;
        loop {
            match cluster
                .pg
                .prune(config.retention, config.keep_finished, PRUNE_BATCH)
                .await
            {
                Ok(ids) => {
                    for id in &ids {
                        if let Err(e) = self.inner.store.remove_output(id) {
                            tracing::warn!(job = %id, error = %e, "cannot remove a pruned job's output");
                        }
                    }
                    if ids.len() < PRUNE_BATCH as usize {
                        return;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot prune old jobs");
                    return;
                }
            }
        }
    }

    /// Removes the output this node keeps of jobs the cluster no longer has.
    async fn cluster_sweep_output(&self, cluster: &Cluster) {
        let here = match self.inner.store.output_job_ids() {
            Ok(ids) => ids,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list this node's output");
                return;
            }
        };
        for chunk in here.chunks(1000) {
            let kept = match cluster.pg.existing(chunk).await {
                Ok(kept) => kept,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot check this node's output against the cluster");
                    return;
                }
            };
            for id in chunk.iter().filter(|id| !kept.contains(id)) {
                let _ = self.inner.store.remove_output(id);
            }
        }
    }

    /// In poll-only mode (`[store] poll_only`), what the listener would
    /// have been told is looked for every [`POLL`]: the claimer, the
    /// schedules' firer, waiters and followers look again. Cancels reach
    /// the node by its heartbeat (`renew` lists them), and `/v1/events`
    /// tells only this node's own changes.
    async fn cluster_poller(&self, cluster: &Cluster) {
        tracing::info!("poll-only: no LISTEN on the database; looking for changes every second");
        while !self.is_stopping() {
            Timer::after(POLL).await;
            cluster.wake.notify(1);
            cluster.leader.wake.notify(1);
            self.inner.changed.notify(usize::MAX);
            self.inner.output_hub.notify_all();
        }
    }

    async fn cluster_listener(&self, cluster: &Cluster) {
        if cluster.settings.poll_only {
            return self.cluster_poller(cluster).await;
        }
        while !self.is_stopping() {
            let mut listener = match cluster.pg.listen(&CHANNELS).await {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot listen for the cluster's notifications; polling until it can");
                    Timer::after(POLL).await;
                    continue;
                }
            };
            // Whatever was sent while nobody listened.
            cluster
                .told
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clear();
            cluster.wake.notify(1);
            loop {
                let next = future::or(async { Some(listener.recv().await) }, async {
                    Timer::after(POLL).await;
                    None
                })
                .await;
                if self.is_stopping() {
                    return;
                }
                let Some(next) = next else { continue };
                let note = match next {
                    Ok(n) => n,
                    Err(e) => {
                        tracing::warn!(error = %e, "the listening connection failed; reconnecting");
                        break;
                    }
                };
                match note.channel() {
                    "jobq_wake" => {
                        cluster.wake.notify(1);
                    }
                    "jobq_cancel" => {
                        if let Ok(id) = note.payload().parse::<JobId>() {
                            cluster.stop(&id, StopReason::Cancel);
                        }
                    }
                    "jobq_schedules" => {
                        cluster.leader.wake.notify(1);
                    }
                    "jobq_output" => {
                        if let Ok(id) = note.payload().parse::<JobId>() {
                            self.inner.output_hub.notify(&id);
                        }
                    }
                    _ => self.cluster_event(cluster, note.payload()).await,
                }
            }
        }
    }

    /// A job changed somewhere in the cluster (`"<id> <state>"`): tell
    /// this node's subscribers and waiters. What this node's own runs
    /// did it told already, as it wrote it; for the rest the database's
    /// record is read, and told only if it is still in the notified
    /// state (else a later notification tells what it became).
    async fn cluster_event(&self, cluster: &Cluster, payload: &str) {
        let mut words = payload.split(' ');
        let Some(id) = words.next().and_then(|s| s.parse::<JobId>().ok()) else {
            return;
        };
        let state = words.next().and_then(|s| s.parse::<StateName>().ok());
        self.inner.output_hub.notify(&id);
        self.inner.changed.notify(usize::MAX);
        let Some(state) = state else {
            return; // removed
        };
        if cluster.was_told(id, state) {
            return;
        }
        // Read only for subscribers: on a busy cluster every node hears
        // every change, and most nodes have nobody listening.
        if !self.inner.events.has_subscribers() {
            return;
        }
        let job = match cluster.pg.get(&id).await {
            Ok(Some(job)) => job,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(job = %id, error = %e, "cannot read a changed job");
                return;
            }
        };
        if job.state.name() != state {
            return;
        }
        cluster.announce(&self.inner.events, &id);
        let mine = job.node.as_deref() == Some(cluster.session().node.as_str());
        if state == StateName::Running && mine {
            return; // told by its run, with its pid
        }
        self.inner.events.publish(&cluster.with_local_pid(job));
    }

    /// The drain on the cluster: no more claims, running jobs go on for up
    /// to `shutdown_grace`, then are stopped and recorded as interrupted;
    /// the node leaves (its row `dead`, its lease ended) so that nobody
    /// waits for it to lapse.
    pub(in crate::engine) async fn cluster_shutdown(&self, cluster: &Cluster) {
        let session = cluster.session();
        if let Err(e) = cluster
            .pg
            .set_node_state(&session, NodeState::Draining)
            .await
        {
            tracing::warn!(error = %e, "cannot mark this node draining");
        }
        // After `draining`: a node not `up` cannot take the lease again.
        self.cluster_resign(cluster).await;
        cluster.wake.notify(usize::MAX);
        let grace = self.inner.config.shutdown_grace;
        let finished = self.runs_end_within(grace).await;
        if !finished {
            let ids: Vec<JobId> = cluster
                .running_claims()
                .into_iter()
                .map(|(id, _)| id)
                .collect();
            tracing::info!(
                running = ids.len(),
                "shutdown grace over: stopping running jobs"
            );
            for id in ids {
                cluster.stop(&id, StopReason::Shutdown);
            }
            self.runs_ended().await;
        }
        if let Err(e) = cluster.pg.set_node_state(&session, NodeState::Dead).await {
            tracing::warn!(error = %e, "cannot mark this node as gone");
        }
        cluster.pg.close().await;
    }
}
