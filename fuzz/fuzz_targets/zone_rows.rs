//! Store rows → zone versions and snapshots → AXFR/IXFR, every message checked (`src/rows.rs`).
#![no_main]

use acme_delegate_fuzz::rows::{Rows, run};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: Rows| {
    run(&input);
});
