//! Delayed (critical) messages: which spool files belong to a peer and in what order, and
//! the `S` line appended to `lonnet.perm.log` once one is delivered.

/// A delivered delayed message, for `lonnet.perm.log`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PermLogEntry {
    /// The peer's host id.
    pub peer: String,
    /// The request as read from the file (first line, LF removed).
    pub request: Vec<u8>,
}

impl PermLogEntry {
    /// `<epoch>:S:<peer>:<request>:<localtime>` plus LF; the runtime supplies the wall
    /// clock (`epoch` seconds and `localtime` like `Wed Mar 20 03:44:11 2002`).
    pub fn line(&self, epoch: u64, localtime: &str) -> Vec<u8> {
        let mut out = format!("{epoch}:S:{}:", self.peer).into_bytes();
        out.extend_from_slice(&self.request);
        out.extend_from_slice(format!(":{localtime}\n").as_bytes());
        out
    }
}
