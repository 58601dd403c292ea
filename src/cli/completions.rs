//! `jobq completions bash|zsh|fish`: the shell completion script of the
//! whole command line, from its clap definition, on stdout.
//!
//! ```sh
//! jobq completions bash > /etc/bash_completion.d/jobq
//! jobq completions zsh > "${fpath[1]}/_jobq"
//! jobq completions fish > ~/.config/fish/completions/jobq.fish
//! ```

use std::io::Write;

use clap::Args;
use clap_complete::Shell;

/// Options of `jobq completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell: bash, zsh, fish (also elvish, powershell)
    #[arg(value_name = "SHELL")]
    pub shell: Shell,
}

/// Writes the script; returns the exit code.
pub fn run(args: CompletionsArgs, out: &mut dyn Write) -> i32 {
    let mut cmd = super::command();
    clap_complete::generate(args.shell, &mut cmd, "jobq", out);
    0
}
