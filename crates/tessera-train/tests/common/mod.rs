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

/// Whether two of a step's figures agree to float rounding (a batch summed in another order).
pub fn close(a: f32, b: f32) -> bool {
    (a - b).abs() <= 1e-5 * a.abs().max(1.0)
}
