//! The flags that describe a job, shared by `jobq submit` and `jobq
//! schedule add`, and the [`JobRequest`] they make. Only what the daemon
//! cannot do is done here: the job runs in the client's current directory
//! (like pueue, ts and at(1)) unless `--cwd` says otherwise, relative
//! `--cwd` paths are made absolute against it, and `--env K` and
//! `--inherit-env` copy the client's variables. Everything else is the
//! daemon's to check.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;

use super::{duration, CliError};
use crate::api::{DurationArg, JobRequest};
use crate::client::io_reason;

/// What a job is: where and how it runs, not when.
#[derive(Debug, Args)]
pub struct JobFlags {
    /// Queue to run in [default: default]
    #[arg(long, short, value_name = "Q")]
    pub queue: Option<String>,
    /// Higher runs first; ties run in submission order [default: 0]
    #[arg(long, short, value_name = "N", allow_hyphen_values = true,
          value_parser = super::number_in(i32::MIN, i32::MAX))]
    pub priority: Option<i32>,
    /// Kill an attempt that runs longer than D
    #[arg(long, value_name = "D", allow_hyphen_values = true, value_parser = duration)]
    pub timeout: Option<Duration>,
    /// Stop the job (failed, reason limit) if its processes together use
    /// more memory than SIZE ("512MiB", or bytes)
    #[arg(long, value_name = "SIZE", value_parser = crate::resources::parse_size)]
    pub memory: Option<u64>,
    /// Stop the job if its processes together use more CPU time than D
    #[arg(long, value_name = "D", value_parser = duration)]
    pub cpu_time: Option<Duration>,
    /// Most processes the job may have at once
    #[arg(long, value_name = "N", value_parser = super::number_in(1u64, u32::MAX as u64))]
    pub processes: Option<u64>,
    /// Most open files per process of the job
    #[arg(long, value_name = "N", value_parser = super::number_in(3u64, crate::resources::MAX_OPEN_FILES))]
    pub open_files: Option<u64>,
    /// Extra attempts after a failed one [default: 0]
    #[arg(long, value_name = "N", allow_hyphen_values = true,
          value_parser = super::number_in(0, crate::api::MAX_RETRIES))]
    pub retries: Option<u32>,
    /// Delay before the first retry, doubled for each next one [default: the daemon's, 1s]
    #[arg(long, value_name = "D", allow_hyphen_values = true, value_parser = duration)]
    pub backoff: Option<Duration>,
    /// Set an environment variable for the job; K alone copies K from here (repeatable)
    #[arg(long, short, value_name = "K=V|K", value_parser = env_var)]
    pub env: Vec<(String, Option<String>)>,
    /// Give the job this command's whole environment (it is stored with the job; --env wins)
    #[arg(long = "inherit-env", short = 'E')]
    pub inherit_env: bool,
    /// Working directory, relative to here if relative [default: the current directory,
    /// or the daemon's default when the daemon is on another machine]
    #[arg(long, value_name = "DIR")]
    pub cwd: Option<PathBuf>,
    /// A name for people, shown by `list` instead of the command
    #[arg(long, value_name = "S")]
    pub name: Option<String>,
    /// Attach a label, filterable in listings (repeatable)
    #[arg(long, short, value_name = "K=V", value_parser = super::key_value)]
    pub label: Vec<(String, String)>,
}

impl JobFlags {
    /// The request these flags and the program (`command`, or `shell`)
    /// make; the caller adds what is its own (when, after what, stdin).
    /// `local`: the daemon is on this machine, so this directory means the
    /// same to it and is the job's default.
    pub fn request(
        self,
        command: Vec<String>,
        shell: Option<String>,
        local: bool,
    ) -> Result<JobRequest, CliError> {
        let cwd = match &self.cwd {
            Some(dir) => Some(absolute_utf8(dir, "--cwd")?),
            None if local => {
                let here = std::env::current_dir().map_err(|e| {
                    CliError::Usage(format!(
                        "cannot tell the current directory ({}); give --cwd DIR",
                        io_reason(&e)
                    ))
                })?;
                Some(absolute_utf8(&here, "the current directory")?)
            }
            None => None,
        };
        let limits = limits_arg(&self);
        Ok(JobRequest {
            command: (!command.is_empty()).then_some(command),
            shell,
            env: environment(self.env, self.inherit_env)?,
            cwd,
            queue: self.queue,
            priority: self.priority,
            timeout: self.timeout.map(DurationArg),
            retries: self.retries,
            backoff: self.backoff.map(DurationArg),
            name: self.name,
            labels: self.label.into_iter().collect::<BTreeMap<_, _>>(),
            limits,
            ..JobRequest::default()
        })
    }
}

/// The `limits` the flags give, if any.
fn limits_arg(args: &JobFlags) -> Option<crate::resources::LimitsArg> {
    let limits = crate::resources::LimitsArg {
        memory: args.memory.map(crate::resources::SizeArg),
        cpu_time: args.cpu_time.map(DurationArg),
        processes: args.processes,
        open_files: args.open_files,
    };
    (limits != crate::resources::LimitsArg::default()).then_some(limits)
}

/// A working directory as the daemon needs it: absolute (the daemon has
/// its own current directory) and UTF-8 (JSON strings are). `what` names
/// it in errors.
fn absolute_utf8(dir: &Path, what: &str) -> Result<String, CliError> {
    let path = std::path::absolute(dir)
        .map_err(|e| CliError::Usage(format!("{what} {}: {}", dir.display(), io_reason(&e))))?;
    path.into_os_string().into_string().map_err(|p| {
        CliError::Usage(format!(
            "{what} {}: the path is not valid UTF-8; give --cwd DIR",
            p.to_string_lossy()
        ))
    })
}

/// The job's `env`: this process's whole environment with
/// `--inherit-env`, then each `--env` (`K` alone copies K from here).
fn environment(
    vars: Vec<(String, Option<String>)>,
    inherit: bool,
) -> Result<BTreeMap<String, String>, CliError> {
    let mut env = BTreeMap::new();
    if inherit {
        for (k, v) in std::env::vars_os() {
            match (k.into_string(), v.into_string()) {
                (Ok(k), Ok(v)) => {
                    env.insert(k, v);
                }
                (Ok(k), Err(_)) => {
                    return Err(CliError::Usage(format!(
                        "--inherit-env: the value of {k} is not valid UTF-8; unset it or pass --env {k}=VALUE"
                    )))
                }
                // A name that is not UTF-8 cannot be sent, nor named.
                (Err(_), _) => {}
            }
        }
    }
    for (k, v) in vars {
        let v = match v {
            Some(v) => v,
            None => std::env::var(&k).map_err(|_| {
                CliError::Usage(format!(
                    "--env {k}: {k} is not set here (give --env {k}=VALUE to set it)"
                ))
            })?,
        };
        env.insert(k, v);
    }
    Ok(env)
}

/// clap value parser for `--env`: `K=V`, or `K` alone (its value is
/// copied from this process's environment).
fn env_var(s: &str) -> Result<(String, Option<String>), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), Some(v.to_owned()))),
        None if !s.is_empty() => Ok((s.to_owned(), None)),
        _ => Err(format!(
            "expected K=V or K (a name such as PATH), got {s:?}"
        )),
    }
}
