//! The `jobq` binary: parses the command line, then hands `jobq serve` to
//! the daemon and every other command to the client. Both return the exit
//! code; nothing else happens here.

use clap::Parser;

use jobq::cli::{Cli, Command};

fn main() {
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Serve(args) => jobq::daemon::main(args.overrides()),
        Command::Client(command) => jobq::cli::run(&cli.client, command),
    };
    std::process::exit(code);
}
