//! Fuzz target: the lond responder fed arbitrary bytes and arbitrary replies never panics,
//! and emits nothing after `Close`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lonc_core::lond::{LondConfig, LondEvent, LondSession};

fuzz_target!(|input: (bool, Vec<Vec<u8>>, Vec<(u8, bool)>)| {
    let (refuse, chunks, replies) = input;
    let mut s = LondSession::new(LondConfig {
        own_id: "lond".into(),
        client_id: "lonc".into(),
        challenge: "12345".into(),
        buildkey: "ABC123".into(),
        refuse,
        max_line: 128,
    });
    let mut ids = Vec::new();
    let mut closed = false;
    let mut replies = replies.into_iter();
    for chunk in chunks {
        s.handle_data(&chunk);
        while let Some(ev) = s.poll_event() {
            assert!(!closed, "event after Close");
            match ev {
                LondEvent::Close => closed = true,
                LondEvent::Request { id, .. } => ids.push(id),
                LondEvent::Transmit(_) => {}
            }
        }
        if let Some((pick, enc)) = replies.next()
            && !ids.is_empty()
        {
            let id = ids.remove(usize::from(pick) % ids.len());
            if enc {
                s.reply_encrypted(id, b"x");
            } else {
                s.reply(id, b"y");
            }
        }
    }
});
