//! A cgroup per job for the `processes` limit, where the daemon can make
//! one: the `pids` controller's `pids.max` makes the kernel refuse a fork
//! past the limit, for any user, root included, whatever else that user
//! runs.
//!
//! Found at start ([`Cgroups::detect`]): a cgroup-v1 `pids` hierarchy the
//! daemon may write to (root on a machine with v1 controllers), under the
//! daemon's own cgroup there. Without one, `processes` is held by
//! `RLIMIT_NPROC` and the watch (`watch.rs`, docs/security.md). Each job's
//! cgroup is made before its spawn and removed when the job ended; what is
//! still in it then is killed.

use std::io::Write;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

/// Where job cgroups can be made, if anywhere.
#[derive(Clone, Debug, Default)]
pub struct Cgroups {
    /// The directory job cgroups are made in: `<daemon's pids cgroup>/jobq`.
    pids: Option<PathBuf>,
}

/// A job's cgroup, removed when dropped (after its processes are killed).
#[derive(Debug)]
pub struct JobCgroup {
    dir: PathBuf,
}

impl Cgroups {
    /// Finds a `pids` hierarchy the daemon can make cgroups in; none is no
    /// error (the fallback holds the limit).
    pub fn detect() -> Cgroups {
        let pids = pids_base().and_then(|base| {
            let dir = base.join("jobq");
            match std::fs::create_dir_all(&dir) {
                Ok(()) if dir.join("cgroup.procs").exists() => Some(dir),
                _ => None,
            }
        });
        match &pids {
            Some(dir) => {
                tracing::info!(dir = %dir.display(), "jobs with a processes limit get a pids cgroup")
            }
            None => tracing::debug!(
                "no writable pids cgroup: processes limits are held by RLIMIT_NPROC and the watch"
            ),
        }
        Cgroups { pids }
    }

    /// True when `processes` limits get a cgroup.
    pub fn has_pids(&self) -> bool {
        self.pids.is_some()
    }

    /// Makes the cgroup of job `name` with at most `processes`; returns it
    /// and its `cgroup.procs`, open for the child to join by. `None` where
    /// there is no hierarchy or it failed (logged; the fallback holds).
    pub fn for_job(&self, name: &str, processes: u64) -> Option<(JobCgroup, OwnedFd)> {
        let base = self.pids.as_ref()?;
        let dir = base.join(name);
        let made = (|| -> std::io::Result<OwnedFd> {
            match std::fs::create_dir(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            }
            std::fs::OpenOptions::new()
                .write(true)
                .open(dir.join("pids.max"))?
                .write_all(processes.to_string().as_bytes())?;
            let procs = std::fs::OpenOptions::new()
                .write(true)
                .open(dir.join("cgroup.procs"))?;
            Ok(OwnedFd::from(procs))
        })();
        match made {
            Ok(procs) => Some((JobCgroup { dir }, procs)),
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e, "cannot make the job's pids cgroup; RLIMIT_NPROC and the watch hold its processes limit");
                let _ = std::fs::remove_dir(&dir);
                None
            }
        }
    }
}

impl JobCgroup {
    /// Its `pids.events`, which counts the forks it refused.
    pub fn pids_events(&self) -> PathBuf {
        self.dir.join("pids.events")
    }

    /// Kills whatever is still in the cgroup (a process that left the
    /// job's process group, even one that cleared its environment) and
    /// removes it. Blocking; a few tries while the killed are reaped.
    pub fn remove(self) {
        for _ in 0..50 {
            let left = members(&self.dir);
            for pid in &left {
                if let Some(pid) = rustix::process::Pid::from_raw(*pid) {
                    let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
                }
            }
            if std::fs::remove_dir(&self.dir).is_ok() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        tracing::warn!(dir = %self.dir.display(), "cannot remove a job's cgroup; processes are still in it");
    }
}

/// The pids in cgroup `dir`.
fn members(dir: &Path) -> Vec<i32> {
    std::fs::read_to_string(dir.join("cgroup.procs"))
        .map(|text| text.lines().filter_map(|l| l.trim().parse().ok()).collect())
        .unwrap_or_default()
}

/// The daemon's own cgroup in a mounted v1 `pids` hierarchy.
fn pids_base() -> Option<PathBuf> {
    let mounts = std::fs::read_to_string("/proc/self/mounts").ok()?;
    let mount = mounts.lines().find_map(|line| {
        let mut fields = line.split_whitespace();
        let (_, point, kind, options) = (
            fields.next()?,
            fields.next()?,
            fields.next()?,
            fields.next()?,
        );
        (kind == "cgroup" && options.split(',').any(|o| o == "pids")).then(|| PathBuf::from(point))
    })?;
    let own = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let path = own.lines().find_map(|line| {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        controllers
            .split(',')
            .any(|c| c == "pids")
            .then(|| path.trim_start_matches('/').to_owned())
    })?;
    Some(mount.join(path))
}
