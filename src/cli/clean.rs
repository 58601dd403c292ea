//! `jobq clean`: forgets finished jobs in bulk (`POST /v1/jobs/clean`),
//! one request however many match.

use std::io::Write;

use clap::Args;

use super::{duration, render, CliError};
use crate::api::{BulkRequest, DurationArg};
use crate::client::{BulkAction, Client};
use crate::job::StateName;

/// Options of `jobq clean`.
#[derive(Debug, Args)]
#[command(after_help = "\
Removes the jobs that ended (succeeded, failed or cancelled) and match every
filter given, with their output; jobs that have not ended are never touched.
Without filters, every finished job goes. Prints how many were removed.

  jobq clean --state succeeded --older-than 7d
  jobq clean --queue nightly")]
pub struct CleanArgs {
    /// Only jobs in these states (comma-separated: succeeded,failed,cancelled)
    #[arg(long, short, value_name = "S", value_parser = terminal_states)]
    pub state: Option<States>,
    /// Only jobs of this queue
    #[arg(long, short, value_name = "Q")]
    pub queue: Option<String>,
    /// Only jobs that ended at least D ago (`7d`, `12h`)
    #[arg(long, value_name = "D", allow_hyphen_values = true, value_parser = duration)]
    pub older_than: Option<std::time::Duration>,
    /// Only jobs of this owner (token:NAME, unix:USER, anonymous) [default:
    /// any the caller may remove]
    #[arg(long, value_name = "OWNER")]
    pub owner: Option<String>,
    /// Print the daemon's answer as JSON (`{"count": N}`)
    #[arg(long)]
    pub json: bool,
}

/// Removes the matching finished jobs; prints how many.
pub fn run(client: &Client, args: CleanArgs, out: &mut dyn Write) -> Result<i32, CliError> {
    let request = BulkRequest {
        state: args.state.map(|s| s.0).unwrap_or_default(),
        queue: args.queue,
        owner: args.owner,
        older_than: args.older_than.map(DurationArg),
    };
    let done = client.bulk(BulkAction::Clean, &request)?;
    if args.json {
        render::json(out, &done.json)?;
    } else {
        writeln!(out, "removed {}", render::jobs(done.value.count))?;
    }
    Ok(0)
}

/// The states of one `--state` value (a newtype, so clap takes the list
/// as one value).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct States(pub Vec<StateName>);

/// clap value parser for `clean --state`: terminal state names only.
fn terminal_states(s: &str) -> Result<States, String> {
    let states = super::list::state_names(s)?;
    match states.iter().find(|s| !s.is_terminal()) {
        Some(s) => Err(format!(
            "{s} jobs have not ended; clean removes succeeded, failed or cancelled ones (cancel first)"
        )),
        None => Ok(States(states)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_finished_states_are_cleaned() {
        assert_eq!(
            terminal_states("failed,cancelled").unwrap().0,
            [StateName::Failed, StateName::Cancelled]
        );
        assert!(terminal_states("running")
            .unwrap_err()
            .contains("have not ended"));
        assert!(terminal_states("done")
            .unwrap_err()
            .contains("unknown state"));
    }
}
