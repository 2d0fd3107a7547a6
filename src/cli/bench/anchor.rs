//! The official code's speed beside ours: its reference configs timed here too, and the figures
//! `shared/bench/official_speed.py` measured for them on the 2-core build machine (PyTorch 2.4.1,
//! 2 threads, CPU, random weights; idle, 2026-11-30). They are quoted, not recomputed: compare
//! them with Tessera's rows measured on that machine with `--device cpu`.
//!
//! The anchors: VAR at var-tiny's config (the shipped model's rows carry its figures), RAR's
//! reference config and the equivariant column generator's (`EQV_CONFIG`), both with random
//! weights, timed here tokens only (as the official figures) and decoded to images.

use burn::prelude::*;
use pollster::block_on;
use tessera_data::Mnist;
use tessera_models::generator::SampleRequest;
use tessera_models::generator::columns::ColumnsGenerator;
use tessera_models::generators::equivariant::EquivariantConfig;
use tessera_models::generators::rar::RarConfig;
use tessera_models::rng::{BatchPart, SplitMix64};
use tessera_models::sampling::equivariant::{ColumnSamplerConfig, ColumnSampling};
use tessera_models::sampling::rar::{RarSamplerConfig, RarSampling};
use tessera_models::tokenizers::columns::ColumnTokenizerConfig;
use tessera_models::tokenizers::vqgan::VqganConfig;
use tessera_train::{EquivariantTrainer, EquivariantTrainingConfig, LrScheduleConfig, RarPreset, RarTrainer, RarTrainingConfig};

use super::{Row, row, sampling_seconds, seconds_per_call, step_seconds};

/// Official images per second for a row's `(bench, model, batch)`, where one was measured.
pub(super) fn official(bench: &str, model: &str, batch: usize) -> Option<f64> {
    let figures: &[(&str, &str, usize, f64)] = &[
        // VAR at var-tiny's exact config, guidance 2 with the batch doubled, images decoded.
        ("sample", "var-tiny", 1, 67.0),
        ("sample", "var-tiny", 16, 168.0),
        ("sample", "var-tiny", 64, 208.0),
        // The transformer's step at batch 32, tokenizing included.
        ("train", "var (tiny)", 32, 141.0),
        // RAR's reference config: guidance 4 (constant), KV cache, tokens only; training on random ids.
        ("sample", RAR_TOKENS, 1, 4.1),
        ("sample", RAR_TOKENS, 64, 10.5),
        ("train", RAR_ANCHOR, 64, 70.0),
        // The equivariant anchor (`EQV_CONFIG`): guidance 3 (linear over the columns), 100 Euler
        // steps, no KV cache (the whole transformer re-run every column), tokens only; training
        // on random latents, no EMA, dropout 0.1.
        ("sample", EQV_TOKENS, 1, 2.7),
        ("sample", EQV_TOKENS, 64, 26.5),
        ("train", EQV_ANCHOR, 64, 278.0),
    ];
    figures.iter().find(|f| (f.0, f.1, f.2) == (bench, model, batch)).map(|f| f.3)
}

const RAR_ANCHOR: &str = "rar anchor";
const RAR_TOKENS: &str = "rar anchor (tokens only)";
const RAR_DECODED: &str = "rar anchor (decoded)";
const EQV_ANCHOR: &str = "equivariant anchor";
const EQV_TOKENS: &str = "equivariant anchor (tokens only)";
const EQV_DECODED: &str = "equivariant anchor (decoded)";
const EQV_ENCODED: &str = "equivariant anchor (tokenizing included)";
/// The anchor's guidance: the official weight 3 is `1 + g` in the app's scale.
const EQV_GUIDANCE: f64 = 2.0;

/// The official RAR reference config: width 256, depth 4, 4 heads, MLP ×4, 64 tokens, codebook
/// 512, 10 classes, no dropout (the script's default).
fn rar_anchor() -> RarConfig {
    RarConfig::new(512, 10, 64, 256, 4, 4, 1024).with_dropout(0.0)
}

/// A MaskGIT-VQGAN making the anchor's 8×8 codes of a 512-code book from 32 px images.
fn anchor_tokenizer() -> VqganConfig {
    VqganConfig::mnist().with_codebook_size(512)
}

