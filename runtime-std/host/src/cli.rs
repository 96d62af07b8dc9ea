//! The command line both daemons share (clap derive): `run` (the default when no
//! subcommand is given), `check-config`, `send` and `status`, with their options.
//!
//! The blocking daemon calls [`Cli::parse`](clap::Parser::parse); another binary (the smol
//! daemon `lonc`) reuses the same grammar under its own name with [`Cli::parse_named`]:
//!
//! ```
//! use lonc_host::cli::{Cli, Command};
//! let cli = Cli::try_parse_named("lonc", ["lonc", "check-config", "--config", "/tmp/x.conf"])
//!     .unwrap();
//! assert!(matches!(cli.command, Some(Command::CheckConfig(_))));
//! ```
//!
//! The process exit codes live here too ([`EXIT_OK`], [`EXIT_FAILED`], [`EXIT_CONFIG`],
//! [`EXIT_START`]). [`Command::execute`] is defined with the operator commands it runs, in
//! [`crate::sendcmd`].

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};

/// The name this process's messages start with; see [`program_name`].
static PROGRAM_NAME: OnceLock<String> = OnceLock::new();

/// Sets the name the process's error messages start with (`lonc-std: ...`): the binary's
/// own name, which each `main` knows (`env!("CARGO_BIN_NAME")`). Only the first call
/// counts; [`Cli::parse_named`] makes it.
pub fn set_program_name(name: &str) {
    let _ = PROGRAM_NAME.set(name.to_owned());
}

/// The name error messages start with: the one given to [`set_program_name`], else the
/// file name of `argv[0]`, else `lonc`.
pub fn program_name() -> &'static str {
    PROGRAM_NAME.get_or_init(|| {
        std::env::args_os()
            .next()
            .as_deref()
            .and_then(|a| Path::new(a).file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "lonc".to_owned())
    })
}

/// Exit code: success.
pub const EXIT_OK: i32 = 0;
/// Exit code: `con_lost`, no reply, daemon not reachable or not running.
pub const EXIT_FAILED: i32 = 1;
/// Exit code: the configuration (or the command line) is not usable.
pub const EXIT_CONFIG: i32 = 2;
/// Exit code: any other failure to start the daemon (wrong user, already running, no
/// socket).
pub const EXIT_START: i32 = EXIT_FAILED;

/// The config file read when no `--config` is given.
pub const DEFAULT_CONFIG: &str = "/etc/httpd/conf/loncapa.conf";

/// The whole command line. With no subcommand the daemon runs, taking the options of
/// [`RunArgs`] directly (`lonc-std --foreground` = `lonc-std run --foreground`).
#[derive(Debug, Clone, PartialEq, Eq, Parser)]
#[command(
    name = "lonc-std",
    version,
    about = "The LON-CAPA lonc daemon: one persistent link to the lond of every host in hosts.tab",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    /// What to do; `None` means run the daemon with [`Cli::run`].
    #[command(subcommand)]
    pub command: Option<Command>,
    /// The daemon's options when no subcommand is given.
    #[command(flatten)]
    pub run: RunArgs,
}

impl Cli {
    /// The clap command under another program name (for `--help`, `--version` and
    /// error messages), e.g. `"lonc"` for the smol daemon.
    pub fn command_named(name: &'static str) -> clap::Command {
        <Cli as CommandFactory>::command().name(name).bin_name(name)
    }

    /// Parses the process's arguments as [`Cli::parse`](clap::Parser::parse) does, but
    /// under the program name `name`, which becomes the [`program_name`] of the process's
    /// messages; exits with clap's message and code on bad input.
    pub fn parse_named(name: &'static str) -> Cli {
        set_program_name(name);
        let matches = Self::command_named(name).get_matches();
        match Cli::from_arg_matches(&matches) {
            Ok(cli) => cli,
            Err(e) => e.format(&mut Self::command_named(name)).exit(),
        }
    }

    /// Parses `args` (the first one is the program, as in `argv`) under the program
    /// name `name`, returning clap's error instead of exiting.
    pub fn try_parse_named<I, T>(name: &'static str, args: I) -> Result<Cli, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let mut cmd = Self::command_named(name);
        let matches = cmd.try_get_matches_from_mut(args)?;
        Cli::from_arg_matches(&matches).map_err(|e| e.format(&mut cmd))
    }

    /// The run options to use when the command is `run` or absent; `None` for the other
    /// subcommands.
    pub fn run_args(&self) -> Option<&RunArgs> {
        match &self.command {
            None => Some(&self.run),
            Some(Command::Run(args)) => Some(args),
            Some(_) => None,
        }
    }
}

/// The subcommands.
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
#[command(rename_all = "kebab-case")]
pub enum Command {
    /// Run the daemon (the default).
    Run(RunArgs),
    /// Read the configuration and hosts.tab, print the effective settings and peers, and
    /// exit (0 if usable, 2 if not).
    CheckConfig(ConfigArgs),
    /// Send one request to a peer through the running daemon, as lonnet does, and print
    /// the reply (exit 1 on con_lost or when the daemon cannot be reached).
    Send(SendArgs),
    /// Ask the running daemon for its status file (SIGUSR1) and print it.
    Status(ConfigArgs),
}

/// Which config files to read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Args)]
pub struct ConfigArgs {
    /// A config file of `PerlSetVar` lines; may be given several times, later files win
    /// [default: /etc/httpd/conf/loncapa.conf].
    #[arg(long = "config", value_name = "PATH")]
    pub config: Vec<PathBuf>,
}

