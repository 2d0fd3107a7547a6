//! The official code's speed beside ours: its reference configs timed here too, and the figures
//! `shared/bench/official_speed.py` measured for them on the 2-core build machine (PyTorch 2.4.1,
//! 2 threads, CPU, random weights; idle, 2026-11-30). They are quoted, not recomputed: compare
//! them with Tessera's rows measured on that machine with `--device cpu`.

use burn::prelude::*;
use pollster::block_on;
use tessera_models::generators::rar::RarConfig;
use tessera_models::sampling::rar::{RarSamplerConfig, RarSampling};
use tessera_models::tokenizers::vqgan::VqganConfig;
use tessera_train::{RarPreset, RarTrainer, RarTrainingConfig};

use super::{Row, row, seconds_per_call};

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
    ];
    figures.iter().find(|f| (f.0, f.1, f.2) == (bench, model, batch)).map(|f| f.3)
}

const RAR_ANCHOR: &str = "rar anchor";
const RAR_TOKENS: &str = "rar anchor (tokens only)";
const RAR_DECODED: &str = "rar anchor (decoded)";

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
                let sampler = RarSamplerConfig { guidance: 4.0, ..RarSamplerConfig::default() };
                let mut run = RarSampling::new(&rar, labels.clone(), sampler);
                while run.step(&rar).is_some() {}
                let done = if decode { vqgan.codes_to_image(run.tokens()).sum() } else { run.tokens().float().sum() };
                block_on(done.into_data_async()).map_err(|e| anyhow::anyhow!("reading back: {e:?}"))?;
                Ok(())
            })?;
            rows.push(row("sample", model, b, seconds, device, device_name));
        }
    }
    Ok(rows)
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
