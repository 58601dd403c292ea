//! The wire types of the HTTP API (../shared/docs/api.md), shared by the daemon,
//! the CLI's client and the tests, so the three cannot drift apart.
//!
//! Requests are checked here: [`JobRequest::validate`] turns what a user sent
//! into a [`JobSpec`] or a [`FieldError`] naming the field at fault. What
//! needs the daemon's state to check (does a job in `after` exist?) is left
//! to the engine.

mod schedules;

pub use schedules::{
    in_job, CheckedSchedule, ScheduleList, SchedulePatch, ScheduleRequest, ScheduleView,
};

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Deserializer, Serialize};

use crate::job::{signal_name, Exit, Job, JobId, JobSpec, Program, State, StateName};
use crate::resources::{Limits, LimitsArg, Usage};

/// Longest queue name; docs/api.md fixes `[a-z0-9_.-]{1,64}`.
pub const MAX_QUEUE_NAME: usize = 64;
/// Upper bound on `retries`: beyond this a typo, not a plan (with the default
/// one-hour backoff cap, 1,000 retries already span six weeks).
pub const MAX_RETRIES: u32 = 1000;
/// Longest `name`, idempotency key, label key or value: labels are for
/// filtering and display, not for storing documents.
pub const MAX_LABEL_LEN: usize = 256;
/// Most labels on one job.
pub const MAX_LABELS: usize = 64;
/// Most entries in `after`: a fan-in larger than this is better expressed
/// through an intermediate job.
pub const MAX_AFTER: usize = 10_000;
/// Most jobs in one `POST /v1/jobs/batch`: bounded like the body itself,
/// so one request cannot hold the engine lock for long. The CLI splits a
/// larger `submit --batch` into batches of this size.
pub const MAX_BATCH: usize = 10_000;
/// Longest string the kernel passes to a new program, NUL included, per
/// argument and per `NAME=VALUE` (Linux's `MAX_ARG_STRLEN`, 32 pages): a
/// longer one fails the start with E2BIG, so it is refused at submit.
pub const MAX_ARG_STRING: usize = 128 * 1024;

/// Largest concurrency limit of a queue (`PATCH`, `default_concurrency`,
/// `[queues.NAME]`): far above what one machine runs at once, low enough
/// that a typo (`40000`) is caught.
pub const MAX_CONCURRENCY: usize = 4096;

/// Longest duration anywhere (API, CLI, config): 1,000 years. Far past any
/// delay, timeout or backoff meant, and short enough that now plus it is
/// still a time (jiff's end is the year 9999).
pub const MAX_DURATION: Duration = Duration::from_secs(1000 * 31_557_600);

/// `d` if it is at most [`MAX_DURATION`].
fn bounded(d: Duration) -> Result<Duration, String> {
    if d > MAX_DURATION {
        return Err(format!(
            "{} is longer than the longest duration, 1000 years",
            humantime::format_duration(d)
        ));
    }
    Ok(d)
}

/// A duration as the API accepts it: a number of seconds or a humantime
/// string (`"500ms"`, `"1h30m"`), at most [`MAX_DURATION`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DurationArg(pub Duration);

impl<'de> Deserialize<'de> for DurationArg {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = DurationArg;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number of seconds or a duration such as \"10s\" or \"1h30m\"")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<DurationArg, E> {
                bounded(Duration::from_secs(v))
                    .map(DurationArg)
                    .map_err(E::custom)
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<DurationArg, E> {
                let v = u64::try_from(v).map_err(|_| E::custom("a duration cannot be negative"))?;
                self.visit_u64(v)
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<DurationArg, E> {
                let d = Duration::try_from_secs_f64(v)
                    .map_err(|_| E::custom("a duration must be a finite number of seconds ≥ 0"))?;
                bounded(d).map(DurationArg).map_err(E::custom)
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<DurationArg, E> {
                parse_duration(v).map(DurationArg).map_err(E::custom)
            }
        }
        d.deserialize_any(Visitor)
    }
}

