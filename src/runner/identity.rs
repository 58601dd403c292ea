//! As whom, where and with what environment a job's process starts
//! (docs/security.md): everything decided about the
//! job's user before the spawn, in the daemon, so that the child only
//! makes the system calls (`spawn.rs`).
//!
//! - The user: when the daemon is root and the job's user is another one,
//!   the child drops to that user's uid, gid and groups before exec.
//! - The environment: only `[jobs] inherit_env` of the daemon's own, then
//!   HOME, USER, LOGNAME and SHELL of the job's user, then the spec's `env`,
//!   then `JOBQ_JOB_ID` (which nothing may override: recovery finds a
//!   job's leftover processes by it).
//! - The working directory, when the spec names none: the daemon's
//!   `work/` for its own jobs; another user's home (or `/` when it has
//!   none), since `work/` is the daemon's alone.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

use crate::auth::Account;
use crate::job::JobSpec;

/// The ids the child switches to before exec.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    /// The user id.
    pub uid: u32,
    /// The primary group id.
    pub gid: u32,
    /// The supplementary groups.
    pub groups: Vec<u32>,
}

/// What a job's process starts with, besides its argv.
#[derive(Clone, Debug)]
pub struct Start {
    /// `KEY=value` pairs, the whole environment.
    pub env: BTreeMap<OsString, OsString>,
    /// The working directory.
    pub cwd: PathBuf,
    /// The user to switch to; `None` to stay the daemon's user.
    pub credentials: Option<Credentials>,
}

/// The environment the daemon passes on to every job: the variables of
/// `names` it has itself, read once at start.
pub fn inherited(names: &[String]) -> Vec<(OsString, OsString)> {
    names
        .iter()
        .filter_map(|name| std::env::var_os(name).map(|v| (OsString::from(name), v)))
        .collect()
}

/// How job `job_id` of `spec` starts as `account`, for a daemon running as
/// `daemon` with `base` as the inherited environment and `work_dir` as its
/// own jobs' default directory.
pub fn start(
    spec: &JobSpec,
    job_id: &str,
    account: &Account,
    daemon: &Account,
    base: &[(OsString, OsString)],
    work_dir: &Path,
) -> Start {
    let own = account.uid == daemon.uid;
    let mut env: BTreeMap<OsString, OsString> = base.iter().cloned().collect();
    let mut set = |k: &str, v: &OsStr| {
        env.insert(k.into(), v.to_owned());
    };
    set("HOME", account.home.as_os_str());
    set("USER", OsStr::new(&account.name));
    set("LOGNAME", OsStr::new(&account.name));
    set("SHELL", account.shell.as_os_str());
    for (k, v) in &spec.env {
        set(k, OsStr::new(v));
    }
    set("JOBQ_JOB_ID", OsStr::new(job_id));
    let cwd = match &spec.cwd {
        Some(dir) => dir.clone(),
        None if own => work_dir.to_owned(),
        None if account.home.is_dir() => account.home.clone(),
        None => PathBuf::from("/"),
    };
    let credentials = (!own).then(|| Credentials {
        uid: account.uid,
        gid: account.gid,
        groups: account.groups.clone(),
    });
    Start {
        env,
        cwd,
        credentials,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(name: &str, uid: u32, home: &str) -> Account {
        Account {
            name: name.into(),
            uid,
            gid: uid,
            groups: vec![uid, 27],
            home: home.into(),
            shell: "/bin/bash".into(),
        }
    }

    fn spec() -> JobSpec {
        crate::job::sample_spec(&[
            ("HOME", "/elsewhere"),
            ("JOBQ_JOB_ID", "forged"),
            ("X", "1"),
        ])
    }

    #[test]
    fn the_environment_is_base_then_user_then_spec_then_the_job_id() {
        let alice = account("alice", 1000, "/home/alice");
        let base = vec![("PATH".into(), "/usr/bin".into())];
        let s = start(&spec(), "id-1", &alice, &alice, &base, Path::new("/w"));
        let get = |k: &str| s.env.get(OsStr::new(k)).cloned();
        assert_eq!(get("PATH"), Some("/usr/bin".into()));
        assert_eq!(get("USER"), Some("alice".into()));
        assert_eq!(get("LOGNAME"), Some("alice".into()));
        assert_eq!(get("SHELL"), Some("/bin/bash".into()));
        assert_eq!(
            get("HOME"),
            Some("/elsewhere".into()),
            "the spec may set HOME"
        );
        assert_eq!(
            get("JOBQ_JOB_ID"),
            Some("id-1".into()),
            "but not the job id"
        );
        assert_eq!(get("X"), Some("1".into()));
        assert_eq!(s.env.len(), 7);
    }

    #[test]
    fn another_users_job_switches_and_starts_at_home() {
        let root = account("root", 0, "/root");
        let nobody = account("nobody", 65534, "/nonexistent");
        let s = start(&spec(), "id", &nobody, &root, &[], Path::new("/w"));
        let creds = s.credentials.expect("switches user");
        assert_eq!((creds.uid, creds.gid), (65534, 65534));
        assert_eq!(creds.groups, vec![65534, 27]);
        assert_eq!(s.cwd, PathBuf::from("/"), "no home: the root directory");
        let own = start(&spec(), "id", &root, &root, &[], Path::new("/w"));
        assert_eq!(own.credentials, None);
        assert_eq!(own.cwd, PathBuf::from("/w"));
    }
}
