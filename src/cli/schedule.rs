//! `jobq schedule add|list|show|rm|run|pause|resume`: recurring jobs
//! (`/v1/schedules…`). `add` takes the flags of `jobq submit` that say what
//! the job is ([`JobFlags`]); when it runs is the cron expression's.
//!
//! The expression, the time zone and the job spec are the daemon's to
//! check, as everything else the CLI sends: a bad one comes back as its
//! 400, naming the field, and exits 2.

use std::io::Write;

use clap::builder::NonEmptyStringValueParser;
use clap::{ArgGroup, Args, Subcommand, ValueEnum};
use jiff::Timestamp;

use super::job_flags::JobFlags;
use super::{render, CliError};
use crate::api::ScheduleRequest;
use crate::client::Client;
use crate::schedule::{Missed, Overlap};

/// Options of `jobq schedule`.
#[derive(Debug, Args)]
pub struct ScheduleArgs {
    /// What to do.
    #[command(subcommand)]
    pub action: ScheduleAction,
}

/// `--overlap`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OverlapArg {
    /// Start another job beside the previous one
    Allow,
    /// Skip the fire while the previous job has not ended
    Forbid,
    /// Cancel the previous job, then start
    Replace,
}

/// `--missed`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum MissedArg {
    /// Run none of the fires that fell while the daemon was down
    Skip,
    /// Run one job at start for all of them
    RunOnce,
}

/// The actions of `jobq schedule`.
#[allow(clippy::large_enum_variant)] // parsed once per process
#[derive(Debug, Subcommand)]
pub enum ScheduleAction {
    /// Create a schedule, or replace the one of that name
    #[command(
        override_usage = "jobq schedule add NAME --cron EXPR [OPTIONS] [--] CMD [ARG]...\n       \
            jobq schedule add NAME --cron EXPR [OPTIONS] --shell LINE",
        group(ArgGroup::new("program").required(true).args(["shell", "command"])),
        after_help = "EXPR: 5 fields (minute hour day-of-month month day-of-week), 6 with a\n\
            seconds field first, or @hourly, @daily, @weekly, @monthly, @yearly.\n\
            Examples: '0 3 * * *' (03:00 daily), '*/15 * * * *', '0 9 * * MON-FRI'.\n\
            Each fire's job is owned by you and named in its `schedule` field."
    )]
    Add(AddArgs),
    /// List schedules: next fire (local time) and last job
    List {
        /// Print the daemon's JSON
        #[arg(long)]
        json: bool,
    },
    /// Show one schedule
    Show {
        /// The schedule
        #[arg(value_name = "NAME", value_parser = NonEmptyStringValueParser::new())]
        name: String,
        /// Print the daemon's JSON
        #[arg(long)]
        json: bool,
    },
    /// Forget a schedule (its jobs stay)
    Rm {
        /// The schedule
        #[arg(value_name = "NAME", value_parser = NonEmptyStringValueParser::new())]
        name: String,
    },
    /// Start one job of the schedule now; print its id
    Run {
        /// The schedule
        #[arg(value_name = "NAME", value_parser = NonEmptyStringValueParser::new())]
        name: String,
        /// Print the job as JSON
        #[arg(long)]
        json: bool,
    },
    /// Stop firing until resumed
    Pause {
        /// The schedule
        #[arg(value_name = "NAME", value_parser = NonEmptyStringValueParser::new())]
        name: String,
    },
    /// Fire again, from the next fire time on
    Resume {
        /// The schedule
        #[arg(value_name = "NAME", value_parser = NonEmptyStringValueParser::new())]
        name: String,
    },
}

/// Options of `jobq schedule add`.
#[derive(Debug, Args)]
pub struct AddArgs {
    /// The schedule's name (1 to 64 of a-z 0-9 _ . -)
    #[arg(value_name = "NAME", value_parser = NonEmptyStringValueParser::new())]
    pub schedule: String,
    /// When it fires (see below)
    #[arg(long, value_name = "EXPR", allow_hyphen_values = true)]
    pub cron: String,
    /// The IANA time zone EXPR is read in [default: UTC]
    #[arg(long = "tz", value_name = "TZ")]
    pub timezone: Option<String>,
    /// When a fire comes while the previous job has not ended [default: allow]
    #[arg(long, value_name = "P")]
    pub overlap: Option<OverlapArg>,
    /// Fires that fell while the daemon was down [default: run-once]
    #[arg(long, value_name = "M")]
    pub missed: Option<MissedArg>,
    /// Store it paused (`jobq schedule resume` starts it)
    #[arg(long)]
    pub paused: bool,
    /// Run LINE with the daemon's shell (`sh -c LINE`) instead of CMD
    #[arg(long, value_name = "LINE")]
    pub shell: Option<String>,
    /// What the job is
    #[command(flatten)]
    pub job: JobFlags,
    /// Print the schedule as JSON
    #[arg(long)]
    pub json: bool,
    /// The program and its arguments, run without a shell
    #[arg(value_name = "CMD", trailing_var_arg = true, num_args = 1..)]
    pub command: Vec<String>,
}

