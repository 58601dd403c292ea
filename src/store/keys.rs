//! Order-preserving key encodings: byte order of a key is the order jobq
//! wants to walk them in, so sled's sorted iteration does the sorting.

use crate::job::JobId;

/// Prefix of job records: `j` + id. Ids are UUIDv7, so keys sort by age.
pub const JOB: u8 = b'j';
/// Prefix of the ready index: `r` + queue + 0 + priority + seq → id.
pub const READY: u8 = b'r';
/// Prefix of the running index: `n` + id → process group id.
pub const RUNNING: u8 = b'n';
/// Prefix of a job's stdin bytes: `i` + id.
pub const STDIN: u8 = b'i';
/// Prefix of the upload a job's stdin is: `I` + job id → upload id (its
/// file is `stdin/<upload id>`).
pub const STDIN_FILE: u8 = b'I';
/// Prefix of stdin uploads not yet claimed: `u` + upload id → length.
pub const UPLOAD: u8 = b'u';
/// Prefix of store metadata: `m` + name.
pub const META: u8 = b'm';
/// Prefix of the timer index: `s` + time + id (scheduled jobs).
pub const SCHEDULED: u8 = b's';
/// Prefix of the retention index: `f` + finished time + id (terminal jobs).
pub const FINISHED: u8 = b'f';
/// Prefix of dependency edges: `w` + awaited job + waiting job.
pub const DEPENDENT: u8 = b'w';
/// Prefix of idempotency keys: `k` + key → id.
pub const IDEMPOTENCY: u8 = b'k';
/// Prefix of per-queue, per-state job counts: `c` + queue + 0 + state.
pub const COUNT: u8 = b'c';
/// Prefix of queue settings: `q` + queue name → JSON.
pub const QUEUE: u8 = b'q';
/// Prefix of schedules: `S` + name → JSON.
pub const SCHEDULE: u8 = b'S';
/// Prefix of the number index: `#` + number ([`Job::number`]) → id.
///
/// [`Job::number`]: crate::job::Job::number
pub const NUMBER: u8 = b'#';

/// `#` + number: a job's entry in the number index.
pub fn number(number: u64) -> [u8; 9] {
    let mut key = [0u8; 9];
    key[0] = NUMBER;
    key[1..].copy_from_slice(&number.to_be_bytes());
    key
}

/// A time as 8 bytes whose order is time order (milliseconds since the
/// epoch, sign bit flipped).
pub fn time_bytes(at: jiff::Timestamp) -> [u8; 8] {
    ((at.as_millisecond() as u64) ^ (1 << 63)).to_be_bytes()
}

/// Inverse of [`time_bytes`].
pub fn time_from(bytes: [u8; 8]) -> Option<jiff::Timestamp> {
    jiff::Timestamp::from_millisecond((u64::from_be_bytes(bytes) ^ (1 << 63)) as i64).ok()
}

/// `prefix` + time + id: the timer and retention indexes.
pub fn by_time(prefix: u8, at: jiff::Timestamp, id: &JobId) -> Vec<u8> {
    let mut key = Vec::with_capacity(25);
    key.push(prefix);
    key.extend_from_slice(&time_bytes(at));
    key.extend_from_slice(id.as_bytes());
    key
}

/// Splits a [`by_time`] key.
pub fn parse_by_time(key: &[u8]) -> Option<(jiff::Timestamp, JobId)> {
    let at = time_from(key.get(1..9)?.try_into().ok()?)?;
    let id = JobId::from_bytes(key.get(9..25)?.try_into().ok()?);
    Some((at, id))
}

/// `w` + awaited + waiting: one dependency edge.
pub fn dependent(awaited: &JobId, waiting: &JobId) -> Vec<u8> {
    let mut key = Vec::with_capacity(33);
    key.push(DEPENDENT);
    key.extend_from_slice(awaited.as_bytes());
    key.extend_from_slice(waiting.as_bytes());
    key
}

/// `prefix` + a name (idempotency key, queue, metadata).
pub fn named(prefix: u8, name: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(1 + name.len());
    key.push(prefix);
    key.extend_from_slice(name.as_bytes());
    key
}

/// The count key of (queue, state).
pub fn count(queue: &str, state: crate::job::StateName) -> Vec<u8> {
    let mut key = named(COUNT, queue);
    key.push(0);
    key.push(state as u8);
    key
}

