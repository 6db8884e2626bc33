//! cargo-fuzz target `request`: the body is [`roomcast_fuzzing::request::run`] (see there for what it
//! asserts), shared with the stable corpus replay of `crates/fuzzing/tests/corpus.rs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| roomcast_fuzzing::request::run(data));
