//! The settings of who may use the daemon and as whom jobs run: `[auth]`
//! (tokens, the admin group), `[server]` (origins and host names a browser
//! may use) and `[jobs]` (the default user, root, the environment).
//!
//! Names are resolved here, while the config loads: a token file that
//! cannot be read or a user that does not exist stops the daemon with exit
//! 2 and the key at fault, before it touches the data directory.

use super::file::{AuthTable, JobsTable, ServerTable};
use super::{ConfigError, ListenAddr};
use crate::auth::account::{self, Account};
use crate::auth::token::{read_token_file, Secret};
use crate::auth::Role;

/// docs/api.md's default for `[jobs] inherit_env`: what a program needs to find
/// commands and speak the user's language, nothing that may be a secret.
pub const DEFAULT_INHERIT_ENV: [&str; 4] = ["PATH", "LANG", "LC_ALL", "TZ"];

/// A group named in the config, with its id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NamedGroup {
    /// As written.
    pub name: String,
    /// Its id.
    pub gid: u32,
}

impl NamedGroup {
    /// Looks up `name`, naming `key` if there is no such group.
    pub(super) fn resolve(key: &'static str, name: &str) -> Result<NamedGroup, ConfigError> {
        let gid = account::group_id(name).map_err(|e| invalid(key, e.to_string()))?;
        Ok(NamedGroup {
            name: name.to_owned(),
            gid,
        })
    }
}

/// One `[[auth.tokens]]` entry, its secret read.
#[derive(Clone, Debug)]
pub struct TokenSettings {
    /// `[a-z0-9_.-]{1,64}`; jobs it submits are owned by `token:<name>`.
    pub name: String,
    /// What it may do.
    pub role: Role,
    /// The secret (hidden from `Debug`).
    pub secret: Secret,
    /// The user its jobs run as, when the daemon is root.
    pub run_as: Option<Account>,
}

/// `[auth]`.
#[derive(Clone, Debug, Default)]
pub struct AuthSettings {
    /// The tokens; none means loopback TCP is anonymous (admin).
    pub tokens: Vec<TokenSettings>,
    /// Members of this group are admins on the unix socket.
    pub admin_group: Option<NamedGroup>,
}

/// `[server]`: what a browser's request may say about where it comes from
/// (docs/api.md, docs/security.md).
#[derive(Clone, Debug, Default)]
pub struct ServerSettings {
    /// Origins (`https://dash.example.com`), lowercase, whose pages may
    /// call the API besides the daemon's own.
    pub origins: Vec<String>,
    /// Host names, lowercase, that a request's `Host` may name besides
    /// loopback addresses and the listen addresses.
    pub hosts: Vec<String>,
}

/// `[jobs]`.
#[derive(Clone, Debug)]
pub struct JobSettings {
    /// The user jobs run as when no principal decides (default: the
    /// daemon's own).
    pub user: Option<Account>,
    /// Whether root may be named as a user jobs run as.
    pub allow_root: bool,
    /// The daemon's environment variables a job gets; nothing else of it.
    pub inherit_env: Vec<String>,
    /// Resource limits of every job, unless its queue sets its own.
    pub limits: crate::resources::Limits,
}

impl Default for JobSettings {
    fn default() -> JobSettings {
        JobSettings {
            user: None,
            allow_root: false,
            inherit_env: DEFAULT_INHERIT_ENV
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
            limits: crate::resources::Limits::default(),
        }
    }
}

fn invalid(key: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        reason: reason.into(),
    }
}

/// True when `name` may name a token (`[a-z0-9_.-]{1,64}`, as queues).
fn is_valid_token_name(name: &str) -> bool {
    crate::api::is_valid_queue_name(name)
}

/// Reads `[auth]`: every token's secret, every name checked and unique.
pub(super) fn auth_from(table: AuthTable) -> Result<AuthSettings, ConfigError> {
    let mut tokens: Vec<TokenSettings> = Vec::with_capacity(table.tokens.len());
    for (i, t) in table.tokens.into_iter().enumerate() {
        let at = format!("auth.tokens[{i}]");
        if !is_valid_token_name(&t.name) {
            return Err(invalid(
                "auth.tokens",
                format!(
                    "{at}: name {:?} is not a token name: use 1 to 64 of a-z 0-9 _ . -",
                    t.name
                ),
            ));
        }
        let at = format!("{at} ({:?})", t.name);
        if tokens.iter().any(|other| other.name == t.name) {
            return Err(invalid(
                "auth.tokens",
                format!("{at}: the name is used twice"),
            ));
        }
        let secret = match (t.token, t.token_file) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "auth.tokens",
                    format!("{at}: give one of `token` and `token_file`, not both"),
                ))
            }
            (None, None) => {
                return Err(invalid(
                    "auth.tokens",
                    format!("{at}: give `token` or `token_file`"),
                ))
            }
            (Some(token), None) => Secret::new(token),
            (None, Some(path)) => read_token_file(&path),
        }
        .map_err(|e| invalid("auth.tokens", format!("{at}: {e}")))?;
        if tokens.iter().any(|other| other.secret == secret) {
            return Err(invalid(
                "auth.tokens",
                format!("{at}: the same token is given to another entry; each needs its own"),
            ));
        }
        let run_as = t
            .run_as
            .map(|name| Account::by_name(&name))
            .transpose()
            .map_err(|e| invalid("auth.tokens", format!("{at}: run_as: {e}")))?;
        tokens.push(TokenSettings {
            name: t.name,
            role: t.role,
            secret,
            run_as,
        });
    }
    let admin_group = table
        .admin_group
        .map(|name| NamedGroup::resolve("auth.admin_group", &name))
        .transpose()?;
    Ok(AuthSettings {
        tokens,
        admin_group,
    })
}