/// Sampling rows of the RAR anchor (random weights): tokens only, and decoded to images.
pub(super) fn rar_sample_rows(batches: &[usize], repeats: usize, device: &Device, device_name: &str) -> anyhow::Result<Vec<Row>> {
    device.seed(0);
    let rar = rar_anchor().init(device);
    let vqgan = anchor_tokenizer().init(device);
    let mut rows = Vec::new();
    for &b in batches {
        let labels: Vec<i64> = (0..b as i64).map(|i| i % 10).collect();
        let labels = Tensor::<1, Int>::from_data(TensorData::new(labels, [b]), device);
        for (model, decode) in [(RAR_TOKENS, false), (RAR_DECODED, true)] {
            let seconds = seconds_per_call(repeats, || {
                let done = in_parts(&labels, |labels, part| {
                    let sampler = RarSamplerConfig { guidance: 4.0, ..RarSamplerConfig::default() };
                    let mut run = RarSampling::new(&rar, labels, sampler).part_of(&rar, part);
                    while run.step(&rar).is_some() {}
                    if decode { vqgan.codes_to_image(run.tokens()).sum() } else { run.tokens().float().sum() }
                });
                block_on(done.into_data_async()).map_err(|e| anyhow::anyhow!("reading back: {e:?}"))?;
                Ok(())
            })?;
            rows.push(row("sample", model, b, seconds, device, device_name));
        }
    }
    Ok(rows)
}

/// `run` on the parts the batch of `labels` is split into on this device, side by side, as
/// `ImageGenerator::start` samples a batch (one part per CPU core; the whole batch elsewhere);
/// the sum of the parts' results.
fn in_parts(labels: &Tensor<1, Int>, run: impl Fn(Tensor<1, Int>, BatchPart) -> Tensor<1> + Sync + Send) -> Tensor<1> {
    let [total] = labels.dims();
    let mut parts = BatchPart::split(total, tessera_kernels::cpu::batch_parts(&labels.device(), total));
    let sums = tessera_kernels::cpu::side_by_side(&mut parts, |(part, rows)| run(labels.clone().slice(rows.clone()), *part));
    sums.into_iter().reduce(|a, b| a + b).expect("at least one part")
}

/// The RAR anchor's training step on random codes (as the official figure), batch `batch`.
pub(super) fn rar_train_row(batch: usize, repeats: usize, device: &Device, device_name: &str) -> anyhow::Result<Row> {
    let schedule = RarPreset::Tiny.rar_training(&anchor_tokenizer(), 10).schedule;
    let config = RarTrainingConfig::new(rar_anchor(), schedule, 1_000_000, batch);
    let mut trainer = RarTrainer::new(config, anchor_tokenizer().init(device), device)?;
    let mut step = 0u64;
    let seconds = seconds_per_call(repeats, || {
        step += 1;
        let mut rng = tessera_models::rng::SplitMix64::new(step);
        let ids: Vec<i64> = (0..batch * 64).map(|_| (rng.next_u64() % 512) as i64).collect();
        let labels: Vec<i64> = (0..batch).map(|_| (rng.next_u64() % 10) as i64).collect();
        let ids = Tensor::<2, Int>::from_data(TensorData::new(ids, [batch, 64]), device);
        let labels = Tensor::<1, Int>::from_data(TensorData::new(labels, [batch]), device);
        block_on(trainer.step_tokens(ids, labels))?;
        Ok(())
    })?;
    Ok(row("train", RAR_ANCHOR, batch, seconds, device, device_name))
}

/// The official equivariant anchor (`official_speed.py`'s `EQV_CONFIG`): 32×32 as 8 column tokens
/// of 16, width 256, 2 + 2 blocks, 4 heads, flow head 3 × 256, 4 condition slots, window 3,
/// 100 Euler steps, 10 classes, dropout 0.1 (training only).
fn equivariant_anchor() -> EquivariantConfig {
    EquivariantConfig::anchor()
}

/// The tokenizer of the "decoded" rows. The official figures decode nothing (`sample_tokens`
/// returns tokens); the anchor's 8 tokens of 16 for a 32×32 image are exactly what Tessera's
/// MNIST column tokenizer makes, so the decoded rows decode with it (random weights).
fn equivariant_anchor_tokenizer() -> ColumnTokenizerConfig {
    ColumnTokenizerConfig::mnist()
}

