//! `lonc`: the smol daemon, its operator commands (`check-config`, `send`, `status`,
//! shared with `lonc-std` through `lonc-host`), and `demo`.

use clap::{Parser, Subcommand};
use lonc_host::cli::{Command, RunArgs};
use lonc_smol::daemon::run;
use lonc_smol::demo::{DemoArgs, run_demo};

/// lonc: persistent IDEA-encrypted links from this LON-CAPA server to every other
/// server's lond, one Unix socket per peer.
#[derive(Debug, Parser)]
#[command(name = "lonc", version, args_conflicts_with_subcommands = true)]
struct LoncCli {
    #[command(subcommand)]
    command: Option<LoncCommand>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Debug, Subcommand)]
enum LoncCommand {
    #[command(flatten)]
    Common(Command),
    /// Start N lond-sim peers and the daemon on a throwaway site, until Ctrl-C.
    Demo(DemoArgs),
}

fn main() {
    lonc_host::cli::set_program_name(env!("CARGO_BIN_NAME"));
    let cli = LoncCli::parse();
    let code = match &cli.command {
        None => run(&cli.run),
        Some(LoncCommand::Common(command)) => command.execute(run),
        Some(LoncCommand::Demo(args)) => run_demo(args),
    };
    std::process::exit(code);
}