/// Reads `[server]`: origins as `scheme://host[:port]`, host names without
/// scheme or port.
pub(super) fn server_from(table: ServerTable) -> Result<ServerSettings, ConfigError> {
    let mut origins = Vec::with_capacity(table.origins.len());
    for origin in table.origins {
        let lower = origin.trim().trim_end_matches('/').to_ascii_lowercase();
        let ok = lower.split_once("://").is_some_and(|(scheme, rest)| {
            matches!(scheme, "http" | "https")
                && !rest.is_empty()
                && !rest.contains(['/', '?', '#', '*', ' '])
        });
        if !ok {
            return Err(invalid(
                "server.origins",
                format!("{origin:?} is not an origin such as https://dash.example.com (scheme, host, optional port; no path, no wildcard)"),
            ));
        }
        origins.push(lower);
    }
    let mut hosts = Vec::with_capacity(table.hosts.len());
    for host in table.hosts {
        let lower = host.trim().trim_end_matches('.').to_ascii_lowercase();
        let ok = !lower.is_empty()
            && lower
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b));
        if !ok {
            return Err(invalid(
                "server.hosts",
                format!(
                    "{host:?} is not a host name such as build.example.com (no scheme, no port)"
                ),
            ));
        }
        hosts.push(lower);
    }
    Ok(ServerSettings { origins, hosts })
}

/// Reads `[jobs]`.
pub(super) fn jobs_from(table: JobsTable) -> Result<JobSettings, ConfigError> {
    let mut jobs = JobSettings::default();
    if let Some(name) = table.user {
        jobs.user = Some(Account::by_name(&name).map_err(|e| invalid("jobs.user", e.to_string()))?);
    }
    if let Some(allow) = table.allow_root {
        jobs.allow_root = allow;
    }
    if let Some(names) = table.inherit_env {
        for name in &names {
            if name.is_empty() || name.contains(['=', '\0']) {
                return Err(invalid(
                    "jobs.inherit_env",
                    format!("{name:?} is not a variable name (non-empty, without `=`)"),
                ));
            }
        }
        jobs.inherit_env = names;
    }
    if let Some(limits) = table.limits {
        jobs.limits = limits
            .check("jobs.limits")
            .map_err(|e| invalid("jobs.limits", e.to_string()))?;
    }
    Ok(jobs)
}

/// The rules of docs/api.md on who jobs may run as, and on tokens, checked
/// against the user the daemon runs as:
/// - a daemon that is not root runs every job as itself, so naming another
///   user is a mistake it refuses;
/// - naming root needs `[jobs] allow_root = true`;
/// - a TCP address beyond loopback needs tokens.
pub(super) fn check(
    listen: &[ListenAddr],
    auth: &AuthSettings,
    jobs: &JobSettings,
    daemon: &Account,
) -> Result<(), ConfigError> {
    let named = jobs
        .user
        .iter()
        .map(|a| ("jobs.user", a, "[jobs] user".to_owned()))
        .chain(auth.tokens.iter().filter_map(|t| {
            t.run_as.as_ref().map(|a| {
                (
                    "auth.tokens",
                    a,
                    format!("the run_as of token {:?}", t.name),
                )
            })
        }));
    for (key, account, what) in named {
        if !daemon.is_root() && account.uid != daemon.uid {
            return Err(invalid(
                key,
                format!(
                    "{what} is {:?}, but jobq runs as {:?} and can start jobs only as itself; run it as root, or remove the setting",
                    account.name, daemon.name
                ),
            ));
        }
        if account.is_root() && !jobs.allow_root {
            return Err(invalid(
                key,
                format!("{what} is root; jobs run as root only with [jobs] allow_root = true"),
            ));
        }
    }
    if auth.tokens.is_empty() {
        if let Some(remote) = listen.iter().find(|a| a.is_remote()) {
            return Err(invalid(
                "listen",
                format!(
                    "{remote} is reachable beyond this machine, and without [[auth.tokens]] anyone who reaches it could run commands as {:?}; add tokens, or listen on 127.0.0.1 or a unix socket",
                    jobs.user.as_ref().unwrap_or(daemon).name
                ),
            ));
        }
    }
    Ok(())
}
