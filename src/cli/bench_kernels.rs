//! `tessera bench kernels`: every WGSL kernel against its plain-burn twin on the same wgpu device,
//! at the shapes the generators use (VAR's 7- and 10-scale schedules, RAR's 64- and 256-token
//! sequences with a KV cache, the column generator's windowed and cross-attention, codebooks of 256
//! to 8192, the layers and whole decoders of the tokenizers).
//!
//! Each row is the median wall time of the kernel and of the plain ops (9 runs each, alternating,
//! after a warm-up run; device work synced) and the largest difference between their outputs.
//! The table ends with each family's median speed-up against the targets (RAR's rows at
//! its real shapes, transformer and MaskGIT-VQGAN, make `rar/…` families of their own, and the
//! column generator's, transformer and column tokenizer, `columns/…` ones); `--json` prints the
//! rows alone.

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
use tessera_models::tokenizers::columns::ColumnTokenizerConfig;
use tessera_models::generators::equivariant::EquivariantConfig;
use tessera_train::{RarPreset, VarPreset};

use super::sample::shipped;
use tessera_train::Checkpoint;
use tessera_train::tokenizer::load_tokenizer;

/// Median speed-up over the plain ops each kernel family should reach (the targets). RAR's
/// rows at its real shapes form families of their own (`rar/…`), with the targets of their kind.
pub const TARGETS: [(&str, f64); 8] = [
    ("attention", 2.0),
    ("quantize", 3.0),
    ("decode", 1.5),
    ("rar/attention", 2.0),
    ("rar/quantize", 3.0),
    ("rar/decode", 1.5),
    ("columns/attention", 2.0),
    ("columns/decode", 1.5),
];

/// One kernel at one shape.
#[derive(Debug, Serialize)]
pub struct KernelRow {
    /// `attention`, `quantize`, `decode` (a whole decoder) or `decode/<layer>`; RAR's rows take a
    /// `rar/` prefix, the column generator's a `columns/` one.
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
    rar_rows(&bench, quick, &mut rows)?;
    columns_rows(&bench, quick, &mut rows)?;
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


/// One row per kind of kernel, on random inputs made from `seed` (and the seeds after it).
impl Bench {
    fn attention_row(&self, kernel: &str, case: &str, [b, h, lq, lk, d]: [usize; 5], mask: &AttentionMask, seed: u64) -> anyhow::Result<KernelRow> {
        let (q, k, v) = (self.random([b, h, lq, d], seed), self.random([b, h, lk, d], seed + 1), self.random([b, h, lk, d], seed + 2));
        let scale = 1.0 / (d as f32).sqrt();
        self.row(
            kernel,
            format!("{case} [B {b}, H {h}, Lq {lq}, Lk {lk}, D {d}]"),
            || attention(q.clone(), k.clone(), v.clone(), mask, scale),
            || attention_reference(q.clone(), k.clone(), v.clone(), mask, scale),
        )
    }

    /// `n` vectors of length `d` against `v` codes. The codes, not the indices, are compared: an
    /// exact tie may pick another index with the same distance, never another distance.
    fn quantize_row(&self, kernel: &str, case: &str, [n, d, v]: [usize; 3], seed: u64) -> anyhow::Result<KernelRow> {
        let (x, codebook) = (self.random([n, d], seed), self.random([v, d], seed + 100));
        self.row(
            kernel,
            format!("{case} [N {n}, D {d}, V {v}]"),
            || quantize(x.clone(), codebook.clone()).1,
            || quantize_reference(x.clone(), codebook.clone()).1,
        )
    }

    /// A 3×3 conv of `shape` to `cout` channels, after a nearest ×`up` up-sampling.
    #[allow(clippy::too_many_arguments)]
    fn conv_row(&self, kernel: &str, case: &str, shape: [usize; 4], cout: usize, bias: bool, padding: Padding, up: usize, seed: u64) -> anyhow::Result<KernelRow> {
        let x = self.random(shape, seed);
        let w = self.random([cout, shape[1], 3, 3], seed + 10) * 0.1;
        let bias = bias.then(|| self.random([cout], seed + 20));
        self.row(
            kernel,
            format!("{case} {shape:?} -> {cout} ch"),
            || conv3x3(x.clone(), w.clone(), bias.clone(), padding, up),
            || conv3x3_reference(x.clone(), w.clone(), bias.clone(), padding, up),
        )
    }

