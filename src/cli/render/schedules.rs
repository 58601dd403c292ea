//! `jobq schedule list`, `show`, and the one line of `add`, `pause` and
//! `resume`. Fire times are shown in this machine's local time zone (the
//! `TZ` variable, else the system's) and relative to now: "in 3h".

use std::io::{self, Write};

use jiff::tz::TimeZone;
use jiff::Timestamp;

use super::{finish, plain_table, shell_words, snake, span, truncate};
use crate::api::{ScheduleList, ScheduleView};

/// `2026-12-02 20:00:00 CET (in 3h)`: local time, then relative.
fn local(t: Timestamp, now: Timestamp) -> String {
    let zone = TimeZone::try_system().unwrap_or(TimeZone::UTC);
    let relative = if t > now {
        format!("in {}", span(t.duration_since(now)))
    } else {
        format!("{} ago", span(now.duration_since(t)))
    };
    format!(
        "{} ({relative})",
        t.to_zoned(zone).strftime("%Y-%m-%d %H:%M:%S %Z")
    )
}

/// The next fire, or why there is none.
fn next(s: &ScheduleView, now: Timestamp) -> String {
    match (s.paused, s.next_run_at) {
        (true, _) => "paused".to_owned(),
        (false, Some(t)) => local(t, now),
        (false, None) => "never".to_owned(),
    }
}

/// The last job: `#12 succeeded`, `-` for none yet.
fn last_job(s: &ScheduleView) -> String {
    match (s.last_job_number, s.last_job_state, &s.last_job) {
        (Some(n), Some(state), _) => format!("#{n} {state}"),
        (_, _, Some(_)) => "removed".to_owned(),
        _ => "-".to_owned(),
    }
}

/// What a schedule runs, on one line.
fn program(s: &ScheduleView) -> String {
    match (&s.job.command, &s.job.shell) {
        (Some(argv), _) => shell_words(argv),
        (None, Some(line)) => line.clone(),
        (None, None) => String::new(),
    }
}

/// The table of `jobq schedule list`.
pub fn schedule_table(out: &mut dyn Write, list: &ScheduleList, now: Timestamp) -> io::Result<()> {
    let header = ["NAME", "CRON", "TIMEZONE", "NEXT", "LAST JOB", "COMMAND"]
        .map(str::to_owned)
        .into();
    let mut table = plain_table(header);
    for s in &list.schedules {
        table.add_row(vec![
            s.name.clone(),
            s.cron.clone(),
            s.timezone.clone(),
            next(s, now),
            last_job(s),
            truncate(&program(s), 40),
        ]);
    }
    writeln!(out, "{}", finish(table, &[]).trim_fmt())
}

/// One schedule in one line: `tick: next 2026-12-02 20:00:00 CET (in 3h)`.
pub fn schedule_line(out: &mut dyn Write, s: &ScheduleView, now: Timestamp) -> io::Result<()> {
    match (s.paused, s.next_run_at) {
        (true, _) => writeln!(out, "{}: paused", s.name),
        (false, Some(t)) => writeln!(out, "{}: next fire {}", s.name, local(t, now)),
        (false, None) => writeln!(out, "{}: no fire ahead", s.name),
    }
}

/// `jobq schedule show`: one `key: value` line per field.
pub fn schedule_details(out: &mut dyn Write, s: &ScheduleView, now: Timestamp) -> io::Result<()> {
    let mut line = |key: &str, value: String| writeln!(out, "{key:<10} {value}");
    line("name:", s.name.clone())?;
    line("cron:", format!("{} ({})", s.cron, s.timezone))?;
    line("next:", next(s, now))?;
    line(
        "last fire:",
        s.last_run_at
            .map_or_else(|| "-".to_owned(), |t| local(t, now)),
    )?;
    line("last job:", last_job(s))?;
    line("overlap:", snake(&s.overlap))?;
    line("missed:", snake(&s.missed))?;
    line("skipped:", s.skipped.to_string())?;
    if let Some(error) = &s.last_error {
        line("error:", error.clone())?;
    }
    line("owner:", format!("{} (runs as {})", s.owner, s.user))?;
    line(
        "queue:",
        s.job.queue.clone().unwrap_or_else(|| "default".to_owned()),
    )?;
    line("command:", program(s))
}
