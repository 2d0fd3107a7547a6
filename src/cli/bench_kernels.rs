//! `tessera bench kernels`: every WGSL kernel against its plain-burn twin on the same wgpu device,
//! at the shapes the generators use (VAR's 7- and 10-scale schedules, RAR's 64- and 256-token
//! sequences with a KV cache, the column generator's windowed and cross-attention, codebooks of 256
//! to 8192, the layers and whole decoders of the tokenizers).
//!
//! Each row is the median wall time of the kernel and of the plain ops (9 runs each, alternating,
//! after a warm-up run; device work synced) and the largest difference between their outputs.
//! The table ends with each family's median speed-up against the targets; `--json`
//! prints the rows alone.

use std::time::Instant;

use anyhow::Context;
use burn::prelude::*;
use burn::tensor::Distribution;
use pollster::block_on;
use serde::Serialize;
use tessera_kernels::attention::{AttentionMask, attention, attention_reference};
use tessera_kernels::decoder::{Padding, conv3x3, conv3x3_reference, group_norm, group_norm_reference, pixel_shuffle, pixel_shuffle_reference};
use tessera_kernels::quantize::{quantize, quantize_reference};
use tessera_kernels::ops::is_wgpu;
use tessera_kernels::set_reference_ops;
use tessera_train::VarPreset;

use super::sample::shipped;
use tessera_train::Checkpoint;
use tessera_train::tokenizer::load_tokenizer;

/// Median speed-up over the plain ops each kernel family should reach (the targets).
pub const TARGETS: [(&str, f64); 3] = [("attention", 2.0), ("quantize", 3.0), ("decode", 1.5)];

/// One kernel at one shape.
#[derive(Debug, Serialize)]
pub struct KernelRow {
    /// `attention`, `quantize`, or `decode/<layer>`.
    pub kernel: String,
    /// Which generator's shape this is, and the shape.
    pub case: String,
    /// The device, in words.
    pub device: String,
    /// Median ms of the WGSL kernel.
    pub custom_ms: f64,
    /// Median ms of the plain burn ops doing the same computation.
    pub reference_ms: f64,
    /// `reference_ms / custom_ms`.
    pub speedup: f64,
    /// Largest absolute difference between the two outputs.
    pub max_abs_diff: f64,
}

/// The rows, on `device` (a wgpu device: elsewhere there are no kernels to time).
pub fn kernel_rows(device: &Device, device_name: &str, quick: bool) -> anyhow::Result<Vec<KernelRow>> {
    anyhow::ensure!(
        is_wgpu(device),
        "`bench kernels` compares the WGSL kernels with plain burn ops on a wgpu device, and this device is {device_name}; \
         install a Vulkan driver (e.g. Mesa's lavapipe: apt install mesa-vulkan-drivers) or pass --device gpu"
    );
    anyhow::ensure!(
        !tessera_kernels::reference_ops(),
        "`bench kernels` times both the kernels and the plain ops; leave out --reference-ops"
    );
    let bench = Bench { device: device.clone(), device_name: device_name.to_string(), reps: if quick { 1 } else { 9 } };
    let mut rows = Vec::new();
    attention_rows(&bench, quick, &mut rows)?;
    quantize_rows(&bench, quick, &mut rows)?;
    decode_rows(&bench, quick, &mut rows)?;
    Ok(rows)
}

/// `(family, median speed-up, target)` for each family with rows.
pub fn summary(rows: &[KernelRow]) -> Vec<(&'static str, f64, f64)> {
    TARGETS
        .iter()
        .filter_map(|&(family, target)| {
            let mut s: Vec<f64> = rows.iter().filter(|r| r.kernel.starts_with(family)).map(|r| r.speedup).collect();
            s.sort_by(f64::total_cmp);
            let median = match s.len() {
                0 => return None,
                n if n % 2 == 1 => s[n / 2],
                n => (s[n / 2 - 1] + s[n / 2]) / 2.0,
            };
            Some((family, median, target))
        })
        .collect()
}

struct Bench {
    device: Device,
    device_name: String,
    reps: usize,
}

impl Bench {
    /// Times `custom` and `reference` (each returns its output) and compares their outputs.
    fn row<const D: usize>(
        &self,
        kernel: &str,
        case: String,
        mut custom: impl FnMut() -> Tensor<D>,
        mut reference: impl FnMut() -> Tensor<D>,
    ) -> anyhow::Result<KernelRow> {
        let diff = (custom() - reference()).abs().max();
        let max_abs_diff = block_on(diff.into_data_async()).context("reading the difference back")?.convert::<f32>().try_to_vec::<f32>().map_err(|e| anyhow::anyhow!("{e:?}"))?[0] as f64;
        let (custom_ms, reference_ms) = self.median_ms(&mut custom, &mut reference)?;
        Ok(KernelRow {
            kernel: kernel.to_string(),
            case,
            device: self.device_name.clone(),
            custom_ms,
            reference_ms,
            speedup: reference_ms / custom_ms,
            max_abs_diff,
        })
    }

