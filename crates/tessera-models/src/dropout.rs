//! Dropout with masks a training step can reproduce when its batch runs in parts side by side.
//!
//! burn's `Dropout` draws its masks from the backend's generator, one per device: on the CPU two
//! parts of a batch drawing from it at once would take each other's numbers in whatever order the
//! threads run. So on the CPU a trainer scopes a seeded stream per part ([`with_stream`]) and
//! [`dropout`] draws that part's masks from it (SplitMix64, also several times faster than burn's
//! per-element ChaCha draws). Outside a scoped stream (a trainer that does not scope one, a test)
//! and on a wgpu device the device's own generator still draws them: on a GPU a mask made on the
//! CPU would have to be uploaded.

use std::cell::RefCell;

use burn::nn::Dropout;
use burn::prelude::*;

use crate::rng::SplitMix64;

thread_local! {
    static STREAM: RefCell<Option<SplitMix64>> = const { RefCell::new(None) };
}

/// Runs `f` with the dropout masks of this thread drawn from the stream of `seed`.
///
/// The previous stream is put back afterwards: a pool thread waiting inside one part's op may run
/// another part whole in the meantime, and the first part must then go on with its own stream.
pub fn with_stream<R>(seed: u64, f: impl FnOnce() -> R) -> R {
    /// Puts the previous stream back, also when `f` panics.
    struct Restore(Option<SplitMix64>);
    impl Drop for Restore {
        fn drop(&mut self) {
            STREAM.with(|s| *s.borrow_mut() = self.0.take());
        }
    }
    let _restore = Restore(STREAM.with(|s| s.replace(Some(SplitMix64::new(seed)))));
    f()
}

/// `layer` applied to `x`: identity outside training, else every element zeroed with the layer's
/// probability and the kept ones scaled by `1 / (1 - p)`, as `torch.nn.Dropout`.
pub fn dropout<const D: usize>(layer: &Dropout, x: Tensor<D>) -> Tensor<D> {
    let device = x.device();
    let training = layer.training.is_enabled() && device.is_autodiff() && layer.prob > 0.0;
    if !training || tessera_kernels::ops::is_wgpu(&device) {
        return layer.forward(x);
    }
    let shape = x.shape();
    let Some(mask) = STREAM.with(|s| s.borrow_mut().as_mut().map(|rng| mask(rng, shape.num_elements(), layer.prob))) else {
        return layer.forward(x);
    };
    x * Tensor::<1>::from_data(TensorData::new(mask, [shape.num_elements()]), &device).reshape(shape)
}

/// `n` multipliers: 0 with probability `p`, else `1 / (1 - p)`; two per 64 random bits.
fn mask(rng: &mut SplitMix64, n: usize, p: f64) -> Vec<f32> {
    let keep = 1.0 - p;
    // A 32-bit draw below this keeps its element: probability `keep` to within 2^-32.
    let threshold = (keep * 4_294_967_296.0) as u64;
    let scale = (1.0 / keep) as f32;
    let mut out = Vec::with_capacity(n + 1);
    while out.len() < n {
        let bits = rng.next_u64();
        for half in [bits & 0xFFFF_FFFF, bits >> 32] {
            out.push(if half < threshold { scale } else { 0.0 });
        }
    }
    out.truncate(n);
    out
}

#[cfg(test)]
mod tests {
    use burn::nn::DropoutConfig;

    use super::*;

    fn ones(device: &Device) -> Tensor<2> {
        Tensor::<2>::ones([64, 100], &device.clone().autodiff())
    }

    #[test]
    fn a_scoped_stream_draws_the_same_masks_again_and_keeps_the_expected_share() {
        let device = Device::flex();
        let layer = DropoutConfig::new(0.25).init();
        let draw = |seed| with_stream(seed, || dropout(&layer, ones(&device)).inner().into_data().iter::<f32>().collect::<Vec<_>>());
        let (a, b, c) = (draw(7), draw(7), draw(8));
        assert_eq!(a, b, "the same seed gives the same masks");
        assert_ne!(a, c, "another seed gives other masks");
        let kept = a.iter().filter(|&&v| v != 0.0).count() as f64 / a.len() as f64;
        assert!((kept - 0.75).abs() < 0.03, "kept {kept}, expected 0.75");
        assert!(a.iter().all(|&v| v == 0.0 || (v - 1.0 / 0.75).abs() < 1e-6), "kept values are scaled by 1 / (1 - p)");
    }

    #[test]
    fn a_nested_stream_leaves_the_outer_one_where_it_was() {
        let device = Device::flex();
        let layer = DropoutConfig::new(0.5).init();
        let draw = || dropout(&layer, ones(&device)).inner().into_data().iter::<f32>().collect::<Vec<_>>();
        let straight = with_stream(1, || (draw(), draw()));
        let interrupted = with_stream(1, || {
            let first = draw();
            with_stream(2, draw);
            (first, draw())
        });
        assert_eq!(straight, interrupted);
    }

    #[test]
    fn outside_training_the_input_passes_unchanged() {
        let device = Device::flex();
        let layer = DropoutConfig::new(0.5).init();
        let x = Tensor::<2>::ones([4, 5], &device);
        let out = with_stream(3, || dropout(&layer, x.clone()));
        assert_eq!(out.into_data().iter::<f32>().collect::<Vec<_>>(), vec![1.0; 20], "no autodiff, no dropout");
    }
}
