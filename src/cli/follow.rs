//! Following a job's output as it is written (`logs -f`, `submit
//! --follow`): the job's stdout goes to our stdout and its stderr to our
//! stderr as they arrive, attempt after attempt, and a lost connection is
//! resumed where it broke, so nothing is lost or repeated.
//!
//! The stream is `GET /v1/jobs/{id}/output` as Server-Sent Events: each
//! piece names its stream and its place (attempt and byte position), and a
//! new attempt is announced. After a cut (the daemon restarted, say) the
//! stream is opened again from the last place received; every attempt's
//! output is kept, so the rest of the old attempt comes, then the new one
//! from its start, and a line on stderr says that a new attempt began.
//! Its end is believed only when the daemon sends it (`event: end`).
//!
//! Reconnection is bounded: [`MAX_RECONNECTS`] failures in a row (a
//! reconnection that delivers something resets the count), with growing
//! pauses of [`reconnect_pause`]. The first request is not retried: a
//! daemon that cannot be reached at all is reported at once (exit 3).

use std::io::Write;
use std::time::Duration;

use super::CliError;
use crate::api::JobView;
use crate::client::{Client, ClientError, OutputEvent, OutputEvents, OutputStream, Reply};

/// Failed reconnections in a row after which a follower (or waiter) gives
/// up; with [`reconnect_pause`] they span about 16 s, time for a daemon to
/// restart (recovering a large store takes seconds).
pub const MAX_RECONNECTS: u32 = 7;

/// The pause before reconnection number `failures` (from 1): 250 ms,
/// doubling, at most 4 s.
pub fn reconnect_pause(failures: u32) -> Duration {
    Duration::from_millis(250 << failures.saturating_sub(1).min(4))
}

/// Where the two streams of a followed job go.
pub struct Sinks<'a> {
    /// The job's stdout (and, when one stream is chosen, that stream).
    pub out: &'a mut dyn Write,
    /// The job's stderr, and the line that says a new attempt began.
    pub err: &'a mut dyn Write,
}

/// Copies job `id`'s output of `stream` as it is written, from attempt
/// `from` (the current one when `None`), until the job is terminal and all
/// of it is copied; answers the job as it ended, for its exit code.
pub fn output(
    client: &Client,
    id: &str,
    stream: OutputStream,
    from: Option<u32>,
    sinks: Sinks<'_>,
) -> Result<Reply<JobView>, CliError> {
    let mut place = from.map(|attempt| (attempt, 0));
    let mut first_attempt: Option<u32> = None;
    let mut failures = 0u32;
    let mut events = client.follow_events(id, stream, place)?;
    loop {
        let lost = match events.next_event() {
            Ok(Some(OutputEvent::End)) => return Ok(client.get(id)?),
            Ok(Some(OutputEvent::Attempt(n))) => {
                failures = 0;
                match first_attempt {
                    None => first_attempt = Some(n),
                    Some(_) => {
                        writeln!(sinks.err, "jobq: job {id}: attempt {n} began")?;
                        sinks.err.flush()?;
                    }
                }
                place = Some((n, 0));
                continue;
            }
            Ok(Some(OutputEvent::Output {
                stream: from_stream,
                data,
                attempt,
                position,
            })) => {
                failures = 0;
                first_attempt.get_or_insert(attempt);
                let sink = match (stream, from_stream) {
                    (OutputStream::All, OutputStream::Stderr) => &mut *sinks.err,
                    _ => &mut *sinks.out,
                };
                sink.write_all(&data)?;
                sink.flush()?;
                place = Some((attempt, position));
                continue;
            }
            Ok(None) => lost(client, "the output stream ended before the job did"),
            Err(err @ ClientError::Unreachable { .. }) => err,
            Err(err) => return Err(err.into()),
        };
        events = reconnect(client, id, stream, place, &mut failures, lost)?;
    }
}

/// Opens the stream again from `place`, pausing before each try; gives up
/// with the last error after [`MAX_RECONNECTS`] failures in a row.
fn reconnect(
    client: &Client,
    id: &str,
    stream: OutputStream,
    place: Option<(u32, u64)>,
    failures: &mut u32,
    mut last: ClientError,
) -> Result<OutputEvents, CliError> {
    loop {
        *failures += 1;
        if *failures > MAX_RECONNECTS {
            return Err(last.into());
        }
        std::thread::sleep(reconnect_pause(*failures));
        match client.follow_events(id, stream, place) {
            Ok(events) => return Ok(events),
            Err(err @ ClientError::Unreachable { .. }) => last = err,
            // A daemon still recovering after its restart says so.
            Err(err) if err.api_code() == Some(crate::api::ErrorCode::Unavailable) => last = err,
            Err(err) => return Err(err.into()),
        }
    }
}

/// The error a stream that ended early leaves if it cannot be opened again.
fn lost(client: &Client, why: &str) -> ClientError {
    ClientError::Unreachable {
        url: client.server().to_owned(),
        reason: format!("connection lost: {why}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_grow_and_are_capped() {
        let pauses: Vec<u128> = (1..=7).map(|n| reconnect_pause(n).as_millis()).collect();
        assert_eq!(pauses, [250, 500, 1000, 2000, 4000, 4000, 4000]);
    }
}
