//! The loop that puts job output on disk: every [`OUTPUT_SYNC_INTERVAL`],
//! the output files written since the last pass are synced, on a blocking
//! thread, apart from the jobs writing them (see the crash rule in
//! `store/output.rs`).

use super::*;
use crate::store::OUTPUT_SYNC_INTERVAL;

impl Engine {
    /// Syncs written output every [`OUTPUT_SYNC_INTERVAL`] until shutdown
    /// (whose drain syncs the rest).
    pub async fn run_output_sync(&self) {
        while !self.is_stopping() {
            Timer::after(OUTPUT_SYNC_INTERVAL).await;
            self.sync_output().await;
        }
    }

    /// One pass: a failure is logged, and the files are tried again by the
    /// next write's pass.
    pub(super) async fn sync_output(&self) {
        let store = self.inner.store.clone();
        if let Err(e) = blocking::unblock(move || store.sync_output()).await {
            tracing::warn!(error = %e, "cannot put job output on disk; it stays in the page cache");
        }
    }
}