/// Runs the action; prints what it did.
pub fn run(client: &Client, args: ScheduleArgs, out: &mut dyn Write) -> Result<i32, CliError> {
    let now = Timestamp::now();
    match args.action {
        ScheduleAction::Add(add) => {
            let (name, json) = (add.schedule.clone(), add.json);
            let request = request(add, client.is_local())?;
            let reply = client.put_schedule(&name, &request)?;
            if json {
                render::json(out, &reply.json)?;
            } else {
                render::schedule_line(out, &reply.value, now)?;
            }
        }
        ScheduleAction::List { json } => {
            let reply = client.schedules()?;
            if json {
                render::json(out, &reply.json)?;
            } else {
                render::schedule_table(out, &reply.value, now)?;
            }
        }
        ScheduleAction::Show { name, json } => {
            let reply = client.schedule(&name)?;
            if json {
                render::json(out, &reply.json)?;
            } else {
                render::schedule_details(out, &reply.value, now)?;
            }
        }
        ScheduleAction::Rm { name } => {
            client.remove_schedule(&name)?;
            writeln!(out, "{name}: removed")?;
        }
        ScheduleAction::Run { name, json } => {
            let job = client.run_schedule(&name)?;
            if json {
                render::json(out, &job.json)?;
            } else {
                writeln!(out, "{}", job.value.id)?;
            }
        }
        ScheduleAction::Pause { name } => {
            let reply = client.pause_schedule(&name, true)?;
            render::schedule_line(out, &reply.value, now)?;
        }
        ScheduleAction::Resume { name } => {
            let reply = client.pause_schedule(&name, false)?;
            render::schedule_line(out, &reply.value, now)?;
        }
    }
    Ok(0)
}

/// The `PUT` body `add`'s flags describe.
fn request(add: AddArgs, local: bool) -> Result<ScheduleRequest, CliError> {
    Ok(ScheduleRequest {
        cron: add.cron,
        timezone: add.timezone,
        job: add.job.request(add.command, add.shell, local)?,
        overlap: add.overlap.map(|o| match o {
            OverlapArg::Allow => Overlap::Allow,
            OverlapArg::Forbid => Overlap::Forbid,
            OverlapArg::Replace => Overlap::Replace,
        }),
        missed: add.missed.map(|m| match m {
            MissedArg::Skip => Missed::Skip,
            MissedArg::RunOnce => Missed::RunOnce,
        }),
        paused: add.paused.then_some(true),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    use crate::cli::{Cli, ClientCommand, Command};

    fn parse(args: &[&str]) -> Result<ScheduleAction, clap::Error> {
        let cli = Cli::try_parse_from(["jobq", "schedule"].iter().chain(args))?;
        match cli.command {
            Command::Client(ClientCommand::Schedule(a)) => Ok(a.action),
            _ => unreachable!(),
        }
    }

    fn add(args: &[&str]) -> ScheduleRequest {
        match parse(args).unwrap() {
            ScheduleAction::Add(a) => request(a, false).unwrap(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn add_takes_the_job_flags_and_the_command_verbatim() {
        let r = add(&[
            "add",
            "tick",
            "--cron",
            "*/5 * * * *",
            "--tz",
            "Europe/Berlin",
            "--overlap",
            "forbid",
            "--missed",
            "skip",
            "-q",
            "batch",
            "--timeout",
            "1m",
            "--",
            "echo",
            "--json",
        ]);
        assert_eq!(r.cron, "*/5 * * * *");
        assert_eq!(r.timezone.as_deref(), Some("Europe/Berlin"));
        assert_eq!(r.overlap, Some(Overlap::Forbid));
        assert_eq!(r.missed, Some(Missed::Skip));
        assert_eq!(r.job.queue.as_deref(), Some("batch"));
        assert_eq!(
            r.job.command.as_deref(),
            Some(&["echo".to_owned(), "--json".to_owned()][..])
        );
        assert_eq!(r.paused, None);
        let r = add(&[
            "add", "t", "--cron", "@daily", "--paused", "--shell", "date",
        ]);
        assert_eq!(r.job.shell.as_deref(), Some("date"));
        assert_eq!(r.paused, Some(true));
        assert_eq!(r.overlap, None);
    }

    #[test]
    fn add_needs_a_cron_and_a_program_and_no_when_flags() {
        assert!(parse(&["add", "t", "true"]).is_err());
        assert!(parse(&["add", "t", "--cron", "@daily"]).is_err());
        assert!(parse(&["add", "t", "--cron", "@daily", "--delay", "1s", "true"]).is_err());
        assert!(parse(&[
            "add",
            "t",
            "--cron",
            "@daily",
            "--overlap",
            "sometimes",
            "true"
        ])
        .is_err());
        assert!(parse(&["pause"]).is_err());
    }
}
