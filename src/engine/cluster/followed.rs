//! The jobs output followers read, kept between change notifications.
//!
//! A follower reads its job's record before each batch of chunks; on a
//! cluster that is a query, and a hundred followers of a chatty job would
//! take every connection of the pool. A record read here stays good until
//! the database says the job changed (`jobq_events`), which is also what
//! wakes the followers to read it again; while nothing listens (the
//! listener reconnects), nothing is kept.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::job::{Job, JobId};

/// Most records kept; past this the cache starts over (followers of that
/// many jobs at once read from the database again).
const MOST: usize = 4096;

/// Job records as followers read them, with the count of changes heard.
#[derive(Default)]
pub(super) struct Followed {
    inner: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Records read since their job last changed.
    jobs: HashMap<JobId, Job>,
    /// Changes heard so far: a read that began before a change must not
    /// be kept after it.
    changes: u64,
    /// Whether the listener hears changes now.
    listening: bool,
}

impl Followed {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The kept record of `id`, or the mark to pass to [`Followed::keep`]
    /// after reading it.
    pub(super) fn get(&self, id: &JobId) -> Result<Job, u64> {
        let state = self.state();
        match state.jobs.get(id) {
            Some(job) => Ok(job.clone()),
            None => Err(state.changes),
        }
    }

    /// Keeps `job`, read after [`Followed::get`] gave `mark`, unless a change
    /// was heard in between or nothing listens.
    pub(super) fn keep(&self, mark: u64, job: &Job) {
        let mut state = self.state();
        if state.changes != mark || !state.listening {
            return;
        }
        if state.jobs.len() >= MOST {
            state.jobs.clear();
        }
        state.jobs.insert(job.id, job.clone());
    }

    /// Job `id` changed: its record is read again.
    pub(super) fn changed(&self, id: &JobId) {
        let mut state = self.state();
        state.changes += 1;
        state.jobs.remove(id);
    }

    /// The listener started (true) or stopped (false) hearing changes:
    /// either way, what is kept may have missed some.
    pub(super) fn listening(&self, on: bool) {
        let mut state = self.state();
        state.changes += 1;
        state.jobs.clear();
        state.listening = on;
    }
}
