//! Schedules: storing and changing them for clients, and firing them.
//!
//! A schedule's next fire is an entry on the engine's timers, like a
//! delayed job's. When it is due, the fire decides under the engine lock
//! (overlap, the job spec's checks), then writes the fire's job and the
//! schedule's advance past that fire in one atomic batch: after a crash
//! either both are on disk or neither is, and the job's idempotency key
//! (`schedule:<name>:<fire time>`) keeps a fire from making two jobs
//! whatever happens. What was not on disk at a crash is a fire that fell
//! while the daemon was down, which `missed` decides at the next start.

use super::timers::fire_timer;
use super::*;
use crate::api::{in_job, CheckedSchedule};
use crate::schedule::{fire_key, Missed, Overlap, Schedule, TimeTable};
use crate::store::ScheduleWrite;

/// Most fires a late timer makes one by one; when more than this many are
/// due at once (the clock jumped, the machine was suspended) the
/// schedule's `missed` rule decides, as after a downtime.
const CATCH_UP: usize = 10;

/// Most missed fires counted one by one (for `skipped`): past this, the
/// count stops (a per-second schedule down for a day has 86,400).
const MAX_COUNTED: u64 = 10_000;

/// What fires wrote, to announce once it is durable.
#[derive(Default)]
pub(super) struct Fired {
    /// New jobs, announced at once.
    made: Vec<Job>,
    /// Jobs a `replace` cancelled (and those their end failed).
    changed: Vec<Job>,
    /// `replace` fires whose previous job was running: (that job, the new
    /// one). The new job is announced once the old one's run has ended.
    after_stop: Vec<(JobId, Job)>,
}

/// A new job and its stdin bytes.
type NewJob = (Job, Option<Vec<u8>>);

/// One schedule's writes, in one batch with its record.
#[derive(Default)]
struct Writes {
    /// New jobs and their stdin.
    inserted: Vec<NewJob>,
    /// Jobs cancelled by `replace`, and those their end fails.
    updated: Vec<(Job, Job)>,
    /// (running job to stop, the new job that waits for its end).
    stops: Vec<(JobId, JobId)>,
}

/// A schedule name in a path must be one.
fn check_name(name: &str) -> Result<(), FieldError> {
    super::check_name("schedule", name)
}

/// Refuses `principal` an `action` on `schedule` unless it is an admin or
/// the schedule's owner.
fn may_manage(principal: &Principal, schedule: &Schedule, action: &str) -> Result<(), EngineError> {
    let thing = format!("schedule {:?}", schedule.name);
    may_act_on(principal, &schedule.owner, &thing, "schedules", action)
}

/// The first fire after `now`, or a 400: an expression that matches no
/// time ahead.
fn next_fire(table: &TimeTable, now: Timestamp) -> Result<Timestamp, FieldError> {
    table
        .next_after(now)
        .ok_or_else(|| FieldError::new("cron", "has no fire time ahead (before the year 5000)"))
}

impl Engine {
    /// Stores schedule `name` (`PUT /v1/schedules/{name}`), new or
    /// replacing one; returns it and whether it is new. A replaced
    /// schedule keeps its owner, its history and its jobs; its next fire
    /// is counted afresh from now.
    pub async fn put_schedule(
        &self,
        name: &str,
        checked: CheckedSchedule,
        principal: &Principal,
    ) -> Result<(Schedule, bool), EngineError> {
        check_name(name)?;
        self.local_only("schedules")?;
        self.taking_changes()?;
        let now = Timestamp::now();
        // Refused now what a fire's submit would refuse: limits above the
        // queue's.
        let mut spec = checked.spec.clone();
        self.cap_limits(&mut spec).map_err(in_job)?;
        let next_run_at = if checked.paused {
            None
        } else {
            Some(next_fire(&checked.table, now)?)
        };
        let store = &self.inner.store;
        let mut sched = self.inner.sched.lock().await;
        let old = store.schedule(name)?;
        if let Some(old) = &old {
            may_manage(principal, old, "replace")?;
        }
        let schedule = Schedule {
            name: name.to_owned(),
            cron: checked.cron,
            timezone: checked.timezone,
            job: checked.job,
            overlap: checked.overlap,
            missed: checked.missed,
            paused: checked.paused,
            owner: old
                .as_ref()
                .map_or_else(|| principal.owner(), |o| o.owner.clone()),
            run_as: old
                .as_ref()
                .map_or_else(|| principal.runs_as.clone(), |o| o.run_as.clone()),
            created_at: old.as_ref().map_or(now, |o| o.created_at),
            updated_at: now,
            next_run_at,
            last_run_at: old.as_ref().and_then(|o| o.last_run_at),
            last_job: old.as_ref().and_then(|o| o.last_job),
            skipped: old.as_ref().map_or(0, |o| o.skipped),
            last_error: None,
        };
        store.write_schedule(ScheduleWrite::Put(&schedule))?;
        if let Some(at) = old.as_ref().and_then(|o| o.next_run_at) {
            sched.timers.remove(&fire_timer(at, name));
        }
        drop(sched);
        store.sync().await?;
        self.arm(&schedule).await;
        Ok((schedule, old.is_none()))
    }

