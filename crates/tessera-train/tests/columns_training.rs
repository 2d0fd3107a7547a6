//! The column generator's training on a handful of MNIST digits, on the CPU backend: the column
//! tokenizer and the transformer learn, both resume exactly from their checkpoints (the EMA, the
//! posterior noise, the label drop, the RoPE shift and the flow noise included), the token scale
//! is measured once and saved, and the trained pair loads as a generator that draws any width.

mod common;

use burn::prelude::*;
use common::{assert_same_steps, in_parts};
use pollster::block_on;
use tessera_data::Mnist;
use tessera_models::generator::{SampleRequest, generate};
use tessera_train::data::load_batch;
use tessera_models::rng::SplitMix64;
use tessera_models::tokenizers::columns::ColumnTokenizerConfig;
use tessera_train::{Checkpoint, ColumnTokenizerTrainer, ColumnsPreset, EquivariantStats, EquivariantTrainer, LrScheduleConfig, load_generator};

#[test]
fn column_pair_trains_resumes_exactly_and_draws_wider_than_trained() {
    let device = Device::flex();
    let (images, labels) = load_batch(&Mnist::train(), &[0, 1, 2, 3, 4, 5, 6, 7], &device);
    let preset = ColumnsPreset::Tiny;

    // Tokenizer: the loss falls; resume is exact.
    let mut config = preset.tokenizer_training(1);
    (config.steps, config.batch_size, config.schedule) = (20, 8, LrScheduleConfig::new(2e-3).with_warmup_fraction(0.0));
    let mut tok = ColumnTokenizerTrainer::new(config, &device).unwrap();
    let first = block_on(tok.step(images.clone())).unwrap();
    let mut last = first.clone();
    for _ in 0..5 {
        last = block_on(tok.step(images.clone())).unwrap();
    }
    assert!(last.loss < first.loss, "tokenizer loss {} -> {}", first.loss, last.loss);
    let saved = Checkpoint::from_bytes(&block_on(tok.checkpoint(&[])).unwrap().to_bytes()).unwrap();
    let mut resumed = ColumnTokenizerTrainer::resume(&saved, &device).unwrap();
    let (a, b) = (block_on(tok.step(images.clone())).unwrap(), block_on(resumed.step(images.clone())).unwrap());
    assert_eq!((a.loss, a.grad_norm), (b.loss, b.grad_norm), "tokenizer resume");

    // Transformer: vae_norm is measured at step 0 and kept; the loss falls; resume is exact.
    let tokenizer_file = Checkpoint::from_bytes(&block_on(tok.checkpoint(&[])).unwrap().weights_only().to_bytes()).unwrap();
    let (tokenizer_config, tokenizer) = tessera_train::columns::load_column_tokenizer(&tokenizer_file, &device).unwrap();
    let mut config = preset.equivariant_training(&tokenizer_config, 10);
    (config.steps, config.batch_size, config.schedule) = (20, 8, LrScheduleConfig::new(2e-3).with_warmup_fraction(0.0));
    let mut eq = EquivariantTrainer::new(config, tokenizer.clone(), &device).unwrap();
    let first = block_on(eq.step(images.clone(), labels.clone())).unwrap();
    assert!(first.vae_norm.is_finite() && first.vae_norm > 0.0 && first.vae_norm != 1.0, "{}", first.vae_norm);
    let mut last = first.clone();
    for _ in 0..7 {
        last = block_on(eq.step(images.clone(), labels.clone())).unwrap();
    }
    assert_eq!(last.vae_norm, first.vae_norm, "the token scale is measured once");
    assert!(last.loss < first.loss, "flow loss {} -> {}", first.loss, last.loss);
    let saved = Checkpoint::from_bytes(&block_on(eq.checkpoint(&[])).unwrap().to_bytes()).unwrap();
    let mut resumed = EquivariantTrainer::resume(&saved, tokenizer, &device).unwrap();
    for _ in 0..2 {
        let (a, b) = (block_on(eq.step(images.clone(), labels.clone())).unwrap(), block_on(resumed.step(images.clone(), labels.clone())).unwrap());
        assert_eq!((a.loss, a.grad_norm, a.vae_norm), (b.loss, b.grad_norm, b.vae_norm), "transformer resume");
    }

    // The pair loads and draws twice its training width.
    let generator_file = Checkpoint::from_bytes(&block_on(eq.checkpoint(&[])).unwrap().weights_only().to_bytes()).unwrap();
    let generator = load_generator(&generator_file, &tokenizer_file, &device).unwrap();
    let request = SampleRequest { classes: vec![3, 7], width: Some(16), guidance: 1.0, ..Default::default() };
    let images = generate(generator.as_ref(), &request).unwrap();
    assert_eq!(images.dims(), [2, 1, 32, 64]);
}

