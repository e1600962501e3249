//! The stable fuzzer's `json_body` target (tests/integration/fuzz/targets.rs) under libFuzzer.
#![no_main]

use acme_delegate_fuzz::{context, targets};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    targets::json_body(context(), data);
});
