//! `jobq submit`: turns flags into an [`api::JobRequest`](crate::api::JobRequest)
//! and posts it (`POST /v1/jobs`); with `--batch FILE`, posts the specs of
//! a JSON Lines file instead (see [`super::batch`]).
//!
//! Only what the daemon cannot do is done here: the job runs in the
//! client's current directory (like pueue, ts and at(1)) unless `--cwd`
//! says otherwise, relative `--cwd` paths are made absolute against it,
//! `--env K` and `--inherit-env` copy the client's variables, and `--stdin`
//! is read from the client's files. Everything else (queue names, limits, whether `cwd`
//! exists) is the daemon's to check, so the rules live in one place.
//!
//! `--stdin` goes inline (the spec's `stdin` string) when it is UTF-8 text
//! of at most [`INLINE_STDIN`] bytes as JSON; anything else (binary, or
//! larger) is first streamed to `POST /v1/uploads` and named by
//! `stdin_upload`, without ever being held in memory here.
//!
//! `--wait` reads the job's events until it ends ([`wait`]); `--follow`
//! copies its output as it is written ([`follow`]); both exit with the
//! job's exit code.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{ArgGroup, Args};
use jiff::Timestamp;

use super::job_flags::JobFlags;
use super::summary::Ending;
use super::{batch, duration, follow, interrupt, job_id, render, wait, CliError};
use crate::api::{DurationArg, JobRequest};
use crate::client::{io_reason, Client, OutputStream};

/// Most bytes of `--stdin`, as a JSON string, sent inline in the job spec:
/// well under the daemon's default 1 MiB request limit (`max_body`), with
/// room for the rest of the spec.
pub const INLINE_STDIN: usize = 512 * 1024;

/// The end of `jobq submit --help`: where options go, and `--batch`.
const BATCH_HELP: &str = "\
Options go before CMD: everything from CMD on is the job's argv.
Prints the new job's id, or the job as JSON with --json.

