//! `lonc-std`: the blocking lonc daemon on std threads, and its operator commands
//! (`check-config`, `send`, `status`).

use lonc_host::cli::Cli;
use lonc_std::daemon::run;

fn main() {
    let cli = Cli::parse_named(env!("CARGO_BIN_NAME"));
    let code = match &cli.command {
        None => run(&cli.run),
        Some(command) => command.execute(run),
    };
    std::process::exit(code);
}
