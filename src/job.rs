//! What a job is: the validated spec a user submitted ([`JobSpec`]), the
//! stored record ([`Job`]) and its life cycle ([`State`]).
//!
//! This module owns every state transition: no other code assigns a job's
//! state directly. The engine decides *when* a transition happens; this module
//! decides *whether* it is legal and what the job looks like afterwards. The
//! wire shape of a job (the flat JSON of docs/api.md) lives in [`crate::api`].

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::auth::RunAs;
use crate::resources::{Limits, Usage};

/// A job's identity: a UUIDv7, so ids sort by creation time and the store can
/// list newest first by walking its keys backwards.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JobId(uuid::Uuid);

impl JobId {
    /// A fresh id; later calls in this process sort after earlier ones.
    pub fn new() -> JobId {
        JobId(uuid::Uuid::now_v7())
    }

    /// The 16 bytes the store uses as the key; big-endian, so byte order is
    /// time order.
    pub fn as_bytes(&self) -> &[u8; 16] {
        self.0.as_bytes()
    }

    /// Milliseconds since the epoch when the id was made (UUIDv7's first 48
    /// bits).
    pub fn created_ms(&self) -> i64 {
        let b = self.0.as_bytes();
        i64::from_be_bytes([0, 0, b[0], b[1], b[2], b[3], b[4], b[5]])
    }

    /// Rebuilds an id from the store's key bytes.
    pub fn from_bytes(bytes: [u8; 16]) -> JobId {
        JobId(uuid::Uuid::from_bytes(bytes))
    }
}

impl Default for JobId {
    fn default() -> Self {
        JobId::new()
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

impl fmt::Debug for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Why a string is not a job id.
#[derive(Debug, thiserror::Error)]
#[error("not a job id: {0:?} (expected a UUID such as 0192f1c4-8a6e-7c3b-9d1e-3f5a7b9c1d2e)")]
pub struct BadJobId(String);

impl FromStr for JobId {
    type Err = BadJobId;

    fn from_str(s: &str) -> Result<JobId, BadJobId> {
        uuid::Uuid::parse_str(s)
            .map(JobId)
            .map_err(|_| BadJobId(s.to_owned()))
    }
}

/// What to execute: an argv run directly, or a line handed to the shell.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Program {
    /// argv, run without a shell; never empty.
    Command(Vec<String>),
    /// A command line run as `<shell> -c <line>`.
    Shell(String),
}

/// A submission after validation: every field is in range and consistent.
///
/// Built only by [`crate::api::JobRequest::validate`], so code holding a
/// `JobSpec` never re-checks it.
///
/// In the stored record, options that are absent are left out rather than
/// written as `null`: a plain job's record shrinks from 424 to about 340
/// bytes, and every write copies whole sled leaves of them. Records that
/// spell out the nulls read the same.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct JobSpec {
    /// What to run.
    pub program: Program,
    /// Variables added to the daemon's environment for this job.
    pub env: BTreeMap<String, String>,
    /// Working directory; `None` means the daemon's `work/` directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<PathBuf>,
    /// Size of the bytes fed to stdin (the bytes themselves are stored apart,
    /// so listing jobs never drags them along); `None` means /dev/null.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdin_bytes: Option<u64>,
    /// Which queue's limits apply.
    pub queue: String,
    /// Higher runs first.
    pub priority: i32,
    /// Not before this time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_at: Option<Timestamp>,
    /// Wall-clock limit for one attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    /// Extra attempts after a failed one.
    pub retries: u32,
    /// First retry delay.
    pub backoff: Duration,
    /// Jobs that must succeed first.
    pub after: Vec<JobId>,
    /// Deduplicates submissions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// A label for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Free-form tags.
    pub labels: BTreeMap<String, String>,
    /// Resource limits, combined from the spec, its queue and the daemon
    /// at submission.
    #[serde(default, skip_serializing_if = "Limits::is_empty")]
    pub limits: Limits,
    /// The schedule whose fire made it (`POST /v1/schedules/{name}/run`
    /// too), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
}

