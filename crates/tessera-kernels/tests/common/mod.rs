//! Shared by the kernel tests: the wgpu device (lavapipe in CI), random inputs, comparisons.
#![allow(dead_code)]

use burn::tensor::{Device, Distribution, Tensor, TensorData};
use tessera_kernels::device::{self, Preference};

/// A wgpu adapter (lavapipe where there is no GPU). Every test that calls this is `#[ignore]`d, so
/// plain `cargo test` lists it as skipped with the reason; asked for (`--ignored`, as
/// scripts/test.sh does), it must check something, so a missing adapter fails it.
pub fn gpu_compute() -> device::Compute {
    match device::create_blocking(Preference::Gpu) {
        Ok(c) => {
            eprintln!("device: {}", c.describe());
            c
        }
        Err(e) => panic!(
            "no wgpu adapter ({e}); this test needs one: without a GPU install lavapipe \
             (`apt-get install mesa-vulkan-drivers libvulkan1`, as scripts/setup.sh does)"
        ),
    }
}

/// The wgpu device of [`gpu_compute`].
pub fn gpu() -> Device {
    gpu_compute().device
}

/// Uniform random values made on the CPU from `seed`, so every device sees the same numbers.
pub fn random<const D: usize>(shape: [usize; D], seed: u64, lo: f64, hi: f64, device: &Device) -> Tensor<D> {
    let cpu = Device::flex();
    cpu.seed(seed);
    let data = Tensor::<D>::random(shape, Distribution::Uniform(lo, hi), &cpu).into_data();
    Tensor::from_data(data, device)
}

pub fn to_vec<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_into_vec::<f32>().unwrap()
}

pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

pub fn from_vec<const D: usize>(v: Vec<f32>, shape: [usize; D], device: &Device) -> Tensor<D> {
    Tensor::from_data(TensorData::new(v, shape), device)
}
