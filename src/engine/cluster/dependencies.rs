//! `after` on the cluster: a job waits until the jobs it names succeeded,
//! and fails (reason `dependency`) when one failed or was cancelled. The
//! node that records an end releases the jobs waiting for it at once; the
//! housekeeper catches what that missed (the node died in between, or the
//! dependency ended while the waiting job was being submitted). Each
//! release is a conditional write on the waiting job's state, so two nodes
//! releasing the same job, or two dependencies ending together, change it
//! once each.

use super::*;

/// How many times a release re-reads a job that changed under it.
const RELEASE_TRIES: usize = 5;

impl Engine {
    /// What `parent`'s end causes in the jobs waiting for it, and in
    /// theirs in turn. Nothing for a job that did not end.
    pub(in crate::engine) async fn cluster_cascade(&self, cluster: &Cluster, parent: &Job) {
        if !parent.state.is_terminal() {
            return;
        }
        let mut ended = vec![(parent.id, parent.state.name())];
        while let Some((id, state)) = ended.pop() {
            let waiting = match cluster.pg.waiting_on(&id).await {
                Ok(w) => w,
                Err(e) => {
                    tracing::warn!(job = %id, error = %e, "cannot find the jobs waiting for a job; the housekeeper will");
                    return;
                }
            };
            for job in waiting {
                if let Some(next) = self.cluster_release(cluster, job, &id, state).await {
                    if next.state.is_terminal() {
                        ended.push((next.id, next.state.name()));
                    }
                }
            }
        }
    }

    /// Applies the end of `dep` (in `dep_state`) to `waiting`, reading it
    /// again when it changed meanwhile; the job as written, if it was.
    async fn cluster_release(
        &self,
        cluster: &Cluster,
        mut waiting: Job,
        dep: &JobId,
        dep_state: StateName,
    ) -> Option<Job> {
        for _ in 0..RELEASE_TRIES {
            let mut next = waiting.clone();
            let now = Timestamp::now();
            let moved = match dep_state {
                StateName::Succeeded => next.dependency_succeeded(dep, now).map(|_| ()),
                _ => next.dependency_failed(dep, dep_state, now),
            };
            // Not waiting any more, or not for this job.
            if moved.is_err() || next == waiting {
                return None;
            }
            match cluster.pg.replace(&waiting, &next).await {
                Ok(Fenced::Done) => {
                    record_transition(&next);
                    return Some(next);
                }
                Ok(Fenced::Refused) => match cluster.pg.get(&waiting.id).await {
                    Ok(Some(now)) => waiting = now,
                    _ => return None,
                },
                Err(e) => {
                    tracing::warn!(job = %waiting.id, error = %e, "cannot release a waiting job; the housekeeper will");
                    return None;
                }
            }
        }
        None
    }

    /// The housekeeper's part: releases that were missed.
    pub(in crate::engine) async fn cluster_missed_releases(&self, cluster: &Cluster) {
        let missed = match cluster.pg.missed_releases(100).await {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, "cannot look for missed releases");
                return;
            }
        };
        for (job, dep, state) in missed {
            if let Some(next) = self.cluster_release(cluster, job, &dep, state).await {
                self.cluster_cascade(cluster, &next).await;
            }
        }
    }

    /// The pending list and, if one ended badly, the failed dependency of
    /// a job submitted with `after`.
    pub(in crate::engine) async fn cluster_pending(
        &self,
        cluster: &Cluster,
        after: &[JobId],
        field: String,
    ) -> Result<(Vec<JobId>, Option<(JobId, StateName)>), EngineError> {
        let mut pending = Vec::new();
        let mut failed = None;
        for dep in after {
            let Some(d) = cluster.pg.get(dep).await? else {
                return Err(FieldError::new(field, format!("no job {dep}")).into());
            };
            match d.state.name() {
                StateName::Succeeded => {}
                StateName::Failed | StateName::Cancelled => failed = Some((*dep, d.state.name())),
                _ => pending.push(*dep),
            }
        }
        Ok((pending, failed))
    }
}
