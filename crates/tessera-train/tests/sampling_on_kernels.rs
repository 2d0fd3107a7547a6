//! VAR sampling through the WGSL kernels: the shipped tiny MNIST models sampled greedily on the
//! wgpu device (transformer attention, quantizer, and the tokenizer decoder's conv3x3, GroupNorm +
//! SiLU and attention kernels; lavapipe in CI) pick the same tokens and draw
//! the same images as on the CPU backend (plain ops), and as with `set_reference_ops` on the
//! same wgpu device.

use burn::prelude::*;
use tessera_kernels::device::{self, Preference};
use tessera_kernels::{kernels_enabled, set_reference_ops};
use tessera_models::sampling::var::{VarSamplerConfig, sample};
use tessera_train::Checkpoint;
use tessera_train::tokenizer::load_tokenizer;
use tessera_train::var::load_var;

/// The wgpu device (lavapipe where there is no GPU). The test is `#[ignore]`d, so plain
/// `cargo test` lists it as skipped; asked for (`--ignored`), a missing adapter fails it.
fn gpu() -> Device {
    match device::create_blocking(Preference::Gpu) {
        Ok(c) => c.device,
        Err(e) => panic!(
            "no wgpu adapter ({e}); this test needs one: without a GPU install lavapipe \
             (`apt-get install mesa-vulkan-drivers libvulkan1`, as scripts/setup.sh does)"
        ),
    }
}

/// Greedy (top-k 1) samples of digits 0..4 with guidance 1: tokens per scale and the images.
fn greedy(device: &Device) -> (Vec<Vec<i64>>, Vec<f32>) {
    let assets = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../assets/var-tiny");
    let (_, vae) = load_tokenizer(&Checkpoint::load(&assets.join("tokenizer.ckpt")).unwrap(), device).unwrap();
    let (_, var) = load_var(&Checkpoint::load(&assets.join("var.ckpt")).unwrap(), device).unwrap();
    let labels = Tensor::<1, Int>::from_data(TensorData::new(vec![0i64, 1, 2, 3, 4], [5]), device);
    let config = VarSamplerConfig::new().with_guidance(1.0).with_top_k(1);
    let run = sample(&var, &vae, labels, config, false);
    let tokens = run.tokens.into_iter().map(|t| t.into_data().convert::<i64>().try_to_vec::<i64>().unwrap()).collect();
    (tokens, run.image.into_data().try_to_vec::<f32>().unwrap())
}

#[test]
#[ignore = "needs a GPU adapter (lavapipe will do): scripts/test.sh runs it with --ignored"]
fn greedy_samples_agree_between_kernels_and_plain_ops() {
    let gpu = gpu();
    assert!(kernels_enabled(&gpu), "the wgpu device must take the kernel path");
    let (cpu_tokens, cpu_image) = greedy(&Device::flex());
    let (gpu_tokens, gpu_image) = greedy(&gpu);
    set_reference_ops(true);
    let (ref_tokens, _) = greedy(&gpu);
    set_reference_ops(false);
    // Greedy picks can flip only at exact logit ties; allow a handful of the 5 x 155 tokens.
    for (name, other) in [("kernels", &gpu_tokens), ("plain ops on wgpu", &ref_tokens)] {
        let differing: usize = cpu_tokens.iter().zip(other.iter()).map(|(a, b)| a.iter().zip(b).filter(|(x, y)| x != y).count()).sum();
        assert!(differing <= 3, "{name}: {differing} of 775 greedy tokens differ from the CPU run");
    }
    let max = cpu_image.iter().zip(&gpu_image).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    let mean = cpu_image.iter().zip(&gpu_image).map(|(a, b)| (a - b).abs()).sum::<f32>() / cpu_image.len() as f32;
    assert!(mean < 0.01, "images differ: mean |diff| {mean}, max {max}");
}
