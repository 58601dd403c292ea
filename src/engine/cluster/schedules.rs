//! Schedules on the cluster (docs/cluster.md, "Schedules"): the requests
//! of `/v1/schedules` read and change the database's records from any
//! node, and one node at a time fires them, the one that holds the
//! leader lease of role `schedules`.
//!
//! Each node runs two loops for it: the lease keeper takes or renews the
//! lease every third of `lease`, and the firer, while this node leads,
//! fires what is due and sleeps until the next fire. They are apart so
//! that a fire waiting for a `replace`'s cancel never holds up the
//! renewal. A fire is one transaction ([`PgStore::fire_schedule`]): the
//! schedule's row locked, its job inserted with the fire's idempotency
//! key, the record advanced; two leaders that overlap for a moment still
//! make one job a fire. What a fire decides (overlap, a late leader's
//! catch-up, the `missed` rule when this node takes over) is the sled
//! engine's, from `engine/schedules.rs`.

use std::sync::atomic::AtomicBool;

use super::super::schedules::{
    count_submitted, due_fires, fire_made, may_manage, missed_fires, overlapping, ran_now,
    set_paused, stored_schedule, NewJob, Overlapping,
};
use super::*;
use crate::api::CheckedSchedule;
use crate::schedule::{fire_key, Missed, Schedule, TimeTable};

/// The role in `jobq_leaders` whose holder fires the schedules.
const ROLE: &str = "schedules";

/// The longest the firer and the lease keeper sleep at once: a schedule
/// changed on another node wakes the leader by notification, and this is
/// the fallback when one is lost; it also bounds how long a stopping node
/// waits for these loops to end.
const NAP: Duration = Duration::from_secs(1);

/// How soon the firer tries again after a fire was refused (another fire
/// or a change held the schedule's row, or the lease moved meanwhile).
const RETRY: Duration = Duration::from_millis(200);

/// Most due schedules one round reads; a backlog goes in several rounds.
const DUE_BATCH: u32 = 100;

/// This node's part in firing the cluster's schedules.
#[derive(Default)]
pub(super) struct Leader {
    /// When this node last took or renewed the lease, by its monotonic
    /// clock (taken before the statement, so it ends before the
    /// database's); `None` while another node leads.
    renewed: SyncMutex<Option<Instant>>,
    /// Set when this node takes the lease: the fires that fell before it
    /// led follow each schedule's `missed` rule first.
    recover: AtomicBool,
    /// Wakes the firer: this node took the lease, or a schedule changed
    /// somewhere (`NOTIFY jobq_schedules`).
    pub(super) wake: Event,
}

impl Leader {
    /// Whether this node may fire now: its last renewal is younger than
    /// `lease`.
    fn leads(&self, lease: Duration) -> bool {
        self.renewed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some_and(|t| t.elapsed() < lease)
    }

    fn set_renewed(&self, at: Option<Instant>) {
        *self.renewed.lock().unwrap_or_else(|e| e.into_inner()) = at;
    }
}

impl Engine {
    /// [`Engine::put_schedule`] on the cluster: a write conditional on the
    /// record read, decided again when another node changed it first.
    pub(in crate::engine) async fn cluster_put_schedule(
        &self,
        cluster: &Cluster,
        name: &str,
        checked: CheckedSchedule,
        principal: &Principal,
    ) -> Result<(Schedule, bool), EngineError> {
        let now = Timestamp::now();
        let next_run_at = self.first_fire(&checked, now)?;
        loop {
            let old = cluster.pg.schedule(name).await?;
            if let Some(old) = &old {
                may_manage(principal, old, "replace")?;
            }
            let schedule = stored_schedule(
                name,
                checked.clone(),
                old.as_ref(),
                principal,
                now,
                next_run_at,
            );
            if cluster.pg.put_schedule(old.as_ref(), &schedule).await? == Fenced::Done {
                return Ok((schedule, old.is_none()));
            }
        }
    }

    /// One schedule, from the database.
    pub(in crate::engine) async fn cluster_schedule(
        &self,
        cluster: &Cluster,
        name: &str,
    ) -> Result<Schedule, EngineError> {
        cluster
            .pg
            .schedule(name)
            .await?
            .ok_or_else(|| EngineError::NoSchedule(name.to_owned()))
    }

