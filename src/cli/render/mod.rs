//! How the client commands show jobs to people (tables, `key: value`
//! lines) and to scripts (the daemon's JSON, pretty-printed).
//!
//! Output is plain text with no colours: it reads the same in a terminal, a
//! pipe and a log file. Everything here writes to a caller-supplied writer
//! and returns its I/O error, so a closed stdout stops the command quietly
//! (see [`super::CliError::Stdout`]). Jobs are drawn in `jobs.rs`, queues in
//! `queues.rs`, schedules in `schedules.rs`; this file holds what they share.

mod jobs;
mod queues;
mod schedules;

use std::io::{self, Write};

use comfy_table::{presets, CellAlignment, ContentArrangement, Table};
use jiff::Timestamp;

use crate::api::JobEvent;

pub use jobs::{job_details, job_table, TableView};
pub use queues::{queue_line, queue_table};
pub use schedules::{schedule_details, schedule_line, schedule_table};

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

/// A borderless table with `header`; rows go in before [`finish`].
pub(super) fn plain_table(header: Vec<String>) -> Table {
    let mut table = Table::new();
    table
        .load_preset(presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(header);
    table
}

/// Right-aligns the `numbers` columns and sets two spaces between columns
/// and none outside (the preset's padding would indent every line).
pub(super) fn finish(mut table: Table, numbers: &[usize]) -> Table {
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

/// An argv as a shell would need it typed, quoting words that need it.
pub(super) fn shell_words(argv: &[String]) -> String {
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
pub(super) fn truncate(s: &str, max: usize) -> String {
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
pub(super) fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// `2025-01-02T15:04:05Z (3m ago)`: whole seconds, UTC as the API gives it.
pub(super) fn time(t: Timestamp, now: Timestamp) -> String {
    let ago = if t > now {
        format!("in {}", span(t.duration_since(now)))
    } else {
        format!("{} ago", span(now.duration_since(t)))
    };
    format!("{} ({ago})", utc(t))
}

/// `2025-01-02T15:04:05Z`: whole seconds, UTC as the API gives it.
pub(super) fn utc(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// `1 job`, `3 jobs`.
pub fn jobs(n: u64) -> String {
    if n == 1 {
        "1 job".to_owned()
    } else {
        format!("{n} jobs")
    }
}

/// A duration in its largest whole unit: `45s`, `12m`, `5h`, `3d`.
pub(super) fn span(d: jiff::SignedDuration) -> String {
    let secs = d.as_secs().max(0);
    match secs {
        0..=59 => format!("{secs}s"),
        60..=3599 => format!("{}m", secs / 60),
        3600..=86_399 => format!("{}h", secs / 3600),
        _ => format!("{}d", secs / 86_400),
    }
}

/// A serde enum's wire name (`FailReason::Dependency` → `dependency`).
pub(super) fn snake<T: serde::Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn truncation_counts_characters_not_bytes() {
        assert_eq!(truncate("héllo wörld", 6), "héllo…");
        assert_eq!(truncate("a\nb", 10), "a b");
        assert_eq!(truncate("short", 10), "short");
    }
}
