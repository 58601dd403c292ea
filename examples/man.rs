//! Writes jobq's man pages from its clap definition: `jobq.1` and one page
//! per subcommand (`jobq-submit.1`, …) into `target/man/`.
//!
//! Run: `cargo run --example man` (then `man -l target/man/jobq.1`).

use std::path::PathBuf;

fn main() -> std::io::Result<()> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/man");
    std::fs::create_dir_all(&dir)?;
    // No page for clap's `help` subcommands: `jobq help X` is `jobq X --help`.
    let mut cmd = without_help(jobq::cli::command());
    cmd.build();
    clap_mangen::generate_to(cmd, &dir)?;
    println!("man pages written to {}", dir.display());
    Ok(())
}

/// `cmd` and its subcommands without the `help` subcommand.
fn without_help(cmd: clap::Command) -> clap::Command {
    cmd.disable_help_subcommand(true)
        .mut_subcommands(without_help)
}
