//! RAR training end to end on a handful of MNIST digits, on the CPU backend: the MaskGIT-VQGAN
//! and the transformer learn, both resume exactly from their checkpoints (the random orders,
//! the label dropout and the dropout masks included), and the trained pair loads as a generator
//! that samples in every order.

mod common;

use burn::prelude::*;
use common::{assert_same_steps, in_parts};
use pollster::block_on;
use tessera_data::Mnist;
use tessera_models::family::{Family, FillOrder};
use tessera_models::generator::{SampleRequest, generate};
use tessera_models::generators::rar::RarConfig;
use tessera_models::tokenizers::vqgan::VqganConfig;
use tessera_train::data::load_batch;
use tessera_train::{
    Checkpoint, LrScheduleConfig, RandomnessConfig, RarTrainer, RarTrainingConfig, VqganTrainer, VqganTrainingConfig, load_generator,
};

/// A very small tokenizer: 32 px → 8×8 codes of a 32-code book.
fn vqgan_config() -> VqganTrainingConfig {
    let model = VqganConfig::mnist().with_codebook_size(32).with_z_channels(4).with_codebook_dim(4);
    let mut config = VqganTrainingConfig::new(model, LrScheduleConfig::new(3e-3).with_warmup_fraction(0.0), 40, 8);
    config.dead_codes.every = 4;
    config
}

/// A very small transformer with dropout on, so the resume check covers the dropout masks.
fn rar_config() -> RarTrainingConfig {
    let model = RarConfig::new(32, 10, 64, 32, 2, 2, 64).with_dropout(0.1);
    // r = 1 for the first 5 of 10 steps: the resumed steps cross into the annealing.
    RarTrainingConfig::new(model, LrScheduleConfig::new(3e-3).with_warmup_fraction(0.0), 10, 8)
        .with_randomness(RandomnessConfig::new().with_start(0.5).with_end(0.8))
}

/// Eight digits in `[0, 1]`, as the MaskGIT-VQGAN takes them, and their labels.
fn digits(device: &Device) -> (Tensor<4>, Tensor<1, Int>) {
    let (images, labels) = load_batch(&Mnist::train(), &[0, 1, 2, 3, 4, 5, 6, 7], device);
    ((images + 1.0) * 0.5, labels)
}

#[test]
fn vqgan_and_rar_train_resume_exactly_and_sample_in_every_order() {
    let device = Device::flex();
    let (images, labels) = digits(&device);

    // Tokenizer: the loss falls, PSNR rises, dead codes are reset; resume is exact.
    let mut tok = VqganTrainer::new(vqgan_config(), &device).unwrap();
    let first = block_on(tok.step(images.clone())).unwrap();
    let mut last = first.clone();
    let mut resets = 0;
    for _ in 0..9 {
        last = block_on(tok.step(images.clone())).unwrap();
        resets += last.codes_reset;
    }
    assert!(last.loss < 0.7 * first.loss, "tokenizer loss {} -> {}", first.loss, last.loss);
    assert!(last.psnr > first.psnr + 1.0, "psnr {} -> {}", first.psnr, last.psnr);
    assert!(resets > 0, "a 32-code book on 8 images leaves dead codes to reset");
    let saved = Checkpoint::from_bytes(&block_on(tok.checkpoint(&[])).unwrap().to_bytes()).unwrap();
    let mut resumed = VqganTrainer::resume(&saved, &device).unwrap();
    for _ in 0..2 {
        let (a, b) = (block_on(tok.step(images.clone())).unwrap(), block_on(resumed.step(images.clone())).unwrap());
        assert_eq!((a.loss, a.grad_norm), (b.loss, b.grad_norm), "the resumed tokenizer took another step");
    }

    // Transformer on the frozen tokenizer: the loss falls over the steps.
    let tokenizer = tok.model();
    let mut rar = RarTrainer::new(rar_config(), tokenizer.clone(), &device).unwrap();
    let first = block_on(rar.step(images.clone(), labels.clone())).unwrap();
    assert_eq!(first.random_ratio, 1.0);
    for _ in 0..5 {
        block_on(rar.step(images.clone(), labels.clone())).unwrap();
    }
    // Resume at step 6 and take the last four steps twice: identical, orders and dropout included.
    let saved = Checkpoint::from_bytes(&block_on(rar.checkpoint(&[])).unwrap().to_bytes()).unwrap();
    let mut resumed = RarTrainer::resume(&saved, tokenizer, &device).unwrap();
    let mut last = first.clone();
    for _ in 0..4 {
        let (a, b) = (block_on(rar.step(images.clone(), labels.clone())).unwrap(), block_on(resumed.step(images.clone(), labels.clone())).unwrap());
        assert_eq!(a, b, "the resumed transformer took another step");
        last = a;
    }
    assert!(last.random_ratio < 1.0 && last.step == 9);
    assert!(last.loss < first.loss - 0.3, "transformer loss {} -> {}", first.loss, last.loss);

    // The pair loads as a RAR generator and samples in every order it offers.
    let generator = block_on(rar.checkpoint(&[])).unwrap().weights_only();
    let tokenizer = block_on(tok.checkpoint(&[])).unwrap().weights_only();
    let model = load_generator(&generator, &tokenizer, &device).unwrap();
    assert_eq!((model.info().family, model.info().forward_passes), (Family::Rar, 64));
    let orders = model.controls().fill_orders;
    assert_eq!(orders, FillOrder::ALL.to_vec());
    for order in orders {
        let request = SampleRequest { classes: vec![3, 5], seed: 1, fill_order: order, ..Default::default() };
        let images = generate(model.as_ref(), &request).unwrap();
        assert_eq!(images.dims(), [2, 1, 32, 32]);
        let (min, max) = (images.clone().min().into_scalar::<f32>(), images.max().into_scalar::<f32>());
        assert!((0.0..=1.0).contains(&min) && (0.0..=1.0).contains(&max) && max > min, "{order:?}: {min}..{max}");
    }
}

/// On the CPU a step's batch runs in parts side by side, one per pool thread: eight digits' codes
/// cut into 3 uneven parts (2, 3, 3), in random orders, take the steps the whole batch takes, up to
/// float rounding. (The resume test above covers dropout in parts.)
#[test]
fn a_rar_step_in_parts_is_the_step_whole() {
    let device = Device::flex();
    let (images, labels) = digits(&device);
    let tokenizer = vqgan_config().model.init(&device);
    let mut config = rar_config();
    config.model = config.model.with_dropout(0.0);
    // From a saved step 0: other tests draw from burn's generator too.
    let start = block_on(RarTrainer::new(config, tokenizer.clone(), &device).unwrap().checkpoint(&[])).unwrap();
    let start = Checkpoint::from_bytes(&start.to_bytes()).unwrap();
    let run = |parts: usize| {
        let mut rar = RarTrainer::resume(&start, tokenizer.clone(), &device).unwrap();
        in_parts(parts, 8, || (0..3).map(|_| block_on(rar.step(images.clone(), labels.clone())).unwrap()).collect::<Vec<_>>())
    };
    assert_same_steps(&run(1), &run(3), |s| vec![s.loss, s.grad_norm, s.accuracy]);
}