/// Hides environment values: they are often secrets and `Debug` output ends up
/// in logs.
impl fmt::Debug for JobSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let env: Vec<&str> = self.env.keys().map(String::as_str).collect();
        f.debug_struct("JobSpec")
            .field("program", &self.program)
            .field("env_keys", &env)
            .field("cwd", &self.cwd)
            .field("stdin_bytes", &self.stdin_bytes)
            .field("queue", &self.queue)
            .field("priority", &self.priority)
            .field("run_at", &self.run_at)
            .field("timeout", &self.timeout)
            .field("retries", &self.retries)
            .field("backoff", &self.backoff)
            .field("after", &self.after)
            .field("idempotency_key", &self.idempotency_key)
            .field("name", &self.name)
            .field("labels", &self.labels)
            .field("schedule", &self.schedule)
            .finish()
    }
}

/// How a process ended, as the kernel reported it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Exit {
    /// It called exit with this code.
    Code(i32),
    /// A signal ended it (the signal number).
    Signal(i32),
}

impl Exit {
    /// The exit code, if the process exited normally.
    pub fn code(self) -> Option<i32> {
        match self {
            Exit::Code(c) => Some(c),
            Exit::Signal(_) => None,
        }
    }

    /// The signal number, if one ended the process.
    pub fn signal(self) -> Option<i32> {
        match self {
            Exit::Code(_) => None,
            Exit::Signal(s) => Some(s),
        }
    }
}

/// Why a job ended `failed` (docs/api.md's `reason`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FailReason {
    /// Nonzero exit code.
    Exit,
    /// Killed by a signal it did not ask for.
    Signal,
    /// Ran past its `timeout`.
    Timeout,
    /// Could not be started at all.
    Spawn,
    /// A job in `after` failed or was cancelled.
    Dependency,
    /// It was running when the daemon stopped.
    Interrupted,
    /// It passed one of its `limits` (memory, CPU time, processes) and was
    /// stopped; the error names the limit.
    Limit,
}

/// A job's life cycle. Each variant carries only what is true in that state,
/// so a queued job cannot have a pid and a running job cannot have an exit.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum State {
    /// Some jobs in `after` have not succeeded yet.
    Waiting {
        /// The ones still awaited; the job is released when this is empty.
        pending: Vec<JobId>,
    },
    /// Not before `at` (a delay or a retry's backoff).
    Scheduled {
        /// When it becomes `queued`.
        at: Timestamp,
    },
    /// Ready; waits for a worker.
    Queued,
    /// A process is running for this job.
    Running {
        /// The process (and process group) id.
        pid: u32,
        /// When this attempt started.
        started_at: Timestamp,
    },
    /// The last attempt exited 0.
    Succeeded {
        /// When the attempt started.
        started_at: Timestamp,
        /// When it ended.
        finished_at: Timestamp,
    },
    /// The job will not run again by itself.
    Failed {
        /// Why.
        reason: FailReason,
        /// When the last attempt started, if it did.
        started_at: Option<Timestamp>,
        /// When the job was given up.
        finished_at: Timestamp,
        /// How the process ended, if there was one.
        exit: Option<Exit>,
        /// A sentence when the daemon, not the process, caused the failure.
        error: Option<String>,
    },
    /// A user cancelled it.
    Cancelled {
        /// When the attempt started, if it did.
        started_at: Option<Timestamp>,
        /// When it was cancelled (or its process ended).
        finished_at: Timestamp,
        /// How the process ended, if one was running.
        exit: Option<Exit>,
    },
}

/// The state names of docs/api.md, without their data: for filters, counts and
/// display.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum StateName {
    /// See [`State::Waiting`].
    Waiting,
    /// See [`State::Scheduled`].
    Scheduled,
    /// See [`State::Queued`].
    Queued,
    /// See [`State::Running`].
    Running,
    /// See [`State::Succeeded`].
    Succeeded,
    /// See [`State::Failed`].
    Failed,
    /// See [`State::Cancelled`].
    Cancelled,
}

