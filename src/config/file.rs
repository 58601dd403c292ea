//! The config file's shape, as serde reads it: every key optional,
//! unknown keys refused (toml's message then names the key and line).
//! Turning these into [`super::Config`], with the checks types alone
//! cannot make, is `mod.rs`'s work.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use bytesize::ByteSize;
use serde::{Deserialize, Deserializer};

use super::listen::{Mode, OneOrMany};
use super::{Durability, OnInterrupted, QueueConfig};
use crate::auth::Role;

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileConfig {
    pub listen: Option<OneOrMany>,
    pub socket_mode: Option<Mode>,
    pub socket_group: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub workers: Option<usize>,
    #[serde(default, deserialize_with = "de_duration")]
    pub kill_grace: Option<Duration>,
    #[serde(default, deserialize_with = "de_duration")]
    pub shutdown_grace: Option<Duration>,
    pub max_body: Option<ByteSize>,
    pub max_upload: Option<ByteSize>,
    pub max_output: Option<ByteSize>,
    pub on_interrupted: Option<OnInterrupted>,
    pub shell: Option<PathBuf>,
    #[serde(default, deserialize_with = "de_duration")]
    pub backoff: Option<Duration>,
    pub log: Option<String>,
    /// `log_format`.
    pub log_format: Option<super::LogFormat>,
    pub durability: Option<Durability>,
    #[serde(default, deserialize_with = "de_duration")]
    pub flush_interval: Option<Duration>,
    pub default_concurrency: Option<usize>,
    #[serde(default)]
    pub queues: BTreeMap<String, QueueConfig>,
    #[serde(default, deserialize_with = "de_duration")]
    pub max_backoff: Option<Duration>,
    pub max_queued: Option<u64>,
    pub max_connections: Option<usize>,
    pub max_streams: Option<usize>,
    pub max_uploads: Option<usize>,
    #[serde(default, deserialize_with = "de_duration")]
    pub retention: Option<Duration>,
    pub keep_finished: Option<u64>,
    #[serde(default)]
    pub auth: AuthTable,
    #[serde(default)]
    pub server: ServerTable,
    #[serde(default)]
    pub jobs: JobsTable,
    #[serde(default)]
    pub store: super::store::StoreTable,
}

/// `[auth]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AuthTable {
    /// `[[auth.tokens]]`.
    #[serde(default)]
    pub tokens: Vec<TokenTable>,
    /// Members of this group are admins on the unix socket.
    pub admin_group: Option<String>,
}

/// One `[[auth.tokens]]` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TokenTable {
    pub name: String,
    pub role: Role,
    pub token: Option<String>,
    pub token_file: Option<PathBuf>,
    pub run_as: Option<String>,
}

/// `[server]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ServerTable {
    /// Origins besides the daemon's own whose pages may call the API.
    #[serde(default)]
    pub origins: Vec<String>,
    /// Host names besides loopback and the listen addresses that requests
    /// may name.
    #[serde(default)]
    pub hosts: Vec<String>,
}

/// `[jobs]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct JobsTable {
    pub user: Option<String>,
    pub allow_root: Option<bool>,
    pub inherit_env: Option<Vec<String>>,
    pub limits: Option<crate::resources::LimitsArg>,
}

pub(super) fn de_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    let arg = crate::api::DurationArg::deserialize(d)?;
    Ok(Some(arg.0))
}