    /// [`Engine::pause_schedule`] on the cluster.
    pub(in crate::engine) async fn cluster_pause_schedule(
        &self,
        cluster: &Cluster,
        name: &str,
        paused: bool,
        principal: &Principal,
    ) -> Result<Schedule, EngineError> {
        loop {
            let old = self.cluster_schedule(cluster, name).await?;
            may_manage(principal, &old, if paused { "pause" } else { "resume" })?;
            if old.paused == paused {
                return Ok(old);
            }
            let mut new = old.clone();
            set_paused(&mut new, paused, Timestamp::now())?;
            if cluster.pg.put_schedule(Some(&old), &new).await? == Fenced::Done {
                return Ok(new);
            }
        }
    }

    /// [`Engine::remove_schedule`] on the cluster; its jobs stay.
    pub(in crate::engine) async fn cluster_remove_schedule(
        &self,
        cluster: &Cluster,
        name: &str,
        principal: &Principal,
    ) -> Result<(), EngineError> {
        let schedule = self.cluster_schedule(cluster, name).await?;
        may_manage(principal, &schedule, "delete")?;
        if !cluster.pg.remove_schedule(name).await? {
            return Err(EngineError::NoSchedule(name.to_owned()));
        }
        Ok(())
    }

    /// [`Engine::run_schedule`] on the cluster: the job and the record's
    /// `last_job` in one transaction, as a fire (without its key, and
    /// whoever leads).
    pub(in crate::engine) async fn cluster_run_schedule(
        &self,
        cluster: &Cluster,
        name: &str,
        principal: &Principal,
    ) -> Result<Job, EngineError> {
        loop {
            let now = Timestamp::now();
            let old = self.cluster_schedule(cluster, name).await?;
            may_manage(principal, &old, "run")?;
            let Some((job, stdin)) = self.cluster_fire_job(cluster, &old, None, now, 0).await?
            else {
                unreachable!("a job without an idempotency key is always made");
            };
            let mut new = old.clone();
            ran_now(&mut new, &job, now);
            let jobs = [job];
            cluster.ensure_queues(&self.inner.config, &jobs).await?;
            cluster.to_announce(&jobs, true);
            let done = cluster
                .pg
                .fire_schedule(None, &old, &new, &jobs, &[stdin])
                .await;
            cluster.settle_announce(&self.inner.events, &jobs, &done);
            let [job] = jobs;
            if done? == Fenced::Done {
                record_transition(&job);
                count_submitted(&job);
                return Ok(job);
            }
            // A fire or a change held the row, or came first.
            Timer::after(RETRY / 4).await;
        }
    }

    /// At a node's start, before it answers: takes the lease if nobody
    /// else holds it, and if so applies the `missed` rule to the fires
    /// that fell while no node fired, as a daemon on sled does at its
    /// start (so a restarted daemon's first answers show them).
    pub(in crate::engine) async fn cluster_recover_schedules(&self, cluster: &Cluster) {
        self.cluster_take_lead(cluster).await;
        if cluster.leader.leads(cluster.settings.lease) {
            self.cluster_fire_round(cluster).await;
        }
    }

    /// At a node's drain: gives the lease up, so another node fires from
    /// its next try on rather than once the lease lapses.
    pub(in crate::engine) async fn cluster_resign(&self, cluster: &Cluster) {
        let held = cluster.leader.leads(cluster.settings.lease);
        cluster.leader.set_renewed(None);
        if held {
            if let Err(e) = cluster.pg.resign(ROLE, &cluster.session()).await {
                tracing::warn!(error = %e, "cannot give up the schedules' leader lease; it lapses by itself");
            }
        }
    }

    /// The lease keeper: a try at the lease every third of `lease`.
    pub(super) async fn cluster_schedule_lease(&self, cluster: &Cluster) {
        let every = cluster.settings.lease / 3;
        let mut next = Instant::now() + every;
        while !self.is_stopping() {
            if Instant::now() >= next {
                next = Instant::now() + every;
                self.cluster_take_lead(cluster).await;
            }
            Timer::after(NAP.min(next.saturating_duration_since(Instant::now()))).await;
        }
    }

