//! `jobq queues`: every queue (`GET /v1/queues`) as a table of limits,
//! pause flags and job counts, or the daemon's JSON.

use std::io::Write;

use clap::Args;

use super::{render, CliError};
use crate::client::Client;

/// Options of `jobq queues`.
#[derive(Debug, Args)]
#[command(after_help = "\
CONCURRENCY is the most jobs of the queue that run at once; `-` means the
queue has no limit of its own and only the daemon's `workers` limit it.
RUNNING is the jobs running now; the other columns count jobs by state.")]
pub struct QueuesArgs {
    /// Print the daemon's JSON (`{"queues": [...]}`)
    #[arg(long)]
    pub json: bool,
}

/// Prints every queue the daemon knows.
pub fn run(client: &Client, args: QueuesArgs, out: &mut dyn Write) -> Result<i32, CliError> {
    let list = client.queues()?;
    if args.json {
        render::json(out, &list.json)?;
    } else {
        render::queue_table(out, &list.value)?;
    }
    Ok(0)
}
