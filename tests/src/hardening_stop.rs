//! End-to-end hardening tests, stopping and local resource limits (issue 7 items 3, 8 and 10): stop never depends on the filesystem, EMFILE is the daemon's problem, abandoned requests are not sent.
//! Each test is a `pub fn` taking the [`Runtime`](crate::e2e::Runtime), listed in the
//! macro below so that both runtimes' test files run it.

/// The tests of this module as `#[test]` functions for one runtime.
#[macro_export]
macro_rules! hardening_stop_tests {
    ($rt:expr) => {
        $crate::module_tests! {
            $rt; hardening_stop;
        }
    };
}