    /// Median wall times of `a` and `b` in ms, device work included, after one warm-up run of
    /// each. The two alternate, so a change in the machine's load weighs on both alike.
    fn median_ms<const D: usize>(&self, a: &mut impl FnMut() -> Tensor<D>, b: &mut impl FnMut() -> Tensor<D>) -> anyhow::Result<(f64, f64)> {
        let time = |f: &mut dyn FnMut() -> Tensor<D>| -> anyhow::Result<f64> {
            let start = Instant::now();
            drop(f());
            self.device.sync().context("waiting for the device")?;
            Ok(start.elapsed().as_secs_f64() * 1e3)
        };
        time(a)?;
        time(b)?;
        let (mut ta, mut tb) = (Vec::with_capacity(self.reps), Vec::with_capacity(self.reps));
        for _ in 0..self.reps {
            ta.push(time(a)?);
            tb.push(time(b)?);
        }
        let median = |mut t: Vec<f64>| {
            t.sort_by(f64::total_cmp);
            t[t.len() / 2]
        };
        Ok((median(ta), median(tb)))
    }

    /// Uniform values in `[-1, 1)` made on the CPU from `seed`, so every device sees the same inputs.
    fn random<const D: usize>(&self, shape: [usize; D], seed: u64) -> Tensor<D> {
        let cpu = Device::flex();
        cpu.seed(seed);
        let data = Tensor::<D>::random(shape, Distribution::Uniform(-1.0, 1.0), &cpu).into_data();
        Tensor::from_data(data, &self.device)
    }
}

fn attention_rows(bench: &Bench, quick: bool, rows: &mut Vec<KernelRow>) -> anyhow::Result<()> {
    let var7 = AttentionMask::block_causal(&[1, 2, 3, 4, 5, 6, 8].map(|p| p * p));
    let var10 = AttentionMask::block_causal(&[1, 2, 3, 4, 5, 6, 8, 10, 13, 16].map(|p| p * p));
    // (case, [B, H, Lq, Lk, D], mask, in the quick run)
    let cases = [
        ("var 7 scales (tiny), teacher forcing", [16, 4, 155, 155, 32], var7.clone(), true),
        ("var 7 scales (tiny), cache: last scale", [16, 4, 64, 155, 32], var7, true),
        ("var 10 scales (256 px), teacher forcing", [2, 16, 680, 680, 64], var10.clone(), false),
        ("var 10 scales (256 px), cache: last scale", [2, 16, 256, 680, 64], var10, false),
        ("rar 64 tokens, causal", [8, 16, 64, 64, 64], AttentionMask::Causal, false),
        ("rar 64 tokens, cache: 1 new token", [8, 16, 1, 64, 64], AttentionMask::Causal, true),
        ("rar 256 tokens, causal", [2, 16, 256, 256, 64], AttentionMask::Causal, false),
        ("rar 256 tokens, cache: 1 new token", [8, 16, 1, 256, 64], AttentionMask::Causal, false),
        ("columns: window 32 of 256", [4, 8, 256, 256, 64], AttentionMask::Window(32), false),
        ("columns: window 32, 1024 wide", [1, 8, 1024, 1024, 64], AttentionMask::Window(32), true),
        ("columns: cross-attention to 16 class tokens", [4, 8, 256, 16, 64], AttentionMask::None, false),
    ];
    for (seed, (case, [b, h, lq, lk, d], mask, in_quick)) in cases.into_iter().enumerate() {
        if quick && !in_quick {
            continue;
        }
        let seed = 100 * seed as u64;
        let (q, k, v) = (bench.random([b, h, lq, d], seed), bench.random([b, h, lk, d], seed + 1), bench.random([b, h, lk, d], seed + 2));
        let scale = 1.0 / (d as f32).sqrt();
        let case = format!("{case} [B {b}, H {h}, Lq {lq}, Lk {lk}, D {d}]");
        rows.push(bench.row(
            "attention",
            case,
            || attention(q.clone(), k.clone(), v.clone(), &mask, scale),
            || attention_reference(q.clone(), k.clone(), v.clone(), &mask, scale),
        )?);
    }
    Ok(())
}

