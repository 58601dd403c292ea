//! The command line: the clap definitions of every subcommand, the dispatch
//! of client commands, and the one place that turns their failures into a
//! `jobq:` line on stderr and an exit code.
//!
//! Each client subcommand lives in its own file with its arguments and one
//! small `run` function, mirroring the API's endpoints; they talk to the
//! daemon only through [`crate::client`] and print through [`render`].
//! `submit --batch` has its own file, [`batch`].
//! `jobq serve` is parsed here but run by [`crate::daemon`] (see
//! `src/main.rs`).
//!
//! Exit codes: 0 ok; the job's code ([`crate::exit_code`]) for `wait`,
//! `submit --wait`, `submit --follow` and `logs -f`; 124 when `wait
//! --timeout` expires; 2
//! for a client error (bad flags, a request the daemon refused); 3 when the
//! daemon cannot be reached (or a stream it served broke for good); 130
//! after Ctrl-C. A closed stdout (`jobq list | head -1`) ends the command
//! quietly with 0.

pub mod batch;
pub mod cancel;
pub mod clean;
pub mod completions;
pub mod config;
pub mod events;
pub mod follow;
pub mod interrupt;
pub mod job_flags;
pub mod list;
pub mod logs;
pub mod queue;
pub mod queues;
pub mod render;
pub mod retry;
pub mod rm;
pub mod schedule;
pub mod serve;
pub mod show;
pub mod submit;
pub mod summary;
pub mod terminal;
pub mod wait;

use std::io::{self, Write};

use clap::{Args, Parser, Subcommand};

use crate::client::{Client, ClientError, Server};

/// Shown under `jobq --help`: the exit codes scripts rely on.
const EXIT_CODES: &str = "\
Exit codes:
  0    success
  N    `wait`, `submit --wait`/`--follow`, `logs -f`: the job's exit code,
       128+n when signal n killed it, and for endings not the process's own:
       122 interrupted (the daemon stopped while it ran)
       123 cancelled
       124 timed out
       125 did not run: a job it depends on failed
       127 could not start (no such command, not executable, no such cwd)
  2    bad usage, or the daemon refused the request
  3    the daemon cannot be reached
  130  this command was interrupted (Ctrl-C); a followed job goes on running";

/// `jobq`: the whole command line.
#[derive(Parser)]
#[command(
    name = "jobq",
    version = env!("JOBQ_VERSION"),
    about = "A job queue daemon and its client",
    long_about = "A job queue daemon and its client.\n\n\
        `jobq serve` runs the daemon; the other commands talk to it over HTTP.",
    after_help = EXIT_CODES,
    max_term_width = 100
)]
pub struct Cli {
    /// Where client commands send their requests.
    #[command(flatten)]
    pub client: ClientOpts,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands that do not talk to a daemon, which neither show nor
/// take the client options.
const LOCAL_COMMANDS: [&str; 3] = ["serve", "config", "completions"];

/// The ids and flags of [`ClientOpts`]' arguments, which the
/// [`LOCAL_COMMANDS`] neither show nor take.
const CLIENT_ARGS: [(&str, &str); 3] = [
    ("server", "--server"),
    ("token", "--token"),
    ("token_file", "--token-file"),
];

/// The command line's definition: [`Cli`]'s, with the client options
/// kept out of `jobq serve --help` (they are global, so clap would list
/// them under every subcommand, and they mean nothing to the daemon).
///
/// `serve` gets hidden arguments of the same ids, which clap's
/// propagation of global arguments then leaves alone; [`parse_from`]
/// refuses them when given.
pub fn command() -> clap::Command {
    use clap::CommandFactory;
    LOCAL_COMMANDS.iter().fold(Cli::command(), |cmd, name| {
        cmd.mut_subcommand(name, |local| {
            local.args(
                CLIENT_ARGS
                    .map(|(id, flag)| clap::Arg::new(id).long(&flag[2..]).num_args(1).hide(true)),
            )
        })
    })
}

/// Parses the process's arguments (exiting with clap's message and code 2
/// on a bad one); a client option given to `jobq serve` is refused, not
/// ignored.
pub fn parse() -> Cli {
    parse_from(std::env::args_os())
}

/// [`parse`] of `args`.
pub fn parse_from<I, T>(args: I) -> Cli
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    use clap::FromArgMatches;
    let mut cmd = command();
    let matches = cmd
        .try_get_matches_from_mut(args)
        .unwrap_or_else(|e| e.exit());
    if let Some((name, local)) = matches
        .subcommand()
        .filter(|(name, _)| LOCAL_COMMANDS.contains(name))
    {
        let typed = |m: &clap::ArgMatches, id: &str| {
            m.value_source(id) == Some(clap::parser::ValueSource::CommandLine)
        };
        let given = CLIENT_ARGS
            .iter()
            .find(|(id, _)| typed(local, id) || typed(&matches, id));
        if let Some((_, flag)) = given {
            cmd.error(
                clap::error::ErrorKind::ArgumentConflict,
                format!("{flag} is a client option; `jobq {name}` does not take it (see `jobq {name} --help`)"),
            )
            .exit();
        }
    }
    Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.format(&mut cmd).exit())
}

