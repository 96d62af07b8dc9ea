//! `lond-sim`: a lond-compatible peer for end-to-end tests, the demo and the benchmarks.
//!
//! ```text
//! lond-sim --listen msul1=127.0.0.1:5663 --listen msul2=127.0.0.2:5663 --client-id msul3
//! ```
//! Serves every `--listen` entry (one TCP listener each, port 0 picks a free port), prints
//! one line `lond-sim <id> listening on <addr>` per listener to stdout, then runs until
//! SIGTERM or SIGINT and stops cleanly (exit 0). What it answers, and the fault knobs, are
//! described in [`lond_sim`]. Bad arguments exit 2, a listener that cannot be
//! bound exits 1.

use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;

use clap::Parser;
use lond_sim::{LondSim, SimOptions, parse_listen};
use nix::sys::signal::{SigSet, Signal};

/// The command line of `lond-sim`.
#[derive(Debug, Parser)]
#[command(
    name = "lond-sim",
    version,
    about = "A lond-compatible peer for tests: answers the classic handshake and the test \
             requests ping, echo:<x>, sleep:<ms>:<x>, big:<n>, eget:<x>, exit, connections."
)]
struct Args {
    /// A listener: the host id it answers as and where it listens, e.g.
    /// `msul2=127.0.0.2:5663` (repeatable; port 0 picks a free port).
    #[arg(long = "listen", value_name = "ID=ADDR:PORT", required = true, value_parser = parse_listen)]
    listen: Vec<(String, SocketAddr)>,
    /// The host id of the lonc that connects (its lonHostID; part of the key).
    #[arg(long, value_name = "ID")]
    client_id: String,
    /// Close each connection after this many requests are answered.
    #[arg(long, value_name = "N")]
    drop_after: Option<u64>,
    /// Answer `init` with `refused` (an unknown client).
    #[arg(long)]
    refuse: bool,
    /// Accept connections and never answer anything.
    #[arg(long)]
    stall_handshake: bool,
    /// Answer every `eget:` with a malformed `enc:` reply (declared length too large).
    #[arg(long)]
    malformed_enc: bool,
    /// After the handshake, answer the first request with an endless line (no LF).
    #[arg(long)]
    endless_line: bool,
    /// Close each connection right after sending the challenge.
    #[arg(long)]
    close_during_handshake: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.client_id.is_empty() {
        eprintln!("lond-sim: --client-id must not be empty");
        return ExitCode::from(2);
    }
    let opts = SimOptions {
        drop_after: args.drop_after,
        refuse: args.refuse,
        stall_handshake: args.stall_handshake,
        malformed_enc: args.malformed_enc,
        endless_line: args.endless_line,
        close_during_handshake: args.close_during_handshake,
    };
    // Signals blocked first (in this thread, so in every thread it starts), so one that
    // comes right after the "listening" lines waits for `sigwait` below and is not lost.
    let mut signals = SigSet::empty();
    signals.add(Signal::SIGTERM);
    signals.add(Signal::SIGINT);
    if let Err(e) = signals.thread_block() {
        eprintln!("lond-sim: cannot handle signals: {e}");
        return ExitCode::FAILURE;
    }
    let sim = match LondSim::start(args.listen, args.client_id, opts) {
        Ok(sim) => sim,
        Err(e) => {
            eprintln!("lond-sim: {e}");
            return ExitCode::FAILURE;
        }
    };
    {
        let mut out = std::io::stdout().lock();
        for (id, addr) in sim.addrs() {
            let _ = writeln!(out, "lond-sim {id} listening on {addr}");
        }
        let _ = out.flush();
    }
    // Blocks until SIGTERM or SIGINT.
    let _ = signals.wait();
    sim.stop();
    ExitCode::SUCCESS
}