    /// One schedule, as on disk.
    pub async fn schedule(&self, name: &str) -> Result<Schedule, EngineError> {
        check_name(name)?;
        self.local_only("schedules")?;
        let schedule = self
            .inner
            .store
            .schedule(name)?
            .ok_or_else(|| EngineError::NoSchedule(name.to_owned()))?;
        self.counts_flushed().await?;
        Ok(schedule)
    }

    /// Every schedule, by name, as on disk.
    pub async fn schedules(&self) -> Result<Vec<Schedule>, EngineError> {
        self.local_only("schedules")?;
        let all = self.inner.store.schedules()?;
        self.counts_flushed().await?;
        Ok(all)
    }

    /// The number and state of a schedule's last job now, if it still
    /// exists.
    pub fn last_job(&self, schedule: &Schedule) -> Option<(u64, StateName)> {
        let id = schedule.last_job?;
        let job = self.inner.store.get(&id).ok()??;
        Some((job.number(), job.state.name()))
    }

    /// Pauses (no fires) or resumes (the next fire from now on) a schedule.
    pub async fn pause_schedule(
        &self,
        name: &str,
        paused: bool,
        principal: &Principal,
    ) -> Result<Schedule, EngineError> {
        check_name(name)?;
        self.local_only("schedules")?;
        self.recovered()?;
        let now = Timestamp::now();
        let store = &self.inner.store;
        let mut sched = self.inner.sched.lock().await;
        let mut schedule = store
            .schedule(name)?
            .ok_or_else(|| EngineError::NoSchedule(name.to_owned()))?;
        may_manage(
            principal,
            &schedule,
            if paused { "pause" } else { "resume" },
        )?;
        if schedule.paused == paused {
            drop(sched);
            self.counts_flushed().await?;
            return Ok(schedule);
        }
        if let Some(at) = schedule.next_run_at {
            sched.timers.remove(&fire_timer(at, name));
        }
        schedule.paused = paused;
        schedule.updated_at = now;
        schedule.next_run_at = if paused {
            None
        } else {
            let table = schedule.timetable()?;
            Some(next_fire(&table, now)?)
        };
        store.write_schedule(ScheduleWrite::Put(&schedule))?;
        drop(sched);
        store.sync().await?;
        self.arm(&schedule).await;
        Ok(schedule)
    }

    /// Forgets a schedule; its jobs stay.
    pub async fn remove_schedule(
        &self,
        name: &str,
        principal: &Principal,
    ) -> Result<(), EngineError> {
        check_name(name)?;
        self.local_only("schedules")?;
        self.recovered()?;
        let store = &self.inner.store;
        let mut sched = self.inner.sched.lock().await;
        let schedule = store
            .schedule(name)?
            .ok_or_else(|| EngineError::NoSchedule(name.to_owned()))?;
        may_manage(principal, &schedule, "delete")?;
        store.write_schedule(ScheduleWrite::Remove(name))?;
        if let Some(at) = schedule.next_run_at {
            sched.timers.remove(&fire_timer(at, name));
        }
        drop(sched);
        store.sync().await?;
        Ok(())
    }