--batch FILE reads JSON Lines: each non-blank line one job spec object, with
the fields of the API (POST /v1/jobs), e.g.
  {\"command\": [\"make\", \"test\"], \"queue\": \"ci\", \"timeout\": \"10m\"}
  {\"shell\": \"gzip -9 big.log\", \"priority\": 5}
Every line is checked before anything is sent: a malformed line or a bad
field is an error naming its line number, and nothing is submitted (`cwd`
and `after` are left to the daemon). The jobs go in batches of at most
10,000 jobs and 1 MiB (the daemon's limits); each batch is all or nothing,
the file is not: if a later batch is refused, the earlier ones stay
submitted (their ids are printed) and the error says which lines were not.
Prints one id per line in the order of the lines, or {\"jobs\": [...]} with
--json. The per-job options (--queue, --env, --wait...) cannot be combined
with --batch: put the fields in each line, and wait with
`jobq submit --batch FILE | xargs jobq wait`.";

/// Options of `jobq submit`.
#[derive(Debug, Args)]
#[command(
    override_usage = "jobq submit [OPTIONS] [--] CMD [ARG]...\n       \
        jobq submit [OPTIONS] --shell LINE\n       \
        jobq submit --batch FILE [--json]",
    group(ArgGroup::new("program").required(true).args(["shell", "command", "batch"])),
    after_help = BATCH_HELP
)]
pub struct SubmitArgs {
    /// Run LINE with the daemon's shell (`sh -c LINE`) instead of CMD
    #[arg(long, value_name = "LINE")]
    pub shell: Option<String>,
    /// Submit every job spec of FILE (`-`: stdin), one JSON object per line (see below)
    #[arg(long, value_name = "FILE", conflicts_with_all = PER_JOB)]
    pub batch: Option<PathBuf>,
    /// What the job is (shared with `jobq schedule add`)
    #[command(flatten)]
    pub job: JobFlags,
    /// Do not start before D from now (`90s`, `1h30m`)
    #[arg(long, value_name = "D", allow_hyphen_values = true, value_parser = duration, conflicts_with = "at")]
    pub delay: Option<Duration>,
    /// Do not start before TIME (RFC 3339: 2030-01-02T15:04:05Z)
    #[arg(long, value_name = "TIME", value_parser = timestamp)]
    pub at: Option<Timestamp>,
    /// Start only after job ID succeeded (repeatable)
    #[arg(long, value_name = "ID", value_parser = job_id)]
    pub after: Vec<String>,
    /// Feed FILE to the job's stdin (`-`: this command's stdin); any bytes, any size up to the daemon's max_upload
    #[arg(long, value_name = "FILE")]
    pub stdin: Option<PathBuf>,
    /// Idempotency key: a second submit with the same KEY returns the first job
    #[arg(long, value_name = "KEY")]
    pub key: Option<String>,
    /// Wait for the job to end, then exit with its exit code
    #[arg(long, short)]
    pub wait: bool,
    /// Print the job's output (stdout and stderr) as it runs, then exit with its exit code
    #[arg(long, short, conflicts_with_all = ["wait", "json"])]
    pub follow: bool,
    /// Print the job as JSON (with --wait, the job as it ended)
    #[arg(long)]
    pub json: bool,
    /// With --wait or --follow: no line on stderr saying how the job ended
    #[arg(long)]
    pub quiet: bool,
    /// The program and its arguments, run without a shell
    #[arg(value_name = "CMD", trailing_var_arg = true, num_args = 1..)]
    pub command: Vec<String>,
}

/// The options that describe one job, which `--batch` files carry in each
/// line instead.
const PER_JOB: [&str; 22] = [
    "queue",
    "priority",
    "delay",
    "at",
    "timeout",
    "memory",
    "cpu_time",
    "processes",
    "open_files",
    "retries",
    "backoff",
    "after",
    "env",
    "inherit_env",
    "cwd",
    "stdin",
    "name",
    "label",
    "key",
    "wait",
    "follow",
    "quiet",
];

/// Submits the job; prints its id (or JSON). With `--wait`, returns the
/// job's exit code once it ends; with `--follow`, prints its output until
/// then instead. With `--batch`, submits the file's jobs.
pub fn run(client: &Client, args: SubmitArgs, out: &mut dyn Write) -> Result<i32, CliError> {
    if let Some(path) = &args.batch {
        return batch::run(client, path, args.json, out);
    }
    if args.follow {
        return submit_and_follow(client, args, out);
    }
    let (wait, json, quiet) = (args.wait, args.json, args.quiet);
    let request = with_stdin(client, request(args, client.is_local())?)?;
    let job = client.submit(&request)?;
    if !wait {
        if json {
            render::json(out, &job.json)?;
        } else {
            writeln!(out, "{}", job.value.id)?;
        }
        return Ok(0);
    }
    if !json {
        // Now, not at the end: a script may want the id while it waits.
        writeln!(out, "{}", job.value.id)?;
        out.flush()?;
    }
    let id = &job.value.id;
    let ended = match wait::until_terminal(client, id, None).map_err(|e| submitted(e, id))? {
        wait::Waited::Done(event) => event,
        wait::Waited::TimedOut(_) => unreachable!("no deadline was given"),
    };
    if json {
        let job = client.get(id)?;
        render::json(out, &job.json)?;
    }
    let ending = Ending::of_event(&ended);
    if !quiet {
        ending.print(&mut std::io::stderr())?;
    }
    Ok(ending.exit())
}

/// `submit --follow`: submits, then copies the job's output to `out` until
/// it ends; returns its exit code. Ctrl-C from the submission on leaves
/// the job running and says how to cancel it (see [`interrupt`]).
fn submit_and_follow(
    client: &Client,
    args: SubmitArgs,
    out: &mut dyn Write,
) -> Result<i32, CliError> {
    let quiet = args.quiet;
    let watch = interrupt::Watch::install()
        .map_err(|e| CliError::Usage(format!("cannot catch Ctrl-C: {}", io_reason(&e))))?;
    let request = with_stdin(client, request(args, client.is_local())?)?;
    let job = client.submit(&request)?;
    let id = &job.value.id;
    watch.set_job(Some(id));
    let mut err = std::io::stderr();
    let sinks = follow::Sinks { out, err: &mut err };
    let ended =
        follow::output(client, id, OutputStream::All, None, sinks).map_err(|e| match e {
            CliError::Client(e) => submitted(e, id),
            other => other,
        })?;
    watch.set_job(None);
    let ending = Ending::of_job(&ended.value);
    if !quiet {
        ending.print(&mut err)?;
    }
    Ok(ending.exit())
}

/// An error after the job was submitted: says which job, since the
/// command may not have printed its id and the job may still be running.
fn submitted(error: crate::client::ClientError, id: &str) -> CliError {
    CliError::Context {
        error,
        context: format!("job {id} was submitted and may still be running"),
    }
}

/// The request the flags describe, but for `--stdin`: see [`with_stdin`].
/// `local`: the daemon is on this machine, so this directory means the
/// same to it and is the job's default.
fn request(args: SubmitArgs, local: bool) -> Result<(JobRequest, Option<PathBuf>), CliError> {
    let mut request = args.job.request(args.command, args.shell, local)?;
    request.run_at = args.at;
    request.delay = args.delay.map(DurationArg);
    request.after = args.after;
    request.idempotency_key = args.key;
    Ok((request, args.stdin))
}

/// `request` with the bytes of `--stdin FILE` (`-`: this process's stdin):
/// inline if they are small UTF-8 text, else uploaded first.
fn with_stdin(
    client: &Client,
    (mut request, path): (JobRequest, Option<PathBuf>),
) -> Result<JobRequest, CliError> {
    let Some(path) = path else {
        return Ok(request);
    };
    let unreadable = |e: std::io::Error| {
        CliError::Usage(format!(
            "cannot read --stdin {}: {}",
            path.display(),
            io_reason(&e)
        ))
    };
    let (mut reader, size) = open_stdin(&path).map_err(unreadable)?;
    let head = match read_head(&mut reader).map_err(unreadable)? {
        Head::Inline(text) => {
            request.stdin = Some(text);
            return Ok(request);
        }
        Head::Upload(head) => head,
    };
    // What is sent is what was read plus the rest, so a read error on the
    // rest surfaces as a failed upload; name the file in that case.
    let len = size.map(|size| size.max(head.len() as u64));
    let body = std::io::Cursor::new(head).chain(reader);
    let body = body.take(len.unwrap_or(u64::MAX));
    let upload = client
        .upload(body, len)
        .map_err(|error| CliError::Context {
            error,
            context: format!("uploading --stdin {}", path.display()),
        })?;
    request.stdin_upload = Some(upload.value.upload);
    Ok(request)
}

/// The reader of `--stdin` and, for a regular file, its size.
fn open_stdin(path: &Path) -> std::io::Result<(Box<dyn Read>, Option<u64>)> {
    if path == Path::new("-") {
        return Ok((Box::new(std::io::stdin().lock()), None));
    }
    let file = std::fs::File::open(path)?;
    let meta = file.metadata()?;
    if meta.is_dir() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "it is a directory",
        ));
    }
    let size = meta.is_file().then_some(meta.len());
    Ok((Box::new(file), size))
}