impl StateName {
    /// Every state, in life-cycle order.
    pub const ALL: [StateName; 7] = [
        StateName::Waiting,
        StateName::Scheduled,
        StateName::Queued,
        StateName::Running,
        StateName::Succeeded,
        StateName::Failed,
        StateName::Cancelled,
    ];

    /// The name used in JSON, URLs and the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            StateName::Waiting => "waiting",
            StateName::Scheduled => "scheduled",
            StateName::Queued => "queued",
            StateName::Running => "running",
            StateName::Succeeded => "succeeded",
            StateName::Failed => "failed",
            StateName::Cancelled => "cancelled",
        }
    }

    /// True for states a job never leaves by itself.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            StateName::Succeeded | StateName::Failed | StateName::Cancelled
        )
    }
}

impl fmt::Display for StateName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for StateName {
    type Err = String;

    fn from_str(s: &str) -> Result<StateName, String> {
        StateName::ALL
            .into_iter()
            .find(|n| n.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown state {s:?}; expected one of waiting, scheduled, queued, running, succeeded, failed, cancelled"
                )
            })
    }
}

impl State {
    /// The state's name without its data.
    pub fn name(&self) -> StateName {
        match self {
            State::Waiting { .. } => StateName::Waiting,
            State::Scheduled { .. } => StateName::Scheduled,
            State::Queued => StateName::Queued,
            State::Running { .. } => StateName::Running,
            State::Succeeded { .. } => StateName::Succeeded,
            State::Failed { .. } => StateName::Failed,
            State::Cancelled { .. } => StateName::Cancelled,
        }
    }

    /// True for states a job never leaves by itself.
    pub fn is_terminal(&self) -> bool {
        self.name().is_terminal()
    }

    /// When a terminal job ended; `None` for the other states.
    pub fn finished_at(&self) -> Option<Timestamp> {
        match self {
            State::Succeeded { finished_at, .. }
            | State::Failed { finished_at, .. }
            | State::Cancelled { finished_at, .. } => Some(*finished_at),
            _ => None,
        }
    }
}

/// A transition that the job's current state does not allow.
#[derive(Debug, thiserror::Error)]
#[error("job {id} is {state}; cannot {action}")]
pub struct IllegalTransition {
    /// The job.
    pub id: JobId,
    /// Its state when the transition was attempted.
    pub state: StateName,
    /// What was attempted, in words (`"start"`, `"retry"`…).
    pub action: &'static str,
}

/// The stored record of one job.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// Identity.
    pub id: JobId,
    /// Submission order, unique and increasing across restarts: breaks ties
    /// between jobs of equal priority (FIFO).
    pub seq: u64,
    /// What was submitted.
    pub spec: JobSpec,
    /// The principal that submitted it (`token:ci`, `unix:alice`,
    /// `anonymous`): who may act on it besides admins. Records from before
    /// owners existed (store format 1) read as `anonymous`.
    #[serde(default = "anonymous")]
    pub owner: String,
    /// The user it runs as, decided at submission. `None` only in records
    /// from before (format 1): such a job runs as the config's default
    /// user, which its start then records here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_as: Option<RunAs>,
    /// 1 for the first run, +1 for each retry or re-run.
    pub attempt: u32,
    /// When it was accepted.
    pub created_at: Timestamp,
    /// True once output was dropped because the job wrote more than the
    /// daemon keeps.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub output_truncated: bool,
    /// Every ended attempt, oldest first: what each one did.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attempts: Vec<AttemptRecord>,
    /// The node (`[store] node`) that claimed the current or last attempt,
    /// when several daemons share a PostgreSQL database; `None` on a
    /// daemon of its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Where it is in its life cycle.
    pub state: State,
}

