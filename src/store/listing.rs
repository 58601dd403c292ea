//! `GET /v1/jobs`: a page of jobs newest first, by walking the records or,
//! for a filter few jobs match, the state indexes.

use super::*;

/// What a listing asks for at least, so that [`Store::list`] can read
/// indexes instead of every record: jobs in one of `states` (empty: any)
/// and, if set, in `queue`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Scope<'a> {
    /// The states asked for; empty for every state.
    pub states: &'a [StateName],
    /// The queue asked for, if any.
    pub queue: Option<&'a str>,
}

impl Scope<'_> {
    fn states_or_all(&self) -> Vec<StateName> {
        if self.states.is_empty() {
            StateName::ALL.to_vec()
        } else {
            self.states.to_vec()
        }
    }
}

/// Where an index entry keeps its job's id: in its key or its value.
type IdOf = fn(key: &[u8], value: &[u8]) -> Option<JobId>;

/// The index that holds every job of `state` (the terminal states share
/// one), and how to read a job's id from its entries. Follows
/// [`index_entries`].
fn state_index(state: StateName) -> (u8, IdOf) {
    match state {
        StateName::Queued => (keys::READY, |_, value| {
            Some(JobId::from_bytes(value.try_into().ok()?))
        }),
        StateName::Running => (keys::RUNNING, |key, _| keys::id_of(key)),
        StateName::Scheduled => (keys::SCHEDULED, |key, _| {
            keys::parse_by_time(key).map(|(_, id)| id)
        }),
        // `w` + awaited + waiting: the waiting job is the second id.
        StateName::Waiting => (keys::DEPENDENT, |key, _| {
            Some(JobId::from_bytes(key.get(17..33)?.try_into().ok()?))
        }),
        StateName::Succeeded | StateName::Failed | StateName::Cancelled => {
            (keys::FINISHED, |key, _| {
                keys::parse_by_time(key).map(|(_, id)| id)
            })
        }
    }
}

impl Store {
    /// Up to `limit` jobs older than `before` (all when `None`) that `keep`
    /// accepts, newest first, and whether more may follow. `scope` tells
    /// what `keep` asks at least (states, queue). Nothing loads every job:
    /// when the scope holds few jobs, their ids come from the state indexes
    /// and only their records are read; otherwise records are read newest
    /// first until the page is full.
    pub fn list(
        &self,
        before: Option<JobId>,
        limit: usize,
        scope: &Scope<'_>,
        mut keep: impl FnMut(&Job) -> bool,
    ) -> Result<(Vec<Job>, bool)> {
        let mut jobs = Vec::new();
        let mut take = |job: Job, jobs: &mut Vec<Job>| {
            if !keep(&job) {
                return false;
            }
            if jobs.len() == limit {
                return true;
            }
            jobs.push(job);
            false
        };
        if self.index_is_cheaper(scope, limit) {
            let mut ids = self.index_ids(scope)?;
            if let Some(before) = before {
                ids.retain(|id| *id < before);
            }
            for id in ids {
                if let Some(job) = self.get(&id)? {
                    if take(job, &mut jobs) {
                        return Ok((jobs, true));
                    }
                }
            }
            return Ok((jobs, false));
        }
        let h = self.h()?;
        let start = vec![keys::JOB];
        let end = match before {
            Some(id) => keys::by_id(keys::JOB, &id).to_vec(),
            None => vec![keys::JOB + 1],
        };
        for item in h.main.range(start..end).rev() {
            let (key, value) = item.map_err(io("list jobs"))?;
            let id = keys::id_of(&key).ok_or_else(|| StoreError::Corrupt {
                key: format!("{key:?}"),
                reason: "a job key without an id".into(),
            })?;
            if take(decode(&id, &value)?, &mut jobs) {
                return Ok((jobs, true));
            }
        }
        Ok((jobs, false))
    }

    /// Whether listing `scope` through the state indexes reads fewer
    /// entries than walking the records would, by the stored counts: the
    /// indexes hold every job of a state (terminal states share one index;
    /// only the ready index is per queue), while a walk reads about
    /// `total × limit / matching` records to fill a page, or all of them
    /// when nothing matches.
    fn index_is_cheaper(&self, scope: &Scope<'_>, limit: usize) -> bool {
        if scope.states.is_empty() && scope.queue.is_none() {
            return false;
        }
        let states = scope.states_or_all();
        let counts = self.counts();
        let sum = |wanted: &dyn Fn(&str, StateName) -> bool| -> u64 {
            counts
                .iter()
                .filter(|((q, s), _)| wanted(q, *s))
                .map(|(_, n)| *n)
                .sum()
        };
        let in_queue = |q: &str| scope.queue.is_none_or(|want| want == q);
        let total = sum(&|_, _| true);
        let matching = sum(&|q, s| in_queue(q) && states.contains(&s));
        let terminal = states.iter().any(|s| s.is_terminal());
        let indexed = sum(&|q, s| match s {
            StateName::Queued => states.contains(&s) && in_queue(q),
            _ => states.contains(&s) || (terminal && s.is_terminal()),
        });
        let walk = total.min(total.saturating_mul(limit as u64 + 1) / matching.max(1));
        indexed < walk
    }

    /// The ids of every job in `scope`'s states (and queue, for queued
    /// jobs), newest first, from the state indexes; a terminal state reads
    /// the whole retention index. A superset: the caller checks each record.
    fn index_ids(&self, scope: &Scope<'_>) -> Result<Vec<JobId>> {
        let h = self.h()?;
        let mut prefixes: BTreeMap<Vec<u8>, IdOf> = BTreeMap::new();
        for state in scope.states_or_all() {
            let (prefix, id_of) = state_index(state);
            let mut prefix = vec![prefix];
            if let (StateName::Queued, Some(queue)) = (state, scope.queue) {
                // The ready index is per queue: `r` + queue + 0 + ….
                prefix.extend_from_slice(queue.as_bytes());
                prefix.push(0);
            }
            prefixes.insert(prefix, id_of);
        }
        let mut ids = Vec::new();
        for (prefix, id_of) in prefixes {
            for item in h.main.scan_prefix(prefix) {
                let (key, value) = item.map_err(io("read a state index"))?;
                ids.push(id_of(&key, &value).ok_or_else(|| StoreError::Corrupt {
                    key: format!("{key:?}"),
                    reason: "malformed index entry".into(),
                })?);
            }
        }
        ids.sort_unstable_by(|a, b| b.cmp(a));
        ids.dedup();
        Ok(ids)
    }
}
