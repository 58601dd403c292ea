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
//!
//! On a cluster the same requests and the same decisions go through the
//! database instead (`cluster/schedules.rs`): each fn here dispatches to
//! its cluster version first, and the decisions both stores make (a
//! schedule's record from a request, which fires are due, what `overlap`
//! and `missed` make of them, a fire's job) are the functions below
//! marked `pub(in crate::engine)`.

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
pub(in crate::engine) type NewJob = (Job, Option<Vec<u8>>);

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
pub(in crate::engine) fn may_manage(
    principal: &Principal,
    schedule: &Schedule,
    action: &str,
) -> Result<(), EngineError> {
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
        self.taking_changes()?;
        if let Some(cluster) = self.cluster() {
            return self
                .cluster_put_schedule(cluster, name, checked, principal)
                .await;
        }
        let now = Timestamp::now();
        let next_run_at = self.first_fire(&checked, now)?;
        let store = &self.inner.store;
        let mut sched = self.inner.sched.lock().await;
        let old = store.schedule(name)?;
        if let Some(old) = &old {
            may_manage(principal, old, "replace")?;
        }
        let schedule = stored_schedule(name, checked, old.as_ref(), principal, now, next_run_at);
        store.write_schedule(ScheduleWrite::Put(&schedule))?;
        if let Some(at) = old.as_ref().and_then(|o| o.next_run_at) {
            sched.timers.remove(&fire_timer(at, name));
        }
        drop(sched);
        store.sync().await?;
        self.arm(&schedule).await;
        Ok((schedule, old.is_none()))
    }

    /// A new or replaced schedule's first fire (`None` when it is stored
    /// paused), or a 400: its job's limits above the daemon's (refused
    /// now, as a fire's submit would refuse them), or an expression with
    /// no fire ahead.
    pub(in crate::engine) fn first_fire(
        &self,
        checked: &CheckedSchedule,
        now: Timestamp,
    ) -> Result<Option<Timestamp>, EngineError> {
        let mut spec = checked.spec.clone();
        self.cap_limits(&mut spec).map_err(in_job)?;
        if checked.paused {
            Ok(None)
        } else {
            Ok(Some(next_fire(&checked.table, now)?))
        }
    }

    /// One schedule, as on disk.
    pub async fn schedule(&self, name: &str) -> Result<Schedule, EngineError> {
        check_name(name)?;
        if let Some(cluster) = self.cluster() {
            return self.cluster_schedule(cluster, name).await;
        }
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
        if let Some(cluster) = self.cluster() {
            return Ok(cluster.pg.schedules().await?);
        }
        let all = self.inner.store.schedules()?;
        self.counts_flushed().await?;
        Ok(all)
    }

    /// The number and state of a schedule's last job now, if it still
    /// exists (and, on a cluster, the database answers).
    pub async fn last_job(&self, schedule: &Schedule) -> Option<(u64, StateName)> {
        let id = schedule.last_job?;
        let job = match self.cluster() {
            Some(cluster) => cluster.pg.get(&id).await.ok()??,
            None => self.inner.store.get(&id).ok()??,
        };
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
        self.recovered()?;
        if let Some(cluster) = self.cluster() {
            return self
                .cluster_pause_schedule(cluster, name, paused, principal)
                .await;
        }
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
        set_paused(&mut schedule, paused, now)?;
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
        self.recovered()?;
        if let Some(cluster) = self.cluster() {
            return self.cluster_remove_schedule(cluster, name, principal).await;
        }
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
        self.taking_changes()?;
        if let Some(cluster) = self.cluster() {
            return self.cluster_run_schedule(cluster, name, principal).await;
        }
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
        ran_now(&mut schedule, &job, now);
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
        let fires = due_fires(&table, first, now);
        let mut writes = Writes::default();
        match fires.each {
            Some(due) => {
                for t in due {
                    self.fire(sched, &mut schedule, t, now, &mut writes)?;
                }
            }
            None => self.fire_missed(sched, &mut schedule, &table, first, now, &mut writes)?,
        }
        schedule.next_run_at = fires.following;
        self.write_fires(&schedule, writes, fired)?;
        if let Some(t) = fires.following {
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
        let (count, latest) = missed_fires(schedule, table, first, now);
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
            match overlapping(schedule, &last, at) {
                Overlapping::Fire => {}
                Overlapping::Skip => return Ok(()),
                Overlapping::Replace => match made_here {
                    Some(i) => writes.inserted[i].0.cancel(None, now)?,
                    None if sched.running.contains_key(&last.id) => stop = Some(last.id),
                    None => {
                        let mut cancelled = self.cancel_changes(sched, last, now)?;
                        writes.updated.append(&mut cancelled);
                    }
                },
            }
        }
        let made = self.fire_job(
            schedule,
            Some(fire_key(&schedule.name, at)),
            now,
            writes.inserted.len(),
        );
        if let Some((job, stdin)) = fire_made(schedule, at, made)? {
            if let Some(old) = stop {
                writes.stops.push((old, job.id));
            }
            writes.inserted.push((job, stdin));
        }
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
        let fire = self.fire_spec(schedule, key, now)?;
        self.room_for_fire(not_started(store) + pending as u64)?;
        Ok(Some(fire.into_job(store.next_seq()?, now)))
    }

    /// What a fire's job of `schedule` is made of, keyed `key`: its spec
    /// read and capped as `POST /v1/jobs` would, its stdin, its owner.
    pub(in crate::engine) fn fire_spec(
        &self,
        schedule: &Schedule,
        key: Option<String>,
        now: Timestamp,
    ) -> Result<FireSpec, EngineError> {
        let (mut spec, stdin) = schedule
            .job
            .clone()
            .validate(now, self.default_backoff())
            .map_err(in_job)?;
        self.cap_limits(&mut spec).map_err(in_job)?;
        spec.idempotency_key = key;
        spec.schedule = Some(schedule.name.clone());
        let stdin = match stdin {
            Stdin::Bytes(bytes) => Some(bytes),
            Stdin::None | Stdin::Upload(_) => None,
        };
        Ok(FireSpec {
            spec,
            stdin,
            ownership: Ownership {
                owner: schedule.owner.clone(),
                run_as: schedule.run_as.clone(),
            },
        })
    }

    /// Refuses a fire's job while `waiting` jobs (not started yet) fill
    /// `max_queued`, as a submit is refused.
    pub(in crate::engine) fn room_for_fire(&self, waiting: u64) -> Result<(), EngineError> {
        let limit = self.inner.config.max_queued;
        if waiting >= limit {
            return Err(EngineError::QueueFull {
                queued: waiting,
                limit,
            });
        }
        Ok(())
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

/// A fire's job before it has a number: see [`Engine::fire_spec`].
pub(in crate::engine) struct FireSpec {
    /// The spec, keyed and named for the schedule.
    spec: JobSpec,
    /// Its inline stdin.
    stdin: Option<Vec<u8>>,
    /// The schedule's owner and user.
    ownership: Ownership,
}

impl FireSpec {
    /// The job, numbered `seq` (each store hands out its own numbers).
    pub(in crate::engine) fn into_job(self, seq: u64, now: Timestamp) -> NewJob {
        let job = Job::new(JobId::new(), seq, self.spec, self.ownership, vec![], now);
        (job, self.stdin)
    }
}

/// The fires a schedule waiting for its fire at `first` owes at `now`.
pub(in crate::engine) struct DueFires {
    /// Each, oldest first, to fire one by one; `None` when more than
    /// [`CATCH_UP`] are due (the clock jumped, the machine slept): then
    /// the `missed` rule decides, as after a downtime.
    pub(in crate::engine) each: Option<Vec<Timestamp>>,
    /// The fire after them, which the schedule waits for next.
    pub(in crate::engine) following: Option<Timestamp>,
}

/// See [`DueFires`].
pub(in crate::engine) fn due_fires(
    table: &TimeTable,
    first: Timestamp,
    now: Timestamp,
) -> DueFires {
    let mut due = vec![first];
    let mut following = table.next_after(first);
    while let Some(t) = following.filter(|t| *t <= now && due.len() <= CATCH_UP) {
        due.push(t);
        following = table.next_after(t);
    }
    if due.len() > CATCH_UP {
        return DueFires {
            each: None,
            following: table.next_after(now),
        };
    }
    DueFires {
        each: Some(due),
        following,
    }
}

/// The fires from `first` to `now` that nobody made in time: how many
/// (counted up to [`MAX_COUNTED`]) and the latest, which a `run_once`
/// job is keyed by. Logged, since a downtime or a leader's change
/// explains a gap in the schedule's jobs.
pub(in crate::engine) fn missed_fires(
    schedule: &Schedule,
    table: &TimeTable,
    first: Timestamp,
    now: Timestamp,
) -> (u64, Timestamp) {
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
        "fires fell while no jobq fired them"
    );
    (count, latest)
}

