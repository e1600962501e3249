//! The stable fuzzer's `dns_answer` target (tests/integration/fuzz/targets.rs) under libFuzzer.
#![no_main]

use acme_delegate_fuzz::{context, targets};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    targets::dns_answer(context(), data);
});
