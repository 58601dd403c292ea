//! A job's record and its index entries, written together: the ready,
//! running, timer, dependency, retention and idempotency indexes and the
//! per-queue counts, in one atomic batch with the record, and the reads the
//! scheduler and recovery make of them.

use super::*;

/// The metadata name of the stored job counter ([`Store::load_next_seq`]).
const NEXT_SEQ: &str = "next_seq";

/// One job's change, for [`Store::apply`]: insert (no `old`), update, or
/// removal (no `new`).
#[derive(Clone, Copy, Debug)]
pub struct Change<'a> {
    /// The record as stored before, if any.
    pub old: Option<&'a Job>,
    /// The record to store, if any.
    pub new: Option<&'a Job>,
    /// Stdin bytes of a new job.
    pub stdin: Option<&'a [u8]>,
    /// An upload the new job claims as its stdin (removed in the same batch).
    pub claims_upload: Option<JobId>,
}

impl<'a> Change<'a> {
    /// A new job.
    pub fn insert(job: &'a Job, stdin: Option<&'a [u8]>) -> Change<'a> {
        Change {
            old: None,
            new: Some(job),
            stdin,
            claims_upload: None,
        }
    }

    /// A job that moved from `old` to `new`.
    pub fn update(old: &'a Job, new: &'a Job) -> Change<'a> {
        Change {
            old: Some(old),
            new: Some(new),
            stdin: None,
            claims_upload: None,
        }
    }

    /// A job forgotten.
    pub fn remove(old: &'a Job) -> Change<'a> {
        Change {
            old: Some(old),
            new: None,
            stdin: None,
            claims_upload: None,
        }
    }

    fn id(&self) -> JobId {
        self.new.or(self.old).map(|j| j.id).unwrap_or_default()
    }
}

/// A ready-index entry, as loaded at start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadyEntry {
    /// The queue.
    pub queue: String,
    /// Its priority.
    pub priority: i32,
    /// Its submission order.
    pub seq: u64,
    /// The job.
    pub id: JobId,
}

/// The index entries a job has in its state: (key, value) pairs. The one
/// place that knows which state has which entries.
fn index_entries(job: &Job) -> Vec<(Vec<u8>, Vec<u8>)> {
    let id = job.id.as_bytes().to_vec();
    let mut out = Vec::new();
    match &job.state {
        State::Queued => out.push((
            keys::ready(&job.spec.queue, job.spec.priority, job.seq),
            id.clone(),
        )),
        State::Running { pid, .. } => out.push((
            keys::by_id(keys::RUNNING, &job.id).to_vec(),
            pid.to_be_bytes().to_vec(),
        )),
        State::Scheduled { at } => {
            out.push((keys::by_time(keys::SCHEDULED, *at, &job.id), Vec::new()))
        }
        State::Waiting { pending } => {
            for dep in pending {
                out.push((keys::dependent(dep, &job.id), Vec::new()));
            }
        }
        State::Succeeded { finished_at, .. }
        | State::Failed { finished_at, .. }
        | State::Cancelled { finished_at, .. } => out.push((
            keys::by_time(keys::FINISHED, *finished_at, &job.id),
            Vec::new(),
        )),
    }
    if let Some(key) = &job.spec.idempotency_key {
        out.push((keys::named(keys::IDEMPOTENCY, key), id.clone()));
    }
    out.push((keys::number(job.number()).to_vec(), id));
    out
}

impl Store {
    pub(super) fn load_counts(&self) -> Result<()> {
        let h = self.h()?;
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        for item in h.main.scan_prefix([keys::COUNT]) {
            let (key, value) = item.map_err(io("read job counts"))?;
            let bad = || StoreError::Corrupt {
                key: format!("{key:?}"),
                reason: "malformed count".into(),
            };
            let slot = keys::parse_count(&key).ok_or_else(bad)?;
            let n = <[u8; 8]>::try_from(value.as_ref()).map_err(|_| bad())?;
            counts.insert(slot, u64::from_be_bytes(n));
        }
        Ok(())
    }

    /// Sets the next `seq` past every one given: the stored counter, or
    /// past the highest number in the index (a store from before the
    /// counter, whose seqs came from sled's id generator).
    pub(super) fn load_next_seq(&self) -> Result<()> {
        let h = self.h()?;
        let stored = h
            .main
            .get(keys::named(keys::META, NEXT_SEQ))
            .map_err(io("read the job counter"))?
            .and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
            .map_or(0, u64::from_be_bytes);
        let highest = h
            .main
            .scan_prefix([keys::NUMBER])
            .next_back()
            .transpose()
            .map_err(io("read the number index"))?
            .and_then(|(key, _)| <[u8; 8]>::try_from(&key[1..]).ok())
            // The highest number is the highest seq plus one: the next seq.
            .map_or(0, u64::from_be_bytes);
        self.next_seq.store(stored.max(highest), Ordering::SeqCst);
        Ok(())
    }

