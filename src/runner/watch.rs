//! The watch of a job's process tree that enforces the limits the kernel
//! cannot hold per job without cgroups: `memory` (resident memory of all
//! its processes together), `cpu_time` (their CPU time together) and
//! `processes` (how many at once). Every [`SAMPLE_EVERY`] it reads `/proc`
//! once: the job's processes are those in its process group and their
//! descendants (which finds a child that left the group with `setsid`).
//!
//! The kernel's per-process limits back it up where they apply
//! (`RLIMIT_CPU` per process, `RLIMIT_NPROC` for a job that runs as a user
//! other than root); see docs/security.md for which limit is enforced how.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use async_io::Timer;

use crate::resources::{LimitKind, Limits};

/// Time between two looks at a job's processes.
pub const SAMPLE_EVERY: Duration = Duration::from_millis(200);

/// A job's process tree at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sample {
    /// Live (not zombie) processes.
    pub processes: u64,
    /// Their resident memory together, bytes.
    pub rss: u64,
    /// Their CPU time together, with the children they reaped.
    pub cpu: Duration,
}

/// One `/proc/<pid>/stat`, the fields the watch needs.
struct Stat {
    pid: u32,
    ppid: u32,
    pgrp: u32,
    zombie: bool,
    /// utime + stime + cutime + cstime, clock ticks.
    ticks: u64,
    /// Resident pages.
    rss_pages: u64,
}

fn read_stat(pid: u32) -> Option<Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the command name, which is in parentheses and may
    // hold spaces: state(3) ppid(4) pgrp(5) … utime(14) stime(15)
    // cutime(16) cstime(17) … rss(24).
    let fields: Vec<&str> = text.rsplit_once(')')?.1.split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
    Some(Stat {
        pid,
        ppid: field(4)? as u32,
        pgrp: field(5)? as u32,
        zombie: fields.first() == Some(&"Z"),
        ticks: field(14)? + field(15)? + field(16)? + field(17)?,
        rss_pages: field(24)?,
    })
}

/// The processes of the job whose group is `pgid` (blocking: it reads
/// `/proc`).
pub fn sample(pgid: u32) -> Sample {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Sample::default();
    };
    let stats: Vec<Stat> = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(read_stat)
        .collect();
    let mut members: HashSet<u32> = stats
        .iter()
        .filter(|s| s.pgrp == pgid)
        .map(|s| s.pid)
        .collect();
    // Descendants that left the group: until no more join.
    let parent: HashMap<u32, u32> = stats.iter().map(|s| (s.pid, s.ppid)).collect();
    loop {
        let before = members.len();
        for (pid, ppid) in &parent {
            if members.contains(ppid) {
                members.insert(*pid);
            }
        }
        if members.len() == before {
            break;
        }
    }
    let page = rustix::param::page_size() as u64;
    let hz = rustix::param::clock_ticks_per_second().max(1);
    let mut out = Sample::default();
    let mut ticks = 0;
    for s in stats.iter().filter(|s| members.contains(&s.pid)) {
        ticks += s.ticks;
        if !s.zombie {
            out.processes += 1;
            out.rss += s.rss_pages * page;
        }
    }
    out.cpu = Duration::from_millis(ticks * 1000 / hz);
    out
}

/// The first limit `sample` passes, if any. `processes` is passed once the
/// job has that many at once: the kernel (where it can) refuses the next
/// fork, so "at the limit" is the most the watch can see.
pub fn passed(limits: &Limits, sample: &Sample) -> Option<LimitKind> {
    if limits.memory.is_some_and(|m| sample.rss > m) {
        return Some(LimitKind::Memory);
    }
    if limits.cpu_time.is_some_and(|t| sample.cpu > t) {
        return Some(LimitKind::CpuTime);
    }
    if limits.processes.is_some_and(|n| sample.processes >= n) {
        return Some(LimitKind::Processes);
    }
    None
}

