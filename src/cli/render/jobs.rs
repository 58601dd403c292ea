//! Jobs for people: the table of `jobq list` and the `key: value` lines of
//! `jobq show`.

use std::io::{self, Write};

use jiff::Timestamp;

use super::{finish, one_line, plain_table, shell_words, snake, span, time, truncate, utc};
use crate::api::{AttemptView, JobList, JobView};
use crate::job::StateName;

/// Narrowest the NAME/COMMAND column is cut to, however narrow the
/// terminal: below this a command is not recognisable anyway.
const MIN_LABEL: usize = 12;

/// How `jobq list` lays its table out.
#[derive(Clone, Copy, Debug)]
pub struct TableView {
    /// The terminal's columns, to which the NAME/COMMAND column is cut;
    /// `None` (output to a pipe or file) cuts nothing.
    pub width: Option<usize>,
    /// Also the ID and OWNER columns (`--wide`).
    pub wide: bool,
}

/// The table of `jobq list`: one row per job, NAME/COMMAND last so it can
/// take the rest of the line. `header` is false for the pages after the
/// first of `--all`, so the table reads as one.
pub fn job_table(
    out: &mut dyn Write,
    list: &JobList,
    now: Timestamp,
    view: TableView,
    header: bool,
) -> io::Result<()> {
    let mut head = vec!["#"];
    if view.wide {
        head.extend(["ID", "OWNER"]);
    }
    head.extend(["STATE", "QUEUE", "ATTEMPT", "EXIT", "WHEN", "NAME/COMMAND"]);
    let rows: Vec<Vec<String>> = list
        .jobs
        .iter()
        .map(|job| {
            let mut row = vec![job.number.to_string()];
            if view.wide {
                row.extend([job.id.clone(), job.owner.clone()]);
            }
            row.extend([
                job.state.to_string(),
                job.queue.clone(),
                attempt(job),
                outcome(job),
                when(job, now),
                one_line(&label(job)),
            ]);
            row
        })
        .collect();
    let rows = fit_last_column(&head, rows, view.width);
    let mut table = plain_table(head.iter().map(|h| (*h).to_owned()).collect());
    for row in rows {
        table.add_row(row);
    }
    let attempt_column = head.len() - 4;
    // The number stays left-aligned: a line never starts with spaces.
    let text = finish(table, &[attempt_column, attempt_column + 1]).trim_fmt();
    let mut lines = text.lines();
    if !header {
        lines.next();
    }
    for line in lines {
        writeln!(out, "{line}")?;
    }
    Ok(())
}

/// Cuts the last cell of each row so the table fits `width` columns (two
/// spaces between columns, as [`finish`] lays them out).
fn fit_last_column(
    head: &[&str],
    mut rows: Vec<Vec<String>>,
    width: Option<usize>,
) -> Vec<Vec<String>> {
    let Some(width) = width else { return rows };
    let last = head.len() - 1;
    let before: usize = (0..last)
        .map(|c| {
            let cells = rows.iter().map(|r| r[c].chars().count());
            cells.chain([head[c].len()]).max().unwrap_or(0) + 2
        })
        .sum();
    let room = width.saturating_sub(before).max(MIN_LABEL);
    for row in &mut rows {
        row[last] = truncate(&row[last], room);
    }
    rows
}

/// The ATTEMPT column: `2/4` for a job with retries (attempt 2 of at most
/// 4), else just the attempt (a job retried by hand may go past its
/// retries).
fn attempt(job: &JobView) -> String {
    let most = job.retries.saturating_add(1);
    if job.retries > 0 && job.attempt <= most {
        format!("{}/{most}", job.attempt)
    } else {
        job.attempt.to_string()
    }
}

/// The WHEN column: the moment that matters in the job's state.
fn when(job: &JobView, now: Timestamp) -> String {
    let ago = |t: Timestamp| format!("{} ago", span(now.duration_since(t)));
    match job.state {
        StateName::Scheduled => match job.run_at {
            Some(at) if at > now => format!("runs in {}", span(at.duration_since(now))),
            _ => "due now".to_owned(),
        },
        StateName::Running => match job.started_at {
            Some(t) => format!("started {}", ago(t)),
            None => "starting".to_owned(),
        },
        state if state.is_terminal() => match job.finished_at {
            Some(t) => format!("ended {}", ago(t)),
            None => format!("added {}", ago(job.created_at)),
        },
        _ => format!("added {}", ago(job.created_at)),
    }
}

