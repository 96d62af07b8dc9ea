//! End-to-end: the smol daemon `lonc` against lond-sim on loopback, through the
//! shared acceptance suite (`lonc_tests::suite`).

use lonc_tests::e2e::SMOL;

lonc_tests::all_suite_tests!(SMOL);