/// What a fire does about the schedule's previous job, which has not
/// ended: each store carries out a `Replace` its own way.
pub(in crate::engine) enum Overlapping {
    /// Fire beside it (`allow`).
    Fire,
    /// No job this fire (`forbid`), counted in `skipped`.
    Skip,
    /// Cancel it, then fire (`replace`).
    Replace,
}

/// [`Overlapping`] by `schedule`'s `overlap` for its fire at `at` while
/// `last` runs; a skip is logged and counted.
pub(in crate::engine) fn overlapping(
    schedule: &mut Schedule,
    last: &Job,
    at: Timestamp,
) -> Overlapping {
    match schedule.overlap {
        Overlap::Allow => Overlapping::Fire,
        Overlap::Forbid => {
            tracing::info!(schedule = %schedule.name, fire = %at, job = %last.id, "fire skipped: the previous job has not ended (overlap = forbid)");
            schedule.skipped += 1;
            Overlapping::Skip
        }
        Overlap::Replace => Overlapping::Replace,
    }
}

/// Records in `schedule` what its fire at `at` made (`made`: the job, or
/// `None` when the fire made its job before), and passes the job on. A
/// fire the job spec or the queue's room refuses makes no job: it counts
/// in `skipped` and shows in `last_error`; any other error is the caller's.
pub(in crate::engine) fn fire_made(
    schedule: &mut Schedule,
    at: Timestamp,
    made: Result<Option<NewJob>, EngineError>,
) -> Result<Option<NewJob>, EngineError> {
    let out = match made {
        Ok(Some((job, stdin))) => {
            tracing::info!(schedule = %schedule.name, fire = %at, job = %job.id, "schedule fired");
            schedule.last_job = Some(job.id);
            schedule.last_error = None;
            Some((job, stdin))
        }
        // This fire made its job already.
        Ok(None) => None,
        Err(e @ (EngineError::Invalid(_) | EngineError::QueueFull { .. })) => {
            tracing::warn!(schedule = %schedule.name, fire = %at, error = %e, "fire made no job");
            schedule.skipped += 1;
            schedule.last_error = Some(e.to_string());
            None
        }
        Err(e) => return Err(e),
    };
    schedule.last_run_at = Some(at);
    Ok(out)
}

