//! `jobq queues` and the one-line answer of `jobq queue pause|resume|set`.

use std::io::{self, Write};

use super::{finish, plain_table};
use crate::api::{QueueList, QueueView};
use crate::job::StateName;

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
