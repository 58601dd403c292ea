//! The one line on stderr that says how a waited-for or followed job
//! ended (`submit --wait|--follow`, `wait`, `logs -f`), unless `--quiet`:
//! a job that "exits 1" could have failed, been cancelled or never started,
//! and the exit code alone does not say which.

use std::io::{self, Write};

use crate::api::{JobEvent, JobView};
use crate::job::{FailReason, StateName};

/// How a job ended, from its final event or its view.
#[derive(Clone, Debug, PartialEq)]
pub struct Ending {
    /// `job 12` (or the id, for a job from before numbers).
    job: String,
    /// Its terminal state.
    state: StateName,
    /// Why it failed.
    reason: Option<FailReason>,
    /// The process's exit code.
    exit_code: Option<i32>,
    /// The signal that ended the process.
    signal: Option<String>,
    /// The daemon's sentence about the failure.
    error: Option<String>,
    /// What `jobq` exits with for it.
    exit: i32,
}

impl Ending {
    /// The ending a terminal event describes.
    pub fn of_event(event: &JobEvent) -> Ending {
        Ending {
            job: reference(event.number, &event.id),
            state: event.state,
            reason: event.reason,
            exit_code: event.exit_code,
            signal: event.signal.clone(),
            error: event.error.clone(),
            exit: event.exit.unwrap_or(1),
        }
    }

    /// The ending of a terminal job.
    pub fn of_job(job: &JobView) -> Ending {
        Ending {
            job: reference(job.number, &job.id),
            state: job.state,
            reason: job.reason,
            exit_code: job.exit_code,
            signal: job.signal.clone(),
            error: job.error.clone(),
            exit: job.wait_exit_code().unwrap_or(1),
        }
    }

    /// The exit code `jobq` gives for this ending.
    pub fn exit(&self) -> i32 {
        self.exit
    }

    /// The summary, without `jobq: ` or a newline.
    pub fn describe(&self) -> String {
        let job = &self.job;
        let error = self.error.as_deref().unwrap_or("no reason given");
        let killed = |s: &str| format!("killed by {s}");
        let how = match (self.state, self.reason) {
            (StateName::Succeeded, _) => return format!("{job} succeeded"),
            (StateName::Cancelled, _) => match &self.signal {
                Some(signal) => format!("{job} was cancelled while it ran ({})", killed(signal)),
                None => format!("{job} was cancelled"),
            },
            (_, Some(FailReason::Timeout)) => match &self.signal {
                Some(signal) => format!("{job} timed out ({})", killed(signal)),
                None => format!("{job} timed out"),
            },
            (_, Some(FailReason::Spawn)) => format!("{job} could not start: {error}"),
            (_, Some(FailReason::Dependency)) => format!("{job} did not run: {error}"),
            (_, Some(FailReason::Interrupted)) => {
                format!("{job} was interrupted: {error}")
            }
            (_, Some(FailReason::Limit)) => format!("{job} was stopped: {error}"),
            _ => match (self.exit_code, &self.signal) {
                (Some(code), _) => return format!("{job} failed with exit code {code}"),
                (None, Some(signal)) => format!("{job} failed: {}", killed(signal)),
                (None, None) => format!("{job} failed: {error}"),
            },
        };
        // An exit code the process did not give itself is named, so a
        // script's author can tell it from the process's own.
        if self.reason == Some(FailReason::Signal) {
            how
        } else {
            format!("{how}; exit {}", self.exit)
        }
    }

    /// Writes `jobq: <summary>` on `err`.
    pub fn print(&self, err: &mut dyn Write) -> io::Result<()> {
        writeln!(err, "jobq: {}", self.describe())
    }
}

/// How the summary names a job.
fn reference(number: u64, id: &str) -> String {
    if number > 0 {
        format!("job {number}")
    } else {
        format!("job {id}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit_code;

    fn ending(
        state: StateName,
        reason: Option<FailReason>,
        code: Option<i32>,
        signal: Option<&str>,
    ) -> Ending {
        let signal_number = signal.and_then(crate::api::signal_number);
        Ending {
            job: "job 12".to_owned(),
            state,
            reason,
            exit_code: code,
            signal: signal.map(str::to_owned),
            error: Some("cannot run nosuch: No such file or directory".to_owned()),
            exit: exit_code::of(state, reason, code, signal_number).unwrap(),
        }
    }

    #[test]
    fn each_ending_reads_as_what_happened() {
        use FailReason::*;
        use StateName::*;
        let cases = [
            (ending(Succeeded, None, Some(0), None), "job 12 succeeded"),
            (
                ending(Failed, Some(Exit), Some(7), None),
                "job 12 failed with exit code 7",
            ),
            (
                ending(Failed, Some(Signal), None, Some("SIGKILL")),
                "job 12 failed: killed by SIGKILL",
            ),
            (
                ending(Failed, Some(Timeout), None, Some("SIGTERM")),
                "job 12 timed out (killed by SIGTERM); exit 124",
            ),
            (
                ending(Failed, Some(Spawn), None, None),
                "job 12 could not start: cannot run nosuch: No such file or directory; exit 127",
            ),
            (
                ending(Cancelled, None, None, None),
                "job 12 was cancelled; exit 123",
            ),
            (
                ending(Cancelled, None, None, Some("SIGTERM")),
                "job 12 was cancelled while it ran (killed by SIGTERM); exit 123",
            ),
        ];
        for (ending, want) in cases {
            assert_eq!(ending.describe(), want);
        }
    }
}