/// The record `PUT /v1/schedules/{name}` stores: `checked` as given; the
/// owner, user, creation and history of `old` when it replaces one.
pub(in crate::engine) fn stored_schedule(
    name: &str,
    checked: CheckedSchedule,
    old: Option<&Schedule>,
    principal: &Principal,
    now: Timestamp,
    next_run_at: Option<Timestamp>,
) -> Schedule {
    Schedule {
        name: name.to_owned(),
        cron: checked.cron,
        timezone: checked.timezone,
        job: checked.job,
        overlap: checked.overlap,
        missed: checked.missed,
        paused: checked.paused,
        owner: old.map_or_else(|| principal.owner(), |o| o.owner.clone()),
        run_as: old.map_or_else(|| principal.runs_as.clone(), |o| o.run_as.clone()),
        created_at: old.map_or(now, |o| o.created_at),
        updated_at: now,
        next_run_at,
        last_run_at: old.and_then(|o| o.last_run_at),
        last_job: old.and_then(|o| o.last_job),
        skipped: old.map_or(0, |o| o.skipped),
        last_error: None,
    }
}

/// Pauses (no next fire) or resumes (the next fire from `now` on) a
/// schedule's record.
pub(in crate::engine) fn set_paused(
    schedule: &mut Schedule,
    paused: bool,
    now: Timestamp,
) -> Result<(), EngineError> {
    schedule.paused = paused;
    schedule.updated_at = now;
    schedule.next_run_at = if paused {
        None
    } else {
        let table = schedule.timetable()?;
        Some(next_fire(&table, now)?)
    };
    Ok(())
}

/// Notes in `schedule` the job a `run` started at `now`.
pub(in crate::engine) fn ran_now(schedule: &mut Schedule, job: &Job, now: Timestamp) {
    schedule.last_job = Some(job.id);
    schedule.last_run_at = Some(now);
    schedule.last_error = None;
}

/// Counts a new job in `jobq_jobs_submitted_total`.
pub(in crate::engine) fn count_submitted(job: &Job) {
    crate::metrics::metrics()
        .submitted
        .get_or_create(&crate::metrics::QueueLabel {
            queue: job.spec.queue.clone(),
        })
        .inc();
}
