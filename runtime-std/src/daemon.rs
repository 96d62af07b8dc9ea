//! The std daemon's run loop: [`run`] prepares the start ([`lonc_host::startup`]), starts
//! one [`PeerHandle`] (a thread) per peer through the shared
//! [`Supervisor`], and hands it the action of each
//! signal from a listener thread ([`spawn_listener`]) through the shared
//! [`SignalFlags`]: TERM/INT stop, HUP/USR2 reload, USR1 status.

use std::collections::BTreeMap;
use std::io;
use std::os::unix::net::UnixListener;
use std::thread;

use lonc_core::roster::PeerSpec;
use lonc_host::cli::RunArgs;
use lonc_host::signal_flags::SignalFlags;
use lonc_host::signals::{HANDLED, action};
use lonc_host::startup::prepare;
use lonc_host::supervisor::{PeerContext, PeerSet, Supervisor};
use signal_hook::iterator::{Handle, Signals};

use crate::handle::PeerHandle;

/// The std peers: one [`PeerHandle`] (a thread) per peer.
#[derive(Default)]
pub struct StdPeers(BTreeMap<String, PeerHandle>);

impl PeerSet for StdPeers {
    fn start(
        &mut self,
        spec: PeerSpec,
        ctx: &PeerContext,
        listener: UnixListener,
    ) -> io::Result<()> {
        let id = spec.id.clone();
        let handle = PeerHandle::start(spec, ctx, listener)?;
        self.0.insert(id, handle);
        Ok(())
    }

    fn specs(&self) -> Vec<PeerSpec> {
        self.0.values().map(|h| h.spec().clone()).collect()
    }

    fn states(&self) -> Vec<(String, String)> {
        self.0
            .iter()
            .map(|(id, h)| (id.clone(), h.snapshot().state.as_str().to_string()))
            .collect()
    }

    fn revive_all(&mut self) {
        for h in self.0.values() {
            h.revive();
        }
    }

    fn stop(&mut self, ids: &[String]) {
        let mut stopping: Vec<PeerHandle> = ids.iter().filter_map(|id| self.0.remove(id)).collect();
        for h in &mut stopping {
            h.begin_stop();
        }
        for h in &mut stopping {
            h.join();
        }
    }
}

/// Runs the blocking daemon until TERM/INT; returns the exit code.
pub fn run(args: &RunArgs) -> i32 {
    let prepared = match prepare(args) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let flags = SignalFlags::default();
    let signal_handle = match spawn_listener(flags.clone()) {
        Ok(h) => h,
        Err(e) => return prepared.abort(&format!("cannot handle signals: {e}")),
    };
    let mut supervisor = match Supervisor::start(prepared, StdPeers::default(), "lonc-std") {
        Ok(s) => s,
        Err(code) => {
            signal_handle.close();
            return code;
        }
    };
    'run: loop {
        for action in flags.wait() {
            if !supervisor.handle(action) {
                break 'run;
            }
        }
    }
    supervisor.shutdown();
    signal_handle.close();
    0
}

/// Starts a thread that raises the action of every handled signal in `flags`. The
/// returned handle stops it (`Handle::close`).
pub fn spawn_listener(flags: SignalFlags) -> io::Result<Handle> {
    let mut signals = Signals::new(HANDLED)?;
    let handle = signals.handle();
    thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for signal in signals.forever() {
                if let Some(a) = action(signal) {
                    flags.raise(a);
                }
            }
        })?;
    Ok(handle)
}
