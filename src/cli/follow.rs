//! Following a job's output as it is written (`logs -f`, `submit
//! --follow`): the bytes go to stdout as they arrive, and a lost connection
//! is resumed where it broke, so nothing is lost or repeated.
//!
//! The stream is `GET /v1/jobs/{id}/output?follow=true`, raw bytes. Its end
//! is only believed once the job is terminal: ureq reports a connection cut
//! in the middle of a chunk as a plain end, so at every end the job is
//! fetched; if it is still going the stream is opened again with
//! `offset=<bytes received>`; if it is over, a last plain read from that
//! offset picks up anything a cut swallowed (normally nothing).
//!
//! Reconnection is bounded: [`MAX_RECONNECTS`] failures in a row (a
//! reconnection that delivers bytes resets the count), with growing pauses
//! of [`reconnect_pause`]. The first request is not retried: a daemon that
//! cannot be reached at all is reported at once (exit 3).

use std::io::{self, Read, Write};
use std::time::Duration;

use super::CliError;
use crate::api::JobView;
use crate::client::{Client, ClientError, OutputStream, Reply};

/// Failed reconnections in a row after which a follower (or waiter) gives
/// up; with [`reconnect_pause`] they span about 16 s, time for a daemon to
/// restart (recovering a large store takes seconds).
pub const MAX_RECONNECTS: u32 = 7;

/// Size of the read buffer; each read is written and flushed at once, so
/// this bounds the latency of nothing, only the number of system calls.
const COPY_BUFFER: usize = 64 * 1024;

/// The pause before reconnection number `failures` (from 1): 250 ms,
/// doubling, at most 4 s.
pub fn reconnect_pause(failures: u32) -> Duration {
    Duration::from_millis(250 << failures.saturating_sub(1).min(4))
}

/// How a copy of the stream stopped.
enum Stopped {
    /// The reader ended (the job's end, or a cut mid-chunk).
    End,
    /// Reading failed: the connection was lost.
    Lost(io::Error),
}

/// Copies job `id`'s output of `stream` to `out` as it is written, until
/// the job is terminal and all of it is copied; answers the job as it
/// ended, for its exit code.
pub fn output(
    client: &Client,
    id: &str,
    stream: OutputStream,
    out: &mut dyn Write,
) -> Result<Reply<JobView>, CliError> {
    let mut received = 0u64;
    let mut failures = 0u32;
    let mut body = client.follow_output(id, stream, 0)?;
    loop {
        let before = received;
        let lost = match copy(&mut body, out, &mut received)? {
            Stopped::Lost(e) => client.read_error(&e),
            Stopped::End => match client.get(id) {
                Ok(job) if job.value.is_terminal() => {
                    drain(client, id, stream, received, out)?;
                    return Ok(job);
                }
                Ok(_) => lost(client, "the output stream ended before the job did"),
                Err(err @ ClientError::Unreachable { .. }) => err,
                Err(err) => return Err(err.into()),
            },
        };
        if received > before {
            failures = 0;
        }
        body = reconnect(client, id, stream, received, &mut failures, lost)?;
    }
}

/// Opens the stream again from `offset`, pausing before each try; gives up
/// with the last error after [`MAX_RECONNECTS`] failures in a row.
fn reconnect(
    client: &Client,
    id: &str,
    stream: OutputStream,
    offset: u64,
    failures: &mut u32,
    mut last: ClientError,
) -> Result<Box<dyn Read + Send>, CliError> {
    loop {
        *failures += 1;
        if *failures > MAX_RECONNECTS {
            return Err(last.into());
        }
        std::thread::sleep(reconnect_pause(*failures));
        match client.follow_output(id, stream, offset) {
            Ok(body) => return Ok(body),
            Err(err @ ClientError::Unreachable { .. }) => last = err,
            Err(err) => return Err(err.into()),
        }
    }
}

/// Copies `body` to `out`, each read written and flushed at once, counting
/// the bytes in `received`. Not io::copy: a read error is the connection's
/// (resumable), a write error is stdout's (fatal; quiet on a broken pipe),
/// and they must not mix.
fn copy(body: &mut dyn Read, out: &mut dyn Write, received: &mut u64) -> Result<Stopped, CliError> {
    let mut buf = vec![0; COPY_BUFFER];
    loop {
        let n = match body.read(&mut buf) {
            Ok(0) => return Ok(Stopped::End),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Ok(Stopped::Lost(e)),
        };
        out.write_all(&buf[..n])?;
        out.flush()?;
        *received += n as u64;
    }
}

/// Copies whatever of an ended job's output lies past `offset` (what a cut
/// swallowed; normally nothing) with plain reads.
fn drain(
    client: &Client,
    id: &str,
    stream: OutputStream,
    mut offset: u64,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    loop {
        let mut body = client.output(id, stream, offset)?;
        let before = offset;
        match copy(&mut body, out, &mut offset)? {
            Stopped::End if offset == before => return Ok(()),
            Stopped::End => {}
            Stopped::Lost(e) => return Err(client.read_error(&e).into()),
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