/// Options of every client command (accepted anywhere on the line).
///
/// No `Debug`: it holds the token.
#[derive(Args)]
pub struct ClientOpts {
    /// The jobq daemon: http://HOST:PORT or unix:/PATH [default:
    /// unix:/run/jobq/jobq.sock if it exists, else http://127.0.0.1:7711]
    #[arg(
        long,
        global = true,
        env = "JOBQ_SERVER",
        hide_env_values = true,
        value_name = "URL",
        help_heading = "Client options"
    )]
    pub server: Option<String>,
    /// API token, sent as `Authorization: Bearer TOKEN`
    #[arg(
        long,
        global = true,
        env = "JOBQ_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN",
        help_heading = "Client options"
    )]
    pub token: Option<String>,
    /// File whose first line is the API token (when --token is not given)
    #[arg(
        long,
        global = true,
        env = "JOBQ_TOKEN_FILE",
        value_name = "FILE",
        help_heading = "Client options"
    )]
    pub token_file: Option<std::path::PathBuf>,
}

impl ClientOpts {
    /// The client these options name: `--server` (or `JOBQ_SERVER`), else
    /// the system socket if it exists, else docs/api.md's default address; the
    /// token from `--token`, `JOBQ_TOKEN` or `JOBQ_TOKEN_FILE`.
    pub fn client(&self) -> Result<Client, CliError> {
        let server = match &self.server {
            Some(server) => Server::parse(server)?,
            None => crate::client::default_server(),
        };
        let token = match (&self.token, &self.token_file) {
            (Some(token), _) => Some(token.clone()),
            (None, Some(path)) => Some(read_token_file(path)?),
            (None, None) => None,
        };
        Ok(Client::with_server(server, token)?)
    }
}

/// The token in `path`: its first line, trimmed.
fn read_token_file(path: &std::path::Path) -> Result<String, CliError> {
    use crate::auth::token::{first_line, TokenFileError};
    first_line(path).map_err(|e| {
        CliError::Usage(match e {
            TokenFileError::Unreadable(reason) => format!(
                "cannot read the token file {} (--token-file or JOBQ_TOKEN_FILE): {reason}",
                path.display()
            ),
            TokenFileError::Empty => format!(
                "the token file {} is empty; its first line must be the token",
                path.display()
            ),
        })
    })
}

/// Every subcommand: the daemon, then the client commands.
// Built once per process, so the size difference between variants that
// clippy warns about costs nothing; boxing would only add noise.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon
    Serve(serve::ServeArgs),
    /// Check the daemon's config file and print the effective settings
    Config(config::ConfigArgs),
    /// Print a shell completion script (bash, zsh, fish)
    Completions(completions::CompletionsArgs),
    /// A command that talks to a running daemon.
    #[command(flatten)]
    Client(ClientCommand),
}

/// The commands that talk to the daemon; one file each.
#[allow(clippy::large_enum_variant)] // see `Command`
#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Submit a job; print its id
    Submit(submit::SubmitArgs),
    /// List jobs, newest first
    List(list::ListArgs),
    /// Show one job
    Show(show::ShowArgs),
    /// Print a job's output so far, or follow it (-f)
    Logs(logs::LogsArgs),
    /// Wait for jobs to end; exit with their exit code
    Wait(wait::WaitArgs),
    /// Cancel jobs (a running one is stopped)
    Cancel(cancel::CancelArgs),
    /// Run ended jobs again
    Retry(retry::RetryArgs),
    /// Forget ended jobs and their output
    Rm(rm::RmArgs),
    /// Forget finished jobs in bulk (by state, queue, age)
    Clean(clean::CleanArgs),
    /// List queues with their limits and job counts
    Queues(queues::QueuesArgs),
    /// Pause, resume or limit a queue
    Queue(queue::QueueArgs),
    /// Recurring jobs: add, list, show, rm, run, pause, resume
    Schedule(schedule::ScheduleArgs),
    /// Print job state changes as they happen
    Events(events::EventsArgs),
}

