//! `jobq list`: one page of `GET /v1/jobs` as a table, or the daemon's JSON.

use std::io::Write;

use clap::Args;

use super::{render, CliError};
use crate::client::{Client, ListFilter};
use crate::job::StateName;

/// Options of `jobq list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only jobs in these states (comma-separated: running,queued)
    #[arg(long, short, value_name = "S", value_parser = states)]
    pub state: Option<String>,
    /// Only jobs of this queue
    #[arg(long, short, value_name = "Q")]
    pub queue: Option<String>,
    /// Only jobs of this owner (token:NAME, unix:USER, anonymous)
    #[arg(long, value_name = "OWNER")]
    pub owner: Option<String>,
    /// Show at most N jobs (1 to 1000) [default: 100]
    #[arg(long, short = 'n', value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub limit: Option<u32>,
    /// Print the daemon's JSON (`{"jobs": [...], "next_cursor": ...}`)
    #[arg(long)]
    pub json: bool,
}

/// Prints the newest jobs matching the filters.
pub fn run(client: &Client, args: ListArgs, out: &mut dyn Write) -> Result<i32, CliError> {
    let filter = ListFilter {
        state: args.state,
        queue: args.queue,
        owner: args.owner,
        limit: args.limit,
        cursor: None,
    };
    let list = client.list(&filter)?;
    if args.json {
        render::json(out, &list.json)?;
        return Ok(0);
    }
    render::job_table(out, &list.value, jiff::Timestamp::now())?;
    if list.value.next_cursor.is_some() {
        // On stderr, so the table stays clean for `| grep` and `| wc -l`.
        eprintln!(
            "(showing the newest {}; raise --limit, up to 1000, for more)",
            list.value.jobs.len()
        );
    }
    Ok(0)
}

/// clap value parser for `--state`: every name must be a state, so a typo
/// is caught before the request.
fn states(s: &str) -> Result<String, String> {
    let names: Result<Vec<StateName>, String> = s.split(',').map(|n| n.trim().parse()).collect();
    let names = names?;
    Ok(names
        .iter()
        .map(|n| n.as_str())
        .collect::<Vec<_>>()
        .join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_are_checked() {
        assert_eq!(states("running, queued").unwrap(), "running,queued");
        assert!(states("runing").unwrap_err().contains("unknown state"));
    }
}
