//! Shared by the kernel tests: the wgpu device (lavapipe in CI), random inputs, comparisons.
#![allow(dead_code)]

use burn::tensor::{Device, Distribution, Tensor, TensorData};
use tessera_kernels::device::{self, Preference};

/// In CI a software Vulkan adapter is installed, so a missing adapter is a failure there, not a skip.
pub fn gpu_required() -> bool {
    std::env::var_os("CI").is_some() || std::env::var_os("TESSERA_REQUIRE_GPU").is_some()
}

/// The wgpu device, or `None` (with the reason printed) where there is none and none is required.
pub fn gpu() -> Option<Device> {
    match device::create_blocking(Preference::Gpu) {
        Ok(c) => {
            eprintln!("device: {}", c.describe());
            Some(c.device)
        }
        Err(e) if !gpu_required() => {
            eprintln!("skipped: no wgpu adapter on this machine ({e}); CI installs lavapipe and requires one");
            None
        }
        Err(e) => panic!("no wgpu adapter, but CI must have lavapipe: {e}"),
    }
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
