//! `[store]`: which engine keeps the jobs. sled (embedded, one daemon, the
//! default) or PostgreSQL (several daemons on one database,
//! docs/cluster.md), with the database's URL, this node's name and the
//! lease after which a silent node counts as dead.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::ConfigError;
use crate::auth::token::{first_line, TokenFileError, CREDENTIALS_DIRECTORY};

/// `[store]` as the file gives it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct StoreTable {
    pub backend: Option<Backend>,
    pub url: Option<String>,
    pub url_file: Option<PathBuf>,
    pub node: Option<String>,
    #[serde(default, deserialize_with = "super::file::de_duration")]
    pub lease: Option<Duration>,
    pub poll_only: Option<bool>,
}

/// `backend`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum Backend {
    Sled,
    Postgres,
}

/// Where the jobs are kept.
#[derive(Clone, Debug, Default)]
pub enum StoreSettings {
    /// sled in `data_dir`: one daemon.
    #[default]
    Sled,
    /// A PostgreSQL database shared by every node.
    Postgres(PostgresSettings),
}

/// A node of a cluster on PostgreSQL.
#[derive(Clone, Debug)]
pub struct PostgresSettings {
    /// The database.
    pub url: DatabaseUrl,
    /// This node's name, unique in the cluster (default: the host name).
    pub node: String,
    /// A node silent this long is dead; it renews every third of it.
    pub lease: Duration,
    /// No LISTEN: for connection poolers that drop it (PgBouncer in
    /// transaction mode). The node polls instead (docs/cluster.md says
    /// what it costs).
    pub poll_only: bool,
}

/// A database URL; it may hold a password, so `Debug` hides it whole.
#[derive(Clone)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    /// The URL, to connect with; never to be logged.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<hidden>")
    }
}

/// The default `lease`.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(30);

/// The shortest `lease`: a node renews every third of it, and a renewal
/// is a round trip to the database that must fit with room to spare.
pub const MIN_LEASE: Duration = Duration::from_secs(1);

fn invalid(key: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        reason: reason.into(),
    }
}

/// A node name is `[A-Za-z0-9_.-]{1,64}`: it is shown in job records and
/// `GET /v1/nodes`, and a host name always fits.
fn check_node(name: &str) -> Result<(), ConfigError> {
    let ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(invalid(
            "store.node",
            format!("{name:?} is not a node name: use 1 to 64 of A-Z a-z 0-9 _ . -"),
        ))
    }
}

/// This machine's host name, the default node name.
fn host_name() -> String {
    rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned()
}

/// Reads `url_file`'s first line (relative paths in systemd's
/// `$CREDENTIALS_DIRECTORY`, as for token files).
fn read_url_file(path: &std::path::Path) -> Result<String, ConfigError> {
    let full = if path.is_absolute() {
        path.to_owned()
    } else {
        match std::env::var_os(CREDENTIALS_DIRECTORY) {
            Some(dir) => std::path::Path::new(&dir).join(path),
            None => {
                return Err(invalid(
                    "store.url_file",
                    format!(
                        "{} is a relative path, which is looked for in $CREDENTIALS_DIRECTORY (systemd's LoadCredential=), and that is not set; give an absolute path",
                        path.display()
                    ),
                ))
            }
        }
    };
    first_line(&full).map_err(|e| {
        invalid(
            "store.url_file",
            match e {
                TokenFileError::Unreadable(reason) => {
                    format!("cannot read {}: {reason}", full.display())
                }
                TokenFileError::Empty => format!(
                    "{} is empty; its first line must be the database URL",
                    full.display()
                ),
            },
        )
    })
}

/// `[store]` checked and resolved.
pub(super) fn store_from(table: StoreTable) -> Result<StoreSettings, ConfigError> {
    let backend = table.backend.unwrap_or(Backend::Sled);
    if backend == Backend::Sled {
        let stray = [
            ("store.url", table.url.is_some()),
            ("store.url_file", table.url_file.is_some()),
            ("store.node", table.node.is_some()),
            ("store.lease", table.lease.is_some()),
            ("store.poll_only", table.poll_only.is_some()),
        ]
        .into_iter()
        .find(|(_, set)| *set);
        if let Some((key, _)) = stray {
            return Err(invalid(
                key,
                "is for backend = \"postgres\"; the sled store is this daemon's own and takes none",
            ));
        }
        return Ok(StoreSettings::Sled);
    }
    let url = match (table.url, table.url_file) {
        (Some(_), Some(_)) => {
            return Err(invalid(
                "store.url",
                "give one of `url` and `url_file`, not both",
            ))
        }
        (None, None) => {
            return Err(invalid(
                "store.url",
                "backend = \"postgres\" needs `url` (postgres://user@host/db) or `url_file`",
            ))
        }
        (Some(url), None) => url,
        (None, Some(path)) => read_url_file(&path)?,
    };
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        // The URL is not echoed: it may hold a password.
        return Err(invalid(
            "store.url",
            "is not a PostgreSQL URL: it must start with postgres:// or postgresql://",
        ));
    }
    let node = table.node.unwrap_or_else(host_name);
    check_node(&node)?;
    let lease = table.lease.unwrap_or(DEFAULT_LEASE);
    if lease < MIN_LEASE {
        return Err(invalid(
            "store.lease",
            format!(
                "{} is too short: a node renews every third of it; use at least 1s",
                humantime::format_duration(lease)
            ),
        ));
    }
    Ok(StoreSettings::Postgres(PostgresSettings {
        url: DatabaseUrl(url),
        node,
        lease,
        poll_only: table.poll_only.unwrap_or(false),
    }))
}