/// The leader's own peak resident memory (`VmHWM`) since it exec'd, bytes.
///
/// Not `ru_maxrss` from `wait`: the leader starts sharing the daemon's
/// memory (`CLONE_VM`, see `spawn.rs`), and the kernel carries that
/// memory's peak into the process's `maxrss` at exec, so every job would
/// report the daemon's size.
fn leader_peak(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            let kib = status.lines().find_map(|l| l.strip_prefix("VmHWM:"))?;
            kib.trim().strip_suffix("kB")?.trim().parse::<u64>().ok()
        })
        .map_or(0, |kib| kib * 1024)
}

/// How many forks the kernel refused the job's pids cgroup (`max` in its
/// `pids.events`).
fn refused_forks(events: &std::path::Path) -> u64 {
    std::fs::read_to_string(events)
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("max "))
                .and_then(|n| n.trim().parse().ok())
        })
        .unwrap_or(0)
}

/// What the watch of one job follows.
pub struct Watched<'a> {
    /// The leader, whose pid is the job's process group.
    pub pid: u32,
    /// The job's limits.
    pub limits: Limits,
    /// Its pids cgroup's `pids.events`, when it has one: a fork refused
    /// there is the `processes` limit passed.
    pub pids_events: Option<std::path::PathBuf>,
    /// The largest resident memory seen, bytes (the tree's sum where the
    /// tree is watched, else the leader's own peak).
    pub peak: &'a std::sync::atomic::AtomicU64,
}

/// Watches a job until it passes a limit; meanwhile notes its peak memory.
/// Never resolves for a job that passes none.
pub async fn until_passed(w: Watched<'_>) -> LimitKind {
    use std::sync::atomic::Ordering;
    // A first look soon, so a short job has a peak at all.
    Timer::after(Duration::from_millis(20)).await;
    loop {
        let pid = w.pid;
        if !w.limits.needs_watch() {
            let peak = blocking::unblock(move || leader_peak(pid)).await;
            w.peak.fetch_max(peak, Ordering::Relaxed);
        } else {
            let events = w.pids_events.clone();
            let (now, leader, refused) = blocking::unblock(move || {
                (
                    sample(pid),
                    leader_peak(pid),
                    events.as_deref().map(refused_forks),
                )
            })
            .await;
            w.peak.fetch_max(now.rss.max(leader), Ordering::Relaxed);
            if refused.is_some_and(|n| n > 0) {
                return LimitKind::Processes;
            }
            let mut limits = w.limits;
            if refused.is_some() {
                // The cgroup holds `processes` exactly: at the limit is
                // allowed, a refused fork is passing it.
                limits.processes = None;
            }
            if let Some(kind) = passed(&limits, &now) {
                return kind;
            }
        }
        Timer::after(SAMPLE_EVERY).await;
    }
}

/// After the job ended: whether its pids cgroup refused a fork (the job
/// passed `processes`, even if it then exited by itself).
pub fn forks_were_refused(pids_events: Option<&std::path::Path>) -> bool {
    pids_events.is_some_and(|e| refused_forks(e) > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_seen_in_its_own_group() {
        let me = rustix::process::getpgrp().as_raw_nonzero().get() as u32;
        let s = sample(me);
        assert!(s.processes >= 1, "{s:?}");
        assert!(s.rss > 0, "{s:?}");
    }

    #[test]
    fn limits_are_passed_in_order() {
        let limits = Limits {
            memory: Some(100),
            processes: Some(3),
            ..Limits::default()
        };
        let mut s = Sample {
            processes: 2,
            rss: 50,
            cpu: Duration::ZERO,
        };
        assert_eq!(passed(&limits, &s), None);
        s.processes = 3;
        assert_eq!(passed(&limits, &s), Some(LimitKind::Processes));
        s.rss = 101;
        assert_eq!(passed(&limits, &s), Some(LimitKind::Memory));
    }
}
