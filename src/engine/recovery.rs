//! Recovery at start: one rule per stored state, and the killing of
//! process groups a crashed daemon left behind.

use super::*;

/// Kills every process group a job of this store still runs in: at start
/// no job has a supervisor, so whatever runs is left from a crash. Job ids
/// are UUIDv7, so a job of another daemon's store never matches.
fn kill_leftover_groups(store: &Store) -> Result<(), EngineError> {
    // Recovery does not go by the pid in a `running` record alone: a crash
    // between a job's spawn and the flush of its start leaves a group the
    // store never heard of, and a recorded pid may have been reused since.
    let groups: BTreeSet<(u32, JobId)> = runner::strays::job_processes()
        .into_iter()
        .map(|p| (p.pgid, p.job))
        .collect();
    for (pgid, id) in groups {
        if store.get(&id)?.is_some() {
            tracing::warn!(job = %id, pgid, "killing the process group a crashed jobq left running");
            runner::signal_group(pgid, rustix::process::Signal::KILL);
        }
    }
    Ok(())
}

impl Engine {
    /// Brings the store to a consistent state after a start, one rule per
    /// stored state, and loads the in-memory queues. Returns how many
    /// interrupted jobs were found.
    pub async fn recover(&self) -> Result<usize, EngineError> {
        if let Some(cluster) = self.cluster() {
            // The database is the record, and lapsed claims are the
            // rescue's (docs/cluster.md); the sled store holds only output.
            let n = self.cluster_recover(cluster).await?;
            self.inner.recovered.store(true, Ordering::SeqCst);
            return Ok(n);
        }
        let store = &self.inner.store;
        let now = Timestamp::now();
        // Leftover processes first, so no job ever runs twice at once.
        kill_leftover_groups(store)?;
        // Part files of uploads cut off by the stop.
        super::retention::sweep(store).await;
        // Output of jobs whose removal a crash cut short: in the background,
        // off the start (it reads one directory entry per job with output,
        // and only jobs with no record lose theirs).
        let sweeper = store.clone();
        crate::rt::spawn(async move {
            match blocking::unblock(move || sweeper.sweep_output_dirs()).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(removed = n, "removed the output of jobs no longer stored"),
                Err(e) => tracing::warn!(error = %e, "cannot remove old output files"),
            }
        });
        let mut sched = self.inner.sched.lock().await;
        // Read under the lock, like every decision: what it reads is what
        // it changes.
        let interrupted = store.running_jobs()?;
        let mut changes = Vec::new();
        for job in &interrupted {
            // running: it has no supervisor any more (its processes were
            // killed above); the policy decides.
            let mut next = job.clone();
            match self.inner.config.on_interrupted {
                OnInterrupted::Requeue => next.requeue_interrupted(now)?,
                OnInterrupted::Fail => next.fail_interrupted(now)?,
            }
            tracing::info!(job = %job.id, policy = ?self.inner.config.on_interrupted, "job was running when jobq stopped");
            let mut follow = self.cascade(&next, now)?;
            changes.push((job.clone(), next));
            changes.append(&mut follow);
        }
        apply(store, &changes)?;
        // schedules: fires that fell while jobq was down follow `missed`;
        // their jobs are queued in the store, so loaded just below.
        let schedules = self.recover_schedules(&mut sched, now)?;
        // queued (including those just re-queued): back in line, in order.
        let entries = store.ready_entries()?;
        for e in &entries {
            sched.ready.push(&e.queue, e.priority, e.seq, e.id);
        }
        // scheduled: back on the timers; any already due run right away.
        let timers = store.scheduled()?;
        sched
            .timers
            .extend(timers.iter().map(|&(at, id)| timers::timer(at, id)));
        // waiting: nothing to load; their edges are in the store and the
        // jobs they wait for wake them.
        // paused queues and changed limits survive a restart.
        for (name, settings) in store.queue_settings()? {
            sched.queues.restore(&name, settings);
        }
        drop(sched);
        store.sync().await?;
        self.inner.recovered.store(true, Ordering::SeqCst);
        tracing::info!(
            queued = entries.len(),
            scheduled = timers.len(),
            schedules,
            interrupted = interrupted.len(),
            "recovered"
        );
        Ok(interrupted.len())
    }
}