/// What one attempt did, kept in the job's history.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AttemptRecord {
    /// Which attempt (1 for the first).
    pub attempt: u32,
    /// When it started, if a process ran.
    pub started_at: Option<Timestamp>,
    /// When it ended.
    pub finished_at: Timestamp,
    /// How the process ended, if one ran and was reaped.
    pub exit: Option<Exit>,
    /// Why it failed; `None` when it succeeded or was cancelled.
    pub reason: Option<FailReason>,
    /// The daemon's sentence, when the daemon caused the failure.
    pub error: Option<String>,
    /// True when a user cancelled it.
    #[serde(default)]
    pub cancelled: bool,
    /// Bytes of output it kept, both streams; `None` where that was not
    /// recorded (attempts from before format 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_bytes: Option<u64>,
    /// What its processes used; `None` where no process ran or it was not
    /// recorded (attempts from before usage was).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
}

/// The owner of a record that names none.
fn anonymous() -> String {
    crate::auth::ANONYMOUS.to_owned()
}

/// Who a new job belongs to and runs as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ownership {
    /// The submitting principal's owner string.
    pub owner: String,
    /// The user it runs as.
    pub run_as: RunAs,
}

impl Job {
    /// The short reference people type (`jobq show 12`): `seq` counted
    /// from 1, unique in the store and never reused.
    pub fn number(&self) -> u64 {
        self.seq.saturating_add(1)
    }

    /// A job as accepted: `waiting` while `pending` dependencies have not
    /// succeeded, else `scheduled` until `run_at`, else `queued`.
    pub fn new(
        id: JobId,
        seq: u64,
        spec: JobSpec,
        ownership: Ownership,
        pending: Vec<JobId>,
        now: Timestamp,
    ) -> Job {
        let mut job = Job {
            id,
            seq,
            spec,
            owner: ownership.owner,
            run_as: Some(ownership.run_as),
            attempt: 1,
            created_at: now,
            output_truncated: false,
            attempts: Vec::new(),
            node: None,
            state: State::Queued,
        };
        job.state = if pending.is_empty() {
            job.not_before(now)
        } else {
            State::Waiting { pending }
        };
        job
    }

    /// `scheduled` if the spec's `run_at` is still ahead, else `queued`.
    fn not_before(&self, now: Timestamp) -> State {
        match self.spec.run_at {
            Some(at) if at > now => State::Scheduled { at },
            _ => State::Queued,
        }
    }

    /// waiting → scheduled/queued or still waiting: dependency `dep`
    /// succeeded. Returns true when the job left `waiting`. A dependency it
    /// no longer waits for changes nothing (a dependency re-run by hand).
    pub fn dependency_succeeded(
        &mut self,
        dep: &JobId,
        now: Timestamp,
    ) -> Result<bool, IllegalTransition> {
        let State::Waiting { pending } = &mut self.state else {
            return Err(self.illegal("release"));
        };
        pending.retain(|p| p != dep);
        if pending.is_empty() {
            self.state = self.not_before(now);
            return Ok(true);
        }
        Ok(false)
    }

    /// waiting → failed (`dependency`): `dep` failed or was cancelled.
    pub fn dependency_failed(
        &mut self,
        dep: &JobId,
        dep_state: StateName,
        now: Timestamp,
    ) -> Result<(), IllegalTransition> {
        if !matches!(self.state, State::Waiting { .. }) {
            return Err(self.illegal("fail for a dependency"));
        }
        self.state = State::Failed {
            reason: FailReason::Dependency,
            started_at: None,
            finished_at: now,
            exit: None,
            error: Some(format!("dependency {dep} ended {dep_state}")),
        };
        Ok(())
    }

    /// scheduled → queued: its time has come.
    pub fn make_due(&mut self) -> Result<(), IllegalTransition> {
        if !matches!(self.state, State::Scheduled { .. }) {
            return Err(self.illegal("make due"));
        }
        self.state = State::Queued;
        Ok(())
    }

