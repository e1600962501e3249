//! An acme-dns SQLite file of arbitrary rows → import → store → zone → AXFR (`src/import.rs`).
#![no_main]

use acme_delegate_fuzz::import::{Source, run};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    run(&Source::read(data));
});
