//! `jobq list`: jobs newest first as a table (pages of `GET /v1/jobs`), or
//! the daemon's JSON.
//!
//! One page by default; `--all` walks every page with the API's cursor, so
//! a store of any size is listed in bounded memory, and `--cursor` starts
//! where an earlier page said to go on.

use std::io::Write;

use clap::Args;

use super::{render, CliError};
use crate::client::{Client, ListFilter};
use crate::job::StateName;

/// Jobs per request with `--all`: the API's largest page.
const PAGE: u32 = 1000;

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
    /// Only jobs with this name
    #[arg(long, value_name = "S")]
    pub name: Option<String>,
    /// Only jobs with this label (repeatable: all must match)
    #[arg(long, short, value_name = "K=V", value_parser = super::key_value)]
    pub label: Vec<(String, String)>,
    /// Show at most N jobs (1 to 1000) [default: 100]
    #[arg(long, short = 'n', value_name = "N", allow_hyphen_values = true,
          value_parser = super::number_in(1u32, 1000), conflicts_with = "all")]
    pub limit: Option<u32>,
    /// Every job that matches, page after page
    #[arg(long, short)]
    pub all: bool,
    /// Go on from where an earlier page stopped (the cursor it printed)
    #[arg(long, value_name = "C")]
    pub cursor: Option<String>,
    /// Also show each job's id and owner
    #[arg(long, short)]
    pub wide: bool,
    /// Print the daemon's JSON (`{"jobs": [...], "next_cursor": ...}`; with
    /// --all, one such object per page)
    #[arg(long)]
    pub json: bool,
}

/// Prints the newest jobs matching the filters.
pub fn run(client: &Client, args: ListArgs, out: &mut dyn Write) -> Result<i32, CliError> {
    let mut filter = ListFilter {
        state: args.state,
        queue: args.queue,
        owner: args.owner,
        name: args.name,
        labels: args.label,
        limit: if args.all { Some(PAGE) } else { args.limit },
        cursor: args.cursor,
    };
    let view = render::TableView {
        width: super::terminal::width(),
        wide: args.wide,
    };
    let now = jiff::Timestamp::now();
    let mut header = true;
    loop {
        let page = client.list(&filter)?;
        if args.json {
            render::json(out, &page.json)?;
        } else {
            render::job_table(out, &page.value, now, view, header)?;
        }
        header = false;
        match page.value.next_cursor {
            Some(next) if args.all => filter.cursor = Some(next),
            Some(next) => {
                if !args.json {
                    // On stderr, so the table stays clean for `| grep` and `| wc -l`.
                    eprintln!(
                        "(the newest {} shown; --all for every one, or --cursor {next} for the next page)",
                        page.value.jobs.len()
                    );
                }
                return Ok(0);
            }
            None => return Ok(0),
        }
    }
}

/// clap value parser for `--state`: every name must be a state, so a typo
/// is caught before the request.
fn states(s: &str) -> Result<String, String> {
    Ok(state_names(s)?
        .iter()
        .map(|n| n.as_str())
        .collect::<Vec<_>>()
        .join(","))
}

/// Comma-separated state names, each checked.
pub(super) fn state_names(s: &str) -> Result<Vec<StateName>, String> {
    s.split(',').map(|n| n.trim().parse()).collect()
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