    /// Starts one job of a schedule now, outside its timetable (`POST
    /// /v1/schedules/{name}/run`): paused or not, whatever its `overlap`
    /// (the caller asked for it), without a fire's idempotency key.
    pub async fn run_schedule(
        &self,
        name: &str,
        principal: &Principal,
    ) -> Result<Job, EngineError> {
        check_name(name)?;
        self.local_only("schedules")?;
        self.taking_changes()?;
        let now = Timestamp::now();
        let store = &self.inner.store;
        let sched = self.inner.sched.lock().await;
        let mut schedule = store
            .schedule(name)?
            .ok_or_else(|| EngineError::NoSchedule(name.to_owned()))?;
        may_manage(principal, &schedule, "run")?;
        let Some((job, stdin)) = self.fire_job(&schedule, None, now, 0)? else {
            unreachable!("a job without an idempotency key is always made");
        };
        schedule.last_job = Some(job.id);
        schedule.last_run_at = Some(now);
        schedule.last_error = None;
        store.apply_with(
            &[Change::insert(&job, stdin.as_deref())],
            &[ScheduleWrite::Put(&schedule)],
        )?;
        drop(sched);
        store.sync().await?;
        count_submitted(&job);
        self.announce(&job).await;
        Ok(job)
    }

    /// Puts a stored schedule's next fire on the timers.
    async fn arm(&self, schedule: &Schedule) {
        if let (Some(at), false) = (schedule.next_run_at, schedule.paused) {
            let mut sched = self.inner.sched.lock().await;
            sched.timers.insert(fire_timer(at, &schedule.name));
            drop(sched);
            self.inner.timer_wake.notify(1);
        }
    }

    /// The timer entries of every stored schedule's next fire (for a
    /// reopened store).
    pub(super) fn schedule_timers(&self) -> Result<Vec<(Timestamp, timers::Due)>, EngineError> {
        Ok(self
            .inner
            .store
            .schedules()?
            .iter()
            .filter(|s| !s.paused)
            .filter_map(|s| s.next_run_at.map(|at| fire_timer(at, &s.name)))
            .collect())
    }

    /// Fires schedule `name` for its timer entry at `at` (under the lock,
    /// from the timer loop): that fire and any a late timer passed by, one
    /// job each, or past [`CATCH_UP`] of them the `missed` rule. A stale
    /// entry (the schedule was replaced, paused or removed since) does
    /// nothing.
    pub(super) fn fire_due(
        &self,
        sched: &mut Sched,
        name: &str,
        at: Timestamp,
        now: Timestamp,
        fired: &mut Fired,
    ) -> Result<(), EngineError> {
        let store = &self.inner.store;
        let Some(mut schedule) = store.schedule(name)? else {
            return Ok(());
        };
        let Some(first) = schedule.next_run_at else {
            return Ok(());
        };
        if schedule.paused || fire_timer(first, name).0 != at {
            return Ok(());
        }
        let table = match schedule.timetable() {
            Ok(table) => table,
            Err(e) => {
                tracing::error!(schedule = name, error = %e, "cannot read the schedule's timetable; it does not fire");
                return Ok(());
            }
        };
        let mut due = vec![first];
        let mut following = table.next_after(first);
        while let Some(t) = following.filter(|t| *t <= now && due.len() <= CATCH_UP) {
            due.push(t);
            following = table.next_after(t);
        }
        let mut writes = Writes::default();
        if due.len() > CATCH_UP {
            self.fire_missed(sched, &mut schedule, &table, first, now, &mut writes)?;
            following = table.next_after(now);
        } else {
            for t in due {
                self.fire(sched, &mut schedule, t, now, &mut writes)?;
            }
        }
        schedule.next_run_at = following;
        self.write_fires(&schedule, writes, fired)?;
        if let Some(t) = following {
            sched.timers.insert(fire_timer(t, name));
        }
        Ok(())
    }