/// Where the bytes of `--stdin` go, decided from their beginning.
#[derive(Debug, PartialEq, Eq)]
enum Head {
    /// All of them, small UTF-8 text: in the spec.
    Inline(String),
    /// Binary or large: uploaded, starting with these bytes.
    Upload(Vec<u8>),
}

/// Reads at most [`INLINE_STDIN`] + 1 bytes: all of a small input, enough of
/// a large one to know it is large.
fn read_head(reader: &mut dyn Read) -> std::io::Result<Head> {
    let mut head = Vec::new();
    reader
        .take(INLINE_STDIN as u64 + 1)
        .read_to_end(&mut head)?;
    if head.len() > INLINE_STDIN {
        return Ok(Head::Upload(head));
    }
    match String::from_utf8(head) {
        // JSON escapes control characters (up to 6 bytes each).
        Ok(text) if json_len(&text) <= INLINE_STDIN => Ok(Head::Inline(text)),
        Ok(text) => Ok(Head::Upload(text.into_bytes())),
        Err(e) => Ok(Head::Upload(e.into_bytes())),
    }
}

/// The length of `text` as a JSON string.
fn json_len(text: &str) -> usize {
    serde_json::to_string(text).map_or(usize::MAX, |json| json.len())
}

/// clap value parser for `--at`.
fn timestamp(s: &str) -> Result<Timestamp, String> {
    s.parse::<Timestamp>()
        .map_err(|_| format!("{s:?} is not an RFC 3339 time such as 2030-01-02T15:04:05Z"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    use crate::cli::{Cli, ClientCommand, Command};

    fn parse(args: &[&str]) -> Result<SubmitArgs, clap::Error> {
        let cli = Cli::try_parse_from(["jobq", "submit"].iter().chain(args))?;
        match cli.command {
            Command::Client(ClientCommand::Submit(a)) => Ok(a),
            _ => unreachable!(),
        }
    }

    #[test]
    fn options_before_the_command_and_the_command_verbatim() {
        let a = parse(&[
            "-q", "batch", "--env", "A=1=2", "--", "echo", "-n", "--json",
        ])
        .unwrap();
        assert_eq!(a.job.queue.as_deref(), Some("batch"));
        assert_eq!(a.command, ["echo", "-n", "--json"]);
        assert!(!a.json);
        let a = parse(&["--json", "ls", "-l"]).unwrap();
        assert!(a.json);
        assert_eq!(a.command, ["ls", "-l"]);
        let req = request(parse(&["--env", "A=1=2", "true"]).unwrap(), false)
            .unwrap()
            .0;
        assert_eq!(req.env["A"], "1=2");
    }

    #[test]
    fn exactly_one_of_shell_and_command() {
        assert!(parse(&["--shell", "echo hi", "echo"]).is_err());
        assert!(parse(&["--queue", "q"]).is_err());
        let req = request(parse(&["--shell", "echo hi | wc"]).unwrap(), false)
            .unwrap()
            .0;
        assert_eq!(req.shell.as_deref(), Some("echo hi | wc"));
        assert_eq!(req.command, None);
    }

    #[test]
    fn flags_map_to_the_request() {
        let a = parse(&[
            "--priority",
            "-5",
            "--delay",
            "90s",
            "--timeout",
            "1m",
            "--retries",
            "2",
            "--after",
            "0192f1c4-8a6e-7c3b-9d1e-3f5a7b9c1d2e",
            "--label",
            "k=v",
            "--key",
            "once",
            "--name",
            "n",
            "true",
        ])
        .unwrap();
        let req = request(a, false).unwrap().0;
        assert_eq!(req.priority, Some(-5));
        assert_eq!(req.delay, Some(DurationArg(Duration::from_secs(90))));
        assert_eq!(req.timeout, Some(DurationArg(Duration::from_secs(60))));
        assert_eq!(req.retries, Some(2));
        assert_eq!(req.after.len(), 1);
        assert_eq!(req.labels["k"], "v");
        assert_eq!(req.idempotency_key.as_deref(), Some("once"));
        assert!(parse(&["--delay", "1s", "--at", "2030-01-02T15:04:05Z", "true"]).is_err());
        assert!(parse(&["--at", "tomorrow", "true"]).is_err());
        assert!(parse(&["--after", "nope", "true"]).is_err());
        assert!(parse(&["--env", "=v", "true"]).is_err());
        assert!(parse(&["--env", "", "true"]).is_err());
    }

    #[test]
    fn the_job_runs_here_and_env_names_are_copied_from_here() {
        let a = parse(&["--env", "PATH", "--env", "X=1", "true"]).unwrap();
        let req = request(a, true).unwrap().0;
        let here = std::env::current_dir().unwrap();
        assert_eq!(req.cwd.as_deref(), here.to_str());
        assert_eq!(req.env["PATH"], std::env::var("PATH").unwrap());
        assert_eq!(req.env["X"], "1");
        let a = parse(&["true"]).unwrap();
        assert_eq!(
            request(a, false).unwrap().0.cwd,
            None,
            "a remote daemon picks"
        );
        let a = parse(&["--env", "JOBQ_SURELY_UNSET_VAR", "true"]).unwrap();
        let err = request(a, true).unwrap_err().to_string();
        assert!(err.contains("is not set here"), "{err}");
        let a = parse(&["-E", "--env", "PATH=/x", "true"]).unwrap();
        let req = request(a, true).unwrap().0;
        assert_eq!(req.env["PATH"], "/x", "--env wins over --inherit-env");
        assert!(req.env.len() > 1, "{:?}", req.env.keys());
    }

    #[test]
    fn batch_replaces_the_program_and_the_per_job_options() {
        let a = parse(&["--batch", "jobs.jsonl", "--json"]).unwrap();
        assert_eq!(a.batch.as_deref(), Some(Path::new("jobs.jsonl")));
        assert!(parse(&["--batch", "-"]).is_ok());
        assert!(parse(&["--batch", "f", "echo", "hi"]).is_err());
        assert!(parse(&["--batch", "f", "--shell", "echo hi"]).is_err());
        for flag in PER_JOB {
            let value = match flag {
                "wait" => None,
                "env" | "label" => Some("k=v"),
                "priority" | "retries" => Some("1"),
                "delay" | "timeout" | "backoff" => Some("1s"),
                "at" => Some("2030-01-02T15:04:05Z"),
                "after" => Some("0192f1c4-8a6e-7c3b-9d1e-3f5a7b9c1d2e"),
                _ => Some("x"),
            };
            let flag = format!("--{flag}");
            let mut args = vec!["--batch", "f", flag.as_str()];
            args.extend(value);
            assert!(parse(&args).is_err(), "{args:?} should conflict");
        }
    }

    #[test]
    fn a_relative_cwd_is_made_absolute_here() {
        let req = request(parse(&["--cwd", "sub/dir", "true"]).unwrap(), true)
            .unwrap()
            .0;
        let expected = std::env::current_dir().unwrap().join("sub/dir");
        assert_eq!(req.cwd.as_deref(), expected.to_str());
    }

    #[test]
    fn small_text_goes_inline_and_the_rest_is_uploaded() {
        let head = |bytes: &[u8]| read_head(&mut &bytes[..]).unwrap();
        assert_eq!(head(b"h\xc3\xa9llo\n"), Head::Inline("héllo\n".into()));
        assert_eq!(head(b""), Head::Inline(String::new()));
        assert_eq!(head(b"ok\xff"), Head::Upload(b"ok\xff".to_vec()));
        // The limit is on the JSON string, quotes included. (`matches!`:
        // a failed comparison of half a megabyte is no help.)
        let text = vec![b'a'; INLINE_STDIN - 2];
        assert!(matches!(head(&text), Head::Inline(t) if t.len() == INLINE_STDIN - 2));
        let text = vec![b'a'; INLINE_STDIN - 1];
        assert!(matches!(head(&text), Head::Upload(b) if b == text));
        let large = vec![b'a'; INLINE_STDIN + 10];
        assert!(matches!(head(&large), Head::Upload(b) if b[..] == large[..=INLINE_STDIN]));
        // Small, but six times larger as JSON.
        let controls = vec![1u8; INLINE_STDIN / 2];
        assert!(matches!(head(&controls), Head::Upload(b) if b == controls));
    }

    #[test]
    fn an_unreadable_stdin_is_a_usage_error() {
        let dir = tempfile::tempdir().unwrap();
        let client = Client::new("http://127.0.0.1:9", None).unwrap();
        let missing = dir.path().join("missing");
        let args = parse(&["--stdin", missing.to_str().unwrap(), "cat"]).unwrap();
        let err = with_stdin(&client, request(args, false).unwrap()).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().starts_with("cannot read --stdin"), "{err}");
        let args = parse(&["--stdin", dir.path().to_str().unwrap(), "cat"]).unwrap();
        let err = with_stdin(&client, request(args, false).unwrap()).unwrap_err();
        assert!(err.to_string().contains("directory"), "{err}");
    }

    #[test]
    fn follow_conflicts_with_wait_and_json() {
        assert!(parse(&["--follow", "true"]).unwrap().follow);
        assert!(parse(&["-f", "--wait", "true"]).is_err());
        assert!(parse(&["-f", "--json", "true"]).is_err());
    }
}
