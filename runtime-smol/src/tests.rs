//! The smol driver's own tests: a client leaving while its peer's queue is full is
//! reported (the same inbox as the std daemon's, here through its `async` calls).

use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lonc_host::inbox_check::{assert_accepted_then_gone, fill_but_one, overfull};
use lonc_host::logfile::LogFiles;
use lonc_host::peer_io::{INPUT_QUEUE, Writers};
use smol::{Async, Executor, Timer, channel};

use crate::streams::{Inbox, PeerRt, accept_loop};

/// A client that leaves while its peer's queue is full is reported at once: its
/// reader's gone notice neither waits for room nor is dropped, and it comes after the
/// client's acceptance, which took the last data slot.
#[test]
fn a_client_leaving_while_its_peer_queue_is_full_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("peer");
    let listener = Async::new(UnixListener::bind(&path).unwrap()).unwrap();
    let inbox = Inbox::new(INPUT_QUEUE);
    fill_but_one(&inbox);
    let executor = Arc::new(Executor::new());
    let rt = PeerRt {
        executor: executor.clone(),
        writers: Writers::default(),
        logs: LogFiles::stderr_only(),
    };
    let (stop, stop_rx) = channel::bounded(1);
    let acceptor = executor.spawn(accept_loop(listener, inbox.clone(), stop_rx, rt));
    smol::block_on(executor.run(async {
        drop(UnixStream::connect(&path).unwrap());
        let by = Instant::now() + Duration::from_secs(5);
        while !overfull(&inbox) && Instant::now() < by {
            Timer::after(Duration::from_millis(10)).await;
        }
        stop.send(()).await.unwrap();
        acceptor.await;
    }));
    assert_accepted_then_gone(&inbox);
}