    /// True when attempt `n` of this job got as far as a running process
    /// (so it may have output): the current attempt by its state, an
    /// earlier one by its record in the history.
    pub fn attempt_started(&self, n: u32) -> bool {
        if n == self.attempt {
            return match &self.state {
                State::Running { .. } | State::Succeeded { .. } => true,
                State::Failed { started_at, .. } | State::Cancelled { started_at, .. } => {
                    started_at.is_some()
                }
                State::Waiting { .. } | State::Scheduled { .. } | State::Queued => false,
            };
        }
        self.attempts
            .iter()
            .any(|a| a.attempt == n && a.started_at.is_some())
    }

    /// True when the last attempt failed in a way `retries` covers and
    /// attempts remain. Cancelled jobs, dependency failures and interrupted
    /// runs are not retried.
    pub fn may_retry(&self) -> bool {
        matches!(
            self.state,
            State::Failed {
                reason: FailReason::Exit
                    | FailReason::Signal
                    | FailReason::Timeout
                    | FailReason::Spawn,
                ..
            }
        ) && self.attempt <= self.spec.retries
    }

    /// failed → scheduled with `attempt` + 1: an automatic retry at `at`.
    pub fn retry_at(&mut self, at: Timestamp) -> Result<(), IllegalTransition> {
        if !self.may_retry() {
            return Err(self.illegal("retry automatically"));
        }
        self.attempt += 1;
        self.output_truncated = false;
        self.state = State::Scheduled { at };
        Ok(())
    }

    /// Appends the attempt that just ended (the job's state says how) to
    /// the history.
    fn record_attempt(&mut self) {
        let (started_at, finished_at, exit, reason, error, cancelled) = match &self.state {
            State::Succeeded {
                started_at,
                finished_at,
            } => (
                Some(*started_at),
                *finished_at,
                Some(Exit::Code(0)),
                None,
                None,
                false,
            ),
            State::Failed {
                reason,
                started_at,
                finished_at,
                exit,
                error,
            } => (
                *started_at,
                *finished_at,
                *exit,
                Some(*reason),
                error.clone(),
                false,
            ),
            State::Cancelled {
                started_at,
                finished_at,
                exit,
            } => (*started_at, *finished_at, *exit, None, None, true),
            _ => return,
        };
        self.attempts.push(AttemptRecord {
            attempt: self.attempt,
            started_at,
            finished_at,
            exit,
            reason,
            error,
            cancelled,
            output_bytes: None,
            usage: None,
        });
    }

    /// Records that attempt `attempt`, already in the history, kept
    /// `bytes` of output.
    pub fn note_output(&mut self, attempt: u32, bytes: u64) {
        if let Some(record) = self
            .attempts
            .iter_mut()
            .rev()
            .find(|a| a.attempt == attempt)
        {
            record.output_bytes = Some(bytes);
        }
    }

    /// Records what attempt `attempt`, already in the history, used.
    pub fn note_usage(&mut self, attempt: u32, usage: Usage) {
        if let Some(record) = self
            .attempts
            .iter_mut()
            .rev()
            .find(|a| a.attempt == attempt)
        {
            record.usage = Some(usage);
        }
    }

    fn illegal(&self, action: &'static str) -> IllegalTransition {
        IllegalTransition {
            id: self.id,
            state: self.state.name(),
            action,
        }
    }

    /// queued → running.
    pub fn start(&mut self, pid: u32, now: Timestamp) -> Result<(), IllegalTransition> {
        if self.state != State::Queued {
            return Err(self.illegal("start"));
        }
        self.state = State::Running {
            pid,
            started_at: now,
        };
        Ok(())
    }

    /// queued → failed (`spawn`): the process could not be created.
    pub fn fail_to_spawn(
        &mut self,
        error: String,
        now: Timestamp,
    ) -> Result<(), IllegalTransition> {
        if self.state != State::Queued {
            return Err(self.illegal("record a spawn failure"));
        }
        self.state = State::Failed {
            reason: FailReason::Spawn,
            started_at: None,
            finished_at: now,
            exit: None,
            error: Some(error),
        };
        self.record_attempt();
        Ok(())
    }

