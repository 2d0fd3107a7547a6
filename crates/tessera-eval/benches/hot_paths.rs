//! criterion benches of the hot paths, on burn's CPU backend (`cargo bench -p tessera-eval`):
//! VAR sampling with the shipped tiny model (batch 16), one training step of each tiny-preset
//! model, the judge over a batch of 64, and FID over 1,000 feature vectors.
//! GPU figures come from `tessera bench`, which picks the device.

use burn::prelude::*;
use criterion::{Criterion, criterion_group, criterion_main};
use pollster::block_on;
use tessera_data::{Dataset, Mnist};
use tessera_eval::{Features, fid};
use tessera_models::generator::{SampleRequest, generate};
use tessera_models::judge::JudgeConfig;
use tessera_train::data::load_batch;
use tessera_train::tokenizer::load_tokenizer;
use tessera_train::{BatchOrder, Checkpoint, TokenizerTrainer, VarPreset, VarTrainer, load_generator};

fn shipped(name: &str) -> Checkpoint {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../assets/var-tiny").join(name);
    Checkpoint::load(&path).expect("the shipped var-tiny checkpoints")
}

fn benches(c: &mut Criterion) {
    let device = Device::flex();
    let (vae_config, vae) = load_tokenizer(&shipped("tokenizer.ckpt"), &device).unwrap();
    let generator = load_generator(&shipped("var.ckpt"), &shipped("tokenizer.ckpt"), &device).unwrap();
    let mnist = Mnist::train();

    let request = SampleRequest { classes: (0..16).map(|i| i % 10).collect(), guidance: 2.0, seed: 1, ..Default::default() };
    c.bench_function("var_tiny_sample_batch16", |b| {
        b.iter(|| block_on(generate(generator.as_ref(), &request).unwrap().into_data_async()).unwrap())
    });

    let order = BatchOrder::new(mnist.len(), 32, 0);
    let mut tokenizer = TokenizerTrainer::new(VarPreset::Tiny.tokenizer_training(1), &device).unwrap();
    c.bench_function("var_tiny_tokenizer_train_step_batch32", |b| {
        b.iter(|| {
            let (images, _) = load_batch(&mnist, &order.indices(tokenizer.step_index()), &device);
            block_on(tokenizer.step(images)).unwrap()
        })
    });
    let mut transformer = VarTrainer::new(VarPreset::Tiny.var_training(&vae_config, 10), vae, &device).unwrap();
    c.bench_function("var_tiny_transformer_train_step_batch32", |b| {
        b.iter(|| {
            let (images, labels) = load_batch(&mnist, &order.indices(transformer.step_index()), &device);
            block_on(transformer.step(images, labels)).unwrap()
        })
    });

    let judge = JudgeConfig::new(1, 32, 10).init(&device);
    let (images, _) = load_batch(&mnist, &(0..64).collect::<Vec<_>>(), &device);
    c.bench_function("judge_batch64", |b| {
        b.iter(|| block_on(tessera_eval::judge_images(&judge, images.clone())).unwrap())
    });

    let features = |seed: u32| {
        let values = (0..1000 * 128).map(|i: u32| ((i.wrapping_mul(2_654_435_761) ^ seed) % 1000) as f32 / 1000.0).collect();
        Features::new(128, values)
    };
    let (a, b) = (features(1), features(2));
    c.bench_function("fid_1000x128", |bench| bench.iter(|| fid(&a, &b)));
}

criterion_group! {
    name = hot_paths;
    config = Criterion::default().sample_size(10);
    targets = benches
}
criterion_main!(hot_paths);
