//! The lond side of the classic handshake and of `enc:`: a sans-IO responder so tests, the
//! demo and the benchmarks can run a faithful peer.