fn quantize_rows(bench: &Bench, quick: bool, rows: &mut Vec<KernelRow>) -> anyhow::Result<()> {
    // (case, N vectors, D, V codes, in the quick run)
    let cases = [
        ("var-tiny, last scale of 16 images", 16 * 64, 8, 256, true),
        ("codebook 512", 4096, 16, 512, false),
        ("rar 256 tokens x 8 images, codebook 1024", 8 * 256, 16, 1024, false),
        ("var 256 px, last scale of 16 images, codebook 4096", 16 * 256, 32, 4096, false),
        ("codebook 8192", 1024, 8, 8192, false),
    ];
    for (seed, (case, n, d, v, in_quick)) in cases.into_iter().enumerate() {
        if quick && !in_quick {
            continue;
        }
        let (x, codebook) = (bench.random([n, d], 500 + seed as u64), bench.random([v, d], 600 + seed as u64));
        // The codes, not the indices, are compared: an exact tie may pick another index with the
        // same distance, never another distance.
        rows.push(bench.row(
            "quantize",
            format!("{case} [N {n}, D {d}, V {v}]"),
            || quantize(x.clone(), codebook.clone()).1,
            || quantize_reference(x.clone(), codebook.clone()).1,
        )?);
    }
    Ok(())
}

fn decode_rows(bench: &Bench, quick: bool, rows: &mut Vec<KernelRow>) -> anyhow::Result<()> {
    // Single layers: (case, input shape, output channels, padding, up-sampling, in the quick run).
    let convs = [
        ("small decoder, zero padding", [4, 64, 32, 32], 64, Padding::Zero, 1, false),
        ("small decoder, nearest x2 fused", [4, 64, 16, 16], 64, Padding::Zero, 2, false),
        ("column decoder, reflect padding", [4, 64, 32, 32], 64, Padding::Reflect, 1, true),
    ];
    for (seed, (case, shape, cout, padding, up, in_quick)) in convs.into_iter().enumerate() {
        if quick && !in_quick {
            continue;
        }
        let x = bench.random(shape, 700 + seed as u64);
        let w = bench.random([cout, shape[1], 3, 3], 710 + seed as u64) * 0.1;
        let bias = bench.random([cout], 720 + seed as u64);
        rows.push(bench.row(
            "decode/conv3x3",
            format!("{case} {shape:?} -> {cout} ch"),
            || conv3x3(x.clone(), w.clone(), Some(bias.clone()), padding, up),
            || conv3x3_reference(x.clone(), w.clone(), Some(bias.clone()), padding, up),
        )?);
    }
    if !quick {
        let shape = [4, 64, 32, 32];
        let (x, gamma, beta) = (bench.random(shape, 730), bench.random([64], 731) + 1.0, bench.random([64], 732));
        rows.push(bench.row(
            "decode/group_norm_silu",
            format!("small decoder, 8 groups {shape:?}"),
            || group_norm(x.clone(), gamma.clone(), beta.clone(), 8, 1e-6, true),
            || group_norm_reference(x.clone(), gamma.clone(), beta.clone(), 8, 1e-6, true),
        )?);
    }
    let shape = [4, 64, 32, 32];
    let x = bench.random(shape, 740);
    rows.push(bench.row(
        "decode/pixel_shuffle",
        format!("column decoder, x2 {shape:?}"),
        || pixel_shuffle(x.clone(), 2),
        || pixel_shuffle_reference(x.clone(), 2),
    )?);

    // Whole decoders, `f_hat` to image: the same module with the switch off, then on.
    let var_tiny = &crate::shipped::SHIPPED[0];
    let (tiny_config, tiny) = load_tokenizer(&Checkpoint::load(&shipped(var_tiny.tokenizer_path))?, &bench.device)?;
    let small = VarPreset::Small.tokenizer(1).init(&bench.device);
    let decoders = [("var-tiny (shipped)", &tiny, tiny_config.z_channels, 16, true), ("var-small (random weights)", &small, VarPreset::Small.tokenizer(1).z_channels, 4, false)];
    for (case, vae, z, batch, in_quick) in decoders {
        if quick && !in_quick {
            continue;
        }
        let f_hat = bench.random([batch, z, 8, 8], 750);
        let run = |reference: bool| {
            set_reference_ops(reference);
            let image = vae.decode_raw(f_hat.clone());
            set_reference_ops(false);
            image
        };
        rows.push(bench.row("decode", format!("{case} decoder, {batch} images [{z} x 8 x 8] -> 32 px"), || run(false), || run(true))?);
    }
    Ok(())
}
