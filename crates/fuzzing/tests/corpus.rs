//! Replays every committed corpus file of every fuzz target once (`fuzz/corpus/<target>`,
//! the fuzzers' minimised coverage) and every crash they found (`fuzz/regressions/<target>`,
//! kept by name outside the corpus so minimising never drops one), with the same target
//! bodies the fuzzer runs: their regression test in the ordinary, stable test run.

use std::path::{Path, PathBuf};

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target)
}

fn regressions_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/regressions")
        .join(target)
}

/// The files of `dir`, sorted; none when it does not exist.
fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .collect(),
        Err(_) => Vec::new(),
    };
    files.sort();
    files
}

fn replay(target: &str) {
    let (_, body) = roomcast_fuzzing::TARGETS
        .iter()
        .find(|(name, _)| *name == target)
        .copied()
        .unwrap_or_else(|| panic!("no target {target}"));
    let dir = corpus_dir(target);
    let mut files = files_in(&dir);
    assert!(
        !files.is_empty(),
        "{} is empty (every target has a committed corpus)",
        dir.display()
    );
    files.extend(files_in(&regressions_dir(target)));
    for file in &files {
        let data = std::fs::read(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let outcome = std::panic::catch_unwind(|| body(&data));
        assert!(outcome.is_ok(), "{target}: {} fails", file.display());
    }
    eprintln!("{target}: replayed {} files", files.len());
}

#[test]
fn every_target_has_a_test_here() {
    let names: Vec<&str> = roomcast_fuzzing::TARGETS.iter().map(|(n, _)| *n).collect();
    assert_eq!(
        names,
        [
            "request",
            "ids",
            "jwt",
            "challenge",
            "config",
            "collectives",
            "signed",
            "order"
        ]
    );
    for name in names {
        let target = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../fuzz/fuzz_targets")
            .join(format!("{name}.rs"));
        assert!(target.is_file(), "{} missing", target.display());
    }
}

#[test]
fn corpus_request() {
    replay("request");
}

#[test]
fn corpus_ids() {
    replay("ids");
}

#[test]
fn corpus_jwt() {
    replay("jwt");
}

#[test]
fn corpus_challenge() {
    replay("challenge");
}

#[test]
fn corpus_config() {
    replay("config");
}

#[test]
fn corpus_collectives() {
    replay("collectives");
}

#[test]
fn corpus_signed() {
    replay("signed");
}

#[test]
fn corpus_order() {
    replay("order");
}

/// Runs `target` on one crash the fuzzer found, kept by name in `fuzz/regressions`.
fn replay_one(target: &str, file: &str) {
    let (_, body) = roomcast_fuzzing::TARGETS
        .iter()
        .find(|(name, _)| *name == target)
        .copied()
        .unwrap_or_else(|| panic!("no target {target}"));
    let path = regressions_dir(target).join(file);
    let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    body(&data);
}

/// Found by fuzzing: `{"type":..,"room":"a","room":"b":[..` (a duplicate field, then a
/// syntax error) was answered INVALID_MESSAGE instead of INVALID_JSON.
#[test]
fn regression_request_duplicate_field_before_syntax_error() {
    replay_one("request", "duplicate-before-syntax-error");
}

/// Found by fuzzing: a signed payload with invalid UTF-8 inside a claim roomcast ignores
/// verifies (serde_json skips such strings unchecked); the target's reference now reads
/// payloads the same way.
#[test]
fn regression_jwt_invalid_utf8_in_an_ignored_claim() {
    replay_one("jwt", "invalid-utf8-in-ignored-claim");
}

/// Found by fuzzing: `{"t\uDeC8subscribe":..}` (valid JSON syntax, a key with a lone
/// surrogate escape serde_json cannot decode) was answered INVALID_JSON; it is
/// INVALID_MESSAGE now, so INVALID_JSON means exactly "not JSON".
#[test]
fn regression_request_lone_surrogate_in_a_key() {
    replay_one("request", "lone-surrogate-in-key");
}
