//! `lonc-std`: the blocking lonc daemon (skeleton, built out by the lonc-std issue).
fn main() {}
