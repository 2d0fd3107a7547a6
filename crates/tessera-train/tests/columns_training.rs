//! The column generator's training on a handful of MNIST digits, on the CPU backend: the column
//! tokenizer and the transformer learn, both resume exactly from their checkpoints (the EMA, the
//! posterior noise, the label drop, the RoPE shift and the flow noise included), the token scale
//! is measured once and saved, and the trained pair loads as a generator that draws any width.

use burn::prelude::*;
use pollster::block_on;
use tessera_data::Mnist;
use tessera_models::generator::{SampleRequest, generate};
use tessera_train::data::load_batch;
use tessera_train::{Checkpoint, ColumnTokenizerTrainer, ColumnsPreset, EquivariantTrainer, LrScheduleConfig, load_generator};

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
