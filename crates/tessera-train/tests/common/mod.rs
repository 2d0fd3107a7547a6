//! What the training tests share: running steps with the batch cut into a chosen number of parts.

use burn::prelude::*;

/// `f` on a pool of `parts` threads: a training step on the CPU inside it cuts its batch of
/// `rows` into one part per thread (checked, so a test cannot compare one part with itself).
pub fn in_parts<R: Send>(parts: usize, rows: usize, f: impl FnOnce() -> R + Send) -> R {
    let pool = rayon::ThreadPoolBuilder::new().num_threads(parts).build().expect("a thread pool");
    pool.install(|| {
        assert_eq!(tessera_kernels::cpu::batch_parts(&Device::flex(), rows), parts, "one part per thread");
        f()
    })
}

/// Asserts that a run in parts took the whole run's steps: each step's `figures` agree to float
/// rounding (a batch summed in another order), within 1e-5 relative at the first step and 1e-3
/// after it. AdamW divides each update by the gradient's own size, so rounding in near-zero
/// gradients grows from one step to the next. A part given the wrong rows is off by percents at
/// the first step.
pub fn assert_same_steps<T: std::fmt::Debug>(whole: &[T], parts: &[T], figures: impl Fn(&T) -> Vec<f32>) {
    assert_eq!(whole.len(), parts.len());
    for (i, (w, p)) in whole.iter().zip(parts).enumerate() {
        let tolerance = if i == 0 { 1e-5 } else { 1e-3 };
        let close = figures(w).into_iter().zip(figures(p)).all(|(a, b)| (a - b).abs() <= tolerance * a.abs().max(1.0));
        assert!(close, "step {i}: whole {w:?}, in parts {p:?}");
    }
}