    /// One try at the lease: taken when nobody holds it (or its holder's
    /// lease lapsed, or its session is over), renewed when this node
    /// holds it. A failed statement leaves the last renewal standing,
    /// which lapses by itself.
    async fn cluster_take_lead(&self, cluster: &Cluster) {
        if self.is_stopping() {
            return;
        }
        let lease = cluster.settings.lease;
        let session = cluster.session();
        let led = cluster.leader.leads(lease);
        let tried = Instant::now();
        match cluster.pg.lead(ROLE, &session, lease).await {
            Ok(Some(_)) => {
                cluster.leader.set_renewed(Some(tried));
                if !led {
                    tracing::info!(node = %session.node, epoch = session.epoch, "this node fires the cluster's schedules");
                    cluster.leader.recover.store(true, Ordering::SeqCst);
                    cluster.leader.wake.notify(1);
                }
            }
            Ok(None) => {
                cluster.leader.set_renewed(None);
                if led {
                    tracing::warn!(node = %session.node, "another node fires the cluster's schedules now");
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot take or renew the schedules' leader lease")
            }
        }
    }

    /// The firer: while this node leads, fires what is due and sleeps
    /// until the next fire (at most [`NAP`]); woken early when it takes
    /// the lease or a schedule changes.
    pub(super) async fn cluster_schedule_firer(&self, cluster: &Cluster) {
        while !self.is_stopping() {
            let listener = cluster.leader.wake.listen();
            let pause = if cluster.leader.leads(cluster.settings.lease) {
                self.cluster_fire_round(cluster).await
            } else {
                NAP
            };
            future::or(listener, async {
                Timer::after(pause).await;
            })
            .await;
        }
    }

    /// One round of the leader's: every due schedule fired (right after
    /// taking the lease, every schedule recovered instead); returns how
    /// long until the next round.
    async fn cluster_fire_round(&self, cluster: &Cluster) -> Duration {
        let recovering = cluster.leader.recover.swap(false, Ordering::SeqCst);
        let now = Timestamp::now();
        let schedules = if recovering {
            cluster.pg.schedules().await
        } else {
            cluster.pg.due_schedules(now, DUE_BATCH).await
        };
        let schedules = match schedules {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the due schedules");
                cluster
                    .leader
                    .recover
                    .fetch_or(recovering, Ordering::SeqCst);
                return NAP;
            }
        };
        let mut pause = NAP;
        for schedule in schedules.into_iter().filter(|s| !s.paused) {
            let name = schedule.name.clone();
            match self
                .cluster_fire_schedule(cluster, schedule, now, recovering)
                .await
            {
                Ok(Fenced::Done) => {}
                Ok(Fenced::Refused) => pause = pause.min(RETRY),
                Err(e) => {
                    tracing::warn!(schedule = %name, error = %e, "cannot fire the schedule; trying again");
                    cluster
                        .leader
                        .recover
                        .fetch_or(recovering, Ordering::SeqCst);
                }
            }
        }
        match cluster.pg.next_schedule_fire().await {
            Ok(Some(at)) => {
                let until = at.duration_since(Timestamp::now());
                pause.min(until.try_into().unwrap_or(Duration::ZERO))
            }
            Ok(None) => pause,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the next schedule fire");
                NAP
            }
        }
    }

    /// Fires `old` for what is due at `now` (or, `recovering`, for the
    /// fires that fell while no node led, by its `missed` rule, as sled's
    /// `recover_schedules`), in one transaction. `Done` also when nothing
    /// was due.
    async fn cluster_fire_schedule(
        &self,
        cluster: &Cluster,
        old: Schedule,
        now: Timestamp,
        recovering: bool,
    ) -> Result<Fenced, EngineError> {
        let mut new = old.clone();
        let table = match old.timetable() {
            Ok(table) => table,
            Err(e) => {
                // Unlike sled's timer entry, a due row would be read again
                // every round: it stops waiting for a fire instead.
                tracing::error!(schedule = %old.name, error = %e, "cannot read the schedule's timetable; it does not fire");
                new.next_run_at = None;
                new.last_error = Some(format!("cannot read its timetable: {e}"));
                return self.cluster_write_fires(cluster, &old, &new, vec![]).await;
            }
        };
        let mut batch = Vec::new();
        match old.next_run_at {
            Some(first) if first <= now && recovering => {
                self.cluster_fire_missed(cluster, &mut new, &table, first, now, &mut batch)
                    .await?;
                new.next_run_at = table.next_after(now);
            }
            Some(first) if first <= now => {
                let fires = due_fires(&table, first, now);
                match fires.each {
                    Some(due) => {
                        for t in due {
                            self.cluster_fire(cluster, &mut new, t, now, &mut batch)
                                .await?;
                        }
                    }
                    None => {
                        self.cluster_fire_missed(cluster, &mut new, &table, first, now, &mut batch)
                            .await?
                    }
                }
                new.next_run_at = fires.following;
            }
            None if recovering => new.next_run_at = table.next_after(now),
            Some(_) | None => return Ok(Fenced::Done),
        }
        if new == old {
            return Ok(Fenced::Done);
        }
        self.cluster_write_fires(cluster, &old, &new, batch).await
    }

    /// The missed fires from `first` to `now`: one job for all of them,
    /// keyed by the latest (`run_once`), or none (`skip`).
    async fn cluster_fire_missed(
        &self,
        cluster: &Cluster,
        schedule: &mut Schedule,
        table: &TimeTable,
        first: Timestamp,
        now: Timestamp,
        batch: &mut Vec<NewJob>,
    ) -> Result<(), EngineError> {
        let (count, latest) = missed_fires(schedule, table, first, now);
        match schedule.missed {
            Missed::RunOnce => {
                self.cluster_fire(cluster, schedule, latest, now, batch)
                    .await
            }
            Missed::Skip => {
                schedule.skipped += count;
                Ok(())
            }
        }
    }

    /// One fire at `at`: the `overlap` rule against the schedule's last
    /// job, then its job, into `batch`. A `replace` of a job stored
    /// earlier cancels it first and waits for its end (so the new job
    /// cannot start beside it), as a cancel request does.
    async fn cluster_fire(
        &self,
        cluster: &Cluster,
        schedule: &mut Schedule,
        at: Timestamp,
        now: Timestamp,
        batch: &mut Vec<NewJob>,
    ) -> Result<(), EngineError> {
        let made_here = schedule
            .last_job
            .and_then(|id| batch.iter().position(|(j, _)| j.id == id));
        let last = match (made_here, schedule.last_job) {
            (Some(i), _) => Some(batch[i].0.clone()),
            (None, Some(id)) => cluster.pg.get(&id).await?,
            (None, None) => None,
        };
        if let Some(last) = last.filter(|j| !j.state.is_terminal()) {
            match overlapping(schedule, &last, at) {
                Overlapping::Fire => {}
                Overlapping::Skip => return Ok(()),
                Overlapping::Replace => match made_here {
                    Some(i) => batch[i].0.cancel(None, now)?,
                    None => self.cluster_replace(cluster, &last).await?,
                },
            }
        }
        let key = fire_key(&schedule.name, at);
        let made = self
            .cluster_fire_job(cluster, schedule, Some(key), now, batch.len())
            .await;
        if let Some(new) = fire_made(schedule, at, made)? {
            batch.push(new);
        }
        Ok(())
    }

    /// Cancels the previous job of a `replace` fire and waits for its end.
    /// One that ended meanwhile is fine; one whose node does not record
    /// the end in time is left to it, and the new job is made anyway.
    async fn cluster_replace(&self, cluster: &Cluster, last: &Job) -> Result<(), EngineError> {
        match self.cluster_cancel_checked(cluster, &last.id).await {
            Ok(_) | Err(EngineError::Conflict(_) | EngineError::NotFound(_)) => Ok(()),
            Err(e @ EngineError::CancelPending(_)) => {
                tracing::warn!(job = %last.id, error = %e, "the previous job of a replace fire has not ended; making the new one anyway");
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// A fire's job of `schedule`, keyed `key`, numbered by the database;
    /// `None` when a job holds that key already (the fire made its job
    /// before). `pending` jobs of this fire's batch count towards
    /// `max_queued`.
    async fn cluster_fire_job(
        &self,
        cluster: &Cluster,
        schedule: &Schedule,
        key: Option<String>,
        now: Timestamp,
        pending: usize,
    ) -> Result<Option<NewJob>, EngineError> {
        if let Some(key) = &key {
            if !cluster.pg.jobs_with_keys(&[key]).await?.is_empty() {
                return Ok(None);
            }
        }
        let fire = self.fire_spec(schedule, key, now)?;
        self.room_for_fire(self.cluster_waiting(cluster).await? + pending as u64)?;
        let seq = cluster.pg.next_seqs(1).await?.remove(0);
        Ok(Some(fire.into_job(seq, now)))
    }

    /// Writes a fire: `batch`'s jobs and the schedule advanced from `old`
    /// to `new`, in one transaction fenced by this node's lease. The
    /// database's trigger wakes the claimers and tells the other nodes'
    /// subscribers; this node tells its own, as for a submit.
    async fn cluster_write_fires(
        &self,
        cluster: &Cluster,
        old: &Schedule,
        new: &Schedule,
        batch: Vec<NewJob>,
    ) -> Result<Fenced, EngineError> {
        let (jobs, stdins): (Vec<Job>, Vec<Option<Vec<u8>>>) = batch.into_iter().unzip();
        cluster.ensure_queues(&self.inner.config, &jobs).await?;
        let session = cluster.session();
        cluster.to_announce(&jobs, true);
        let done = cluster
            .pg
            .fire_schedule(Some((ROLE, &session)), old, new, &jobs, &stdins)
            .await;
        cluster.settle_announce(&self.inner.events, &jobs, &done);
        let done = done?;
        if done == Fenced::Done {
            for job in &jobs {
                record_transition(job);
                count_submitted(job);
            }
        }
        Ok(done)
    }
}
