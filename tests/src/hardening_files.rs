//! End-to-end hardening tests, files the daemon creates and the operator's truth (issue 7 items 5, 6 and 9): status and pid files, sockets, an unusable socket directory, error messages.
//! Each test is a `pub fn` taking the [`Runtime`](crate::e2e::Runtime), listed in the
//! macro below so that both runtimes' test files run it.

/// The tests of this module as `#[test]` functions for one runtime.
#[macro_export]
macro_rules! hardening_files_tests {
    ($rt:expr) => {
        $crate::module_tests! {
            $rt; hardening_files;
        }
    };
}
