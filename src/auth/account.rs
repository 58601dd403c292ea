//! Local user accounts: the users jobs run as and the unix-socket peers,
//! looked up in the system's user and group databases (NSS, so LDAP and
//! systemd's dynamic users work like /etc/passwd).
//!
//! Lookups happen in the daemon, never in a job's child before exec: NSS
//! may open files, allocate and take locks.

use std::ffi::CString;
use std::path::PathBuf;

use nix::unistd::{Gid, Group, Uid, User};

/// A user as a job runs as it: who, with which groups, and the values of
/// HOME and SHELL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    /// The login name (USER, LOGNAME, and the job's `user`).
    pub name: String,
    /// The user id.
    pub uid: u32,
    /// The primary group.
    pub gid: u32,
    /// Every group the user is in, the primary one included, as login
    /// would set them (initgroups).
    pub groups: Vec<u32>,
    /// HOME, and the working directory of jobs run as another user.
    pub home: PathBuf,
    /// SHELL.
    pub shell: PathBuf,
}

/// Why an account could not be found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccountError {
    /// No user has this name.
    #[error("no user {0:?} on this machine")]
    NoSuchUser(String),
    /// No user has this id.
    #[error("no user with uid {0} on this machine")]
    NoSuchUid(u32),
    /// No group has this name.
    #[error("no group {0:?} on this machine")]
    NoSuchGroup(String),
    /// The user or group database could not be read.
    #[error("cannot read the user database: {0}")]
    Database(String),
}

impl Account {
    /// The user called `name`.
    pub fn by_name(name: &str) -> Result<Account, AccountError> {
        let user = User::from_name(name)
            .map_err(|e| AccountError::Database(e.to_string()))?
            .ok_or_else(|| AccountError::NoSuchUser(name.to_owned()))?;
        Account::of(user)
    }

    /// The user with id `uid`.
    pub fn by_uid(uid: u32) -> Result<Account, AccountError> {
        let user = User::from_uid(Uid::from_raw(uid))
            .map_err(|e| AccountError::Database(e.to_string()))?
            .ok_or(AccountError::NoSuchUid(uid))?;
        Account::of(user)
    }

    /// The user the daemon runs as (its effective uid).
    pub fn current() -> Result<Account, AccountError> {
        Account::by_uid(Uid::effective().as_raw())
    }

    /// True for uid 0.
    pub fn is_root(&self) -> bool {
        self.uid == 0
    }

    /// True when the account belongs to group `gid`, as its primary group
    /// or a supplementary one.
    pub fn in_group(&self, gid: u32) -> bool {
        self.gid == gid || self.groups.contains(&gid)
    }

    fn of(user: User) -> Result<Account, AccountError> {
        let gid = user.gid.as_raw();
        // A name with a NUL byte cannot come out of the database.
        let groups = CString::new(user.name.clone())
            .ok()
            .and_then(|name| nix::unistd::getgrouplist(&name, user.gid).ok())
            .map(|groups| groups.into_iter().map(Gid::as_raw).collect())
            .unwrap_or_else(|| vec![gid]);
        Ok(Account {
            name: user.name,
            uid: user.uid.as_raw(),
            gid,
            groups,
            home: user.dir,
            shell: user.shell,
        })
    }
}

/// The id of group `name`.
pub fn group_id(name: &str) -> Result<u32, AccountError> {
    Group::from_name(name)
        .map_err(|e| AccountError::Database(e.to_string()))?
        .map(|g| g.gid.as_raw())
        .ok_or_else(|| AccountError::NoSuchGroup(name.to_owned()))
}

/// True when the daemon runs as root, and so may start jobs as other users.
pub fn daemon_is_root() -> bool {
    Uid::effective().is_root()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_and_nobody_are_found_by_name_and_uid() {
        let root = Account::by_uid(0).unwrap();
        assert_eq!(root.name, "root");
        assert!(root.is_root());
        assert!(root.groups.contains(&0));
        assert_eq!(Account::by_name("root").unwrap(), root);
        let nobody = Account::by_name("nobody").unwrap();
        assert_eq!(nobody.uid, 65534);
    }

    #[test]
    fn an_unknown_user_or_group_says_which() {
        let err = Account::by_name("no-such-user-jobq").unwrap_err();
        assert_eq!(
            err.to_string(),
            "no user \"no-such-user-jobq\" on this machine"
        );
        assert!(group_id("no-such-group-jobq").is_err());
        assert_eq!(group_id("root").unwrap(), 0);
    }
}