impl Serialize for DurationArg {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(self.0).to_string())
    }
}

/// Parses `"10s"`, `"1h30m"` or a bare number of seconds; the one duration
/// syntax of the API, the CLI and the config file.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if let Ok(secs) = s.parse::<f64>() {
        return Duration::try_from_secs_f64(secs)
            .map_err(|_| format!("{s:?} is not a duration ≥ 0"))
            .and_then(bounded);
    }
    humantime::parse_duration(s)
        .map_err(|e| format!("{s:?} is not a duration such as \"10s\" or \"1h30m\" ({e})"))
        .and_then(bounded)
}

/// Reads an optional `T` from a JSON object only: serde's derive would also
/// take an array of the fields in order (`"limits": [null, null]`), which
/// no client means.
fn object_only<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    struct Visitor<T>(std::marker::PhantomData<T>);
    impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for Visitor<T> {
        type Value = Option<T>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an object")
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<Option<T>, E> {
            Ok(None)
        }
        fn visit_none<E: serde::de::Error>(self) -> Result<Option<T>, E> {
            Ok(None)
        }
        fn visit_some<D2: Deserializer<'de>>(self, d: D2) -> Result<Option<T>, D2::Error> {
            d.deserialize_any(self)
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Option<T>, A::Error> {
            T::deserialize(serde::de::value::MapAccessDeserializer::new(map)).map(Some)
        }
    }
    d.deserialize_option(Visitor(std::marker::PhantomData))
}

/// Reads an optional RFC 3339 time (`run_at`), with an error that shows
/// the form wanted rather than the parser's detail alone.
fn rfc3339<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Timestamp>, D::Error> {
    let Some(s) = Option::<String>::deserialize(d)? else {
        return Ok(None);
    };
    s.parse().map(Some).map_err(|e| {
        serde::de::Error::custom(format!(
            "{s:?} is not an RFC 3339 time such as 2030-01-02T15:04:05Z ({e})"
        ))
    })
}

/// How a request names a job: its id, or its short number (the job's
/// `number`, unique in the store), accepted wherever an id is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobRef {
    /// The job's UUID.
    Id(JobId),
    /// The job's number.
    Number(u64),
}

impl std::str::FromStr for JobRef {
    type Err = String;

    fn from_str(s: &str) -> Result<JobRef, String> {
        let s = s.trim();
        if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
            return s
                .parse()
                .map(JobRef::Number)
                .map_err(|_| format!("{s:?} is not a job number (too large)"));
        }
        s.parse().map(JobRef::Id).map_err(|_| {
            format!("{s:?} is not a job id or number (a UUID such as 0192f1c4-8a6e-7c3b-9d1e-3f5a7b9c1d2e, or a number such as 12)")
        })
    }
}

impl fmt::Display for JobRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JobRef::Id(id) => write!(f, "{id}"),
            JobRef::Number(n) => write!(f, "{n}"),
        }
    }
}

/// Where a job's stdin comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stdin {
    /// /dev/null.
    None,
    /// Bytes given in the request.
    Bytes(Vec<u8>),
    /// An earlier upload, claimed by the submission.
    Upload(JobId),
}

/// The answer to `POST /v1/uploads`.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Upload {
    /// Pass as `stdin_upload` in a job spec (within an hour).
    pub upload: String,
    /// How many bytes were stored.
    pub bytes: u64,
}

/// The body of `POST /v1/jobs`, exactly as a user may send it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JobRequest {
    /// argv, run without a shell.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    /// A line for `sh -c`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shell: Option<String>,
    /// Extra environment.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Working directory (absolute).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    /// Bytes for stdin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdin: Option<String>,
    /// An upload (`POST /v1/uploads`) whose bytes become stdin: for stdin
    /// larger than a request body, or not UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdin_upload: Option<String>,
    /// Queue name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
    /// Higher runs first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i32>,
    /// Not before this time.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "rfc3339"
    )]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub run_at: Option<Timestamp>,
    /// Not before now + this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<DurationArg>,
    /// Limit per attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<DurationArg>,
    /// Extra attempts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
    /// First retry delay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff: Option<DurationArg>,
    /// Jobs that must succeed first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub after: Vec<String>,
    /// Deduplicates submissions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// A label for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Free-form tags.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Resource limits; its queue's and the daemon's apply to what it
    /// leaves out, and it may only lower them.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "object_only"
    )]
    pub limits: Option<LimitsArg>,
}

