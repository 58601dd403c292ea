//! The `jobq` binary: parses the command line, then hands `jobq serve` to
//! the daemon and every other command to the client. Both return the exit
//! code; nothing else happens here.

use jobq::cli::Command;

/// glibc's malloc slowed as the daemon's heap grew: at 900,000 queued jobs
/// `_int_malloc` alone was 18 % of a batch submission's CPU (profile in
/// docs/benchmarks.md). mimalloc keeps allocation flat as the heap grows.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let cli = jobq::cli::parse();
    let code = match cli.command {
        Command::Serve(args) => jobq::daemon::main(args.overrides()),
        Command::Config(args) => jobq::cli::config::run(args, &mut std::io::stdout()),
        Command::Completions(args) => jobq::cli::completions::run(args, &mut std::io::stdout()),
        Command::Client(command) => jobq::cli::run(&cli.client, command),
    };
    std::process::exit(code);
}
