//! Processes that outlive their job: a job's group is killed when its
//! leader exits, but a process that left the group (`setsid`, a daemon's
//! double fork) escapes that. They are found by the `JOBQ_JOB_ID` they
//! carry (`runner::strays`) and killed: at once when an attempt was stopped
//! (cancel, timeout), and by a sweep a few seconds after any other end,
//! which costs one walk of `/proc` however many jobs ended.

use super::*;

use crate::runner::strays::{self, JobProcess};

/// How long after an attempt's end the sweep looks for its strays: ends
/// within it share one walk of `/proc`.
const SWEEP_AFTER: Duration = Duration::from_secs(2);

impl Engine {
    /// Kills what still carries `id` after its attempt was stopped.
    pub(super) async fn kill_strays_of(&self, id: JobId) {
        let killed = blocking::unblock(move || {
            let mine: Vec<JobProcess> = strays::job_processes()
                .into_iter()
                .filter(|p| p.job == id)
                .collect();
            mine.iter().for_each(strays::kill);
            mine.len()
        })
        .await;
        if killed > 0 {
            tracing::info!(job = %id, killed, "killed processes that had left the stopped job's process group");
        }
    }

    /// Notes that an attempt ended, for the next sweep.
    pub(super) fn attempt_ended(&self) {
        self.inner.ended.store(true, Ordering::SeqCst);
        self.inner.ended_wake.notify(1);
    }

    /// Kills, a moment after attempts end, the processes that carry the id
    /// of a job of this store that is not running now. Runs until the
    /// daemon stops.
    pub async fn run_stray_sweeper(&self) {
        loop {
            let listener = self.inner.ended_wake.listen();
            if !self.inner.ended.swap(false, Ordering::SeqCst) {
                listener.await;
                continue;
            }
            Timer::after(SWEEP_AFTER).await;
            self.inner.ended.store(false, Ordering::SeqCst);
            let found = blocking::unblock(strays::job_processes).await;
            if found.is_empty() {
                continue;
            }
            let strays = match self.cluster() {
                Some(cluster) => self.cluster_strays(cluster, found).await,
                None => {
                    let sched = self.inner.sched.lock().await;
                    found
                        .into_iter()
                        .filter(|p| !sched.running.contains_key(&p.job))
                        .filter(|p| self.inner.store.get(&p.job).ok().flatten().is_some())
                        .collect()
                }
            };
            for process in &strays {
                tracing::info!(job = %process.job, pid = process.pid, "killing a process its job left behind");
                strays::kill(process);
            }
        }
    }

    /// Of the processes `found` carrying a job id, those a cluster's sweep
    /// kills: of a job in its database that runs nowhere now. A job that
    /// runs on another node of the same machine keeps its processes.
    pub(super) async fn cluster_strays(
        &self,
        cluster: &super::cluster::Cluster,
        found: impl IntoIterator<Item = JobProcess>,
    ) -> Vec<JobProcess> {
        let mut strays = Vec::new();
        for process in found {
            if cluster.runs_here(&process.job) {
                continue;
            }
            match cluster.pg.get(&process.job).await {
                Ok(Some(job)) if job.state.name() != StateName::Running => strays.push(process),
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(job = %process.job, error = %e, "cannot tell whether a process outlived its job")
                }
            }
        }
        strays
    }
}