/// A request field that is present but wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    /// The field's name, as in the request (`"timeout"`, `"env.PATH"`).
    pub field: String,
    /// What is wrong and what would be right.
    pub message: String,
}

impl FieldError {
    /// A complaint about `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> FieldError {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// True when `name` is a legal queue name (`[a-z0-9_.-]{1,64}`).
pub fn is_valid_queue_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_QUEUE_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.-".contains(&b))
}

fn check_text(field: &str, value: &str, max: usize) -> Result<(), FieldError> {
    if value.is_empty() {
        return Err(FieldError::new(field, "must not be empty"));
    }
    if value.len() > max {
        return Err(FieldError::new(field, format!("longer than {max} bytes")));
    }
    if value.contains('\0') {
        return Err(FieldError::new(field, "must not contain a NUL byte"));
    }
    Ok(())
}

impl JobRequest {
    /// Checks every field and builds the spec. `now` resolves `delay`;
    /// `default_backoff` fills a missing `backoff`.
    pub fn validate(
        self,
        now: Timestamp,
        default_backoff: Duration,
    ) -> Result<(JobSpec, Stdin), FieldError> {
        let program = match (self.command, self.shell) {
            (Some(_), Some(_)) => {
                return Err(FieldError::new(
                    "command",
                    "give exactly one of `command` and `shell`, not both",
                ))
            }
            (None, None) => {
                return Err(FieldError::new(
                    "command",
                    "give one of `command` (an argv array) or `shell` (a string)",
                ))
            }
            (Some(argv), None) => {
                if argv.is_empty() {
                    return Err(FieldError::new(
                        "command",
                        "must name a program: the argv array is empty",
                    ));
                }
                if argv[0].is_empty() {
                    return Err(FieldError::new(
                        "command",
                        "the program name (argv[0]) is empty",
                    ));
                }
                if argv.iter().any(|a| a.contains('\0')) {
                    return Err(FieldError::new(
                        "command",
                        "an argument contains a NUL byte",
                    ));
                }
                if let Some(i) = argv.iter().position(|a| a.len() >= MAX_ARG_STRING) {
                    return Err(FieldError::new(
                        format!("command[{i}]"),
                        format!(
                            "is {} bytes; the kernel takes at most {} per argument",
                            argv[i].len(),
                            MAX_ARG_STRING - 1
                        ),
                    ));
                }
                Program::Command(argv)
            }
            (None, Some(line)) => {
                if line.trim().is_empty() {
                    return Err(FieldError::new("shell", "must not be empty"));
                }
                if line.contains('\0') {
                    return Err(FieldError::new("shell", "must not contain a NUL byte"));
                }
                if line.len() >= MAX_ARG_STRING {
                    return Err(FieldError::new(
                        "shell",
                        format!("is {} bytes; the kernel takes at most {} for the line `sh -c` runs (put a long script in a file, or feed it on stdin)", line.len(), MAX_ARG_STRING - 1),
                    ));
                }
                Program::Shell(line)
            }
        };
        for (k, v) in &self.env {
            if k.is_empty() || k.contains('=') || k.contains('\0') {
                return Err(FieldError::new(
                    format!("env.{k}"),
                    "a variable name must be non-empty, without `=` or NUL",
                ));
            }
            if v.contains('\0') {
                return Err(FieldError::new(
                    format!("env.{k}"),
                    "a value must not contain a NUL byte",
                ));
            }
            // The kernel's limit is on `K=V` with its NUL.
            if k.len() + v.len() + 2 > MAX_ARG_STRING {
                return Err(FieldError::new(
                    format!("env.{k}"),
                    format!(
                        "is {} bytes; the kernel takes at most {} for NAME=VALUE (pass large data on stdin or in a file)",
                        v.len(),
                        MAX_ARG_STRING - k.len() - 2
                    ),
                ));
            }
        }
        let cwd = match self.cwd {
            None => None,
            Some(dir) => {
                let path = PathBuf::from(&dir);
                if !path.is_absolute() {
                    return Err(FieldError::new(
                        "cwd",
                        format!("{dir:?} is not an absolute path"),
                    ));
                }
                if !path.is_dir() {
                    return Err(FieldError::new(
                        "cwd",
                        format!("{dir:?} is not an existing directory"),
                    ));
                }
                Some(path)
            }
        };
        let queue = self.queue.unwrap_or_else(|| "default".to_owned());
        if !is_valid_queue_name(&queue) {
            return Err(FieldError::new(
                "queue",
                format!("{queue:?} is not a queue name: use 1 to 64 of a-z 0-9 _ . -"),
            ));
        }
        let run_at = match (self.run_at, self.delay) {
            (Some(_), Some(_)) => {
                return Err(FieldError::new(
                    "delay",
                    "give at most one of `run_at` and `delay`",
                ))
            }
            (Some(at), None) => Some(at),
            (None, Some(DurationArg(d))) => {
                let span = jiff::SignedDuration::try_from(d)
                    .map_err(|_| FieldError::new("delay", "too long"))?;
                Some(
                    now.checked_add(span)
                        .map_err(|_| FieldError::new("delay", "too long"))?,
                )
            }
            (None, None) => None,
        };
        if let Some(DurationArg(t)) = self.timeout {
            if t < Duration::from_millis(1) {
                return Err(FieldError::new(
                    "timeout",
                    "must be at least 1ms (omit it for no limit)",
                ));
            }
        }
        let retries = self.retries.unwrap_or(0);
        if retries > MAX_RETRIES {
            return Err(FieldError::new("retries", format!("at most {MAX_RETRIES}")));
        }
        let mut after = Vec::with_capacity(self.after.len());
        if self.after.len() > MAX_AFTER {
            return Err(FieldError::new(
                "after",
                format!("at most {MAX_AFTER} jobs"),
            ));
        }
        let mut seen = std::collections::HashSet::with_capacity(self.after.len());
        for id in &self.after {
            let id = id
                .parse::<JobId>()
                .map_err(|e| FieldError::new("after", e.to_string()))?;
            if seen.insert(id) {
                after.push(id);
            }
        }
        if let Some(key) = &self.idempotency_key {
            check_text("idempotency_key", key, MAX_LABEL_LEN)?;
        }
        if let Some(name) = &self.name {
            check_text("name", name, MAX_LABEL_LEN)?;
        }
        if self.labels.len() > MAX_LABELS {
            return Err(FieldError::new(
                "labels",
                format!("at most {MAX_LABELS} labels"),
            ));
        }
        for (k, v) in &self.labels {
            check_text("labels", k, MAX_LABEL_LEN)?;
            if k.contains(':') {
                return Err(FieldError::new(
                    format!("labels.{k}"),
                    "a label key must not contain `:`",
                ));
            }
            if v.len() > MAX_LABEL_LEN || v.contains('\0') {
                return Err(FieldError::new(
                    format!("labels.{k}"),
                    format!("a label value must be at most {MAX_LABEL_LEN} bytes, without NUL"),
                ));
            }
        }
        let stdin = match (self.stdin, self.stdin_upload) {
            (Some(_), Some(_)) => {
                return Err(FieldError::new(
                    "stdin_upload",
                    "give at most one of `stdin` and `stdin_upload`",
                ))
            }
            (Some(text), None) => Stdin::Bytes(text.into_bytes()),
            (None, Some(upload)) => Stdin::Upload(upload.parse().map_err(|_| {
                FieldError::new("stdin_upload", format!("{upload:?} is not an upload id"))
            })?),
            (None, None) => Stdin::None,
        };
        let spec = JobSpec {
            program,
            env: self.env,
            cwd,
            stdin_bytes: match &stdin {
                Stdin::Bytes(b) => Some(b.len() as u64),
                _ => None,
            },
            queue,
            priority: self.priority.unwrap_or(0),
            run_at,
            timeout: self.timeout.map(|t| t.0),
            retries,
            backoff: self.backoff.map_or(default_backoff, |b| b.0),
            after,
            idempotency_key: self.idempotency_key,
            name: self.name,
            labels: self.labels,
            // The spec's own; the engine puts them under the queue's.
            limits: match &self.limits {
                Some(limits) => limits.check("limits")?,
                None => Limits::default(),
            },
            schedule: None,
        };
        Ok((spec, stdin))
    }
}