    /// running → succeeded / failed, from how the process ended.
    pub fn finish(&mut self, exit: Exit, now: Timestamp) -> Result<(), IllegalTransition> {
        let State::Running { started_at, .. } = self.state else {
            return Err(self.illegal("finish"));
        };
        self.state = match exit {
            Exit::Code(0) => State::Succeeded {
                started_at,
                finished_at: now,
            },
            Exit::Code(_) => State::Failed {
                reason: FailReason::Exit,
                started_at: Some(started_at),
                finished_at: now,
                exit: Some(exit),
                error: None,
            },
            Exit::Signal(_) => State::Failed {
                reason: FailReason::Signal,
                started_at: Some(started_at),
                finished_at: now,
                exit: Some(exit),
                error: None,
            },
        };
        self.record_attempt();
        Ok(())
    }

    /// running → failed (`timeout`): it ran past its limit and was stopped.
    pub fn time_out(
        &mut self,
        exit: Exit,
        error: String,
        now: Timestamp,
    ) -> Result<(), IllegalTransition> {
        self.fail_stopped(FailReason::Timeout, exit, error, now)
    }

    /// running → failed (`reason`): the daemon stopped it, for running
    /// past its `timeout` or passing one of its `limits`.
    pub fn fail_stopped(
        &mut self,
        reason: FailReason,
        exit: Exit,
        error: String,
        now: Timestamp,
    ) -> Result<(), IllegalTransition> {
        let State::Running { started_at, .. } = self.state else {
            return Err(self.illegal("stop"));
        };
        self.state = State::Failed {
            reason,
            started_at: Some(started_at),
            finished_at: now,
            exit: Some(exit),
            error: Some(error),
        };
        self.record_attempt();
        Ok(())
    }

    /// any non-terminal state → cancelled. `exit` is how the process ended
    /// when one was running.
    pub fn cancel(&mut self, exit: Option<Exit>, now: Timestamp) -> Result<(), IllegalTransition> {
        let started_at = match self.state {
            State::Running { started_at, .. } => Some(started_at),
            ref s if s.is_terminal() => return Err(self.illegal("cancel")),
            _ => None,
        };
        self.state = State::Cancelled {
            started_at,
            finished_at: now,
            exit,
        };
        if started_at.is_some() {
            self.record_attempt();
        }
        Ok(())
    }

    /// running → queued with `attempt` + 1: the daemon stopped under it and
    /// policy says run it again.
    pub fn requeue_interrupted(&mut self, now: Timestamp) -> Result<(), IllegalTransition> {
        let State::Running { started_at, .. } = self.state else {
            return Err(self.illegal("re-queue"));
        };
        self.attempts.push(AttemptRecord {
            attempt: self.attempt,
            started_at: Some(started_at),
            finished_at: now,
            exit: None,
            reason: Some(FailReason::Interrupted),
            error: Some("the daemon stopped while the job was running".to_owned()),
            cancelled: false,
            output_bytes: None,
            usage: None,
        });
        self.attempt += 1;
        self.state = State::Queued;
        Ok(())
    }

    /// running → failed (`interrupted`): the daemon stopped under it and
    /// policy says give up.
    pub fn fail_interrupted(&mut self, now: Timestamp) -> Result<(), IllegalTransition> {
        let State::Running { started_at, .. } = self.state else {
            return Err(self.illegal("mark interrupted"));
        };
        self.state = State::Failed {
            reason: FailReason::Interrupted,
            started_at: Some(started_at),
            finished_at: now,
            exit: None,
            error: Some("the daemon stopped while the job was running".to_owned()),
        };
        self.record_attempt();
        Ok(())
    }

    /// terminal → queued with `attempt` + 1: a user asked to run it again.
    pub fn retry(&mut self) -> Result<(), IllegalTransition> {
        if !self.state.is_terminal() {
            return Err(self.illegal("retry"));
        }
        self.attempt += 1;
        self.output_truncated = false;
        self.state = State::Queued;
        Ok(())
    }

