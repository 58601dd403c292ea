//! `jobq wait`: blocks until jobs end and exits with their exit code; also
//! the waiting loop behind `submit --wait`.
//!
//! Waiting is a loop of long-polls (`GET /v1/jobs/{id}?wait=D`): the daemon
//! answers as soon as the job is terminal, so the client learns of the end
//! at once without polling on a timer.

use std::io::Write;
use std::time::{Duration, Instant};

use clap::Args;

use super::{duration, job_id, CliError};
use crate::api::JobView;
use crate::client::{Client, ClientError, Reply, WAIT_POLL};

/// Pause after a long-poll that came back early with the job still not
/// terminal. API.md lets the daemon answer early; without a pause, a daemon
/// that always did would turn the loop into a busy one.
const EARLY_ANSWER_PAUSE: Duration = Duration::from_millis(250);

/// Options of `jobq wait`.
#[derive(Debug, Args)]
#[command(after_help = "\
Exits 0 when every job succeeded; otherwise with the exit code of the first
job, in the order given, that did not succeed: the process's code, 128+n for
signal n, 124 for a job timeout, 143 for a cancelled job. Waits for all the
jobs either way. Exits 124 if --timeout expires first.")]
pub struct WaitArgs {
    /// The jobs to wait for
    #[arg(value_name = "ID", required = true, value_parser = job_id)]
    pub ids: Vec<String>,
    /// Give up after D in all (`30s`, `1h`) and exit 124 [default: wait forever]
    #[arg(long, short, value_name = "D", value_parser = duration)]
    pub timeout: Option<Duration>,
}

/// How a wait ended.
#[derive(Debug)]
pub enum Waited {
    /// The job is terminal.
    Done(Reply<JobView>),
    /// The deadline passed first; the job as last seen.
    TimedOut(JobView),
}

/// Waits for every job; returns the exit code described in `--help`.
pub fn run(client: &Client, args: WaitArgs, _out: &mut dyn Write) -> Result<i32, CliError> {
    let deadline = args.timeout.map(|t| Instant::now() + t);
    let mut code = 0;
    for id in &args.ids {
        match until_terminal(client, id, deadline)? {
            Waited::Done(job) => {
                let job_code = job.value.wait_exit_code().unwrap_or(1);
                if code == 0 {
                    code = job_code;
                }
            }
            Waited::TimedOut(job) => {
                let limit = humantime::format_duration(args.timeout.unwrap_or_default());
                return Err(CliError::TimedOut(format!(
                    "timed out after {limit} waiting for job {id}, which is {}",
                    job.state
                )));
            }
        }
    }
    Ok(code)
}

/// Long-polls job `id` until it is terminal or `deadline` passes.
pub fn until_terminal(
    client: &Client,
    id: &str,
    deadline: Option<Instant>,
) -> Result<Waited, ClientError> {
    loop {
        let asked = match deadline {
            Some(d) => d.saturating_duration_since(Instant::now()).min(WAIT_POLL),
            None => WAIT_POLL,
        };
        let sent = Instant::now();
        let job = client.wait_poll(id, asked)?;
        if job.value.is_terminal() {
            return Ok(Waited::Done(job));
        }
        let now = Instant::now();
        if deadline.is_some_and(|d| now >= d) {
            return Ok(Waited::TimedOut(job.value));
        }
        if now - sent < asked / 2 {
            let left = deadline.map_or(EARLY_ANSWER_PAUSE, |d| d - now);
            std::thread::sleep(EARLY_ANSWER_PAUSE.min(left));
        }
    }
}
