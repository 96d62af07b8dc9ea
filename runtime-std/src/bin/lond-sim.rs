//! `lond-sim`: a lond-compatible peer for tests and demos (skeleton).
fn main() {}