    /// The exit code `jobq wait` gives for this job ([`crate::exit_code`]),
    /// `None` while the job is not terminal.
    pub fn wait_exit_code(&self) -> Option<i32> {
        let (reason, exit) = match &self.state {
            State::Failed { reason, exit, .. } => (Some(*reason), *exit),
            State::Cancelled { exit, .. } => (None, *exit),
            _ => (None, None),
        };
        crate::exit_code::of(
            self.state.name(),
            reason,
            exit.and_then(Exit::code),
            exit.and_then(Exit::signal),
        )
    }
}

/// The name of a signal number (`9` → `"SIGKILL"`), for people and for the
/// API's `signal` field.
pub fn signal_name(signal: i32) -> String {
    let name = match signal {
        1 => "SIGHUP",
        2 => "SIGINT",
        3 => "SIGQUIT",
        4 => "SIGILL",
        5 => "SIGTRAP",
        6 => "SIGABRT",
        7 => "SIGBUS",
        8 => "SIGFPE",
        9 => "SIGKILL",
        10 => "SIGUSR1",
        11 => "SIGSEGV",
        12 => "SIGUSR2",
        13 => "SIGPIPE",
        14 => "SIGALRM",
        15 => "SIGTERM",
        17 => "SIGCHLD",
        18 => "SIGCONT",
        19 => "SIGSTOP",
        20 => "SIGTSTP",
        24 => "SIGXCPU",
        25 => "SIGXFSZ",
        _ => return format!("SIG{signal}"),
    };
    name.to_owned()
}