/// A job as every endpoint returns it: the spec's fields plus its state, flat,
/// as docs/api.md lists them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobView {
    /// Identity (UUIDv7).
    pub id: String,
    /// A short reference, unique in the store (the submission sequence),
    /// accepted wherever an id is.
    #[serde(default)]
    pub number: u64,
    /// A label for people.
    pub name: Option<String>,
    /// argv, when submitted as `command`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    /// The shell line, when submitted as `shell`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shell: Option<String>,
    /// Extra environment. Only the job's owner and admins see the values;
    /// others see [`HIDDEN`] for each (and `env_hidden`).
    pub env: BTreeMap<String, String>,
    /// True when the values of `env` were hidden from this client.
    #[serde(default)]
    pub env_hidden: bool,
    /// The principal that submitted it: `token:<name>`, `unix:<user>` or
    /// `anonymous`.
    #[serde(default = "anonymous")]
    pub owner: String,
    /// The user it runs as; `null` only for a job from before owners that
    /// has not started since.
    #[serde(default)]
    pub user: Option<String>,
    /// That user's id.
    #[serde(default)]
    pub uid: Option<u32>,
    /// Working directory, `null` for the default (the daemon's `work/`,
    /// or the home of a user other than the daemon's).
    pub cwd: Option<String>,
    /// How many bytes are fed to stdin (the bytes are not echoed back).
    pub stdin_bytes: Option<u64>,
    /// Queue name.
    pub queue: String,
    /// Higher runs first.
    pub priority: i32,
    /// Not before this time.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub run_at: Option<Timestamp>,
    /// Limit per attempt.
    pub timeout: Option<DurationArg>,
    /// Extra attempts after a failed one.
    pub retries: u32,
    /// First retry delay.
    pub backoff: DurationArg,
    /// Jobs that must succeed first.
    pub after: Vec<String>,
    /// Deduplicates submissions.
    pub idempotency_key: Option<String>,
    /// Free-form tags.
    pub labels: BTreeMap<String, String>,
    /// The schedule whose fire made it, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// Where the job is in its life cycle.
    pub state: StateName,
    /// 1 for the first run.
    pub attempt: u32,
    /// When accepted.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    /// When the current (or last) attempt started.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub started_at: Option<Timestamp>,
    /// When the job became terminal.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub finished_at: Option<Timestamp>,
    /// The process's exit code, if it exited normally.
    pub exit_code: Option<i32>,
    /// The signal that ended it (`"SIGKILL"`).
    pub signal: Option<String>,
    /// Why it failed.
    pub reason: Option<crate::job::FailReason>,
    /// A sentence when the daemon caused the failure.
    pub error: Option<String>,
    /// The process id while running.
    pub pid: Option<u32>,
    /// True when output past the daemon's per-job cap was not kept.
    pub output_truncated: bool,
    /// The resource limits it runs under (its own, its queue's and the
    /// daemon's, combined); absent when none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<LimitsArg>,
    /// What the current attempt used, once it ended.
    #[serde(default)]
    pub usage: Option<Usage>,
    /// Every ended attempt, oldest first.
    #[serde(default)]
    pub attempts: Vec<AttemptView>,
    /// The node that runs or ran the current attempt, when several daemons
    /// share a PostgreSQL database (docs/cluster.md); absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}

