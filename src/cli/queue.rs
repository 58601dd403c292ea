//! `jobq queue pause|resume|set|rm`: changes one queue
//! (`PATCH /v1/queues/{name}`) and prints its new state in one line, or
//! forgets an empty one (`DELETE /v1/queues/{name}`).
//!
//! Queue names are the daemon's to check, like everything else the CLI
//! sends: a bad one comes back as its 400 and exits 2.

use std::io::Write;

use clap::builder::NonEmptyStringValueParser;
use clap::{Args, Subcommand};

use super::{render, CliError};
use crate::api::{QueuePatch, MAX_CONCURRENCY};
use crate::client::Client;

/// Options of `jobq queue`.
#[derive(Debug, Args)]
pub struct QueueArgs {
    /// What to change.
    #[command(subcommand)]
    pub action: QueueAction,
}

/// The changes `jobq queue` makes.
#[derive(Debug, Subcommand)]
pub enum QueueAction {
    /// Start none of the queue's jobs until resumed (running ones go on)
    Pause {
        /// The queue
        #[arg(value_name = "Q", value_parser = NonEmptyStringValueParser::new())]
        name: String,
        /// Whether to make the queue
        #[command(flatten)]
        create: Create,
    },
    /// Let the queue's jobs start again
    Resume {
        /// The queue
        #[arg(value_name = "Q", value_parser = NonEmptyStringValueParser::new())]
        name: String,
        /// Whether to make the queue
        #[command(flatten)]
        create: Create,
    },
    /// Change the queue's limit
    #[command(
        after_help = "The limit is stored by the daemon and survives restarts; `default` drops\n\
            it, so the queue's limit is the configured one again."
    )]
    Set {
        /// The queue
        #[arg(value_name = "Q", value_parser = NonEmptyStringValueParser::new())]
        name: String,
        /// Most of its jobs running at once (1 to 4096), or `default` for the configured limit
        #[arg(long, value_name = "N|default", allow_hyphen_values = true, value_parser = concurrency)]
        concurrency: Limit,
        /// Whether to make the queue
        #[command(flatten)]
        create: Create,
    },
    /// Forget a queue with no jobs: its stored limit and pause flag
    #[command(
        after_help = "Refused while the queue has jobs in any state (`jobq clean --queue Q` removes\n\
            finished ones), and for a queue the config file declares."
    )]
    Rm {
        /// The queue
        #[arg(value_name = "Q", value_parser = NonEmptyStringValueParser::new())]
        name: String,
    },
}

/// `--create` of the changing actions.
#[derive(Clone, Copy, Debug, Args)]
pub struct Create {
    /// Make the queue if it is not one yet (else a name with no jobs,
    /// settings or config entry is refused, so a typo leaves nothing behind)
    #[arg(long)]
    create: bool,
}

/// The value of `--concurrency`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    /// At most this many at once.
    Jobs(usize),
    /// Whatever the configuration says (JSON `null`).
    Default,
}

/// Sends the change; prints the queue as it is now (or that it is gone).
pub fn run(client: &Client, args: QueueArgs, out: &mut dyn Write) -> Result<i32, CliError> {
    if let QueueAction::Rm { name } = &args.action {
        client.remove_queue(name)?;
        writeln!(out, "{name}: removed")?;
        return Ok(0);
    }
    let (name, patch) = patch(args.action);
    let queue = client.patch_queue(&name, &patch)?;
    render::queue_line(out, &queue.value)?;
    Ok(0)
}

/// The queue and the patch a changing action means.
fn patch(action: QueueAction) -> (String, QueuePatch) {
    let (name, concurrency, paused, create) = match action {
        QueueAction::Pause { name, create } => (name, None, Some(true), create),
        QueueAction::Resume { name, create } => (name, None, Some(false), create),
        QueueAction::Set {
            name,
            concurrency,
            create,
        } => {
            let limit = match concurrency {
                Limit::Jobs(n) => Some(n),
                Limit::Default => None,
            };
            (name, Some(limit), None, create)
        }
        QueueAction::Rm { .. } => unreachable!("rm is not a patch"),
    };
    (
        name,
        QueuePatch {
            concurrency,
            paused,
            create: create.create,
        },
    )
}

/// clap value parser for `--concurrency`: a number from 1, or `default`.
fn concurrency(s: &str) -> Result<Limit, String> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("default") {
        return Ok(Limit::Default);
    }
    if s == "0" {
        return Err("must be at least 1 (`jobq queue pause` stops a queue)".to_owned());
    }
    // The limit fits a u32 many times over; the parser wants a fixed width.
    super::number_in(1u32, MAX_CONCURRENCY as u32)(s)
        .map(|n| Limit::Jobs(n as usize))
        .map_err(|e| format!("{e}, or `default`"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    use crate::cli::{Cli, ClientCommand, Command};

    fn parse(args: &[&str]) -> Result<QueueAction, clap::Error> {
        let cli = Cli::try_parse_from(["jobq", "queue"].iter().chain(args))?;
        match cli.command {
            Command::Client(ClientCommand::Queue(a)) => Ok(a.action),
            _ => unreachable!(),
        }
    }

    #[test]
    fn actions_map_to_patches() {
        let (name, p) = patch(parse(&["pause", "batch"]).unwrap());
        assert_eq!(name, "batch");
        assert_eq!((p.paused, p.concurrency), (Some(true), None));
        let (_, p) = patch(parse(&["resume", "batch"]).unwrap());
        assert_eq!((p.paused, p.concurrency), (Some(false), None));
        let (_, p) = patch(parse(&["set", "batch", "--concurrency", "4"]).unwrap());
        assert_eq!((p.paused, p.concurrency), (None, Some(Some(4))));
        let (_, p) = patch(parse(&["set", "batch", "--concurrency", "default"]).unwrap());
        assert_eq!((p.paused, p.concurrency), (None, Some(None)));
    }

    #[test]
    fn set_needs_a_valid_concurrency() {
        assert!(parse(&["set", "batch"]).is_err());
        assert!(parse(&["set", "batch", "--concurrency", "many"]).is_err());
        assert!(parse(&["set", "batch", "--concurrency", "-1"]).is_err());
        assert!(parse(&["pause"]).is_err());
        assert!(parse(&["pause", ""]).is_err());
    }
}
