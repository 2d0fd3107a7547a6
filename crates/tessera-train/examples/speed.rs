//! Times training steps of a preset on a device: `cargo run --release -p tessera-train --example
//! speed -- [cpu|gpu] [tiny|small] [steps]`. The first two steps (warm-up, shader compiles) are
//! not counted.

use std::time::Instant;

use burn::prelude::*;
use tessera_data::{Dataset, Mnist};
use tessera_train::data::load_batch;
use tessera_train::{BatchOrder, TokenizerTrainer, VarPreset, VarTrainer};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let device = match args.get(1).map(String::as_str) {
        Some("gpu") => Device::wgpu(burn::tensor::DeviceKind::DefaultDevice),
        _ => Device::flex(),
    };
    let preset: VarPreset = args.get(2).map(|s| s.parse()).transpose().map_err(anyhow::Error::msg)?.unwrap_or(VarPreset::Tiny);
    let steps: usize = args.get(3).map(|s| s.parse()).transpose()?.unwrap_or(10);
    let batch: Option<usize> = args.get(4).map(|s| s.parse()).transpose()?;
    let mnist = Mnist::train();

    let env = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<usize>().ok());
    let mut config = preset.tokenizer_training(1);
    if let Some(b) = batch { config.batch_size = b; }
    if let Some(v) = env("TOK_CH") { config.model.ch = v; }
    if let Some(v) = env("VOCAB") { config.model.vocab_size = v; }
    let order = BatchOrder::new(mnist.len(), config.batch_size, 0);
    let mut tok = TokenizerTrainer::new(config, &device)?;
    let mut t0 = Instant::now();
    let tok_steps = if std::env::var_os("VAR_ONLY").is_some() { 0 } else { steps + 2 };
    for s in 0..tok_steps {
        if s == 2 { t0 = Instant::now(); }
        let (x, _) = load_batch(&mnist, &order.indices(s), &device);
        let st = pollster::block_on(tok.step(x))?;
        println!("tokenizer step {s}: loss {:.4} psnr {:.2}", st.loss, st.psnr);
    }
    let per = t0.elapsed().as_secs_f64() / steps as f64;
    println!("TOKENIZER {:?} batch {}: {per:.3} s/step", preset, tok.config().batch_size);

    let mut vconfig = preset.var_training(&tok.config().model, 10);
    if let Some(b) = batch { vconfig.batch_size = b; }
    if let Some(v) = env("WIDTH") { vconfig.model.embed_dim = v; }
    if let Some(v) = env("DEPTH") { vconfig.model.depth = v; }
    if let Some(v) = env("HEADS") { vconfig.model.num_heads = v; }
    if let Some(v) = env("MLP") { vconfig.model.mlp_ratio = v as f64; }
    let mut var = VarTrainer::new(vconfig, tok.model(), &device)?;
    for s in 0..steps + 2 {
        if s == 2 { t0 = Instant::now(); }
        let (x, y) = load_batch(&mnist, &order.indices(s), &device);
        let st = pollster::block_on(var.step(x, y))?;
        println!("var step {s}: loss {:.4} acc {:.3}", st.loss, st.accuracy);
    }
    let per = t0.elapsed().as_secs_f64() / steps as f64;
    println!("VAR {:?} batch {}: {per:.3} s/step", preset, var.config().batch_size);
    Ok(())
}