/// One ended attempt in a job's `attempts` history.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AttemptView {
    /// 1 for the first.
    pub attempt: u32,
    /// When it started, if a process ran.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub started_at: Option<Timestamp>,
    /// When it ended.
    #[schema(value_type = String, format = DateTime)]
    pub finished_at: Timestamp,
    /// The process's exit code, if it exited normally.
    pub exit_code: Option<i32>,
    /// The signal that ended it.
    pub signal: Option<String>,
    /// Why it failed; null for success or cancel.
    pub reason: Option<crate::job::FailReason>,
    /// The daemon's sentence, if it caused the failure.
    pub error: Option<String>,
    /// True when a user cancelled it.
    pub cancelled: bool,
    /// Bytes of output it kept (read them with `?attempt=N`); null where
    /// that was not recorded.
    #[serde(default)]
    pub output_bytes: Option<u64>,
    /// What its processes used; null where no process ran.
    #[serde(default)]
    pub usage: Option<Usage>,
}

/// What a hidden `env` value reads as.
pub const HIDDEN: &str = "<hidden>";

fn anonymous() -> String {
    crate::auth::ANONYMOUS.to_owned()
}

impl JobView {
    /// The view with `env` values replaced by [`HIDDEN`]: for a client that
    /// is neither the job's owner nor an admin.
    pub fn with_env_hidden(mut self) -> JobView {
        if !self.env.is_empty() {
            for value in self.env.values_mut() {
                *value = HIDDEN.to_owned();
            }
            self.env_hidden = true;
        }
        self
    }

