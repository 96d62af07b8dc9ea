//! End-to-end hardening tests, configuration ranges and hosts.tab checks (issue 7 items 4 and 7).
//! Each test is a `pub fn` taking the [`Runtime`](crate::e2e::Runtime), listed in the
//! macro below so that both runtimes' test files run it.

/// The tests of this module as `#[test]` functions for one runtime.
#[macro_export]
macro_rules! hardening_config_tests {
    ($rt:expr) => {
        $crate::module_tests! {
            $rt; hardening_config;
        }
    };
}