    /// GroupNorm (eps 1e-6) and SiLU, fused.
    fn norm_silu_row(&self, kernel: &str, case: &str, shape: [usize; 4], groups: usize, seed: u64) -> anyhow::Result<KernelRow> {
        let (x, gamma, beta) = (self.random(shape, seed), self.random([shape[1]], seed + 1) + 1.0, self.random([shape[1]], seed + 2));
        self.row(
            kernel,
            format!("{case}, {groups} groups {shape:?}"),
            || group_norm(x.clone(), gamma.clone(), beta.clone(), groups, 1e-6, true),
            || group_norm_reference(x.clone(), gamma.clone(), beta.clone(), groups, 1e-6, true),
        )
    }

    /// `run` (e.g. a whole decoder) with the kernels, then with the switch to plain ops on.
    fn switch_row<const D: usize>(&self, kernel: &str, case: String, run: impl Fn() -> Tensor<D>) -> anyhow::Result<KernelRow> {
        let with = |reference: bool| {
            set_reference_ops(reference);
            let out = run();
            set_reference_ops(false);
            out
        };
        self.row(kernel, case, || with(false), || with(true))
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
    for (seed, (case, shape, mask, in_quick)) in cases.into_iter().enumerate() {
        if !quick || in_quick {
            rows.push(bench.attention_row("attention", case, shape, &mask, 100 * seed as u64)?);
        }
    }
    Ok(())
}

fn quantize_rows(bench: &Bench, quick: bool, rows: &mut Vec<KernelRow>) -> anyhow::Result<()> {
    // (case, [N vectors, D, V codes], in the quick run)
    let cases = [
        ("var-tiny, last scale of 16 images", [16 * 64, 8, 256], true),
        ("codebook 512", [4096, 16, 512], false),
        ("rar 256 tokens x 8 images, codebook 1024", [8 * 256, 16, 1024], false),
        ("var 256 px, last scale of 16 images, codebook 4096", [16 * 256, 32, 4096], false),
        ("codebook 8192", [1024, 8, 8192], false),
    ];
    for (seed, (case, shape, in_quick)) in cases.into_iter().enumerate() {
        if !quick || in_quick {
            rows.push(bench.quantize_row("quantize", case, shape, 500 + seed as u64)?);
        }
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
        if !quick || in_quick {
            rows.push(bench.conv_row("decode/conv3x3", case, shape, cout, true, padding, up, 700 + seed as u64)?);
        }
    }
    if !quick {
        rows.push(bench.norm_silu_row("decode/group_norm_silu", "small decoder", [4, 64, 32, 32], 8, 730)?);
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
        rows.push(bench.switch_row("decode", format!("{case} decoder, {batch} images [{z} x 8 x 8] -> 32 px"), || vae.decode_raw(f_hat.clone()))?);
    }
    Ok(())
}

/// RAR at its own shapes, in the `rar/…` families: the transformer's attention as sampling calls
/// it (the cls and class slots, then one new token a step against the KV cache, `Lk` 3 to N + 1)
/// and as training does (teacher forcing over N + 2 slots, causal); the MaskGIT-VQGAN tokenizer's
/// quantizer at encoding and its decoder, layer by layer and whole.
fn rar_rows(bench: &Bench, quick: bool, rows: &mut Vec<KernelRow>) -> anyhow::Result<()> {
    // (name, images sampled at once (guidance doubles the batch), training batch, heads, head dim,
    // tokens N, in the quick run): rar-tiny (width 128), the official reference config (width
    // 256), and a 16 x 16 token map.
    let transformers = [
        ("rar-tiny", 16, 32, 4, 32, 64, true),
        ("rar anchor", 16, 64, 4, 64, 64, false),
        ("rar 256 tokens", 8, 8, 4, 64, 256, false),
    ];
    for (i, (name, images, train_batch, h, d, n, in_quick)) in transformers.into_iter().enumerate() {
        let b = 2 * images;
        let cases = [
            (format!("{name}, {images} images x2 guidance, cache: cls + class slots"), [b, h, 2, 2, d], AttentionMask::Causal, false),
            (format!("{name}, {images} images x2 guidance, cache: 1 new token, mid"), [b, h, 1, n / 2 + 2, d], AttentionMask::None, true),
            (format!("{name}, {images} images x2 guidance, cache: 1 new token, last"), [b, h, 1, n + 1, d], AttentionMask::None, false),
            (format!("{name}, teacher forcing"), [train_batch, h, n + 2, n + 2, d], AttentionMask::Causal, true),
        ];
        for (j, (case, shape, mask, case_in_quick)) in cases.into_iter().enumerate() {
            if !quick || (in_quick && case_in_quick) {
                rows.push(bench.attention_row("rar/attention", &case, shape, &mask, 1000 + 100 * i as u64 + 10 * j as u64)?);
            }
        }
    }

    // The tokenizers' encoding: 64 codes of 16 per image.
    let quantizers = [("rar-tiny tokenizer, encoding 32 images", [32 * 64, 16, 256], true), ("rar anchor tokenizer, encoding 64 images", [64 * 64, 16, 512], false)];
    for (seed, (case, shape, in_quick)) in quantizers.into_iter().enumerate() {
        if !quick || in_quick {
            rows.push(bench.quantize_row("rar/quantize", case, shape, 1500 + seed as u64)?);
        }
    }

    // rar-tiny's decoder (`VqganConfig::mnist()`: 16 x 8 x 8 codes, widths 64 at 8 and 16 px, 32 at
    // 16 and 32 px, GroupNorm(32)) on a sampling batch, layer by layer, then whole.
    let config = RarPreset::Tiny.tokenizer(1);
    let (b, z, side) = (16, config.z_channels, config.latent_side());
    // (layer, input shape, output channels, bias, up-sampling, in the quick run)
    let convs = [
        ("conv_in", [b, z, side, side], 64, true, 1, false),
        ("8 px res block", [b, 64, 8, 8], 64, false, 1, false),
        ("to 16 px, nearest x2 fused", [b, 64, 8, 8], 64, true, 2, false),
        ("16 px res block, narrowing", [b, 64, 16, 16], 32, false, 1, false),
        ("to 32 px, nearest x2 fused", [b, 32, 16, 16], 32, true, 2, true),
        ("32 px res block", [b, 32, 32, 32], 32, false, 1, false),
        ("conv_out", [b, 32, 32, 32], 1, true, 1, false),
    ];
    for (seed, (layer, shape, cout, bias, up, in_quick)) in convs.into_iter().enumerate() {
        if !quick || in_quick {
            rows.push(bench.conv_row("rar/decode/conv3x3", &format!("rar-tiny decoder, {layer}"), shape, cout, bias, Padding::Zero, up, 1600 + seed as u64)?);
        }
    }
    let norms = [([b, 64, 8, 8], false), ([b, 64, 16, 16], false), ([b, 32, 16, 16], false), ([b, 32, 32, 32], true)];
    for (seed, (shape, in_quick)) in norms.into_iter().enumerate() {
        if !quick || in_quick {
            rows.push(bench.norm_silu_row("rar/decode/group_norm_silu", "rar-tiny decoder", shape, 32, 1700 + 10 * seed as u64)?);
        }
    }
    if !quick {
        let vqgan = config.init(&bench.device);
        let z_q = bench.random([b, z, side, side], 1750);
        let case = format!("rar-tiny (random weights) decoder, {b} images [{z} x {side} x {side}] -> {} px", config.resolution);
        rows.push(bench.switch_row("rar/decode", case, || vqgan.decode_raw(z_q.clone()))?);
    }
    Ok(())
}

/// The column generator at its own shapes, in the `columns/…` families.
///
/// The transformer's attention as sampling calls it, one new column a step against the bounded
/// cache: the self-attention's single query over its last `w` cached keys and itself (`Lk` 2 at
/// the second column, `w + 1` = 4 from the fourth on, window 3), and the cross-attention's query
/// over the condition slots; and as training does (teacher forcing over the N = 8 columns with the
/// window mask, and the 8 columns' cross-attention). At the official anchor (width 256, 4 heads of
/// 64, 4 slots) and `EquivariantConfig::scenes()` (width 128, 4 heads of 32, 8 slots); sampling
/// doubles the batch for guidance.
///
/// The MNIST column tokenizer's decoder (`ColumnTokenizerConfig::mnist()`: an 8 × 8 × 8 latent
/// for 32 px, widths 64 at 8 px, 32 at 16 and 32 px, GroupNorm(32), every 3×3 conv reflect-padded,
/// the (2,2) up-samplers as a conv to 4× the channels then pixel shuffle) on a sampling batch of
/// 16, layer by layer, then whole; plus a 32 px layer of one image 8 times the training width.
fn columns_rows(bench: &Bench, quick: bool, rows: &mut Vec<KernelRow>) -> anyhow::Result<()> {
    let window = 3;
    let scenes = EquivariantConfig::scenes();
    // (name, images sampled at once, training batch, heads, head dim, condition slots, in the quick run)
    let transformers = [
        ("columns anchor", 16, 64, 4, 64, 4, true),
        ("columns scenes", 16, 32, scenes.num_heads, scenes.head_dim(), scenes.buffer_size, false),
    ];
    let n = 8;
    for (i, (name, images, train_batch, h, d, slots, in_quick)) in transformers.into_iter().enumerate() {
        let b = 2 * images;
        let cases = [
            (format!("{name}, {images} images x2 guidance, cache: 2nd column, window {window}"), [b, h, 1, 2, d], AttentionMask::Window(window), false),
            (format!("{name}, {images} images x2 guidance, cache: 1 new column, full window {window}"), [b, h, 1, window + 1, d], AttentionMask::Window(window), true),
            (format!("{name}, {images} images x2 guidance, cross-attention: 1 column to {slots} slots"), [b, h, 1, slots, d], AttentionMask::None, true),
            (format!("{name}, teacher forcing, {n} columns, window {window}"), [train_batch, h, n, n, d], AttentionMask::Window(window), true),
            (format!("{name}, teacher forcing, cross-attention: {n} columns to {slots} slots"), [train_batch, h, n, slots, d], AttentionMask::None, false),
        ];
        for (j, (case, shape, mask, case_in_quick)) in cases.into_iter().enumerate() {
            if !quick || (in_quick && case_in_quick) {
                rows.push(bench.attention_row("columns/attention", &case, shape, &mask, 2000 + 100 * i as u64 + 10 * j as u64)?);
            }
        }
    }

    let config = ColumnTokenizerConfig::mnist();
    let (b, z, h) = (16, config.z_channels, config.latent_height());
    // One latent column per token.
    let w = config.tokens_for_width(config.resolution);
    let (c0, c1, c2) = (config.ch * config.ch_mult[0], config.ch * config.ch_mult[1], config.ch * config.ch_mult[2]);
    // (layer, input shape, output channels, in the quick run); every conv has a bias.
    let convs = [
        ("conv_in", [b, z, h, w], c2, false),
        ("8 px res block", [b, c2, h, w], c2, false),
        ("to 16 px, conv before the shuffle", [b, c2, h, w], 4 * c2, false),
        ("16 px res block, narrowing", [b, c2, 2 * h, 2 * w], c1, false),
        ("16 px res block", [b, c1, 2 * h, 2 * w], c1, false),
        ("to 32 px, conv before the shuffle", [b, c1, 2 * h, 2 * w], 4 * c1, false),
        ("32 px res block", [b, c0, 4 * h, 4 * w], c0, true),
        ("conv_out", [b, c0, 4 * h, 4 * w], config.out_ch, false),
    ];
    for (seed, (layer, shape, cout, in_quick)) in convs.into_iter().enumerate() {
        if !quick || in_quick {
            let case = format!("columns-mnist decoder, {layer}");
            rows.push(bench.conv_row("columns/decode/conv3x3", &case, shape, cout, true, Padding::Reflect, 1, 2100 + seed as u64)?);
        }
    }
    if !quick {
        let case = "columns-mnist decoder, 32 px res block, 1 image 8x wide";
        rows.push(bench.conv_row("columns/decode/conv3x3", case, [1, c0, 4 * h, 32 * w], c0, true, Padding::Reflect, 1, 2150)?);
    }
    let norms = [([b, c2, h, w], false), ([b, c2, 2 * h, 2 * w], false), ([b, c1, 2 * h, 2 * w], false), ([b, c0, 4 * h, 4 * w], true)];
    for (seed, (shape, in_quick)) in norms.into_iter().enumerate() {
        if !quick || in_quick {
            rows.push(bench.norm_silu_row("columns/decode/group_norm_silu", "columns-mnist decoder", shape, 32, 2200 + 10 * seed as u64)?);
        }
    }
    let shuffles = [([b, 4 * c2, h, w], "to 16 px", false), ([b, 4 * c1, 2 * h, 2 * w], "to 32 px", true)];
    for (seed, (shape, layer, in_quick)) in shuffles.into_iter().enumerate() {
        if !quick || in_quick {
            let x = bench.random(shape, 2300 + seed as u64);
            rows.push(bench.row(
                "columns/decode/pixel_shuffle",
                format!("columns-mnist decoder, {layer}, x2 {shape:?}"),
                || pixel_shuffle(x.clone(), 2),
                || pixel_shuffle_reference(x.clone(), 2),
            )?);
        }
    }
    if !quick {
        let tokenizer = config.init(&bench.device);
        for (images, width, seed) in [(b, 1, 2400), (1, 8, 2410)] {
            let tokens = bench.random([images, width * w, config.embed_dim], seed);
            let case = format!(
                "columns-mnist (random weights) decoder, {images} image(s) of {} tokens of {} -> {} x {} px",
                width * w,
                config.embed_dim,
                config.resolution,
                width * config.resolution
            );
            rows.push(bench.switch_row("columns/decode", case, || tokenizer.decode(tokens.clone()))?);
        }
    }
    Ok(())
}