    /// True once the job will not change by itself.
    pub fn is_terminal(&self) -> bool {
        self.state.is_terminal()
    }

    /// The exit code `jobq wait` gives ([`crate::exit_code`]), `None`
    /// while the job is not terminal.
    pub fn wait_exit_code(&self) -> Option<i32> {
        crate::exit_code::of(
            self.state,
            self.reason,
            self.exit_code,
            self.signal.as_deref().and_then(signal_number),
        )
    }
}

/// The number of a signal name produced by [`signal_name`].
pub fn signal_number(name: &str) -> Option<i32> {
    (1..=64).find(|n| signal_name(*n) == name)
}

impl From<&Job> for JobView {
    fn from(job: &Job) -> JobView {
        let spec = &job.spec;
        let (command, shell) = match &spec.program {
            Program::Command(argv) => (Some(argv.clone()), None),
            Program::Shell(line) => (None, Some(line.clone())),
        };
        let (mut started_at, mut finished_at, mut exit, mut reason, mut error, mut pid) =
            (None, None, None::<Exit>, None, None, None);
        match &job.state {
            State::Waiting { .. } | State::Scheduled { .. } | State::Queued => {}
            State::Running {
                pid: p,
                started_at: s,
            } => {
                // 0: claimed on a cluster, not spawned yet (docs/cluster.md).
                pid = (*p != 0).then_some(*p);
                started_at = Some(*s);
            }
            State::Succeeded {
                started_at: s,
                finished_at: f,
            } => {
                started_at = Some(*s);
                finished_at = Some(*f);
                exit = Some(Exit::Code(0));
            }
            State::Failed {
                reason: r,
                started_at: s,
                finished_at: f,
                exit: x,
                error: e,
            } => {
                started_at = *s;
                finished_at = Some(*f);
                exit = *x;
                reason = Some(*r);
                error = e.clone();
            }
            State::Cancelled {
                started_at: s,
                finished_at: f,
                exit: x,
            } => {
                started_at = *s;
                finished_at = Some(*f);
                exit = *x;
            }
        }
        let run_at = match job.state {
            State::Scheduled { at } => Some(at),
            _ => spec.run_at,
        };
        JobView {
            id: job.id.to_string(),
            number: job.number(),
            name: spec.name.clone(),
            command,
            shell,
            env: spec.env.clone(),
            env_hidden: false,
            owner: job.owner.clone(),
            user: job.run_as.as_ref().map(|r| r.user.clone()),
            uid: job.run_as.as_ref().map(|r| r.uid),
            cwd: spec.cwd.as_ref().map(|p| p.display().to_string()),
            stdin_bytes: spec.stdin_bytes,
            queue: spec.queue.clone(),
            priority: spec.priority,
            run_at,
            timeout: spec.timeout.map(DurationArg),
            retries: spec.retries,
            backoff: DurationArg(spec.backoff),
            after: spec.after.iter().map(JobId::to_string).collect(),
            idempotency_key: spec.idempotency_key.clone(),
            labels: spec.labels.clone(),
            schedule: spec.schedule.clone(),
            state: job.state.name(),
            attempt: job.attempt,
            created_at: job.created_at,
            started_at,
            finished_at,
            exit_code: exit.and_then(Exit::code),
            signal: exit.and_then(Exit::signal).map(signal_name),
            reason,
            error,
            pid,
            output_truncated: job.output_truncated,
            node: job.node.clone(),
            limits: (!spec.limits.is_empty()).then(|| spec.limits.view()),
            usage: job
                .attempts
                .last()
                .filter(|a| a.attempt == job.attempt)
                .and_then(|a| a.usage),
            attempts: job
                .attempts
                .iter()
                .map(|a| AttemptView {
                    attempt: a.attempt,
                    started_at: a.started_at,
                    finished_at: a.finished_at,
                    exit_code: a.exit.and_then(Exit::code),
                    signal: a.exit.and_then(Exit::signal).map(signal_name),
                    reason: a.reason,
                    error: a.error.clone(),
                    cancelled: a.cancelled,
                    output_bytes: a.output_bytes,
                    usage: a.usage,
                })
                .collect(),
        }
    }
}

