//! Training end to end on a handful of MNIST digits, on the CPU backend: the losses fall,
//! checkpoints round-trip and resume exactly, damaged or foreign files give the named error,
//! a NaN stops training before it reaches the weights, and the trained pair samples images.

mod common;

use burn::prelude::*;
use common::{assert_same_steps, in_parts};
use pollster::block_on;
use tessera_data::{Dataset, Mnist};
use tessera_models::generators::var::VarConfig;
use tessera_models::sampling::var::{VarSamplerConfig, sample};
use tessera_models::tokenizers::msvq::MsVqVaeConfig;
use tessera_train::checkpoint::{CheckpointHeader, ModelKind};
use tessera_train::data::load_batch;
use tessera_train::tokenizer::load_tokenizer;
use tessera_train::var::load_var;
use tessera_train::{
    Checkpoint, Error, LrScheduleConfig, TokenizerTrainer, TokenizerTrainingConfig, VarTrainer, VarTrainingConfig,
};

const PATCH_NUMS: [usize; 5] = [1, 2, 3, 4, 8];

/// A very small 32 px tokenizer: 8×8×4 latent, 32 codes, 5 scales (90 tokens).
fn tokenizer_config() -> TokenizerTrainingConfig {
    let model = MsVqVaeConfig::new()
        .with_vocab_size(32)
        .with_z_channels(4)
        .with_ch(8)
        .with_ch_mult(vec![1, 2, 2])
        .with_num_res_blocks(1)
        .with_in_channels(1)
        .with_num_groups(4)
        .with_using_sa(false)
        .with_using_mid_sa(false)
        .with_patch_nums(PATCH_NUMS.to_vec());
    let mut config = TokenizerTrainingConfig::new(model, LrScheduleConfig::new(3e-3).with_warmup_fraction(0.0), 40, 8);
    config.dead_codes.every = 4;
    config
}

fn var_config() -> VarTrainingConfig {
    let model = VarConfig::new(PATCH_NUMS.to_vec(), 32, 4, 10, 2, 32, 2).with_init_adaln_gamma(0.1);
    VarTrainingConfig::new(model, LrScheduleConfig::new(3e-3).with_warmup_fraction(0.0), 40, 8)
}

fn digits(device: &Device) -> (Tensor<4>, Tensor<1, Int>) {
    let mnist = Mnist::train();
    assert!(mnist.len() > 8);
    load_batch(&mnist, &[0, 1, 2, 3, 4, 5, 6, 7], device)
}

fn codebook(trainer: &TokenizerTrainer) -> Vec<f32> {
    trainer.model().codebook().into_data().try_to_vec::<f32>().unwrap()
}