    /// At start, under the lock, before the ready queues are loaded: the
    /// fires that fell while the daemon was down follow each schedule's
    /// `missed` rule, and every schedule's next fire goes on the timers.
    /// What it writes is in the store's ready index for the caller to load.
    pub(super) fn recover_schedules(
        &self,
        sched: &mut Sched,
        now: Timestamp,
    ) -> Result<usize, EngineError> {
        let mut armed = 0;
        for mut schedule in self.inner.store.schedules()? {
            if schedule.paused {
                continue;
            }
            let table = match schedule.timetable() {
                Ok(table) => table,
                Err(e) => {
                    tracing::error!(schedule = %schedule.name, error = %e, "cannot read the schedule's timetable; it does not fire");
                    continue;
                }
            };
            let mut writes = Writes::default();
            let before = schedule.clone();
            match schedule.next_run_at {
                Some(first) if first <= now => {
                    self.fire_missed(sched, &mut schedule, &table, first, now, &mut writes)?;
                    schedule.next_run_at = table.next_after(now);
                }
                Some(_) => {}
                None => schedule.next_run_at = table.next_after(now),
            }
            if schedule != before {
                // Nobody listens yet: what it made is loaded from the store.
                self.write_fires(&schedule, writes, &mut Fired::default())?;
            }
            if let Some(at) = schedule.next_run_at {
                sched.timers.insert(fire_timer(at, &schedule.name));
                armed += 1;
            }
        }
        Ok(armed)
    }

    /// The fires from `first` to `now` that the daemon did not make in
    /// time: one job for all of them, keyed by the latest (`run_once`), or
    /// none (`skip`).
    fn fire_missed(
        &self,
        sched: &mut Sched,
        schedule: &mut Schedule,
        table: &TimeTable,
        first: Timestamp,
        now: Timestamp,
        writes: &mut Writes,
    ) -> Result<(), EngineError> {
        let mut count = 1;
        let mut t = first;
        while let Some(next) = table.next_after(t).filter(|n| *n <= now) {
            count += 1;
            t = next;
            if count >= MAX_COUNTED {
                break;
            }
        }
        let latest = table.latest_until(now).unwrap_or(first).max(first);
        tracing::info!(
            schedule = %schedule.name,
            missed = count,
            first = %first,
            latest = %latest,
            rule = ?schedule.missed,
            "fires fell while jobq was not running"
        );
        match schedule.missed {
            Missed::RunOnce => self.fire(sched, schedule, latest, now, writes),
            Missed::Skip => {
                schedule.skipped += count;
                Ok(())
            }
        }
    }

    /// One fire at `at`: the `overlap` rule against the schedule's last
    /// job, then its job, into `writes`.
    fn fire(
        &self,
        sched: &mut Sched,
        schedule: &mut Schedule,
        at: Timestamp,
        now: Timestamp,
        writes: &mut Writes,
    ) -> Result<(), EngineError> {
        let store = &self.inner.store;
        // The last job as this batch leaves it, or as stored.
        let made_here = schedule
            .last_job
            .and_then(|id| writes.inserted.iter().position(|(j, _)| j.id == id));
        let last = match (made_here, schedule.last_job) {
            (Some(i), _) => Some(writes.inserted[i].0.clone()),
            (None, Some(id)) => store.get(&id)?,
            (None, None) => None,
        };
        let mut stop = None;
        if let Some(last) = last.filter(|j| !j.state.is_terminal()) {
            match schedule.overlap {
                Overlap::Allow => {}
                Overlap::Forbid => {
                    tracing::info!(schedule = %schedule.name, fire = %at, job = %last.id, "fire skipped: the previous job has not ended (overlap = forbid)");
                    schedule.skipped += 1;
                    return Ok(());
                }
                Overlap::Replace => match made_here {
                    Some(i) => writes.inserted[i].0.cancel(None, now)?,
                    None if sched.running.contains_key(&last.id) => stop = Some(last.id),
                    None => {
                        let mut cancelled = self.cancel_changes(sched, last, now)?;
                        writes.updated.append(&mut cancelled);
                    }
                },
            }
        }
        match self.fire_job(
            schedule,
            Some(fire_key(&schedule.name, at)),
            now,
            writes.inserted.len(),
        ) {
            Ok(Some((job, stdin))) => {
                tracing::info!(schedule = %schedule.name, fire = %at, job = %job.id, "schedule fired");
                schedule.last_job = Some(job.id);
                schedule.last_error = None;
                if let Some(old) = stop {
                    writes.stops.push((old, job.id));
                }
                writes.inserted.push((job, stdin));
            }
            // This fire made its job already.
            Ok(None) => {}
            Err(e @ (EngineError::Invalid(_) | EngineError::QueueFull { .. })) => {
                tracing::warn!(schedule = %schedule.name, fire = %at, error = %e, "fire made no job");
                schedule.skipped += 1;
                schedule.last_error = Some(e.to_string());
            }
            Err(e) => return Err(e),
        }
        schedule.last_run_at = Some(at);
        Ok(())
    }

