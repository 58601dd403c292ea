//! `jobq cancel`: `POST /v1/jobs/{id}/cancel` for each job given, or one
//! `POST /v1/jobs/cancel` for a whole queue (`--queue`) or every job not
//! started yet (`--all-queued`).

use std::io::Write;

use clap::{ArgGroup, Args};

use super::{for_each_id, job_id, render, CliError};
use crate::api::BulkRequest;
use crate::client::{BulkAction, Client};
use crate::job::StateName;

/// Options of `jobq cancel`.
#[derive(Debug, Args)]
#[command(
    group(ArgGroup::new("which").args(["ids", "queue", "all_queued"]).required(true).multiple(true)),
    after_help = "A job that has not started never will; a running one gets SIGTERM,\n\
    then SIGKILL after the daemon's grace period. Prints each cancelled id, or\n\
    with --queue or --all-queued how many were cancelled:\n\n  \
    jobq cancel --queue nightly      every job of nightly that has not ended\n  \
    jobq cancel --all-queued         every job not started yet; running ones go on"
)]
pub struct CancelArgs {
    /// The jobs to cancel
    #[arg(value_name = "ID", value_parser = job_id, conflicts_with_all = ["queue", "all_queued"])]
    pub ids: Vec<String>,
    /// Every job of this queue that has not ended (running ones too, unless --all-queued)
    #[arg(long, short, value_name = "Q")]
    pub queue: Option<String>,
    /// Every job that has not started yet (waiting, scheduled or queued), in every queue or --queue's
    #[arg(long)]
    pub all_queued: bool,
}

/// Cancels each job, printing each id; a refused job does not stop
/// the others (its error goes to stderr, and the first error sets the exit
/// code). In bulk, prints how many.
pub fn run(client: &Client, args: CancelArgs, out: &mut dyn Write) -> Result<i32, CliError> {
    if args.ids.is_empty() {
        let state = if args.all_queued {
            vec![StateName::Waiting, StateName::Scheduled, StateName::Queued]
        } else {
            Vec::new()
        };
        let request = BulkRequest {
            state,
            queue: args.queue,
            ..BulkRequest::default()
        };
        let done = client.bulk(BulkAction::Cancel, &request)?;
        writeln!(out, "cancelled {}", render::jobs(done.value.count))?;
        return Ok(0);
    }
    for_each_id(&args.ids, "cancel", out, |id| client.cancel(id).map(drop))
}
