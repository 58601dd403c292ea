//! `jobq logs`: a job's output (`GET /v1/jobs/{id}/output`), copied byte
//! for byte to stdout: output need not be text. With `-f`, the output is
//! followed as the job writes it (see [`super::follow`]) and the command
//! exits with the job's exit code.

use std::io::{Read, Write};

use clap::{ArgGroup, Args};

use super::summary::Ending;
use super::{follow, job_id, CliError};
use crate::client::{Client, OutputStream};

/// Size of the copy buffer: large enough that big outputs take few
/// system calls, small enough not to matter.
const COPY_BUFFER: usize = 64 * 1024;

/// Options of `jobq logs`.
#[derive(Debug, Args)]
#[command(
    group(ArgGroup::new("stream").args(["stdout", "stderr"])),
    after_help = "\
With --follow, exits with the job's exit code once it ended and all its
output is printed (as `jobq wait` does). Ctrl-C stops following and leaves
the job running."
)]
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
    /// Keep printing the output as it is written, until the job ends (the
    /// job's stderr then goes to stderr)
    #[arg(long, short)]
    pub follow: bool,
    /// Which attempt's output (1 for the first) [default: the current one];
    /// with --follow, from its start on through the later ones
    #[arg(long, value_name = "N", allow_hyphen_values = true,
          value_parser = super::number_in(1, u32::MAX))]
    pub attempt: Option<u32>,
    /// With --follow: no line on stderr saying how the job ended
    #[arg(long, short, requires = "follow")]
    pub quiet: bool,
}

/// Copies the output to `out`; with `--follow`, returns the job's exit
/// code.
pub fn run(client: &Client, args: LogsArgs, out: &mut dyn Write) -> Result<i32, CliError> {
    let stream = match (args.stdout, args.stderr) {
        (true, _) => OutputStream::Stdout,
        (_, true) => OutputStream::Stderr,
        _ => OutputStream::All,
    };
    if args.follow {
        let mut err = std::io::stderr();
        let sinks = follow::Sinks { out, err: &mut err };
        let job = follow::output(client, &args.id, stream, args.attempt, sinks)?;
        let ending = Ending::of_job(&job.value);
        if !args.quiet {
            ending.print(&mut err)?;
        }
        return Ok(ending.exit());
    }
    let mut body = client.output(&args.id, stream, 0, args.attempt)?;
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
