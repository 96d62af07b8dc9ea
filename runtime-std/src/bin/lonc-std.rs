//! `lonc-std`: the blocking lonc daemon on std threads, and its operator commands
//! (`check-config`, `send`, `status`).

use clap::Parser;
use lonc_std::cli::{Cli, Command};

fn main() {
    let cli = Cli::parse();
    let code = match cli.command {
        None => lonc_std::daemon::run(&cli.run),
        Some(Command::Run(args)) => lonc_std::daemon::run(&args),
        Some(Command::CheckConfig(args)) => lonc_std::sendcmd::run_check_config(&args),
        Some(Command::Send(args)) => lonc_std::sendcmd::run_send(&args),
        Some(Command::Status(args)) => lonc_std::sendcmd::run_status(&args),
    };
    std::process::exit(code);
}