#[test]
fn tokenizer_and_transformer_train_save_resume_and_sample() {
    let device = Device::flex();
    let (images, labels) = digits(&device);

    // Tokenizer: overfit eight digits; the loss falls and PSNR rises.
    let mut tok = TokenizerTrainer::new(tokenizer_config(), &device).unwrap();
    let first = block_on(tok.step(images.clone())).unwrap();
    let mut last = first.clone();
    let mut resets = 0;
    for _ in 0..11 {
        last = block_on(tok.step(images.clone())).unwrap();
        resets += last.codes_reset;
    }
    assert!(last.loss < 0.7 * first.loss, "tokenizer loss {} -> {}", first.loss, last.loss);
    assert!(last.psnr > first.psnr + 1.0, "psnr {} -> {}", first.psnr, last.psnr);
    assert!(resets > 0, "a 32-code book on 8 images leaves dead codes to reset");
    let usage = tok.codebook_usage().into_data().try_to_vec::<f32>().unwrap();
    assert_eq!(usage.len(), PATCH_NUMS.len());
    assert!(usage.iter().all(|u| (0.0..=1.0).contains(u)) && usage[4] > 0.0, "{usage:?}");

    // Checkpoint → bytes → resume: same step, same weights, and the next steps match exactly.
    let saved = block_on(tok.checkpoint(&[("loss", last.loss as f64)])).unwrap();
    assert_eq!(saved.header.step, 12);
    let bytes = saved.to_bytes();
    let reread = Checkpoint::from_bytes(&bytes).unwrap();
    assert_eq!(reread, saved);
    let mut resumed = TokenizerTrainer::resume(&reread, None, &device).unwrap();
    assert_eq!(resumed.step_index(), 12);
    assert_eq!(codebook(&resumed), codebook(&tok));
    for _ in 0..4 {
        // Step 15 (the 16th) resets dead codes: the usage counts and the reset stream resume too.
        let a = block_on(tok.step(images.clone())).unwrap();
        let b = block_on(resumed.step(images.clone())).unwrap();
        assert_eq!(a.step, b.step);
        assert!((a.loss - b.loss).abs() <= 1e-5 * a.loss.abs(), "step {}: {} vs {}", a.step, a.loss, b.loss);
        assert_eq!(a.codes_reset, b.codes_reset);
    }
    let (_, vae) = load_tokenizer(&reread, &device).unwrap();
    assert_eq!(vae.patch_nums(), PATCH_NUMS);

    // Transformer on the trained tokenizer: the cross-entropy falls.
    let tokenizer = tok.model();
    let mut var = VarTrainer::new(var_config(), tokenizer.clone(), &device).unwrap();
    let first = block_on(var.step(images.clone(), labels.clone())).unwrap();
    let mut last = first.clone();
    for _ in 0..11 {
        last = block_on(var.step(images.clone(), labels.clone())).unwrap();
    }
    assert!(last.loss < 0.93 * first.loss, "var loss {} -> {}", first.loss, last.loss);
    assert!(first.loss > 2.0 && first.loss < 5.0, "starts near ln 32 = 3.47: {}", first.loss);

    let saved = block_on(var.checkpoint(&[])).unwrap();
    let reread = Checkpoint::from_bytes(&saved.to_bytes()).unwrap();
    let mut resumed = VarTrainer::resume(&reread, tokenizer.clone(), None, &device).unwrap();
    assert_eq!(resumed.step_index(), var.step_index());
    let a = block_on(var.step(images.clone(), labels.clone())).unwrap();
    let b = block_on(resumed.step(images.clone(), labels.clone())).unwrap();
    assert!((a.loss - b.loss).abs() <= 1e-5 * a.loss.abs(), "{} vs {}", a.loss, b.loss);

    // Sampling from the saved (weights-only) pair: finite images in [0, 1] of the right shape.
    let (_, model) = load_var(&reread.weights_only(), &device).unwrap();
    let classes = Tensor::<1, Int>::from_data(TensorData::new(vec![0i64, 3, 9], [3]), &device);
    let run = sample(&model, &tokenizer, classes, VarSamplerConfig::new().with_seed(1), true);
    assert_eq!(run.image.dims(), [3, 1, 32, 32]);
    let pixels = run.image.into_data().try_to_vec::<f32>().unwrap();
    assert!(pixels.iter().all(|p| p.is_finite() && (0.0..=1.0).contains(p)));
    assert_eq!(run.steps.len(), PATCH_NUMS.len());
}