/// Sampling rows of the equivariant anchor (random weights), guidance 3 with the official linear
/// schedule and 100 Euler steps: tokens only (the column sampler with its bounded cache, as the
/// app runs it), and decoded to images through the [`ColumnsGenerator`] every caller samples with.
pub(super) fn columns_sample_rows(batches: &[usize], repeats: usize, device: &Device, device_name: &str) -> anyhow::Result<Vec<Row>> {
    device.seed(0);
    let tokenizer_config = equivariant_anchor_tokenizer();
    let generator = ColumnsGenerator::new(
        equivariant_anchor().init(device),
        tokenizer_config.init(device),
        &tokenizer_config,
        1.0,
        device,
        Vec::new(),
        None,
        None,
    )?;
    let model = generator.model();
    let mut rows = Vec::new();
    for &b in batches {
        let labels: Vec<i64> = (0..b as i64).map(|i| i % 10).collect();
        let labels = Tensor::<1, Int>::from_data(TensorData::new(labels, [b]), device);
        let mut seed = 0;
        let tokens_s = seconds_per_call(repeats, || {
            seed += 1;
            let done = in_parts(&labels, |labels, part| {
                let sampler = ColumnSamplerConfig { cfg: 1.0 + EQV_GUIDANCE, seed, ..ColumnSamplerConfig::default() };
                let mut run = ColumnSampling::new(model, labels, sampler, model.token_num()).part_of(part);
                while run.step(model).is_some() {}
                run.tokens().sum()
            });
            block_on(done.into_data_async()).map_err(|e| anyhow::anyhow!("reading back: {e:?}"))?;
            Ok(())
        })?;
        rows.push(row("sample", EQV_TOKENS, b, tokens_s, device, device_name));
        let sampler = SampleRequest { guidance: EQV_GUIDANCE, ..Default::default() };
        rows.push(row("sample", EQV_DECODED, b, sampling_seconds(&generator, &sampler, b, repeats)?, device, device_name));
    }
    Ok(rows)
}

/// The equivariant anchor's training rows at batch `batch`: on random latents (as the official
/// figure), and through [`EquivariantTrainer`] on MNIST with the anchor's tokenizer (random
/// weights) making the latents, as every run trains.
pub(super) fn columns_train_rows(batch: usize, repeats: usize, device: &Device, device_name: &str) -> anyhow::Result<Vec<Row>> {
    let config = anchor_training(batch);
    // On random latents, as the official figure times `m(x, labels)` on `torch.randn` latents: the
    // trainer's own step without the tokenizer (label drop, RoPE shift, the flow loss, the
    // checked AdamW update, and the EMA the official timing has not but the trainer always keeps).
    let mut latent = EquivariantTrainer::new(config.clone(), equivariant_anchor_tokenizer().init(device), device)?;
    let (m, mut rng) = (config.model.clone(), SplitMix64::new(0));
    let tokens_s = seconds_per_call(repeats, || {
        let (n, c) = (m.token_num, m.token_dim);
        let tokens = Tensor::<3>::from_data(TensorData::new(rng.normals(batch * n * c), [batch, n, c]), device);
        let labels: Vec<i64> = (0..batch).map(|_| (rng.next_u64() % m.class_num as u64) as i64).collect();
        let labels = Tensor::<1, Int>::from_data(TensorData::new(labels, [batch]), device);
        block_on(latent.step_tokens(tokens, labels))?;
        Ok(())
    })?;
    let mut trainer = EquivariantTrainer::new(config, equivariant_anchor_tokenizer().init(device), device)?;
    let encoded_s = step_seconds(&mut trainer, &Mnist::train(), repeats)?;
    Ok(vec![row("train", EQV_ANCHOR, batch, tokens_s, device, device_name), row("train", EQV_ENCODED, batch, encoded_s, device, device_name)])
}

/// The anchor's training run: the official learning rate `1e-4 · batch / 256`, constant; the
/// trainer's optimizer (AdamW 0.9 / 0.95, weight decay 0.02 with the official exclusions, clip 3).
fn anchor_training(batch: usize) -> EquivariantTrainingConfig {
    let lr = 1e-4 * batch as f64 / 256.0;
    EquivariantTrainingConfig::new(equivariant_anchor(), LrScheduleConfig::new(lr), 1_000_000, batch)
}

