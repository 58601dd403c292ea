//! `jobq events`: job state changes as they happen (`GET /v1/events`), one
//! line each, until Ctrl-C or the end of the stream; with `--job`, until
//! that job is terminal.
//!
//! The stream is not resumed if it breaks: events in the gap would be lost
//! without a trace, so the command ends instead (exit 3) and whoever reads
//! its output decides what to re-read.

use std::io::Write;

use clap::Args;

use super::{job_id, render, CliError};
use crate::client::{Client, EventQuery, StreamEvent};

/// Options of `jobq events`.
#[derive(Debug, Args)]
#[command(after_help = "\
Prints one line per state change: `<at> <id> <queue> <state> attempt N`,
with `exit X` (the code `jobq wait` would give) for an ended job; with
--json, the event as the daemon sent it, one JSON object per line. Runs
until Ctrl-C, or with --job until that job ended (exit 0; `jobq wait` exits
with its code); exits 3 if the daemon ends the stream (shutdown, or this
reader fell too far behind).")]
pub struct EventsArgs {
    /// Only this job's events, starting with its current state, until it ends
    #[arg(long, value_name = "ID", value_parser = job_id)]
    pub job: Option<String>,
    /// Only events of jobs in queue Q
    #[arg(long, short, value_name = "Q")]
    pub queue: Option<String>,
    /// Print each event as one line of JSON
    #[arg(long)]
    pub json: bool,
}

/// Prints events until the stream ends.
pub fn run(client: &Client, args: EventsArgs, out: &mut dyn Write) -> Result<i32, CliError> {
    let one_job = args.job.is_some();
    let query = EventQuery {
        job: args.job,
        queue: args.queue,
    };
    let mut stream = client.events(&query, None)?;
    loop {
        match stream.next_event()? {
            Some(StreamEvent::Job { event, data }) => {
                if args.json {
                    writeln!(out, "{data}")?;
                } else {
                    render::event_line(out, &event)?;
                }
                out.flush()?;
                if one_job && event.state.is_terminal() {
                    return Ok(0);
                }
            }
            Some(StreamEvent::Lagged(message)) => return Err(CliError::Ended(message)),
            None => {
                return Err(CliError::Ended(
                    "the daemon ended the event stream".to_owned(),
                ))
            }
        }
    }
}
