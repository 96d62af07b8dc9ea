//! The check both runtimes' tests make of their acceptor and client readers against a
//! full [`Inbox`]: a client that leaves while its peer's queue is full must be reported
//! at once (its gone notice neither waits for room nor is dropped), after its
//! acceptance. Here once, so the two daemons are held to the same test.

use lonc_core::io::{ClientId, Input as PeerInput};

use crate::inbox::Inbox;
use crate::peer_io::Input;

/// Fills `inbox` with client bytes to one data slot short of full: a client's
/// acceptance then takes the last one.
pub fn fill_but_one<W, S>(inbox: &Inbox<W, S>) {
    for _ in 1..inbox.capacity() {
        let bytes = Input::Peer(PeerInput::ClientData(ClientId(0), vec![b'x']));
        assert!(inbox.post(bytes).is_ok(), "no room before the last slot");
    }
}

/// True once `inbox`, filled by [`fill_but_one`], holds one input more than its capacity
/// (the acceptance and the gone notice).
pub fn overfull<W, S>(inbox: &Inbox<W, S>) -> bool {
    inbox.len() > inbox.capacity()
}

/// Takes everything from `inbox` (filled by [`fill_but_one`]) and panics unless the
/// fill is followed by exactly a client's acceptance and that client's gone notice.
pub fn assert_accepted_then_gone<W, S>(inbox: &Inbox<W, S>) {
    let got: Vec<Input<W, S>> = std::iter::from_fn(|| inbox.try_recv()).collect();
    let n = inbox.capacity();
    assert_eq!(got.len(), n + 1, "the gone notice did not arrive");
    let Input::ClientAccepted(client, _) = &got[n - 1] else {
        panic!("the acceptance is not last but one");
    };
    assert!(
        matches!(&got[n], Input::Peer(PeerInput::ClientGone(c)) if c == client),
        "the last input is not the client's gone notice"
    );
}