/// Why a client command did not complete; each kind has its exit code.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The daemon could not be reached or refused the request.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The arguments are wrong in a way clap cannot see (an unreadable
    /// `--stdin` file, say).
    #[error("{0}")]
    Usage(String),
    /// Writing to stdout failed; a broken pipe is not reported.
    #[error("cannot write to stdout: {}", crate::client::io_reason(.0))]
    Stdout(#[from] io::Error),
    /// `wait --timeout` expired before the jobs ended.
    #[error("{0}")]
    TimedOut(String),
    /// The daemon ended a stream the command reads to the end (`jobq
    /// events`): it shut down, or the reader fell too far behind.
    #[error("{0}")]
    Ended(String),
    /// A request failed after something was done that the user must
    /// know of: one batch of `submit --batch` after others were submitted,
    /// a `submit --wait`/`--follow` after the job was, an upload of
    /// `--stdin`. The context says what.
    #[error("{error} ({context})")]
    Context {
        /// Why the request failed.
        error: ClientError,
        /// What was and was not done.
        context: String,
    },
}

impl CliError {
    /// The process exit code for this failure (see the module doc).
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::Client(e) | CliError::Context { error: e, .. } => e.exit_code(),
            CliError::Usage(_) => 2,
            CliError::Stdout(e) if e.kind() == io::ErrorKind::BrokenPipe => 0,
            CliError::Stdout(_) => 2,
            CliError::TimedOut(_) => 124,
            CliError::Ended(_) => 3,
        }
    }
}

/// Runs a client command against the daemon named by `opts`; reports any
/// failure on stderr and returns the process exit code.
pub fn run(opts: &ClientOpts, command: ClientCommand) -> i32 {
    match dispatch(opts, command) {
        Ok(code) => code,
        Err(err) => report(&err),
    }
}

fn dispatch(opts: &ClientOpts, command: ClientCommand) -> Result<i32, CliError> {
    let client = opts.client()?;
    let stdout = io::stdout();
    let mut out = stdout.lock();
    let code = match command {
        ClientCommand::Submit(args) => submit::run(&client, args, &mut out)?,
        ClientCommand::List(args) => list::run(&client, args, &mut out)?,
        ClientCommand::Show(args) => show::run(&client, args, &mut out)?,
        ClientCommand::Logs(args) => logs::run(&client, args, &mut out)?,
        ClientCommand::Wait(args) => wait::run(&client, args, &mut out)?,
        ClientCommand::Cancel(args) => cancel::run(&client, args, &mut out)?,
        ClientCommand::Retry(args) => retry::run(&client, args, &mut out)?,
        ClientCommand::Rm(args) => rm::run(&client, args, &mut out)?,
        ClientCommand::Clean(args) => clean::run(&client, args, &mut out)?,
        ClientCommand::Queues(args) => queues::run(&client, args, &mut out)?,
        ClientCommand::Queue(args) => queue::run(&client, args, &mut out)?,
        ClientCommand::Schedule(args) => schedule::run(&client, args, &mut out)?,
        ClientCommand::Events(args) => events::run(&client, args, &mut out)?,
    };
    out.flush()?;
    Ok(code)
}

/// Prints `jobq: <error>` (except for a broken pipe) and returns the exit
/// code.
fn report(err: &CliError) -> i32 {
    let quiet = matches!(err, CliError::Stdout(e) if e.kind() == io::ErrorKind::BrokenPipe);
    if !quiet {
        // If stderr is gone too there is no one left to tell.
        let _ = writeln!(io::stderr(), "jobq: {err}");
    }
    err.exit_code()
}

/// Runs `action` on each job id in turn, printing the id of each job it
/// succeeded on. A refused job does not stop the others: its error is
/// printed and the exit code is the first error's. An unreachable daemon
/// stops the loop, since every later request would fail the same way.
fn for_each_id(
    ids: &[String],
    verb: &str,
    out: &mut dyn Write,
    mut action: impl FnMut(&str) -> Result<(), ClientError>,
) -> Result<i32, CliError> {
    let mut code = 0;
    for id in ids {
        match action(id) {
            Ok(()) => {
                writeln!(out, "{id}")?;
            }
            Err(err @ ClientError::Unreachable { .. }) => return Err(err.into()),
            Err(err) => {
                // The daemon's message usually names the job already.
                let message = err.to_string();
                let _ = if message.contains(id.as_str()) {
                    writeln!(io::stderr(), "jobq: {message}")
                } else {
                    writeln!(io::stderr(), "jobq: cannot {verb} {id}: {message}")
                };
                if code == 0 {
                    code = err.exit_code();
                }
            }
        }
    }
    Ok(code)
}