/// Splits a [`count`] key.
pub fn parse_count(key: &[u8]) -> Option<(String, crate::job::StateName)> {
    let rest = key.strip_prefix(&[COUNT])?;
    let (&state, rest) = rest.split_last()?;
    let queue = std::str::from_utf8(rest.strip_suffix(&[0])?)
        .ok()?
        .to_owned();
    let state = *crate::job::StateName::ALL.get(state as usize)?;
    Some((queue, state))
}

/// `prefix` + id.
pub fn by_id(prefix: u8, id: &JobId) -> [u8; 17] {
    let mut key = [0u8; 17];
    key[0] = prefix;
    key[1..].copy_from_slice(id.as_bytes());
    key
}

/// The id in a `by_id` key.
pub fn id_of(key: &[u8]) -> Option<JobId> {
    id_value(key.get(1..)?)
}

/// An id stored as a value (16 bytes).
pub fn id_value(value: &[u8]) -> Option<JobId> {
    let bytes: [u8; 16] = value.get(..16)?.try_into().ok()?;
    Some(JobId::from_bytes(bytes))
}

/// Maps a priority so that byte order is descending priority: flip the sign
/// bit (signed → unsigned order), then invert (ascending → descending).
pub fn priority_bytes(priority: i32) -> [u8; 4] {
    (!((priority as u32) ^ 0x8000_0000)).to_be_bytes()
}

/// Inverse of [`priority_bytes`].
pub fn priority_from(bytes: [u8; 4]) -> i32 {
    ((!u32::from_be_bytes(bytes)) ^ 0x8000_0000) as i32
}

/// The ready-index key: sorts by queue, then priority (high first), then
/// submission order (FIFO). Queue names never contain a 0 byte.
pub fn ready(queue: &str, priority: i32, seq: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(1 + queue.len() + 1 + 4 + 8);
    key.push(READY);
    key.extend_from_slice(queue.as_bytes());
    key.push(0);
    key.extend_from_slice(&priority_bytes(priority));
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

/// Splits a ready-index key into (queue, priority, seq).
pub fn parse_ready(key: &[u8]) -> Option<(String, i32, u64)> {
    let rest = key.strip_prefix(&[READY])?;
    let nul = rest.iter().position(|b| *b == 0)?;
    let queue = std::str::from_utf8(&rest[..nul]).ok()?.to_owned();
    let tail = &rest[nul + 1..];
    if tail.len() != 12 {
        return None;
    }
    let priority = priority_from(tail[..4].try_into().ok()?);
    let seq = u64::from_be_bytes(tail[4..].try_into().ok()?);
    Some((queue, priority, seq))
}

/// Output chunk key: id + attempt + chunk number, so a job's chunks are
/// contiguous, each attempt's apart, in the order they were produced.
pub fn output(id: &JobId, attempt: u32, chunk: u64) -> [u8; 28] {
    let mut key = [0u8; 28];
    key[..20].copy_from_slice(&output_prefix(id, attempt));
    key[20..].copy_from_slice(&chunk.to_be_bytes());
    key
}

/// The prefix of every output chunk of one attempt: id + attempt.
pub fn output_prefix(id: &JobId, attempt: u32) -> [u8; 20] {
    let mut key = [0u8; 20];
    key[..16].copy_from_slice(id.as_bytes());
    key[16..].copy_from_slice(&attempt.to_be_bytes());
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn higher_priority_sorts_first_then_fifo() {
        let mut keys = [
            ready("q", -5, 1),
            ready("q", 10, 3),
            ready("q", 10, 2),
            ready("q", i32::MAX, 9),
            ready("q", i32::MIN, 0),
            ready("q", 0, 4),
        ];
        keys.sort();
        let order: Vec<(i32, u64)> = keys
            .iter()
            .map(|k| {
                let (_, p, s) = parse_ready(k).unwrap();
                (p, s)
            })
            .collect();
        assert_eq!(
            order,
            vec![
                (i32::MAX, 9),
                (10, 2),
                (10, 3),
                (0, 4),
                (-5, 1),
                (i32::MIN, 0)
            ]
        );
    }

    #[test]
    fn queue_names_do_not_interleave() {
        // "a" must not mix with "a.b": the 0 separator sorts before any name byte.
        assert!(ready("a", i32::MIN, u64::MAX) < ready("a.b", i32::MAX, 0));
    }
}
