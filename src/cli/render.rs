//! How the client commands show jobs to people (tables, `key: value`
//! lines) and to scripts (the daemon's JSON, pretty-printed).
//!
//! Output is plain text with no colours: it reads the same in a terminal, a
//! pipe and a log file. Everything here writes to a caller-supplied writer
//! and returns its I/O error, so a closed stdout stops the command quietly
//! (see [`super::CliError::Stdout`]).

use std::io::{self, Write};

use comfy_table::{presets, CellAlignment, ContentArrangement, Table};
use jiff::Timestamp;

use crate::api::QueueView;
use crate::api::{AttemptView, JobEvent, JobList, JobView, QueueList};
use crate::job::StateName;

/// Widest the command column of `jobq list` gets, in characters: enough to
/// recognise a command, short enough that a row fits a terminal next to a
/// 36-character id.
pub const COMMAND_WIDTH: usize = 40;

/// The count columns of `jobq queues`, in life-cycle order; `running` has
/// its own column from the queue's live count.
const QUEUE_COUNTS: [StateName; 6] = [
    StateName::Waiting,
    StateName::Scheduled,
    StateName::Queued,
    StateName::Succeeded,
    StateName::Failed,
    StateName::Cancelled,
];

/// Writes `json` pretty-printed, then a newline.
pub fn json(out: &mut dyn Write, json: &serde_json::Value) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, json)?;
    writeln!(out)
}

/// One line of `jobq events`: `<at> <id> <queue> <state> attempt N`, then
/// `exit X` once the job ended. Milliseconds: several changes may come in
/// one second.
pub fn event_line(out: &mut dyn Write, event: &JobEvent) -> io::Result<()> {
    write!(
        out,
        "{} {} {} {} attempt {}",
        event.at.strftime("%Y-%m-%dT%H:%M:%S%.3fZ"),
        event.id,
        event.queue,
        event.state,
        event.attempt
    )?;
    if let Some(exit) = event.exit {
        write!(out, " exit {exit}")?;
    }
    writeln!(out)
}

/// The table of `jobq list`.
pub fn job_table(out: &mut dyn Write, list: &JobList, now: Timestamp) -> io::Result<()> {
    let header = [
        "ID",
        "STATE",
        "QUEUE",
        "ATTEMPT",
        "EXIT",
        "NAME/COMMAND",
        "CREATED",
    ];
    let mut table = plain_table(header.map(str::to_owned).into());
    for job in &list.jobs {
        table.add_row([
            job.id.clone(),
            job.state.to_string(),
            job.queue.clone(),
            job.attempt.to_string(),
            outcome(job),
            truncate(&label(job), COMMAND_WIDTH),
            age(job.created_at, now),
        ]);
    }
    writeln!(out, "{}", finish(table, &[3, 4]).trim_fmt())
}

/// The table of `jobq queues`: limits, pause flags and job counts.
pub fn queue_table(out: &mut dyn Write, list: &QueueList) -> io::Result<()> {
    let mut header: Vec<String> = ["NAME", "CONCURRENCY", "PAUSED", "RUNNING"]
        .map(str::to_owned)
        .into();
    header.extend(QUEUE_COUNTS.iter().map(|s| s.as_str().to_ascii_uppercase()));
    let mut table = plain_table(header);
    for queue in &list.queues {
        let mut row = vec![
            queue.name.clone(),
            limit(queue.concurrency),
            if queue.paused { "yes" } else { "no" }.to_owned(),
            queue.running.to_string(),
        ];
        row.extend(QUEUE_COUNTS.iter().map(|s| count(queue, *s).to_string()));
        table.add_row(row);
    }
    let numbers: Vec<usize> = [1].into_iter().chain(3..4 + QUEUE_COUNTS.len()).collect();
    writeln!(out, "{}", finish(table, &numbers).trim_fmt())
}

/// One queue in one line, as `jobq queue pause|resume|set` print it:
/// `batch: paused, concurrency 4, 2 running, 10 queued, 0 scheduled, 1 waiting`.
pub fn queue_line(out: &mut dyn Write, queue: &QueueView) -> io::Result<()> {
    let state = if queue.paused { "paused" } else { "active" };
    let concurrency = match queue.concurrency {
        Some(n) => format!("concurrency {n}"),
        None => "concurrency - (only the daemon's workers limit it)".to_owned(),
    };
    writeln!(
        out,
        "{}: {state}, {concurrency}, {} running, {} queued, {} scheduled, {} waiting",
        queue.name,
        queue.running,
        count(queue, StateName::Queued),
        count(queue, StateName::Scheduled),
        count(queue, StateName::Waiting),
    )
}