/// clap value parser for jobs: an id or a job number (`12`). Rejects a typo
/// before any request, and keeps references safe to put in a URL path.
pub fn job_id(s: &str) -> Result<String, String> {
    s.parse::<crate::api::JobRef>().map(|r| r.to_string())
}

/// clap value parser for a whole number from `min` to `max`, whose errors
/// say in words what is wanted (`must be ≥ 0`, `a whole number such as
/// 3`) rather than naming a Rust type. Give the argument
/// `allow_hyphen_values` so that a negative number reaches it instead of
/// clap's `-- -1` tip.
pub fn number_in<T>(
    min: T,
    max: T,
) -> impl Fn(&str) -> Result<T, String> + Clone + Send + Sync + 'static
where
    T: std::str::FromStr + Into<i128> + Copy + std::fmt::Display + Send + Sync + 'static,
{
    move |s: &str| {
        let s = s.trim();
        match s.parse::<i128>() {
            Ok(n) if n < min.into() => Err(format!("{s} is too small: must be ≥ {min}")),
            Ok(n) if n > max.into() => Err(format!("{s} is too large: must be at most {max}")),
            Ok(_) => s
                .parse::<T>()
                .map_err(|_| format!("{s:?} is not a whole number")),
            Err(_) => Err(format!(
                "{s:?} is not a whole number: expected one from {min} to {max}"
            )),
        }
    }
}

/// clap value parser for `K=V` pairs (labels).
pub fn key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!("expected K=V (such as team=data), got {s:?}")),
    }
}

/// clap value parser for durations (`90s`, `1h30m`, a number of seconds),
/// with the API's own syntax.
pub fn duration(s: &str) -> Result<std::time::Duration, String> {
    crate::api::parse_duration(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
        command().debug_assert();
    }

    #[test]
    fn serve_help_shows_only_the_daemon_s_options() {
        let mut cmd = command();
        cmd.build();
        for local in LOCAL_COMMANDS {
            let help = cmd
                .find_subcommand_mut(local)
                .unwrap()
                .render_long_help()
                .to_string();
            for client in ["--server", "--token", "Client options"] {
                assert!(!help.contains(client), "jobq {local}: {help}");
            }
        }
        let serve = cmd.find_subcommand_mut("serve").unwrap();
        let help = serve.render_long_help().to_string();
        assert!(help.contains("--data-dir"), "{help}");
        let list = cmd.find_subcommand_mut("list").unwrap();
        assert!(list.render_long_help().to_string().contains("--server"));
    }

    #[test]
    fn usage_lines_show_no_client_option_as_required() {
        let mut cmd = command();
        cmd.build();
        for sub in cmd.get_subcommands_mut() {
            let usage = sub.render_usage().to_string();
            assert!(!usage.contains("--server"), "{usage}");
            assert!(!usage.contains("--token"), "{usage}");
        }
    }

    #[test]
    fn job_ids_are_checked_and_canonical() {
        let id = "0192F1C4-8A6E-7C3B-9D1E-3F5A7B9C1D2E";
        assert_eq!(job_id(id).unwrap(), id.to_lowercase());
        assert!(job_id("nope")
            .unwrap_err()
            .contains("not a job id or number"));
        assert_eq!(job_id(" 42 ").unwrap(), "42");
    }

    #[test]
    fn numbers_are_refused_in_words() {
        let retries = number_in(0u32, 1000);
        assert_eq!(retries("3").unwrap(), 3);
        assert_eq!(retries("-1").unwrap_err(), "-1 is too small: must be ≥ 0");
        assert_eq!(
            retries("1001").unwrap_err(),
            "1001 is too large: must be at most 1000"
        );
        let err = retries("three").unwrap_err();
        assert!(
            err.contains("not a whole number") && !err.contains("u32"),
            "{err}"
        );
        assert_eq!(number_in(-5i32, 5)("-5").unwrap(), -5);
    }

    #[test]
    fn a_broken_pipe_exits_quietly_with_0() {
        let err = CliError::Stdout(io::Error::from(io::ErrorKind::BrokenPipe));
        assert_eq!(report(&err), 0);
    }

    #[test]
    fn global_options_go_before_or_after_the_subcommand() {
        let before = Cli::try_parse_from(["jobq", "--server", "http://h:1", "list"]).unwrap();
        let after = Cli::try_parse_from(["jobq", "list", "--server", "http://h:1"]).unwrap();
        assert_eq!(before.client.server.as_deref(), Some("http://h:1"));
        assert_eq!(after.client.server.as_deref(), Some("http://h:1"));
    }
}