/// On the CPU a step's batch runs in parts side by side, one per pool thread. Cut into 3 parts,
/// a step is the step taken whole (1 part) up to float rounding, step after step. With dropout,
/// each part draws its own seeded masks: the run is the same every time and resumes exactly.
#[test]
fn a_step_in_parts_is_the_step_whole_and_resumes_exactly_with_dropout() {
    let device = Device::flex();
    let tokenizer_config = ColumnTokenizerConfig::mnist();
    let config = |dropout: f64| {
        let mut config = ColumnsPreset::Tiny.equivariant_training(&tokenizer_config, 10);
        (config.steps, config.batch_size, config.schedule) = (20, 6, LrScheduleConfig::new(2e-3).with_warmup_fraction(0.0));
        config.model = config.model.with_dropout(dropout);
        config
    };
    let (n, c) = (config(0.0).model.token_num, config(0.0).model.token_dim);
    let batches: Vec<(Tensor<3>, Tensor<1, Int>)> = {
        let mut rng = SplitMix64::new(5);
        (0..3)
            .map(|_| {
                let tokens = Tensor::<3>::from_data(TensorData::new(rng.normals(6 * n * c), [6, n, c]), &device);
                (tokens, Tensor::<1, Int>::from_data(TensorData::new(vec![0i64, 1, 2, 3, 4, 5], [6]), &device))
            })
            .collect()
    };
    let run = |trainer: &mut EquivariantTrainer, parts: usize| -> Vec<EquivariantStats> {
        in_parts(parts, 6, || batches.iter().map(|(t, l)| block_on(trainer.step_tokens(t.clone(), l.clone())).unwrap()).collect())
    };
    // Runs start from a saved step 0: weights drawn from burn's generator could differ between two
    // fresh trainers while other tests draw from it too.
    let start = |dropout| {
        let trainer = EquivariantTrainer::new(config(dropout), tokenizer_config.init(&device), &device).unwrap();
        Checkpoint::from_bytes(&block_on(trainer.checkpoint(&[])).unwrap().to_bytes()).unwrap()
    };
    let (plain, dropped) = (start(0.0), start(0.1));
    let resume = |saved: &Checkpoint| EquivariantTrainer::resume(saved, tokenizer_config.init(&device), &device).unwrap();

    let (whole, parts) = (run(&mut resume(&plain), 1), run(&mut resume(&plain), 3));
    assert_same_steps(&whole, &parts, |s| vec![s.loss, s.grad_norm]);

    let mut first = resume(&dropped);
    let (a, b) = (run(&mut first, 3), run(&mut resume(&dropped), 3));
    assert_eq!(a, b, "dropout in parts draws the same masks on every run");
    assert!(a.iter().zip(&parts).any(|(d, p)| d.loss != p.loss), "dropout is on");
    let saved = Checkpoint::from_bytes(&block_on(first.checkpoint(&[])).unwrap().to_bytes()).unwrap();
    assert_eq!(run(&mut first, 3), run(&mut resume(&saved), 3), "a resumed run in parts takes the same steps");
}

/// The column tokenizer's step in 3 uneven parts (2, 3, 3 digits) is its step whole, up to float
/// rounding: the posterior's noise is drawn for the whole batch and each part keeps its rows.
#[test]
fn a_column_tokenizer_step_in_parts_is_the_step_whole() {
    let device = Device::flex();
    let (images, _) = load_batch(&Mnist::train(), &[0, 1, 2, 3, 4, 5, 6, 7], &device);
    let mut config = ColumnsPreset::Tiny.tokenizer_training(1);
    (config.steps, config.batch_size, config.schedule) = (20, 8, LrScheduleConfig::new(2e-3).with_warmup_fraction(0.0));
    // From a saved step 0: other tests draw from burn's generator too.
    let start = block_on(ColumnTokenizerTrainer::new(config, &device).unwrap().checkpoint(&[])).unwrap();
    let start = Checkpoint::from_bytes(&start.to_bytes()).unwrap();
    let run = |parts: usize| {
        let mut tok = ColumnTokenizerTrainer::resume(&start, &device).unwrap();
        in_parts(parts, 8, || (0..3).map(|_| block_on(tok.step(images.clone())).unwrap()).collect::<Vec<_>>())
    };
    assert_same_steps(&run(1), &run(3), |s| vec![s.loss, s.psnr, s.kl, s.grad_norm]);
}