impl ConfigArgs {
    /// The files given, or [`DEFAULT_CONFIG`] alone when none was.
    pub fn config_paths(&self) -> Vec<PathBuf> {
        if self.config.is_empty() {
            vec![PathBuf::from(DEFAULT_CONFIG)]
        } else {
            self.config.clone()
        }
    }
}

/// The options of the daemon itself.
#[derive(Debug, Clone, Default, PartialEq, Eq, Args)]
pub struct RunArgs {
    /// The config files.
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Stay in the foreground: do not fork, keep stdin/stdout/stderr.
    #[arg(long)]
    pub foreground: bool,
    /// The user the daemon must run as (overrides loncUser, default www).
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,
}

/// The arguments of `send`.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct SendArgs {
    /// The config files.
    #[command(flatten)]
    pub config: ConfigArgs,
    /// The peer's host id (the socket's name in lonSockDir).
    #[arg(value_name = "PEER")]
    pub peer: String,
    /// The request line, without its LF (e.g. `ping`).
    #[arg(value_name = "REQUEST", allow_hyphen_values = true)]
    pub request: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(args)
    }

    #[test]
    fn the_command_is_well_formed() {
        Cli::command().debug_assert();
        Cli::command_named("lonc").debug_assert();
    }

    #[test]
    fn no_subcommand_means_run_with_top_level_options() {
        let cli = parse(&["lonc-std"]).unwrap();
        assert_eq!(cli.command, None);
        assert_eq!(cli.run, RunArgs::default());
        assert_eq!(cli.run_args(), Some(&RunArgs::default()));

        let cli = parse(&[
            "lonc-std",
            "--foreground",
            "--user",
            "nobody",
            "--config",
            "/a",
            "--config",
            "/b",
        ])
        .unwrap();
        assert_eq!(cli.command, None);
        assert!(cli.run.foreground);
        assert_eq!(cli.run.user.as_deref(), Some("nobody"));
        assert_eq!(
            cli.run.config.config_paths(),
            [PathBuf::from("/a"), PathBuf::from("/b")]
        );
    }

    #[test]
    fn run_subcommand() {
        let cli = parse(&["lonc-std", "run", "--foreground", "--config", "/c"]).unwrap();
        let Some(Command::Run(args)) = &cli.command else {
            panic!("{cli:?}")
        };
        assert!(args.foreground);
        assert_eq!(args.config.config, [PathBuf::from("/c")]);
        assert_eq!(cli.run_args(), Some(args));
    }

    #[test]
    fn check_config_is_kebab_case() {
        let cli = parse(&["lonc-std", "check-config"]).unwrap();
        assert_eq!(
            cli.command,
            Some(Command::CheckConfig(ConfigArgs::default()))
        );
        assert_eq!(cli.run_args(), None);
        assert!(parse(&["lonc-std", "checkconfig"]).is_err());
        assert!(parse(&["lonc-std", "check_config"]).is_err());
    }

    #[test]
    fn status_takes_config() {
        let cli = parse(&["lonc-std", "status", "--config", "/x"]).unwrap();
        assert_eq!(
            cli.command,
            Some(Command::Status(ConfigArgs {
                config: vec!["/x".into()]
            }))
        );
    }

    #[test]
    fn send_takes_peer_and_request() {
        let cli = parse(&["lonc-std", "send", "msul1", "ping"]).unwrap();
        let Some(Command::Send(args)) = cli.command else {
            panic!()
        };
        assert_eq!(
            (args.peer.as_str(), args.request.as_str()),
            ("msul1", "ping")
        );
        assert!(args.config.config.is_empty());

        let cli = parse(&["lonc-std", "send", "--config", "/c", "p", "-dash:x"]).unwrap();
        let Some(Command::Send(args)) = cli.command else {
            panic!()
        };
        assert_eq!(args.request, "-dash:x");
        assert_eq!(args.config.config, [PathBuf::from("/c")]);

        assert!(parse(&["lonc-std", "send", "msul1"]).is_err());
        assert!(parse(&["lonc-std", "send", "a", "b", "c"]).is_err());
    }

    #[test]
    fn top_level_options_do_not_mix_with_subcommands() {
        assert!(parse(&["lonc-std", "--foreground", "status"]).is_err());
        assert!(parse(&["lonc-std", "status", "--foreground"]).is_err());
        assert!(parse(&["lonc-std", "--bogus"]).is_err());
        assert!(parse(&["lonc-std", "bogus"]).is_err());
    }

    #[test]
    fn default_config_path() {
        assert_eq!(
            ConfigArgs::default().config_paths(),
            [PathBuf::from(DEFAULT_CONFIG)]
        );
    }

    /// Item 9: messages start with the binary's own name, once it is set; only the first
    /// name set counts.
    #[test]
    fn program_name_is_the_one_set_first() {
        set_program_name("lonc-std");
        set_program_name("other");
        assert_eq!(program_name(), "lonc-std");
    }

    #[test]
    fn another_binary_name() {
        let cli = Cli::try_parse_named("lonc", ["lonc", "--foreground"]).unwrap();
        assert!(cli.run.foreground);
        let err = Cli::try_parse_named("lonc", ["lonc", "--nope"]).unwrap_err();
        assert!(err.to_string().contains("lonc"), "{err}");
        let help = Cli::command_named("lonc").render_help().to_string();
        assert!(help.contains("check-config"), "{help}");
        assert!(help.contains("Usage: lonc"), "{help}");
    }
}
