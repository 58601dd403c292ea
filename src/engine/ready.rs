//! The in-memory ready queues: which queued job runs next.
//!
//! Mirrors the store's ready index, but holds only jobs whose submission is
//! already durable: a job enters here after its flush, so no process starts
//! for a job the store could still lose. Per queue, a B-tree ordered by
//! (priority descending, submission order), so taking the next job is
//! O(log n) in queued jobs plus O(queues) to compare the queues' heads.

use std::cmp::Reverse;
use std::collections::BTreeMap;
use std::time::Instant;

use crate::job::JobId;

/// A queued job's place in line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Place {
    /// Higher priority first.
    priority: Reverse<i32>,
    /// Then submission order.
    seq: u64,
    /// The job.
    id: JobId,
}

/// Queued jobs of every queue, and how many run per queue.
#[derive(Debug, Default)]
pub struct ReadyQueues {
    /// Queue name → its jobs in line, each with when it joined (for
    /// `jobq_queue_wait_seconds`). Empty queues are removed.
    lines: BTreeMap<String, BTreeMap<Place, Instant>>,
}

impl ReadyQueues {
    /// Puts a job in line.
    pub fn push(&mut self, queue: &str, priority: i32, seq: u64, id: JobId) {
        let place = Place {
            priority: Reverse(priority),
            seq,
            id,
        };
        let line = match self.lines.get_mut(queue) {
            Some(line) => line,
            None => self.lines.entry(queue.to_owned()).or_default(),
        };
        line.entry(place).or_insert_with(Instant::now);
    }

    /// Takes a job out of line (cancelled before it started). True if it was
    /// there.
    pub fn remove(&mut self, queue: &str, priority: i32, seq: u64, id: JobId) -> bool {
        let place = Place {
            priority: Reverse(priority),
            seq,
            id,
        };
        let Some(line) = self.lines.get_mut(queue) else {
            return false;
        };
        let removed = line.remove(&place).is_some();
        if line.is_empty() {
            self.lines.remove(queue);
        }
        removed
    }

    /// Takes the best job of all queues that `may_run` allows: highest
    /// priority, then oldest submission. Answers its queue, its id and
    /// when it joined the line.
    pub fn pop(
        &mut self,
        mut may_run: impl FnMut(&str) -> bool,
    ) -> Option<(String, JobId, Instant)> {
        let (queue, _) = self
            .lines
            .iter()
            .filter(|(name, _)| may_run(name))
            .filter_map(|(name, line)| line.first_key_value().map(|(head, _)| (name, *head)))
            .min_by_key(|(_, head)| *head)?;
        let queue = queue.clone();
        let line = self.lines.get_mut(&queue)?;
        let (place, since) = line.pop_first()?;
        if line.is_empty() {
            self.lines.remove(&queue);
        }
        Some((queue, place.id, since))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn best_head_across_queues_wins() {
        let mut q = ReadyQueues::default();
        let ids: Vec<JobId> = (0..4).map(|_| JobId::new()).collect();
        q.push("a", 0, 1, ids[0]);
        q.push("b", 5, 2, ids[1]);
        q.push("a", 5, 3, ids[2]);
        q.push("b", 0, 0, ids[3]);
        assert_eq!(q.pop(|_| true).unwrap().1, ids[1]);
        assert_eq!(q.pop(|_| true).unwrap().1, ids[2]);
        assert_eq!(q.pop(|name| name == "a").unwrap().1, ids[0]);
        assert_eq!(q.pop(|_| true).unwrap().1, ids[3]);
        assert!(q.pop(|_| true).is_none());
    }
}
