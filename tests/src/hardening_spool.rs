//! End-to-end hardening tests, delayed spool (issue 7 items 1 and 11): partly written files, odd entries, undeletable files.
//! Each test is a `pub fn` taking the [`Runtime`](crate::e2e::Runtime), listed in the
//! macro below so that both runtimes' test files run it.

/// The tests of this module as `#[test]` functions for one runtime.
#[macro_export]
macro_rules! hardening_spool_tests {
    ($rt:expr) => {
        $crate::module_tests! {
            $rt; hardening_spool;
        }
    };
}
