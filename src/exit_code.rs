//! The exit code of `jobq wait`, `submit --wait`, `submit --follow` and
//! `logs -f` for each way a job can end: the one place that maps an ending
//! to a number, for the daemon's `exit` fields and the CLI alike.
//!
//! The process's own endings keep the shell's numbers: its exit code, and
//! 128+n for signal n. Endings that are not the process's own get codes of
//! their own, distinct from 1 (which jobs use for everything), from 2 and 3
//! (the CLI's own errors) and from each other, in the 120s where shells and
//! tools already put such codes: 124 for a timeout as timeout(1) does, 127
//! for a command that could not be started as sh does.

use crate::job::{FailReason, StateName};

/// The job ran past its `timeout` (like timeout(1)).
pub const TIMEOUT: i32 = 124;
/// The job could not be started: no such command, not executable, a
/// missing `cwd` or user (like sh's 127 for a command not found).
pub const SPAWN: i32 = 127;
/// A job in its `after` failed or was cancelled, so it never ran.
pub const DEPENDENCY: i32 = 125;
/// It was cancelled, before or while it ran (told apart from a process
/// that died of SIGTERM by itself, which is 143).
pub const CANCELLED: i32 = 123;
/// It was running when the daemon stopped, and `on_interrupted = "fail"`.
pub const INTERRUPTED: i32 = 122;
/// It passed one of its `limits` (memory, CPU time, processes) and was
/// stopped.
pub const LIMIT: i32 = 121;

/// The code for a job in `state`, `None` while it is not terminal.
/// `exit_code` and `signal` (a number) are the process's, when it ran.
pub fn of(
    state: StateName,
    reason: Option<FailReason>,
    exit_code: Option<i32>,
    signal: Option<i32>,
) -> Option<i32> {
    Some(match state {
        StateName::Succeeded => 0,
        StateName::Cancelled => CANCELLED,
        StateName::Failed => match reason {
            Some(FailReason::Timeout) => TIMEOUT,
            Some(FailReason::Spawn) => SPAWN,
            Some(FailReason::Dependency) => DEPENDENCY,
            Some(FailReason::Interrupted) => INTERRUPTED,
            Some(FailReason::Limit) => LIMIT,
            _ => match (exit_code, signal) {
                (Some(code), _) if code != 0 => code,
                (_, Some(signal)) => 128 + signal,
                _ => 1,
            },
        },
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_ending_has_its_code() {
        use FailReason::*;
        use StateName::*;
        assert_eq!(of(Succeeded, None, Some(0), None), Some(0));
        assert_eq!(of(Failed, Some(Exit), Some(7), None), Some(7));
        assert_eq!(of(Failed, Some(Signal), None, Some(9)), Some(137));
        assert_eq!(of(Failed, Some(Timeout), None, Some(15)), Some(TIMEOUT));
        assert_eq!(of(Failed, Some(Spawn), None, None), Some(SPAWN));
        assert_eq!(of(Failed, Some(Dependency), None, None), Some(DEPENDENCY));
        assert_eq!(of(Failed, Some(Interrupted), None, None), Some(INTERRUPTED));
        assert_eq!(of(Failed, Some(Limit), None, Some(9)), Some(LIMIT));
        assert_eq!(of(Cancelled, None, None, Some(15)), Some(CANCELLED));
        assert_eq!(of(Cancelled, None, None, None), Some(CANCELLED));
        for state in [Waiting, Scheduled, Queued, Running] {
            assert_eq!(of(state, None, None, None), None);
        }
        let special = [TIMEOUT, SPAWN, DEPENDENCY, CANCELLED, INTERRUPTED, LIMIT];
        for (i, a) in special.iter().enumerate() {
            assert!(![0, 1, 2, 3].contains(a));
            assert!(special[i + 1..].iter().all(|b| b != a), "{a} twice");
        }
    }
}
