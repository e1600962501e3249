//! Store rows → zone versions and snapshots → AXFR/IXFR, every message checked
//! (tests/integration/fuzz/rows.rs, shared with the stable fuzzer).
#![no_main]

use acme_delegate_fuzz::rows::{Rows, run};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    run(&Rows::read(data));
});