/// The body of `GET /v1/jobs`.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobList {
    /// Newest first.
    pub jobs: Vec<JobView>,
    /// Pass as `cursor` for the next page; `null` on the last one.
    pub next_cursor: Option<String>,
}

/// The machine-readable kind of an error (docs/api.md's codes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The body is not JSON.
    InvalidJson,
    /// A field, query parameter or path segment is wrong.
    InvalidField,
    /// No such job or route.
    NotFound,
    /// The route exists, but not with this method (the `Allow` header
    /// lists those it has).
    MethodNotAllowed,
    /// The job's state forbids the action.
    Conflict,
    /// Missing or wrong token.
    Unauthorized,
    /// The token may not do this.
    Forbidden,
    /// The body is over the limit.
    PayloadTooLarge,
    /// Too many jobs queued.
    QueueFull,
    /// The daemon cannot take this now (shutting down, disk trouble).
    Unavailable,
    /// This daemon's store does not do this yet (a feature not yet built
    /// on the PostgreSQL store; docs/cluster.md lists them).
    NotImplemented,
    /// A bug or an unexpected failure.
    Internal,
}

/// The inside of an error body.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// What kind of error.
    pub code: ErrorCode,
    /// A sentence for people.
    pub message: String,
    /// The field at fault, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// Every error response: `{"error": {...}}`.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// The body of `GET /readyz` and `GET /healthz`.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Health {
    /// `"ok"` or what is not ready yet.
    pub status: String,
}

/// The body of `GET /v1/whoami`: who the daemon takes the caller for, so
/// that a client (the dashboard) can offer only what its token may do.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Whoami {
    /// The owner its jobs get: `token:NAME`, `unix:USER` or `anonymous`.
    pub principal: String,
    /// `read`, `submit` or `admin`.
    pub role: String,
    /// The user its jobs run as.
    pub user: String,
}

/// One daemon of a cluster in `GET /v1/nodes` (on a daemon of its own,
/// just itself).
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct NodeView {
    /// Its `[store] node` name.
    pub name: String,
    /// `up`, `draining` (shutting down: claims no more) or `dead` (left,
    /// or silent past its lease).
    pub state: String,
    /// Its last heartbeat.
    #[schema(value_type = String, format = DateTime)]
    pub last_seen: Timestamp,
    /// Jobs it ran at its last heartbeat.
    pub running: u32,
    /// Its `workers`.
    pub workers: u32,
}

