//! `jobq show`: one job (`GET /v1/jobs/{id}`) as `key: value` lines or the
//! daemon's JSON.

use std::io::Write;

use clap::Args;

use super::{job_id, render, CliError};
use crate::client::Client;

/// Options of `jobq show`.
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The job
    #[arg(value_name = "ID", value_parser = job_id)]
    pub id: String,
    /// Print the job as JSON
    #[arg(long)]
    pub json: bool,
}

/// Prints the job.
pub fn run(client: &Client, args: ShowArgs, out: &mut dyn Write) -> Result<i32, CliError> {
    let job = client.get(&args.id)?;
    if args.json {
        render::json(out, &job.json)?;
    } else {
        render::job_details(out, &job.value, jiff::Timestamp::now())?;
    }
    Ok(0)
}
