//! `jobq serve`: the daemon's command-line options. Parsing only; the
//! daemon itself is [`crate::daemon`], and its settings are
//! [`crate::config`], which decides how these options combine with the
//! config file.

use std::path::PathBuf;

use clap::Args;

use crate::config::Overrides;

/// Options of `jobq serve`; each wins over the config file.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Config file (TOML) [default: /etc/jobq/jobq.toml if it exists]
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address to listen on: host:port (port 0 picks a free one) or
    /// unix:/path; repeat for several; replaces the file's `listen`
    /// [default: 127.0.0.1:7711]
    #[arg(long, value_name = "ADDR")]
    pub listen: Vec<String>,
    /// Where jobs, their output and `jobq.addr` are kept
    /// [default: $XDG_STATE_HOME/jobq or ~/.local/state/jobq]
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Most jobs running at once, 1 to 4096 [default: number of CPUs]
    #[arg(long, value_name = "N", allow_hyphen_values = true,
          value_parser = workers)]
    pub workers: Option<usize>,
}

/// clap value parser for `--workers`: as the config's `workers` (1 to 4096).
fn workers(s: &str) -> Result<usize, String> {
    super::number_in(1u32, 4096)(s).map(|n| n as usize)
}

impl ServeArgs {
    /// The options as [`crate::config::Config::load`] takes them.
    pub fn overrides(self) -> Overrides {
        Overrides {
            config_file: self.config,
            listen: self.listen,
            data_dir: self.data_dir,
            workers: self.workers,
        }
    }
}
