//! `lonc demo`: a whole site in a temp dir, N lond-sim peers on 127.0.0.x in this process,
//! and the daemon in the foreground on it, until Ctrl-C; then everything is cleaned up.

use std::net::Ipv4Addr;

use clap::Args;
use lonc_host::cli::{ConfigArgs, RunArgs};
use lonc_host::site::{SiteLayout, current_user};
use lond_sim::{LondSim, SimOptions};

/// `lonc demo` options.
#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// How many lond-sim peers to start (on 127.0.0.2, 127.0.0.3, ...).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=250))]
    pub peers: u16,
}

/// Runs the demo; returns the exit code.
pub fn run_demo(args: &DemoArgs) -> i32 {
    match demo(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("lonc demo: {e}");
            1
        }
    }
}

fn demo(args: &DemoArgs) -> std::io::Result<i32> {
    let dir = tempfile::Builder::new().prefix("lonc-demo-").tempdir()?;
    let addrs: Vec<Ipv4Addr> = (0..args.peers)
        .map(|i| Ipv4Addr::new(127, 0, 0, 2 + i as u8))
        .collect();
    let site = SiteLayout::new(dir.path(), "demo0", &addrs)?;
    let user = current_user();
    site.write(&user, &[("loncRetryMin", "1"), ("loncRetryMax", "3")])?;
    let listeners = site
        .peers
        .iter()
        .filter_map(|(id, _)| site.addr(id).map(|a| (id.clone(), a)))
        .collect();
    let sim = LondSim::start(listeners, site.own_id.clone(), SimOptions::default())?;
    let config = site.config_path();
    println!(
        "lonc demo: {} lond-sim peers, site in {}",
        args.peers,
        dir.path().display()
    );
    for (id, _) in &site.peers {
        println!("  {id}: socket {}", site.socket(id).display());
    }
    println!("try, in another terminal:");
    println!(
        "  lonc send --config {} peer1 ping        (or echo:hello, eget:secret, big:100)",
        config.display()
    );
    println!("stop with Ctrl-C");
    let run = RunArgs {
        config: ConfigArgs {
            config: vec![config],
        },
        foreground: true,
        user: Some(user),
    };
    let code = crate::daemon::run(&run);
    sim.stop();
    drop(dir);
    Ok(code)
}