#[test]
fn foreign_damaged_and_mismatched_checkpoints_give_the_named_error() {
    let device = Device::flex();
    let tok = TokenizerTrainer::new(tokenizer_config(), &device).unwrap();
    let saved = block_on(tok.checkpoint(&[])).unwrap();
    let bytes = saved.to_bytes();

    // Damage.
    assert!(matches!(Checkpoint::from_bytes(&bytes[..bytes.len() / 2]), Err(Error::Truncated(_))));
    let mut flipped = bytes.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0xFF;
    assert!(matches!(Checkpoint::from_bytes(&flipped), Err(Error::Corrupt(_))));
    assert!(matches!(Checkpoint::from_bytes(&[0u8; 64]), Err(Error::NotACheckpoint)));

    // Another kind of model.
    let e = VarTrainer::resume(&saved, tok.model(), None, &device).unwrap_err();
    assert!(matches!(e, Error::WrongKind { expected: ModelKind::Var, found: ModelKind::VarTokenizer }), "{e}");
    assert!(matches!(load_var(&saved, &device), Err(Error::WrongKind { .. })));

    // A config other than the expected one, naming the field.
    let other = tokenizer_config().model.with_vocab_size(64);
    let Err(Error::ConfigMismatch { differences }) = saved.expect_model_config(&other) else { panic!() };
    assert_eq!(differences.len(), 1);
    assert!(differences[0].starts_with("vocab_size: expected 64, checkpoint has 32"), "{differences:?}");

    // A header whose config does not fit its weights.
    let mut lying = saved.clone();
    lying.header = CheckpointHeader {
        model_config: serde_json::to_value(tokenizer_config().model.with_z_channels(6)).unwrap(),
        ..lying.header
    };
    let e = load_tokenizer(&lying, &device).unwrap_err();
    assert!(matches!(e, Error::Weights(_)), "{e}");

    // A transformer built for another tokenizer.
    let e = VarTrainer::new(var_config(), tokenizer_config().model.with_vocab_size(64).init(&device), &device).unwrap_err();
    assert!(matches!(e, Error::ConfigMismatch { .. }), "{e}");

    // Weights only: loads for sampling, refuses to resume.
    let weights = saved.weights_only();
    assert!(load_tokenizer(&weights, &device).is_ok());
    assert!(matches!(TokenizerTrainer::resume(&weights, None, &device), Err(Error::Config(_))));
}

#[test]
fn a_nan_loss_stops_training_before_the_weights_change() {
    let device = Device::flex();
    let (images, labels) = digits(&device);
    let mut tok = TokenizerTrainer::new(tokenizer_config(), &device).unwrap();
    block_on(tok.step(images.clone())).unwrap();
    let before = codebook(&tok);
    let poisoned = images.clone().slice_fill([0..1, 0..1, 0..1, 0..1], f32::NAN);
    let e = block_on(tok.step(poisoned.clone())).unwrap_err();
    assert!(matches!(e, Error::NonFiniteLoss { step: 1, .. }), "{e}");
    assert!(e.to_string().contains("last checkpoint"), "{e}");
    assert_eq!(codebook(&tok), before);
    assert_eq!(tok.step_index(), 1);

    // The transformer: an absurd learning rate blows the weights up after one step.
    let mut config = var_config();
    config.schedule.peak_lr = 1e30;
    let mut var = VarTrainer::new(config, tok.model(), &device).unwrap();
    block_on(var.step(images.clone(), labels.clone())).unwrap();
    let e = block_on(var.step(images, labels)).unwrap_err();
    assert!(matches!(e, Error::NonFiniteLoss { step: 1, .. } | Error::NonFiniteGradient { step: 1, .. }), "{e}");
    assert_eq!(var.step_index(), 1);
}

/// On the CPU a step's batch runs in parts side by side, one per pool thread: eight digits cut
/// into 3 uneven parts (2, 3, 3) take the steps the whole batch takes, up to float rounding.
#[test]
fn a_var_step_in_parts_is_the_step_whole() {
    let device = Device::flex();
    let (images, labels) = digits(&device);
    let tokenizer = tokenizer_config().model.init(&device);
    // From a saved step 0: other tests draw from burn's generator too.
    let start = block_on(VarTrainer::new(var_config(), tokenizer.clone(), &device).unwrap().checkpoint(&[])).unwrap();
    let start = Checkpoint::from_bytes(&start.to_bytes()).unwrap();
    let run = |parts: usize| {
        let mut var = VarTrainer::resume(&start, tokenizer.clone(), None, &device).unwrap();
        in_parts(parts, 8, || (0..3).map(|_| block_on(var.step(images.clone(), labels.clone())).unwrap()).collect::<Vec<_>>())
    };
    assert_same_steps(&run(1), &run(3), |s| vec![s.loss, s.grad_norm, s.accuracy]);
}
