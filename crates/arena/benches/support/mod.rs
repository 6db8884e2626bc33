//! What the criterion benches of this crate share: one set of timings, so every bench reads
//! the same way and the whole run stays near a minute on a shared machine.

use std::time::Duration;

use criterion::Criterion;

/// What `criterion_group!`/`criterion_main!` would set up, minus an undocumented `pub fn`,
/// with short timings (0.5 s warm-up, 2 s measurement, 30 samples); command-line flags still
/// override them.
pub(crate) fn criterion() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30)
        .configure_from_args()
}