/// A queue's count of jobs in `state`; 0 when the daemon left it out.
fn count(queue: &QueueView, state: StateName) -> u64 {
    queue.counts.get(&state).copied().unwrap_or(0)
}

/// A concurrency limit, `-` for none of the queue's own.
fn limit(concurrency: Option<usize>) -> String {
    concurrency.map_or_else(|| "-".to_owned(), |n| n.to_string())
}

/// A borderless table with `header`; rows go in before [`finish`].
fn plain_table(header: Vec<String>) -> Table {
    let mut table = Table::new();
    table
        .load_preset(presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(header);
    table
}

/// Right-aligns the `numbers` columns and sets two spaces between columns
/// and none outside (the preset's padding would indent every line).
fn finish(mut table: Table, numbers: &[usize]) -> Table {
    for &column in numbers {
        if let Some(c) = table.column_mut(column) {
            c.set_cell_alignment(CellAlignment::Right);
        }
    }
    for column in table.column_iter_mut() {
        column.set_padding((0, 2));
    }
    table
}

/// The `key: value` lines of `jobq show`; absent fields are left out.
pub fn job_details(out: &mut dyn Write, job: &JobView, now: Timestamp) -> io::Result<()> {
    let mut lines: Vec<(&str, String)> = vec![("id", job.id.clone())];
    if let Some(name) = &job.name {
        lines.push(("name", name.clone()));
    }
    let state = match (job.state, job.reason) {
        (StateName::Failed, Some(reason)) => format!("failed ({})", snake(&reason)),
        (state, _) => state.to_string(),
    };
    lines.push(("state", state));
    // What a job that has not started waits for, next to its state.
    if let Some(at) = job.run_at {
        lines.push(("run at", time(at, now)));
    }
    if !job.after.is_empty() {
        lines.push(("after", job.after.join(" ")));
    }
    if let Some(argv) = &job.command {
        lines.push(("command", shell_words(argv)));
    }
    if let Some(line) = &job.shell {
        lines.push(("shell", line.clone()));
    }
    lines.push(("queue", job.queue.clone()));
    lines.push(("owner", job.owner.clone()));
    if let (Some(user), Some(uid)) = (&job.user, job.uid) {
        lines.push(("user", format!("{user} (uid {uid})")));
    }
    lines.push(("priority", job.priority.to_string()));
    lines.push((
        "attempt",
        format!("{} of {}", job.attempt, job.retries.saturating_add(1)),
    ));
    if let Some(cwd) = &job.cwd {
        lines.push(("cwd", cwd.clone()));
    }
    if !job.env.is_empty() {
        // Names only: values are often secrets, and `--json` has them.
        let names: Vec<&str> = job.env.keys().map(String::as_str).collect();
        lines.push(("env", names.join(" ")));
    }
    if let Some(n) = job.stdin_bytes {
        lines.push(("stdin", format!("{n} bytes")));
    }
    if let Some(t) = job.timeout {
        lines.push(("timeout", humantime::format_duration(t.0).to_string()));
    }
    if job.retries > 0 {
        lines.push(("retries", job.retries.to_string()));
        lines.push((
            "backoff",
            humantime::format_duration(job.backoff.0).to_string(),
        ));
    }
    if let Some(key) = &job.idempotency_key {
        lines.push(("key", key.clone()));
    }
    if !job.labels.is_empty() {
        let labels: Vec<String> = job.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        lines.push(("labels", labels.join(" ")));
    }
    lines.push(("created", time(job.created_at, now)));
    if let Some(t) = job.started_at {
        lines.push(("started", time(t, now)));
    }
    if let Some(t) = job.finished_at {
        lines.push(("finished", time(t, now)));
    }
    if let Some(pid) = job.pid {
        lines.push(("pid", pid.to_string()));
    }
    if let Some(code) = job.exit_code {
        lines.push(("exit code", code.to_string()));
    }
    if let Some(signal) = &job.signal {
        lines.push(("signal", signal.clone()));
    }
    if let Some(error) = &job.error {
        lines.push(("error", error.clone()));
    }
    if job.output_truncated {
        lines.push((
            "output",
            "truncated: the job wrote more than the daemon keeps".to_owned(),
        ));
    }
    let width = lines.iter().map(|(k, _)| k.len()).max().unwrap_or(0) + 1;
    for (key, value) in lines {
        writeln!(out, "{:<width$} {}", format!("{key}:"), one_line(&value))?;
    }
    if !job.attempts.is_empty() {
        writeln!(out, "attempts:")?;
        attempt_table(out, &job.attempts)?;
    }
    Ok(())
}

/// The ended attempts under `attempts:` in `jobq show`, one line each,
/// indented by two spaces.
fn attempt_table(out: &mut dyn Write, attempts: &[AttemptView]) -> io::Result<()> {
    let header = ["#", "STARTED", "ENDED", "EXIT", "RESULT", "ERROR"];
    let mut table = plain_table(header.map(str::to_owned).into());
    for a in attempts {
        table.add_row([
            a.attempt.to_string(),
            a.started_at.map_or_else(|| "-".to_owned(), utc),
            utc(a.finished_at),
            match (a.exit_code, &a.signal) {
                (Some(code), _) => code.to_string(),
                (None, Some(signal)) => signal.clone(),
                (None, None) => "-".to_owned(),
            },
            attempt_result(a),
            a.error.as_deref().map(one_line).unwrap_or_default(),
        ]);
    }
    for line in finish(table, &[0, 3]).trim_fmt().lines() {
        writeln!(out, "  {line}")?;
    }
    Ok(())
}

/// How one attempt ended: `succeeded`, `cancelled` or `failed (REASON)`.
fn attempt_result(a: &AttemptView) -> String {
    match (a.cancelled, a.reason) {
        (true, _) => "cancelled".to_owned(),
        (false, Some(reason)) => format!("failed ({})", snake(&reason)),
        (false, None) => "succeeded".to_owned(),
    }
}

/// How a job ended, in one short word for the EXIT column: the exit code,
/// the signal, or why it failed; empty while it has not ended.
pub fn outcome(job: &JobView) -> String {
    use crate::job::FailReason;
    if !job.is_terminal() {
        return String::new();
    }
    if job.reason == Some(FailReason::Timeout) {
        return "timeout".to_owned();
    }
    if let Some(code) = job.exit_code {
        return code.to_string();
    }
    if let Some(signal) = &job.signal {
        return signal.clone();
    }
    match job.reason {
        Some(reason) => snake(&reason),
        None => "-".to_owned(),
    }
}

/// What a person recognises a job by: its name, else its command.
fn label(job: &JobView) -> String {
    if let Some(name) = &job.name {
        return name.clone();
    }
    match (&job.command, &job.shell) {
        (Some(argv), _) => shell_words(argv),
        (None, Some(line)) => line.clone(),
        (None, None) => String::new(),
    }
}

/// An argv as a shell would need it typed, quoting words that need it.
pub fn shell_words(argv: &[String]) -> String {
    let quote = |w: &String| {
        let plain = !w.is_empty()
            && w.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_./:=@%+,".contains(&b));
        if plain {
            w.clone()
        } else {
            format!("'{}'", w.replace('\'', r"'\''"))
        }
    };
    argv.iter().map(quote).collect::<Vec<_>>().join(" ")
}

/// At most `max` characters of `s` on one line, ending in `…` when cut.
pub fn truncate(s: &str, max: usize) -> String {
    let s = one_line(s);
    if s.chars().count() <= max {
        return s;
    }
    let mut cut: String = s.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// Control characters (newlines in a shell script, say) as spaces, so one
/// value stays on one line.
fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// `2025-01-02T15:04:05Z (3m ago)`: whole seconds, UTC as the API gives it.
fn time(t: Timestamp, now: Timestamp) -> String {
    let ago = if t > now {
        format!("in {}", span(t.duration_since(now)))
    } else {
        format!("{} ago", span(now.duration_since(t)))
    };
    format!("{} ({ago})", utc(t))
}

/// `2025-01-02T15:04:05Z`: whole seconds, UTC as the API gives it.
fn utc(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// `3m ago`, for a table column.
pub fn age(t: Timestamp, now: Timestamp) -> String {
    if t > now {
        return "just now".to_owned();
    }
    format!("{} ago", span(now.duration_since(t)))
}

/// A duration in its largest whole unit: `45s`, `12m`, `5h`, `3d`.
fn span(d: jiff::SignedDuration) -> String {
    let secs = d.as_secs().max(0);
    match secs {
        0..=59 => format!("{secs}s"),
        60..=3599 => format!("{}m", secs / 60),
        3600..=86_399 => format!("{}h", secs / 3600),
        _ => format!("{}d", secs / 86_400),
    }
}

/// A serde enum's wire name (`FailReason::Dependency` → `dependency`).
fn snake<T: serde::Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(json: &str) -> JobView {
        let mut base = serde_json::json!({
            "id": "0192f1c4-8a6e-7c3b-9d1e-3f5a7b9c1d2e", "name": null,
            "command": ["echo", "hello world"], "env": {"SECRET": "hunter2"},
            "cwd": null, "stdin_bytes": null, "queue": "default", "priority": 0,
            "run_at": null, "timeout": null, "retries": 0, "backoff": "1s",
            "after": [], "idempotency_key": null, "labels": {}, "state": "failed",
            "attempt": 1, "created_at": "2025-01-02T15:04:05Z", "started_at": null,
            "finished_at": null, "exit_code": 3, "signal": null, "reason": "exit",
            "error": null, "pid": null, "output_truncated": false
        });
        let extra: serde_json::Value = serde_json::from_str(json).unwrap();
        for (k, v) in extra.as_object().unwrap() {
            base[k] = v.clone();
        }
        serde_json::from_value(base).unwrap()
    }

    fn now() -> Timestamp {
        "2025-01-02T15:07:05Z".parse().unwrap()
    }

    #[test]
    fn an_event_is_one_line() {
        let event: JobEvent = serde_json::from_str(
            r#"{"id":"0192f1c4-8a6e-7c3b-9d1e-3f5a7b9c1d2e","state":"failed","queue":"q",
                "attempt":2,"at":"2025-01-02T03:04:05.5Z","exit_code":3,"signal":null,
                "reason":"exit","exit":3}"#,
        )
        .unwrap();
        let mut out = Vec::new();
        event_line(&mut out, &event).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "2025-01-02T03:04:05.500Z 0192f1c4-8a6e-7c3b-9d1e-3f5a7b9c1d2e q failed attempt 2 exit 3\n"
        );
    }

    #[test]
    fn the_table_has_no_leading_or_trailing_spaces() {
        let list = JobList {
            jobs: vec![job("{}"), job(r#"{"state":"running","name":"nightly"}"#)],
            next_cursor: None,
        };
        let mut out = Vec::new();
        job_table(&mut out, &list, now()).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(lines[0].starts_with("ID "), "{text}");
        assert!(lines[1].contains("echo 'hello world'"), "{text}");
        assert!(lines[1].contains("3m ago"), "{text}");
        assert!(lines[2].contains("nightly"), "{text}");
        assert!(lines.iter().all(|l| l.trim() == *l), "{text:?}");
    }

    #[test]
    fn details_hide_env_values() {
        let mut out = Vec::new();
        job_details(&mut out, &job("{}"), now()).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("state:"), "{text}");
        assert!(text.contains("failed (exit)"), "{text}");
        assert!(text.contains("SECRET"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
    }

    #[test]
    fn outcomes_name_the_cause() {
        assert_eq!(outcome(&job("{}")), "3");
        assert_eq!(
            outcome(&job(
                r#"{"reason":"timeout","exit_code":null,"signal":"SIGKILL"}"#
            )),
            "timeout"
        );
        assert_eq!(
            outcome(&job(
                r#"{"reason":"signal","exit_code":null,"signal":"SIGKILL"}"#
            )),
            "SIGKILL"
        );
        assert_eq!(
            outcome(&job(r#"{"reason":"dependency","exit_code":null}"#)),
            "dependency"
        );
        assert_eq!(outcome(&job(r#"{"state":"running","exit_code":null}"#)), "");
    }

    #[test]
    fn truncation_counts_characters_not_bytes() {
        assert_eq!(truncate("héllo wörld", 6), "héllo…");
        assert_eq!(truncate("a\nb", 10), "a b");
        assert_eq!(truncate("short", 10), "short");
    }
}
