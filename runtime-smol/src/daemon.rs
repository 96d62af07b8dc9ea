//! The smol daemon's life: the startup and supervisor shared through `lonc-host`, peers as tasks
//! on a multi-threaded smol executor, and signals caught by `async-signal` on a task and
//! handed to the supervisor through the shared [`SignalFlags`].

use std::sync::Arc;
use std::thread;

use async_signal::{Signal, Signals};
use lonc_host::cli::RunArgs;
use lonc_host::signal_flags::SignalFlags;
use lonc_host::signals::{SignalAction, action};
use lonc_host::startup::prepare;
use lonc_host::supervisor::Supervisor;
use smol::Executor;
use smol::stream::StreamExt;

use crate::peers::SmolPeers;

/// Runs the smol daemon until TERM/INT; returns the exit code.
pub fn run(args: &RunArgs) -> i32 {
    let prepared = match prepare(args) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let handled = [
        Signal::Term,
        Signal::Int,
        Signal::Hup,
        Signal::Usr1,
        Signal::Usr2,
    ];
    let mut signals = match Signals::new(handled) {
        Ok(s) => s,
        Err(e) => return prepared.abort(&format!("cannot handle signals: {e}")),
    };
    let executor = Arc::new(Executor::new());
    let (stop_tx, stop_rx) = smol::channel::unbounded::<()>();
    let workers = thread::available_parallelism().map_or(2, |n| n.get());
    let threads: Vec<_> = (0..workers)
        .filter_map(|i| {
            let ex = executor.clone();
            let stop = stop_rx.clone();
            thread::Builder::new()
                .name(format!("lonc worker {i}"))
                .spawn(move || smol::block_on(ex.run(async { stop.recv().await.ok() })))
                .ok()
        })
        .collect();
    let flags = SignalFlags::default();
    let catcher = {
        let flags = flags.clone();
        executor.spawn(async move {
            while let Some(Ok(signal)) = signals.next().await {
                if let Some(a) = action(signal as i32) {
                    flags.raise(a);
                }
            }
            // Signals can no longer be caught: stop, as TERM would.
            flags.raise(SignalAction::Stop);
        })
    };
    let started = Supervisor::start(prepared, SmolPeers::new(executor), "lonc");
    let stop_workers = move || {
        drop(stop_tx);
        for t in threads {
            let _ = t.join();
        }
    };
    let mut supervisor = match started {
        Ok(s) => s,
        Err(code) => {
            stop_workers();
            return code;
        }
    };
    // The supervisor runs on this thread, not on an executor thread: its waits block no
    // peer task.
    'run: loop {
        for a in flags.wait() {
            if !supervisor.handle(a) {
                break 'run;
            }
        }
    }
    supervisor.shutdown();
    // Caught until here: a second TERM during the stop is not the default (fatal) one.
    drop(catcher);
    stop_workers();
    0
}
