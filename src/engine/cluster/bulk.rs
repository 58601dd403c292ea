//! The bulk routes on the cluster (`POST /v1/jobs/clean`, `/cancel`,
//! `/retry`): a page of the selection at a time from the listing, each job
//! acted on with the same conditional write a single request makes, so a
//! job another node changed in between is left as that request would
//! have left it.

use super::super::bulk::BULK_PAGE;
use super::*;

impl Engine {
    /// The next page of `selection`, older than `after`; true if more may
    /// follow.
    async fn cluster_bulk_page(
        &self,
        cluster: &Cluster,
        selection: &Selection,
        after: Option<JobId>,
    ) -> Result<(Vec<Job>, bool), EngineError> {
        let filter = crate::store::postgres::ListFilter {
            states: &selection.states,
            queue: selection.queue.as_deref(),
            owner: selection.owner.as_deref(),
            name: None,
            labels: &[],
        };
        let (page, more) = cluster.pg.list(&filter, after.as_ref(), BULK_PAGE).await?;
        Ok((page, more))
    }

    /// Every page of `selection`, each job that matches given to `act`.
    async fn cluster_each<'a, F, Fut>(
        &'a self,
        cluster: &'a Cluster,
        selection: &'a Selection,
        mut act: F,
    ) -> Result<u64, EngineError>
    where
        F: FnMut(Job) -> Fut,
        Fut: std::future::Future<Output = Result<bool, EngineError>> + 'a,
    {
        let mut done = 0;
        let mut after = None;
        loop {
            let (page, more) = self.cluster_bulk_page(cluster, selection, after).await?;
            after = page.last().map(|j| j.id);
            for job in page {
                if selection.matches(&job) && act(job).await? {
                    done += 1;
                }
            }
            if !more {
                return Ok(done);
            }
        }
    }

    /// Forgets every terminal job of `selection` (and its output where
    /// this node has it); returns how many.
    pub(in crate::engine) async fn cluster_clean(
        &self,
        cluster: &Cluster,
        selection: &Selection,
    ) -> Result<u64, EngineError> {
        let removed = self
            .cluster_each(cluster, selection, |job| async move {
                if !job.state.is_terminal() || cluster.pg.remove(&job).await? != Fenced::Done {
                    return Ok(false);
                }
                self.inner.store.remove_output(&job.id)?;
                Ok(true)
            })
            .await?;
        self.inner.changed.notify(usize::MAX);
        Ok(removed)
    }

    /// Cancels every job of `selection` that has not ended, wherever it
    /// runs; returns how many, once each is terminal.
    pub(in crate::engine) async fn cluster_cancel_all(
        &self,
        cluster: &Cluster,
        selection: &Selection,
    ) -> Result<u64, EngineError> {
        self.cluster_each(cluster, selection, |job| async move {
            if job.state.is_terminal() {
                return Ok(false);
            }
            match self.cluster_cancel_checked(cluster, &job.id).await {
                Ok(_) | Err(EngineError::NotFound(_)) => Ok(true),
                // It ended by itself before the cancel came to it.
                Err(EngineError::Conflict(_)) => Ok(false),
                Err(e) => Err(e),
            }
        })
        .await
    }

    /// Runs every terminal job of `selection` again (attempt + 1); returns
    /// how many.
    pub(in crate::engine) async fn cluster_retry_all(
        &self,
        cluster: &Cluster,
        selection: &Selection,
    ) -> Result<u64, EngineError> {
        self.cluster_each(cluster, selection, |job| async move {
            if !job.state.is_terminal() {
                return Ok(false);
            }
            match self.cluster_retry_checked(cluster, &job.id).await {
                Ok(_) => Ok(true),
                Err(EngineError::Conflict(_) | EngineError::NotFound(_)) => Ok(false),
                Err(e) => Err(e),
            }
        })
        .await
    }
}
