//! `jobq cancel`: `POST /v1/jobs/{id}/cancel` for each job given.

use std::io::Write;

use clap::Args;

use super::{for_each_id, job_id, CliError};
use crate::client::Client;

/// Options of `jobq cancel`.
#[derive(Debug, Args)]
#[command(
    after_help = "A job that has not started never will; a running one gets SIGTERM,\n\
    then SIGKILL after the daemon's grace period. Prints each cancelled id."
)]
pub struct CancelArgs {
    /// The jobs to cancel
    #[arg(value_name = "ID", required = true, value_parser = job_id)]
    pub ids: Vec<String>,
}

/// Cancels each job, printing each id; a refused job does not stop
/// the others (its error goes to stderr, and the first error sets the exit
/// code).
pub fn run(client: &Client, args: CancelArgs, out: &mut dyn Write) -> Result<i32, CliError> {
    for_each_id(&args.ids, "cancel", out, |id| client.cancel(id).map(drop))
}