/// The body of `GET /v1/nodes`.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct NodeList {
    /// Every node that joined, by name.
    pub nodes: Vec<NodeView>,
}

/// The body of `POST /v1/jobs/batch`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchRequest {
    /// The specs, created all or none.
    pub jobs: Vec<JobRequest>,
}

/// The answer to `POST /v1/jobs/batch`: the jobs in request order.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BatchResponse {
    /// One per spec; an idempotency key that matched gives the existing job.
    pub jobs: Vec<JobView>,
}

/// The body of `POST /v1/jobs/clean`, `/cancel` and `/retry`: which jobs
/// the action takes, all of the given filters matching.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkRequest {
    /// Only jobs in these states [default: every state the action applies
    /// to: terminal ones for clean and retry, the others for cancel].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub state: Vec<StateName>,
    /// Only jobs of this queue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
    /// Only jobs of this owner (a `submit` principal's own jobs at most).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Only jobs that ended at least this long ago (jobs that have not
    /// ended: that were submitted this long ago).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub older_than: Option<DurationArg>,
}

/// The answer of a bulk action: how many jobs it took.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BulkResponse {
    /// Jobs removed, cancelled or queued again.
    pub count: u64,
}

/// The body of `GET /v1/queues`.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct QueueList {
    /// Every queue with jobs, settings or a config entry.
    pub queues: Vec<QueueView>,
}

/// A queue as `GET /v1/queues` shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct QueueView {
    /// The queue's name.
    pub name: String,
    /// Most of its jobs running at once; `null` when only `workers` limits it.
    pub concurrency: Option<usize>,
    /// True while none of its jobs may start.
    pub paused: bool,
    /// Its jobs running now.
    pub running: usize,
    /// Its jobs by state (every state present, zeros included).
    pub counts: BTreeMap<StateName, u64>,
}

/// The body of `PATCH /v1/queues/{name}`: each field optional.
#[derive(Clone, Debug, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QueuePatch {
    /// A new limit; `null` returns to the configured one.
    #[serde(
        default,
        with = "double_option",
        skip_serializing_if = "Option::is_none"
    )]
    pub concurrency: Option<Option<usize>>,
    /// Pause or resume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<bool>,
    /// Make the queue if it is not one yet (no jobs, stored settings or
    /// config entry); without it such a name is a 404, so a typo does not
    /// leave a queue behind.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub create: bool,
}

/// Distinguishes a missing field (`None`) from an explicit `null`
/// (`Some(None)`).
mod double_option {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<usize>>, D::Error> {
        Option::<usize>::deserialize(d).map(Some)
    }

    pub fn serialize<S: Serializer>(v: &Option<Option<usize>>, s: S) -> Result<S::Ok, S::Error> {
        v.flatten().serialize(s)
    }
}

/// One event of `GET /v1/events`: a job's state changed (durably).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobEvent {
    /// The job.
    pub id: String,
    /// Its number.
    #[serde(default)]
    pub number: u64,
    /// Its new state.
    pub state: StateName,
    /// Its queue.
    pub queue: String,
    /// Its attempt.
    pub attempt: u32,
    /// When the change was announced.
    #[schema(value_type = String, format = DateTime)]
    pub at: Timestamp,
    /// The process's exit code, once it exited.
    pub exit_code: Option<i32>,
    /// The signal that ended it.
    pub signal: Option<String>,
    /// Why it failed.
    pub reason: Option<crate::job::FailReason>,
    /// For a terminal state: the exit code `jobq wait` gives (0, the
    /// process's code, 128+n for a signal, 124 for a timeout, and the
    /// codes of [`crate::exit_code`] for endings not the process's own).
    pub exit: Option<i32>,
    /// A sentence when the daemon caused the failure (the job's `error`):
    /// why it could not start, which dependency failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}