/// The `key: value` lines of `jobq show`; absent fields are left out.
pub fn job_details(out: &mut dyn Write, job: &JobView, now: Timestamp) -> io::Result<()> {
    let mut lines: Vec<(&str, String)> = vec![("id", job.id.clone())];
    if job.number > 0 {
        lines.push(("number", job.number.to_string()));
    }
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
    if let Some(limits) = &job.limits {
        lines.push(("limits", limits_line(limits)));
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
    if let Some(usage) = &job.usage {
        lines.push(("usage", usage_line(usage)));
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
    let header = [
        "#", "STARTED", "ENDED", "EXIT", "RESULT", "CPU", "MAX RSS", "ERROR",
    ];
    let mut table = plain_table(header.map(str::to_owned).into());
    for a in attempts {
        let (cpu, rss) = match &a.usage {
            Some(u) => (
                format!("{:.2}s", u.cpu_user_s + u.cpu_system_s),
                bytesize::ByteSize::b(u.max_rss_bytes)
                    .display()
                    .iec()
                    .to_string(),
            ),
            None => ("-".to_owned(), "-".to_owned()),
        };
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
            cpu,
            rss,
            a.error.as_deref().map(one_line).unwrap_or_default(),
        ]);
    }
    for line in finish(table, &[0, 3, 5, 6]).trim_fmt().lines() {
        writeln!(out, "  {line}")?;
    }
    Ok(())
}

/// A job's limits on one line: `memory 512.0 MiB, cpu_time 1m, …`.
fn limits_line(limits: &crate::resources::LimitsArg) -> String {
    let mut parts = Vec::new();
    if let Some(m) = limits.memory {
        parts.push(format!(
            "memory {}",
            bytesize::ByteSize::b(m.0).display().iec()
        ));
    }
    if let Some(t) = limits.cpu_time {
        parts.push(format!("cpu_time {}", humantime::format_duration(t.0)));
    }
    if let Some(n) = limits.processes {
        parts.push(format!("processes {n}"));
    }
    if let Some(n) = limits.open_files {
        parts.push(format!("open_files {n}"));
    }
    parts.join(", ")
}

/// What an attempt used, on one line: CPU user and system, peak memory.
fn usage_line(u: &crate::resources::Usage) -> String {
    format!(
        "cpu {:.2}s user, {:.2}s system; max rss {}",
        u.cpu_user_s,
        u.cpu_system_s,
        bytesize::ByteSize::b(u.max_rss_bytes).display().iec()
    )
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
pub(super) fn outcome(job: &JobView) -> String {
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

    fn table(jobs: Vec<JobView>, view: TableView) -> String {
        let list = JobList {
            jobs,
            next_cursor: None,
        };
        let mut out = Vec::new();
        job_table(&mut out, &list, now(), view, true).unwrap();
        String::from_utf8(out).unwrap()
    }

    const NARROW: TableView = TableView {
        width: None,
        wide: false,
    };

    #[test]
    fn the_table_has_no_leading_or_trailing_spaces() {
        let text = table(
            vec![
                job(r#"{"number":7,"finished_at":"2025-01-02T15:04:05Z"}"#),
                job(
                    r#"{"number":8,"state":"running","name":"nightly","exit_code":null,
                        "started_at":"2025-01-02T15:07:02Z"}"#,
                ),
            ],
            NARROW,
        );
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(lines[0].starts_with("# "), "{text}");
        assert!(!lines[0].contains("ID"), "{text}");
        assert!(lines[1].starts_with("7 "), "{text}");
        assert!(lines[1].ends_with("echo 'hello world'"), "{text}");
        assert!(lines[1].contains("ended 3m ago"), "{text}");
        assert!(lines[2].contains("started 3s ago"), "{text}");
        assert!(lines[2].ends_with("nightly"), "{text}");
        assert!(lines.iter().all(|l| l.trim() == *l), "{text:?}");
    }

    #[test]
    fn wide_adds_id_and_owner() {
        let view = TableView {
            width: None,
            wide: true,
        };
        let text = table(vec![job(r#"{"owner":"unix:alice"}"#)], view);
        assert!(text.lines().next().unwrap().contains("ID"), "{text}");
        assert!(
            text.contains("0192f1c4-8a6e-7c3b-9d1e-3f5a7b9c1d2e"),
            "{text}"
        );
        assert!(text.contains("unix:alice"), "{text}");
    }

    #[test]
    fn the_command_is_cut_to_the_terminal_only() {
        let long = format!(r#"{{"command":["echo","{}"]}}"#, "x".repeat(200));
        let cut = table(
            vec![job(&long)],
            TableView {
                width: Some(80),
                wide: false,
            },
        );
        assert!(cut.lines().all(|l| l.chars().count() <= 80), "{cut}");
        assert!(cut.contains('…'), "{cut}");
        let whole = table(vec![job(&long)], NARROW);
        assert!(whole.contains(&"x".repeat(200)), "{whole}");
    }

    #[test]
    fn attempts_count_against_retries() {
        assert_eq!(attempt(&job("{}")), "1");
        assert_eq!(attempt(&job(r#"{"retries":3,"attempt":2}"#)), "2/4");
        assert_eq!(attempt(&job(r#"{"retries":1,"attempt":3}"#)), "3");
    }

    #[test]
    fn when_follows_the_state() {
        let scheduled = job(r#"{"state":"scheduled","run_at":"2025-01-02T15:11:05Z"}"#);
        assert_eq!(when(&scheduled, now()), "runs in 4m");
        let queued = job(r#"{"state":"queued","created_at":"2025-01-02T15:07:03Z"}"#);
        assert_eq!(when(&queued, now()), "added 2s ago");
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
}
