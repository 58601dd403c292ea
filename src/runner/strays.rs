//! Processes of jobs found by the `JOBQ_JOB_ID` in their environment,
//! which every process of a job inherits: a job's leftovers after a crash,
//! and processes that left their job's process group (`setsid`, a
//! double-fork daemon) and so escaped the kill of the group at its end.
//!
//! A process that clears its environment (`env -i`) is not found this
//! way; only a cgroup would hold it (docs/security.md).

use std::collections::BTreeSet;

use crate::job::JobId;

/// A process carrying a job's id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct JobProcess {
    /// Its pid.
    pub pid: u32,
    /// Its process group.
    pub pgid: u32,
    /// The job whose id it carries.
    pub job: JobId,
}

/// Every process of this machine that carries a job id (blocking: it reads
/// `/proc`).
pub fn job_processes() -> BTreeSet<JobProcess> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return BTreeSet::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let pid = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let path = entry.path();
            let env = std::fs::read(path.join("environ")).ok()?;
            let job = env
                .split(|b| *b == 0)
                .find_map(|var| var.strip_prefix(b"JOBQ_JOB_ID="))
                .and_then(|id| std::str::from_utf8(id).ok()?.parse::<JobId>().ok())?;
            let stat = std::fs::read_to_string(path.join("stat")).ok()?;
            // Field 5 (pgrp) follows the parenthesised command name.
            let pgid = stat
                .rsplit_once(')')?
                .1
                .split_whitespace()
                .nth(2)?
                .parse::<u32>()
                .ok()?;
            Some(JobProcess { pid, pgid, job })
        })
        .collect()
}

/// Kills `process`, and its process group when it leads one (what it
/// started after it left its job's group goes with it; a group it merely
/// joined, the daemon's own for one, is not touched). One already gone is
/// not an error.
pub fn kill(process: &JobProcess) {
    let own_group = rustix::process::getpgrp().as_raw_nonzero().get() as u32;
    if process.pgid == process.pid && process.pgid != own_group {
        super::signal_group(process.pgid, rustix::process::Signal::KILL);
    }
    if let Some(pid) = rustix::process::Pid::from_raw(process.pid as i32) {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
    }
}