    /// A new job of `schedule`'s spec, keyed `key`; `None` when a job
    /// holds that key already (the fire made its job before). `pending`
    /// jobs made in this batch count towards `max_queued`.
    fn fire_job(
        &self,
        schedule: &Schedule,
        key: Option<String>,
        now: Timestamp,
        pending: usize,
    ) -> Result<Option<NewJob>, EngineError> {
        let store = &self.inner.store;
        if let Some(key) = &key {
            if store.job_with_key(key)?.is_some() {
                return Ok(None);
            }
        }
        let (mut spec, stdin) = schedule
            .job
            .clone()
            .validate(now, self.default_backoff())
            .map_err(in_job)?;
        self.cap_limits(&mut spec).map_err(in_job)?;
        spec.idempotency_key = key;
        spec.schedule = Some(schedule.name.clone());
        let waiting = not_started(store) + pending as u64;
        if waiting >= self.inner.config.max_queued {
            return Err(EngineError::QueueFull {
                queued: waiting,
                limit: self.inner.config.max_queued,
            });
        }
        let ownership = Ownership {
            owner: schedule.owner.clone(),
            run_as: schedule.run_as.clone(),
        };
        let job = Job::new(
            JobId::new(),
            store.next_seq()?,
            spec,
            ownership,
            vec![],
            now,
        );
        let stdin = match stdin {
            Stdin::Bytes(bytes) => Some(bytes),
            Stdin::None | Stdin::Upload(_) => None,
        };
        Ok(Some((job, stdin)))
    }

    /// Writes a schedule's fires and its record in one atomic batch, and
    /// notes in `fired` what to announce once that is durable.
    fn write_fires(
        &self,
        schedule: &Schedule,
        writes: Writes,
        fired: &mut Fired,
    ) -> Result<(), EngineError> {
        let mut changes: Vec<Change<'_>> = writes
            .inserted
            .iter()
            .map(|(job, stdin)| Change::insert(job, stdin.as_deref()))
            .collect();
        changes.extend(
            writes
                .updated
                .iter()
                .map(|(old, new)| Change::update(old, new)),
        );
        self.inner
            .store
            .apply_with(&changes, &[ScheduleWrite::Put(schedule)])?;
        drop(changes);
        for (job, _) in writes.inserted {
            match writes.stops.iter().find(|(_, new)| *new == job.id) {
                Some((old, _)) => fired.after_stop.push((*old, job)),
                None => fired.made.push(job),
            }
        }
        fired
            .changed
            .extend(writes.updated.into_iter().map(|(_, new)| new));
        Ok(())
    }

    /// Announces what fires made, now durable. A `replace` fire's job
    /// waits for the previous job's run to end first: it is cancelled, and
    /// the new one is announced (and may start) once that is recorded.
    pub(super) async fn announce_fired(&self, fired: Fired) {
        fired.made.iter().for_each(count_submitted);
        let now: Vec<&Job> = fired.made.iter().chain(&fired.changed).collect();
        self.announce_all(&now).await;
        for (old, new) in fired.after_stop {
            let engine = self.clone();
            crate::rt::spawn(async move {
                if let Err(e) = engine.cancel_checked(&old).await {
                    if !matches!(e, EngineError::Conflict(_)) {
                        tracing::warn!(job = %old, error = %e, "cannot cancel the previous job of a replace fire");
                    }
                }
                count_submitted(&new);
                // As it is now: a later fire may have cancelled it while it
                // waited (that change announced it).
                if let Ok(job) = engine.current(&new.id) {
                    if job.state == State::Queued {
                        engine.announce(&job).await;
                    }
                }
            });
        }
    }
}

/// Counts a new job in `jobq_jobs_submitted_total`.
pub(super) fn count_submitted(job: &Job) {
    crate::metrics::metrics()
        .submitted
        .get_or_create(&crate::metrics::QueueLabel {
            queue: job.spec.queue.clone(),
        })
        .inc();
}