/// A plain `true` job with `env`, for other modules' unit tests.
#[cfg(test)]
pub(crate) fn sample_spec(env: &[(&str, &str)]) -> JobSpec {
    JobSpec {
        program: Program::Command(vec!["true".into()]),
        env: env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        cwd: None,
        stdin_bytes: None,
        queue: "default".into(),
        priority: 0,
        run_at: None,
        timeout: None,
        retries: 0,
        backoff: Duration::from_secs(1),
        after: vec![],
        idempotency_key: None,
        name: None,
        labels: BTreeMap::new(),
        limits: Limits::default(),
        schedule: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> JobSpec {
        sample_spec(&[("SECRET", "hunter2")])
    }

    fn ours() -> Ownership {
        Ownership {
            owner: "token:ci".into(),
            run_as: RunAs {
                user: "builder".into(),
                uid: 1001,
            },
        }
    }

    #[test]
    fn a_record_without_an_owner_reads_as_anonymous() {
        let now = Timestamp::now();
        let job = Job::new(JobId::new(), 1, spec(), ours(), vec![], now);
        let mut record = serde_json::to_value(&job).unwrap();
        assert_eq!(record["owner"], "token:ci");
        assert_eq!(record["run_as"]["uid"], 1001);
        let fields = record.as_object_mut().unwrap();
        fields.remove("owner");
        fields.remove("run_as");
        let old: Job = serde_json::from_value(record).unwrap();
        assert_eq!(old.owner, "anonymous");
        assert_eq!(old.run_as, None);
    }

    #[test]
    fn debug_hides_env_values() {
        let shown = format!("{:?}", spec());
        assert!(shown.contains("SECRET"));
        assert!(!shown.contains("hunter2"));
    }

    #[test]
    fn records_leave_out_absent_options_and_still_read_spelled_out_nulls() {
        let now = Timestamp::now();
        let job = Job::new(JobId::new(), 1, spec(), ours(), vec![], now);
        let record = serde_json::to_value(&job).unwrap();
        let text = record.to_string();
        assert!(!text.contains("null"), "{text}");
        assert!(!text.contains("output_truncated"), "{text}");
        assert!(!text.contains("attempts"), "{text}");
        assert_eq!(serde_json::from_value::<Job>(record.clone()).unwrap(), job);

        // A record as written before: every option spelled out.
        let mut old = record;
        for field in [
            "cwd",
            "stdin_bytes",
            "run_at",
            "timeout",
            "idempotency_key",
            "name",
        ] {
            old["spec"][field] = serde_json::Value::Null;
        }
        old["output_truncated"] = false.into();
        old["attempts"] = serde_json::json!([]);
        assert_eq!(serde_json::from_value::<Job>(old).unwrap(), job);
    }

    #[test]
    fn a_terminal_job_cannot_be_cancelled_or_started() {
        let now = Timestamp::now();
        let mut job = Job::new(JobId::new(), 1, spec(), ours(), vec![], now);
        job.start(7, now).unwrap();
        job.finish(Exit::Code(0), now).unwrap();
        assert!(job.cancel(None, now).is_err());
        assert!(job.start(8, now).is_err());
        job.retry().unwrap();
        assert_eq!(job.attempt, 2);
        assert_eq!(job.attempts.len(), 1);
        assert_eq!(job.state, State::Queued);
    }

    #[test]
    fn retries_are_counted_and_cancel_is_not_retried() {
        let now = Timestamp::now();
        let mut s = spec();
        s.retries = 1;
        let mut job = Job::new(JobId::new(), 1, s, ours(), vec![], now);
        job.start(7, now).unwrap();
        job.finish(Exit::Code(1), now).unwrap();
        assert!(job.may_retry());
        job.retry_at(now).unwrap();
        job.make_due().unwrap();
        job.start(8, now).unwrap();
        job.finish(Exit::Code(1), now).unwrap();
        assert!(!job.may_retry(), "attempts used up");
        assert_eq!(job.attempts.len(), 2);

        let mut s = spec();
        s.retries = 5;
        let mut job = Job::new(JobId::new(), 2, s, ours(), vec![], now);
        job.start(9, now).unwrap();
        job.cancel(Some(Exit::Signal(15)), now).unwrap();
        assert!(!job.may_retry());
    }

    #[test]
    fn waiting_releases_when_the_last_dependency_succeeds() {
        let now = Timestamp::now();
        let (a, b) = (JobId::new(), JobId::new());
        let mut job = Job::new(JobId::new(), 1, spec(), ours(), vec![a, b], now);
        assert!(!job.dependency_succeeded(&a, now).unwrap());
        assert!(
            !job.dependency_succeeded(&a, now).unwrap(),
            "a repeat changes nothing"
        );
        assert!(job.dependency_succeeded(&b, now).unwrap());
        assert_eq!(job.state, State::Queued);
    }

    #[test]
    fn an_attempt_has_started_once_a_process_ran_for_it() {
        let now = Timestamp::now();
        let mut s = spec();
        s.retries = 2;
        let mut job = Job::new(JobId::new(), 1, s, ours(), vec![], now);
        assert!(!job.attempt_started(1), "queued");
        job.start(7, now).unwrap();
        assert!(job.attempt_started(1));
        job.finish(Exit::Code(1), now).unwrap();
        job.retry_at(now).unwrap();
        assert!(job.attempt_started(1), "from its record");
        assert!(!job.attempt_started(2), "scheduled");
        job.cancel(None, now).unwrap();
        assert!(!job.attempt_started(2), "cancelled before it ran");
        job.retry().unwrap();
        assert!(!job.attempt_started(2), "still no record of a run");
        assert!(!job.attempt_started(3));
    }

    #[test]
    fn wait_exit_codes_follow_timeout_1() {
        let now = Timestamp::now();
        let mut job = Job::new(JobId::new(), 1, spec(), ours(), vec![], now);
        job.start(7, now).unwrap();
        job.finish(Exit::Signal(9), now).unwrap();
        assert_eq!(job.wait_exit_code(), Some(137));
    }

    #[test]
    fn ids_parse_back() {
        let id = JobId::new();
        assert_eq!(id.to_string().parse::<JobId>().unwrap(), id);
        assert!("nope".parse::<JobId>().is_err());
    }
}
