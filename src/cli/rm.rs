//! `jobq rm`: `DELETE /v1/jobs/{id}` for each job given.

use std::io::Write;

use clap::Args;

use super::{for_each_id, job_id, CliError};
use crate::client::Client;

/// Options of `jobq rm`.
#[derive(Debug, Args)]
#[command(
    after_help = "Each job must have ended (cancel a running one first). Prints each\n\
    removed id."
)]
pub struct RmArgs {
    /// The jobs to forget
    #[arg(value_name = "ID", required = true, value_parser = job_id)]
    pub ids: Vec<String>,
}

/// Removes each job, printing each id; a refused job does not stop
/// the others (its error goes to stderr, and the first error sets the exit
/// code).
pub fn run(client: &Client, args: RmArgs, out: &mut dyn Write) -> Result<i32, CliError> {
    for_each_id(&args.ids, "remove", out, |id| client.remove(id))
}
