//! An exponential moving average of a model's weights, the copy the equivariant code samples with.
//! Official: drx-code/EquivariantModeling @4b15f32b, `tokenizer/ema.py` (`LitEma`: decay with
//! the `(1 + n) / (10 + n)` warm-up) and `generator/engine_generator.py` (`update_ema`, a fixed
//! decay).

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::prelude::*;

/// The averaged copy of a model (without autodiff) and how fast it follows.
#[derive(Debug, Clone)]
pub struct Ema<M> {
    module: M,
    decay: f64,
    /// Ramp the decay up as `min(decay, (1 + n) / (10 + n))` over the first updates (`LitEma`).
    warmup: bool,
    updates: usize,
}

impl<M: Module> Ema<M> {
    /// Starts the average at `module` (its weights, without autodiff).
    pub fn new(module: M, decay: f64, warmup: bool) -> Self {
        Self { module, decay, warmup, updates: 0 }
    }

    /// Continues an average saved earlier, `updates` updates in.
    pub fn resume(module: M, decay: f64, warmup: bool, updates: usize) -> Self {
        Self { module, decay, warmup, updates }
    }

    /// The decay of the next update.
    pub fn next_decay(&self) -> f64 {
        let n = self.updates as f64;
        if self.warmup { self.decay.min((1.0 + n) / (10.0 + n)) } else { self.decay }
    }

    /// `ema ← d · ema + (1 − d) · current`, parameter by parameter; `current` is the trained
    /// model without autodiff (the same structure).
    pub fn update(&mut self, current: &M) {
        #[derive(Default)]
        struct Collect(Vec<Tensor<1>>);
        impl ModuleVisitor for Collect {
            fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
                let t = param.val();
                let n = t.shape().num_elements();
                self.0.push(t.reshape([n]));
            }
        }
        struct Blend {
            current: std::vec::IntoIter<Tensor<1>>,
            decay: f64,
        }
        impl ModuleMapper for Blend {
            fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
                let (id, value, mapper) = param.consume();
                let current = self.current.next().expect("the averaged model has the trained one's structure");
                let shape = value.shape();
                let blended = value * self.decay + current.reshape(shape) * (1.0 - self.decay);
                Param::from_mapped_value(id, blended, mapper)
            }
        }
        let mut collect = Collect::default();
        current.visit(&mut collect);
        let decay = self.next_decay();
        self.module = self.module.clone().map(&mut Blend { current: collect.0.into_iter(), decay });
        self.updates += 1;
    }

    /// The averaged model.
    pub fn module(&self) -> &M {
        &self.module
    }

    /// Updates so far.
    pub fn updates(&self) -> usize {
        self.updates
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::{Linear, LinearConfig};

    #[test]
    fn the_average_follows_the_weights_at_the_decay() {
        let device = Device::flex();
        let a: Linear = LinearConfig::new(3, 2).init(&device);
        let b = a.clone().map(&mut Scale(3.0));
        let mut ema = Ema::new(a.clone(), 0.9, false);
        ema.update(&b);
        // 0.9 · w + 0.1 · 3w = 1.2 w
        let got = ema.module().weight.val();
        let want = a.weight.val() * 1.2;
        assert!(got.sub(want).abs().max().into_scalar::<f32>() < 1e-6);
        assert_eq!(ema.updates(), 1);
    }

    #[test]
    fn the_warm_up_ramps_the_decay() {
        let device = Device::flex();
        let a: Linear = LinearConfig::new(2, 2).init(&device);
        let mut ema = Ema::new(a.clone(), 0.99, true);
        assert!((ema.next_decay() - 0.1).abs() < 1e-12);
        ema.update(&a);
        assert!((ema.next_decay() - 2.0 / 11.0).abs() < 1e-12);
        assert_eq!(Ema::resume(a, 0.99, true, 10_000).next_decay(), 0.99);
    }

    struct Scale(f64);
    impl ModuleMapper for Scale {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            let (id, value, mapper) = param.consume();
            Param::from_mapped_value(id, value * self.0, mapper)
        }
    }
}
