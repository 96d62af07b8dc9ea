//! End-to-end: the blocking daemon `lonc-std` against lond-sim on loopback, through the
//! shared acceptance suite (`lonc_tests::suite`).

use lonc_tests::e2e::STD;

lonc_tests::all_suite_tests!(STD);
