//! The bodies of roomcast's fuzz targets, callable from stable code.
//!
//! Each module owns one untrusted-input parser and exposes `run(data: &[u8])`, which feeds
//! it the bytes and asserts what must hold for every input (a round trip, agreement with a
//! simple reference, an invariant of the state it drives), panicking otherwise. Two
//! callers: the cargo-fuzz targets in `fuzz/fuzz_targets` (nightly, libFuzzer; run by
//! `scripts/fuzz`), and `tests/corpus.rs`, which replays every committed corpus file of
//! `fuzz/corpus/<target>` once in the ordinary test run. A crash found by fuzzing is
//! minimised into that corpus and gets a named regression test.

pub mod challenge;
pub mod collectives;
pub mod config;
pub mod ids;
pub mod input;
pub mod jwt;
pub mod order;
pub mod request;
pub mod signed;

/// A target's body: feeds it one input, panics when an assertion fails.
pub type Body = fn(&[u8]);

/// Every target: its name (the `fuzz/fuzz_targets/<name>.rs` file and the
/// `fuzz/corpus/<name>` directory) and its body.
pub const TARGETS: &[(&str, Body)] = &[
    ("request", request::run),
    ("ids", ids::run),
    ("jwt", jwt::run),
    ("challenge", challenge::run),
    ("config", config::run),
    ("collectives", collectives::run),
    ("signed", signed::run),
    ("order", order::run),
];
