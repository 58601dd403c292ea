//! `jobq retry`: `POST /v1/jobs/{id}/retry` for each job given.

use std::io::Write;

use clap::Args;

use super::{for_each_id, job_id, CliError};
use crate::client::Client;

/// Options of `jobq retry`.
#[derive(Debug, Args)]
#[command(
    after_help = "Each job must have ended; it is queued again under the same id with\n\
    its attempt number one higher. Prints each retried id."
)]
pub struct RetryArgs {
    /// The jobs to run again
    #[arg(value_name = "ID", required = true, value_parser = job_id)]
    pub ids: Vec<String>,
}

/// Retries each job, printing each id; a refused job does not stop
/// the others (its error goes to stderr, and the first error sets the exit
/// code).
pub fn run(client: &Client, args: RetryArgs, out: &mut dyn Write) -> Result<i32, CliError> {
    for_each_id(&args.ids, "retry", out, |id| client.retry(id).map(drop))
}
