//! `jobq config check [--config FILE]`: loads the daemon's configuration
//! as `jobq serve` would, checks it (users, groups and token files
//! included) and prints the effective settings as TOML, tokens hidden; or
//! says which key is wrong and exits 2. Touches no data dir and binds
//! nothing, so it is safe beside a running daemon (`ExecStartPre=`, or
//! before a `systemctl restart`).

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, ValueEnum};

use crate::config::{Config, Overrides};

/// Options of `jobq config`.
#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// What to do with the configuration
    #[arg(value_name = "ACTION")]
    pub action: ConfigAction,
    /// Config file (TOML) [default: /etc/jobq/jobq.toml if it exists]
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// What `jobq config` does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ConfigAction {
    /// Check the file and print the effective settings
    Check,
}

/// Runs `jobq config`; returns the exit code.
pub fn run(args: ConfigArgs, out: &mut dyn Write) -> i32 {
    let overrides = Overrides {
        config_file: args.config,
        ..Overrides::default()
    };
    match args.action {
        ConfigAction::Check => match Config::load(&overrides) {
            Ok(config) => match out.write_all(config.to_toml().as_bytes()) {
                Ok(()) => 0,
                Err(_) => 1,
            },
            Err(e) => {
                eprintln!("jobq: {e}");
                2
            }
        },
    }
}
