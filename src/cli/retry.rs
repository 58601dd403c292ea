//! `jobq retry`: `POST /v1/jobs/{id}/retry` for each job given, or one
//! `POST /v1/jobs/retry` for every failed (or cancelled) job.

use std::io::Write;

use clap::{ArgGroup, Args};

use super::{for_each_id, job_id, render, CliError};
use crate::api::BulkRequest;
use crate::client::{BulkAction, Client};
use crate::job::StateName;

/// Options of `jobq retry`.
#[derive(Debug, Args)]
#[command(
    group(ArgGroup::new("which").args(["ids", "failed", "cancelled"]).required(true).multiple(true)),
    after_help = "Each job must have ended; it is queued again under the same id with\n\
    its attempt number one higher. Prints each retried id, or with --failed or\n\
    --cancelled how many were retried:\n\n  \
    jobq retry --failed --queue nightly"
)]
pub struct RetryArgs {
    /// The jobs to run again
    #[arg(value_name = "ID", value_parser = job_id, conflicts_with_all = ["failed", "cancelled", "queue"])]
    pub ids: Vec<String>,
    /// Every failed job (of --queue, if given)
    #[arg(long)]
    pub failed: bool,
    /// Every cancelled job (of --queue, if given)
    #[arg(long)]
    pub cancelled: bool,
    /// With --failed or --cancelled: only this queue's jobs
    #[arg(long, short, value_name = "Q")]
    pub queue: Option<String>,
}

/// Retries each job, printing each id; a refused job does not stop
/// the others (its error goes to stderr, and the first error sets the exit
/// code). In bulk, prints how many.
pub fn run(client: &Client, args: RetryArgs, out: &mut dyn Write) -> Result<i32, CliError> {
    if args.ids.is_empty() {
        let mut state = Vec::new();
        if args.failed {
            state.push(StateName::Failed);
        }
        if args.cancelled {
            state.push(StateName::Cancelled);
        }
        let request = BulkRequest {
            state,
            queue: args.queue,
            ..BulkRequest::default()
        };
        let done = client.bulk(BulkAction::Retry, &request)?;
        writeln!(out, "retried {}", render::jobs(done.value.count))?;
        return Ok(0);
    }
    for_each_id(&args.ids, "retry", out, |id| client.retry(id).map(drop))
}
