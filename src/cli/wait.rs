//! `jobq wait`: blocks until jobs end and exits with their exit code; also
//! the waiting behind `submit --wait`.
//!
//! Waiting reads the job's event stream (`GET /v1/events?job=ID`), whose
//! first event is the job's current state, so an end that happened before
//! the stream opened is not missed; the first event with a terminal state
//! carries the exit code (`exit`). A stream that ends or breaks before that
//! (the daemon restarted, the stream lagged) is opened again, a bounded
//! number of times in a row; an unreachable daemon at the start is an error
//! at once (exit 3). A stream is also renewed every `STREAM_REFRESH`, so
//! a daemon that vanished silently is noticed.

use std::io::Write;
use std::time::{Duration, Instant};

use clap::Args;

use super::summary::Ending;
use super::{duration, follow, job_id, CliError};
use crate::api::JobEvent;
use crate::client::{Client, ClientError, EventQuery, EventStream, StreamEvent};
use crate::job::StateName;

/// How long past `--timeout` the first answer of a stream may come: enough
/// for the daemon's snapshot of a job already ended, so `wait --timeout 0`
/// on an ended job reports its code instead of a timeout.
const SNAPSHOT_GRACE: Duration = Duration::from_millis(250);

/// Longest life of one event stream: then it is opened again (its first
/// event, the job's state, makes that lossless). The daemon sends nothing
/// while a job runs, so this is how a daemon that vanished without closing
/// the connection (a host gone, a network cut) is noticed.
const STREAM_REFRESH: Duration = Duration::from_secs(300);

/// Options of `jobq wait`.
#[derive(Debug, Args)]
#[command(after_help = "\
Exits 0 when every job succeeded; otherwise with the exit code of the first
job, in the order given, that did not succeed (see `jobq --help`). Waits for
all the jobs either way, and says on stderr how each ended unless --quiet.
Exits 124 if --timeout expires first.")]
pub struct WaitArgs {
    /// The jobs to wait for
    #[arg(value_name = "ID", required = true, value_parser = job_id)]
    pub ids: Vec<String>,
    /// Give up after D in all (`30s`, `1h`) and exit 124 [default: wait forever]
    #[arg(long, short, value_name = "D", allow_hyphen_values = true, value_parser = duration)]
    pub timeout: Option<Duration>,
    /// No line on stderr for each job saying how it ended
    #[arg(long, short)]
    pub quiet: bool,
}

/// How a wait ended.
#[derive(Debug)]
pub enum Waited {
    /// The job is terminal: the event that said so.
    Done(JobEvent),
    /// The deadline passed first; the job's state as last seen, if any
    /// event came.
    TimedOut(Option<StateName>),
}

/// Waits for every job; returns the exit code described in `--help`.
pub fn run(client: &Client, args: WaitArgs, _out: &mut dyn Write) -> Result<i32, CliError> {
    let deadline = args.timeout.map(|t| Instant::now() + t);
    let mut code = 0;
    for id in &args.ids {
        match until_terminal(client, id, deadline)? {
            Waited::Done(event) => {
                let ending = Ending::of_event(&event);
                if !args.quiet {
                    ending.print(&mut std::io::stderr())?;
                }
                if code == 0 {
                    code = ending.exit();
                }
            }
            Waited::TimedOut(state) => {
                let limit = humantime::format_duration(args.timeout.unwrap_or_default());
                let state = state.map_or(String::new(), |s| format!(", which is {s}"));
                return Err(CliError::TimedOut(format!(
                    "timed out after {limit} waiting for job {id}{state}"
                )));
            }
        }
    }
    Ok(code)
}

/// Reads job `id`'s events until one is terminal or `deadline` passes.
pub fn until_terminal(
    client: &Client,
    id: &str,
    deadline: Option<Instant>,
) -> Result<Waited, ClientError> {
    let query = EventQuery {
        job: Some(id.to_owned()),
        queue: None,
    };
    let mut state = None;
    let mut failures = 0;
    let mut opened_once = false;
    loop {
        let lost = match client.events(&query, Some(stream_deadline(deadline))) {
            Ok(mut stream) => {
                opened_once = true;
                match read_stream(client, &mut stream, deadline, &mut state, &mut failures) {
                    Ok(waited) => return Ok(waited),
                    Err(lost) => lost,
                }
            }
            // At the start, an unreachable daemon is an error at once.
            Err(err @ ClientError::Unreachable { .. }) if opened_once => err,
            Err(err) => return Err(err),
        };
        if expired(deadline) {
            return Ok(Waited::TimedOut(state));
        }
        failures += 1;
        if failures > follow::MAX_RECONNECTS {
            return Err(lost);
        }
        let mut pause = follow::reconnect_pause(failures);
        if let Some(d) = deadline {
            pause = pause.min(d.saturating_duration_since(Instant::now()));
        }
        std::thread::sleep(pause);
    }
}

/// Reads one stream until the job is terminal or `deadline` passes; keeps
/// the last state seen in `state` and zeroes `failures` at each event. An
/// error means the stream was lost before either.
fn read_stream(
    client: &Client,
    stream: &mut EventStream,
    deadline: Option<Instant>,
    state: &mut Option<StateName>,
    failures: &mut u32,
) -> Result<Waited, ClientError> {
    loop {
        match stream.next_event()? {
            Some(StreamEvent::Job { event, .. }) => {
                *failures = 0;
                if event.state.is_terminal() {
                    return Ok(Waited::Done(event));
                }
                *state = Some(event.state);
                if expired(deadline) {
                    return Ok(Waited::TimedOut(*state));
                }
            }
            Some(StreamEvent::Lagged(message)) => return Err(lost(client, &message)),
            None => return Err(lost(client, "the stream ended early")),
        }
    }
}

/// True once `deadline` has passed.
fn expired(deadline: Option<Instant>) -> bool {
    deadline.is_some_and(|d| Instant::now() >= d)
}

/// When the next stream is cut: at `deadline` (but not before its first
/// answer can come), and at the latest after [`STREAM_REFRESH`].
fn stream_deadline(deadline: Option<Instant>) -> Instant {
    let now = Instant::now();
    let refresh = now + STREAM_REFRESH;
    deadline.map_or(refresh, |d| d.max(now + SNAPSHOT_GRACE).min(refresh))
}

/// The error a stream that ended early leaves if it cannot be opened again.
fn lost(client: &Client, why: &str) -> ClientError {
    ClientError::Unreachable {
        url: client.server().to_owned(),
        reason: format!("event stream lost: {why}"),
    }
}
