//! `jobq logs`: a job's output so far (`GET /v1/jobs/{id}/output`), copied
//! byte for byte to stdout: output need not be text.

use std::io::{Read, Write};

use clap::{ArgGroup, Args};

use super::{job_id, CliError};
use crate::client::{Client, OutputStream};

/// Size of the copy buffer: large enough that big outputs take few
/// system calls, small enough not to matter.
const COPY_BUFFER: usize = 64 * 1024;

/// Options of `jobq logs`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("stream").args(["stdout", "stderr"])))]
pub struct LogsArgs {
    /// The job
    #[arg(value_name = "ID", value_parser = job_id)]
    pub id: String,
    /// Only the job's stdout [default: stdout and stderr, in the order written]
    #[arg(long)]
    pub stdout: bool,
    /// Only the job's stderr
    #[arg(long)]
    pub stderr: bool,
}

/// Copies the output to `out`.
pub fn run(client: &Client, args: LogsArgs, out: &mut dyn Write) -> Result<i32, CliError> {
    let stream = match (args.stdout, args.stderr) {
        (true, _) => OutputStream::Stdout,
        (_, true) => OutputStream::Stderr,
        _ => OutputStream::All,
    };
    let mut body = client.output(&args.id, stream, 0)?;
    // Not io::copy: a read error is the connection's (exit 3), a write
    // error is stdout's (quiet on a broken pipe), and they must not mix.
    let mut buf = vec![0; COPY_BUFFER];
    loop {
        let n = match body.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(client.read_error(&e).into()),
        };
        out.write_all(&buf[..n])?;
    }
    Ok(0)
}