    /// Stores a new job (and its stdin) with its index entries, atomically.
    pub fn insert(&self, job: &Job, stdin: Option<&[u8]>) -> Result<()> {
        self.apply(&[Change::insert(job, stdin)])
    }

    /// Stores `job`, which was `old` before, moving its index entries with
    /// its state, atomically.
    pub fn update(&self, old: &Job, job: &Job) -> Result<()> {
        self.apply(&[Change::update(old, job)])
    }

    /// Writes several changes as one atomic batch: records, index entries
    /// and per-queue counts move together, so a crash never leaves a job
    /// without its index entry or a count that disagrees with the records.
    pub fn apply(&self, changes: &[Change<'_>]) -> Result<()> {
        self.apply_with(changes, &[])
    }

    /// [`apply`](Self::apply) with schedule records in the same atomic
    /// batch: a fire's job and its schedule's advance.
    pub fn apply_with(
        &self,
        changes: &[Change<'_>],
        schedules: &[super::ScheduleWrite<'_>],
    ) -> Result<()> {
        let h = self.h()?;
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let mut unflushed = self.unflushed.lock().unwrap_or_else(|e| e.into_inner());
        let mut batch = sled::Batch::default();
        let mut touched: BTreeMap<(String, StateName), u64> = BTreeMap::new();
        for change in changes {
            let old_entries = change.old.map(index_entries).unwrap_or_default();
            let new_entries = change.new.map(index_entries).unwrap_or_default();
            for (key, _) in &old_entries {
                if !new_entries.iter().any(|(k, _)| k == key) {
                    batch.remove(key.as_slice());
                }
            }
            for (key, value) in new_entries {
                batch.insert(key, value);
            }
            match change.new {
                Some(job) => {
                    let record = serde_json::to_vec(job).map_err(|e| StoreError::Corrupt {
                        key: job.id.to_string(),
                        reason: format!("cannot encode: {e}"),
                    })?;
                    batch.insert(&keys::by_id(keys::JOB, &job.id), record);
                }
                None => {
                    if let Some(old) = change.old {
                        batch.remove(&keys::by_id(keys::JOB, &old.id));
                        batch.remove(&keys::by_id(keys::STDIN, &old.id));
                        // Its file, if any, goes at the next sweep.
                        batch.remove(&keys::by_id(keys::STDIN_FILE, &old.id));
                    }
                }
            }
            if let (Some(job), Some(bytes)) = (change.new, change.stdin) {
                batch.insert(&keys::by_id(keys::STDIN, &job.id), bytes);
            }
            if let Some(upload) = &change.claims_upload {
                batch.remove(&keys::by_id(keys::UPLOAD, upload));
                if let Some(job) = change.new {
                    batch.insert(&keys::by_id(keys::STDIN_FILE, &job.id), upload.as_bytes());
                }
            }
            let mut bump = |job: &Job, up: bool| {
                let slot = (job.spec.queue.clone(), job.state.name());
                let now = touched
                    .get(&slot)
                    .copied()
                    .unwrap_or_else(|| counts.get(&slot).copied().unwrap_or(0));
                touched.insert(slot, if up { now + 1 } else { now.saturating_sub(1) });
            };
            if let Some(old) = change.old {
                bump(old, false);
            }
            if let Some(new) = change.new {
                bump(new, true);
            }
        }
        if changes.iter().any(|c| c.old.is_none() && c.new.is_some()) {
            // Under the counts lock, so batches store the counter in order.
            let next = self.next_seq.load(Ordering::SeqCst);
            batch.insert(keys::named(keys::META, NEXT_SEQ), &next.to_be_bytes());
        }
        for write in schedules {
            write.add_to(&mut batch)?;
        }
        for ((queue, state), n) in &touched {
            let key = keys::count(queue, *state);
            if *n == 0 {
                batch.remove(key);
            } else {
                batch.insert(key, &n.to_be_bytes());
            }
        }
        let written = h.main.apply_batch(batch).map_err(io(match changes {
            [] => "write a schedule".to_owned(),
            [one] => format!("write job {}", one.id()),
            _ => format!("write {} jobs", changes.len()),
        }));
        self.mark_broken(written)?;
        let number = self.progress.wrote();
        if unflushed.len() >= UNFLUSHED_PRUNE_AT {
            unflushed.retain(|_, n| !self.progress.is_flushed(*n));
        }
        unflushed.extend(changes.iter().map(|c| (c.id(), number)));
        drop(unflushed);
        for (slot, n) in touched {
            if n == 0 {
                counts.remove(&slot);
            } else {
                counts.insert(slot, n);
            }
        }
        Ok(())
    }

    /// True when a change to one of `ids` read from this store may not be
    /// on disk yet: [`Store::sync`] puts it there. Always false with
    /// relaxed durability, which promises nothing between flushes.
    pub fn any_unflushed<'a>(&self, ids: impl IntoIterator<Item = &'a JobId>) -> bool {
        if self.durability == Durability::Relaxed {
            return false;
        }
        let unflushed = self.unflushed.lock().unwrap_or_else(|e| e.into_inner());
        ids.into_iter().any(|id| {
            unflushed
                .get(id)
                .is_some_and(|n| !self.progress.is_flushed(*n))
        })
    }

    /// True when every change made so far (and so every count read before)
    /// is on disk. Always true with relaxed durability.
    pub fn all_flushed(&self) -> bool {
        self.durability == Durability::Relaxed || self.progress.all_flushed()
    }

    /// Jobs per queue and state, as the records say.
    pub fn counts(&self) -> BTreeMap<(String, StateName), u64> {
        self.counts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The job numbered `number` ([`Job::number`]), if it exists.
    pub fn job_with_number(&self, number: u64) -> Result<Option<JobId>> {
        let h = self.h()?;
        let found = h
            .main
            .get(keys::number(number))
            .map_err(io("read the number index"))?;
        Ok(found.and_then(|v| <[u8; 16]>::try_from(v.as_ref()).ok().map(JobId::from_bytes)))
    }

    /// The job holding idempotency key `key`, if any.
    pub fn job_with_key(&self, key: &str) -> Result<Option<JobId>> {
        let h = self.h()?;
        let found = h
            .main
            .get(keys::named(keys::IDEMPOTENCY, key))
            .map_err(io("read an idempotency key"))?;
        Ok(found.and_then(|v| <[u8; 16]>::try_from(v.as_ref()).ok().map(JobId::from_bytes)))
    }

    /// The jobs waiting for `id`.
    pub fn dependents(&self, id: &JobId) -> Result<Vec<JobId>> {
        let h = self.h()?;
        let mut prefix = vec![keys::DEPENDENT];
        prefix.extend_from_slice(id.as_bytes());
        let mut out = Vec::new();
        for item in h.main.scan_prefix(&prefix).keys() {
            let key = item.map_err(io(format!("read dependents of job {id}")))?;
            if let Ok(bytes) = <[u8; 16]>::try_from(&key[17..]) {
                out.push(JobId::from_bytes(bytes));
            }
        }
        Ok(out)
    }

    /// Every scheduled job with its due time, earliest first.
    pub fn scheduled(&self) -> Result<Vec<(Timestamp, JobId)>> {
        let h = self.h()?;
        h.main
            .scan_prefix([keys::SCHEDULED])
            .keys()
            .map(|item| {
                let key = item.map_err(io("read the timer index"))?;
                keys::parse_by_time(&key).ok_or_else(|| StoreError::Corrupt {
                    key: format!("{key:?}"),
                    reason: "malformed timer-index entry".into(),
                })
            })
            .collect()
    }

    /// Up to `limit` terminal jobs, the longest finished first.
    pub fn oldest_finished(&self, limit: usize) -> Result<Vec<(Timestamp, JobId)>> {
        let h = self.h()?;
        h.main
            .scan_prefix([keys::FINISHED])
            .keys()
            .take(limit)
            .map(|item| {
                let key = item.map_err(io("read the retention index"))?;
                keys::parse_by_time(&key).ok_or_else(|| StoreError::Corrupt {
                    key: format!("{key:?}"),
                    reason: "malformed retention-index entry".into(),
                })
            })
            .collect()
    }

    /// Every ready-index entry, in index order (queue, priority, FIFO).
    pub fn ready_entries(&self) -> Result<Vec<ReadyEntry>> {
        let h = self.h()?;
        let mut out = Vec::new();
        for item in h.main.scan_prefix([keys::READY]) {
            let (key, value) = item.map_err(io("read the ready index"))?;
            let bad = || StoreError::Corrupt {
                key: format!("{key:?}"),
                reason: "malformed ready-index entry".into(),
            };
            let (queue, priority, seq) = keys::parse_ready(&key).ok_or_else(bad)?;
            let id = JobId::from_bytes(value.as_ref().try_into().map_err(|_| bad())?);
            out.push(ReadyEntry {
                queue,
                priority,
                seq,
                id,
            });
        }
        Ok(out)
    }

    /// Every job the running index lists: the jobs that were running when
    /// the daemon last stopped.
    pub fn running_jobs(&self) -> Result<Vec<Job>> {
        let h = self.h()?;
        let mut out = Vec::new();
        for item in h.main.scan_prefix([keys::RUNNING]) {
            let (key, _) = item.map_err(io("read the running index"))?;
            let Some(id) = keys::id_of(&key) else {
                continue;
            };
            if let Some(job) = self.get(&id)? {
                out.push(job);
            }
        }
        Ok(out)
    }
}
