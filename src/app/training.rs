//! Training in the app: a family's tokenizer, then its transformer (VAR: the multi-scale VQ-VAE and
//! the next-scale transformer; RAR: the MaskGIT-VQGAN and the random-order transformer; the column
//! generator: the column tokenizer and the equivariant transformer with its flow head), step by
//! step in the background, with pause, resume and stop, live curves, a fixed-seed sample strip, and
//! checkpoints saved as it goes.
//!
//! Both phases of every family (and the time estimate) run through the one training loop
//! ([`tessera_train::train`]) and one generic run ([`run_pair`]): a family is a pair of trainers
//! ([`TokenizerPhase`], [`TransformerPhase`]). This file holds the app's hooks ([`PhaseHooks`]):
//! progress and curves keyed by metric name for the panel, each phase's extras (codebook usage,
//! sample strip), and checkpoints kept in memory and on disk or in the page's storage. The job runs like a
//! generation job ([`super::generation`]): a thread on the desktop, an async task on the web that
//! yields after every step. Every number is read back asynchronously, so the web path never
//! blocks on the GPU.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use anyhow::ensure;
use burn::module::Module;
use burn::prelude::*;
use tessera_data::{Dataset, Image};
use tessera_models::family::Family;
use tessera_models::sampling::equivariant::{ColumnSamplerConfig, ColumnSampling};
use tessera_models::sampling::rar::{RarSamplerConfig, RarSampling};
use tessera_models::tokenizers::columns::{ColumnTokenizer, ColumnTokenizerConfig};
use tessera_models::sampling::var::{VarSamplerConfig, sample};
use tessera_models::tokenizers::msvq::{MsVqVae, MsVqVaeConfig};
use tessera_models::tokenizers::vqgan::{Vqgan, VqganConfig};
use tessera_train::checkpoint::{fingerprint, weights_to_bytes};
use tessera_train::columns::load_column_tokenizer;
use tessera_train::tokenizer::load_tokenizer;
use tessera_train::trainer::train_seconds;
use tessera_train::vqgan::load_vqgan;
use tessera_train::{
    Autosave, Checkpoint, ColumnTokenizerTrainer, ColumnsPreset, Control, Ended, EquivariantTrainer, Hooks, ModelKind, RarPreset, RarTrainer, Run,
    StepDone, TokenizerTrainer, Trainer, VarPreset, VarTrainer, VqganTrainer, train,
};
use web_time::Instant;

use super::generation::{spawn, yield_now};

/// The families the Train tab trains.
pub const FAMILIES: [Family; 3] = [Family::Var, Family::Rar, Family::Columns];

/// Steps of the tokenizer and of the transformer `family`'s `preset` takes by default.
pub fn default_steps(family: Family, preset: VarPreset) -> (usize, usize) {
    match family {
        Family::Var => (preset.tokenizer_training(1).steps, preset.var_training(&preset.tokenizer(1), 10).steps),
        Family::Rar => {
            let rar = RarPreset::from(preset);
            (rar.tokenizer_training(1).steps, rar.rar_training(&rar.tokenizer(1), 10).steps)
        }
        Family::Columns => {
            let columns = ColumnsPreset::from(preset);
            (columns.tokenizer_training(1).steps, columns.equivariant_training(&columns.tokenizer(1), 10).steps)
        }
    }
}

/// The side of the pictures `family`'s `preset` trains on (a folder of pictures is resized to it).
pub fn image_size(family: Family, preset: VarPreset) -> usize {
    match family {
        Family::Var => preset.image_size(),
        Family::Rar => RarPreset::from(preset).tokenizer(1).resolution,
        Family::Columns => ColumnsPreset::from(preset).tokenizer(1).resolution,
    }
}

/// Which model a step belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Tokenizer,
    Transformer,
}

impl Phase {
    pub fn label(self) -> &'static str {
        match self {
            Phase::Tokenizer => "tokenizer",
            Phase::Transformer => "transformer",
        }
    }

    /// The checkpoint's file name in `family`, as `tessera train` names it (so the CLI can resume
    /// it): `tokenizer.ckpt`, and `var.ckpt`, `rar.ckpt` or `equivariant.ckpt`.
    pub fn file_name(self, family: Family) -> &'static str {
        match (self, family) {
            (Phase::Tokenizer, _) => "tokenizer.ckpt",
            (Phase::Transformer, Family::Var) => "var.ckpt",
            (Phase::Transformer, Family::Rar) => "rar.ckpt",
            (Phase::Transformer, Family::Columns) => "equivariant.ckpt",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum TrainStatus {
    Running,
    Paused,
    Done,
    Stopped,
    Failed(String),
}

/// A run to continue from checkpoint files (full checkpoints, with their optimizer state) of the
/// request's family.
#[derive(Clone)]
pub enum Resume {
    /// Continue training this tokenizer, then train a transformer on it.
    Tokenizer(Arc<Vec<u8>>),
    /// Continue training this transformer on this (finished) tokenizer, the one it was trained with.
    Transformer { tokenizer: Arc<Vec<u8>>, transformer: Arc<Vec<u8>> },
}

/// What to train.
#[derive(Clone)]
pub struct TrainRequest {
    pub dataset: Arc<dyn Dataset>,
    /// VAR, RAR or the column generator.
    pub family: Family,
    /// The size; a RAR or column run takes its family's pair of the same name ([`RarPreset::from`],
    /// [`ColumnsPreset::from`]).
    pub preset: VarPreset,
    /// Steps of each phase (default: the preset's). A resumed run keeps its own (its schedules
    /// depend on them).
    pub tokenizer_steps: usize,
    pub transformer_steps: usize,
    pub seed: u64,
    /// Images per step of both models (default: the preset's; a resumed run keeps its own).
    pub batch: Option<usize>,
    /// Continue from checkpoints instead of starting afresh.
    pub resume: Option<Resume>,
    /// Names the run's checkpoints in the browser's storage (`<run>-tokenizer.ckpt`, ...).
    pub run_name: String,
    /// Where checkpoints go on the desktop; `None` keeps them in memory only.
    pub out_dir: Option<std::path::PathBuf>,
    /// Seconds between automatic checkpoints.
    pub save_every_s: f64,
    /// Steps between refreshes of the sample strip.
    pub samples_every: usize,
}

/// A checkpoint the job wrote (or holds), for the panel's list.
#[derive(Clone, Debug)]
pub struct SavedCheckpoint {
    pub family: Family,
    pub phase: Phase,
    pub step: usize,
    /// Where it is: its file on the desktop, "in memory", or the dropped file's name. The bytes
    /// are kept either way, for downloading and loading.
    pub place: String,
    pub bytes: Arc<Vec<u8>>,
    /// A full checkpoint (optimizer state included), so training can continue from it.
    pub resumable: bool,
    /// Which tokenizer it is or goes with: a tokenizer's own fingerprint, the one a transformer
    /// recorded (`None` when it recorded none).
    pub tokenizer_id: Option<String>,
}

impl SavedCheckpoint {
    fn new(checkpoint: &Checkpoint, family: Family, phase: Phase, place: String, bytes: Arc<Vec<u8>>) -> Self {
        let tokenizer_id = match phase {
            Phase::Tokenizer => Some(fingerprint(&checkpoint.weights)),
            Phase::Transformer => checkpoint.header.tokenizer.clone(),
        };
        Self { family, phase, step: checkpoint.header.step, place, bytes, resumable: checkpoint.can_resume(), tokenizer_id }
    }

    /// One line for lists: `tokenizer at step 500: runs/…/tokenizer.ckpt` (VAR), `RAR transformer
    /// at step 1000: …` (RAR).
    pub fn describe(&self) -> String {
        let family = if self.family == Family::Var { String::new() } else { format!("{} ", self.family.label()) };
        format!("{family}{} at step {}: {}", self.phase.label(), self.step, self.place)
    }

    /// Its file name, as `tessera train` names it.
    pub fn file_name(&self) -> &'static str {
        self.phase.file_name(self.family)
    }

    /// A checkpoint file the user brought (dropped on the window) or the browser kept: a
    /// tokenizer or transformer of VAR, RAR or the column generator, checked (format, checksum,
    /// kind) before it is listed; `place` says where it is.
    pub fn uploaded(name: &str, bytes: Vec<u8>, place: String) -> Result<Self, String> {
        let checkpoint = Checkpoint::from_bytes(&bytes).map_err(|e| format!("{name} is not a usable checkpoint: {e}"))?;
        let (family, phase) = match checkpoint.header.kind {
            ModelKind::VarTokenizer => (Family::Var, Phase::Tokenizer),
            ModelKind::Var => (Family::Var, Phase::Transformer),
            ModelKind::RarTokenizer => (Family::Rar, Phase::Tokenizer),
            ModelKind::Rar => (Family::Rar, Phase::Transformer),
            ModelKind::ColumnsTokenizer => (Family::Columns, Phase::Tokenizer),
            ModelKind::Equivariant => (Family::Columns, Phase::Transformer),
            other => return Err(format!("{name} holds a {other}, not a tokenizer or transformer of VAR, RAR or the column generator")),
        };
        Ok(Self::new(&checkpoint, family, phase, place, Arc::new(bytes)))
    }

    /// The tokenizer among `candidates` (in order of preference) that goes with this transformer:
    /// of its family, the one it was trained with when it recorded which, else the first.
    pub fn tokenizer_among<'a>(&self, candidates: &[&'a SavedCheckpoint]) -> Option<&'a SavedCheckpoint> {
        let mut tokenizers = candidates.iter().copied().filter(|t| t.phase == Phase::Tokenizer && t.family == self.family);
        let first = tokenizers.clone().next();
        tokenizers.find(|t| self.tokenizer_id.is_some() && t.tokenizer_id == self.tokenizer_id).or(first)
    }
}

/// `(step, value)` points of each metric of a phase, by the trainer's metric names (`"loss"`,
/// `"psnr"`, `"accuracy"`, `"lr"`, ...).
pub type Curves = BTreeMap<String, Vec<[f64; 2]>>;

/// What the job has done so far.
#[derive(Clone, Debug)]
pub struct TrainProgress {
    /// The family being trained (its curves are named after it).
    pub family: Family,
    pub status: TrainStatus,
    pub phase: Phase,
    /// Steps done in the current phase, and its length.
    pub step: usize,
    pub steps_total: usize,
    /// Each phase's metrics, one point per step.
    pub tokenizer_curves: Curves,
    pub transformer_curves: Curves,
    /// Fraction of the codebook used (VAR: at each scale; RAR: one figure), at the last check.
    pub codebook_usage: Vec<f32>,
    /// One sample per class with a fixed seed (transformer phase), and the step it was drawn at.
    pub samples: Vec<Image>,
    pub samples_step: usize,
    pub checkpoints: Vec<SavedCheckpoint>,
    /// Seconds per step over the recent steps (for the estimate of the time left).
    pub seconds_per_step: f64,
    pub elapsed_s: f64,
}

impl TrainProgress {
    /// The curves of `phase`.
    pub fn curves(&self, phase: Phase) -> &Curves {
        match phase {
            Phase::Tokenizer => &self.tokenizer_curves,
            Phase::Transformer => &self.transformer_curves,
        }
    }

    fn curves_mut(&mut self, phase: Phase) -> &mut Curves {
        match phase {
            Phase::Tokenizer => &mut self.tokenizer_curves,
            Phase::Transformer => &mut self.transformer_curves,
        }
    }

    /// Steps `phase` took in this job.
    fn steps_taken(&self, phase: Phase) -> usize {
        self.curves(phase).get("loss").map_or(0, Vec::len)
    }
}

/// A training job shared between its worker and the UI.
#[derive(Clone)]
pub struct TrainJob {
    progress: Arc<Mutex<TrainProgress>>,
    control: Arc<Control>,
}

impl TrainJob {
    pub fn progress(&self) -> MutexGuard<'_, TrainProgress> {
        self.progress.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn set_paused(&self, paused: bool) {
        self.control.set_paused(paused);
    }

    /// Stops after the current step, saving a checkpoint first.
    pub fn stop(&self) {
        self.control.stop();
    }

    /// Saves a checkpoint after the current step (at once when paused).
    pub fn save_now(&self) {
        self.control.save_now();
    }

    pub fn is_active(&self) -> bool {
        matches!(self.progress().status, TrainStatus::Running | TrainStatus::Paused)
    }

    /// Seconds left at the current pace (both phases), once a few steps have been timed.
    pub fn seconds_left(&self, request_total: usize) -> Option<f64> {
        let p = self.progress();
        let done = match p.phase {
            Phase::Tokenizer => p.step,
            Phase::Transformer => p.steps_taken(Phase::Tokenizer) + p.step,
        };
        (p.seconds_per_step > 0.0).then(|| request_total.saturating_sub(done) as f64 * p.seconds_per_step)
    }
}

impl TrainJob {
    /// A job for `request`, not started: [`start`] runs one in the background, [`run`] in place.
    pub fn new(request: &TrainRequest) -> Self {
        let progress = TrainProgress {
            family: request.family,
            status: TrainStatus::Running,
            phase: Phase::Tokenizer,
            step: 0,
            steps_total: request.tokenizer_steps,
            tokenizer_curves: Curves::new(),
            transformer_curves: Curves::new(),
            codebook_usage: Vec::new(),
            samples: Vec::new(),
            samples_step: 0,
            checkpoints: Vec::new(),
            seconds_per_step: 0.0,
            elapsed_s: 0.0,
        };
        Self { progress: Arc::new(Mutex::new(progress)), control: Arc::default() }
    }
}

/// Starts training `request` on `device`.
pub fn start(request: TrainRequest, device: Device, ctx: egui::Context) -> TrainJob {
    let job = TrainJob::new(&request);
    let worker = job.clone();
    spawn(async move {
        let guard = FailIfAbandoned(worker.clone(), device.clone());
        let result = run(&request, &device, &worker, &|| ctx.request_repaint()).await;
        std::mem::forget(guard);
        // A step that failed because the GPU went away says so, whatever the backend's error.
        let lost = result.is_err() && tessera_kernels::device::lost_after_failure(&device);
        let mut p = worker.progress();
        p.status = match result {
            Err(_) if lost => TrainStatus::Failed(lost_run()),
            Err(e) => TrainStatus::Failed(format!("{e:#}")),
            Ok(Ended::Stopped) => TrainStatus::Stopped,
            Ok(Ended::Done) => TrainStatus::Done,
        };
        drop(p);
        ctx.request_repaint();
    });
    job
}

/// How a run on a GPU that was lost ends.
fn lost_run() -> String {
    format!("{}; its checkpoints saved so far are kept", tessera_kernels::device::LOST)
}

/// Marks a run whose worker panicked (a lost GPU device does that inside the backend) as failed,
/// so the panel says so instead of showing a run that never ends. Its checkpoints stay listed.
struct FailIfAbandoned(TrainJob, Device);

impl Drop for FailIfAbandoned {
    fn drop(&mut self) {
        let unfinished = |p: &TrainProgress| matches!(p.status, TrainStatus::Running | TrainStatus::Paused);
        // Asked without the job's lock held: it may wait a moment for wgpu to report a loss.
        let lost = unfinished(&self.0.progress()) && tessera_kernels::device::lost_after_failure(&self.1);
        let mut p = self.0.progress();
        if unfinished(&p) {
            // A GPU lost in the middle of a step can still fail inside the backend (a panic).
            let why = if lost { lost_run() } else { "the training stopped unexpectedly (see the log)".to_string() };
            p.status = TrainStatus::Failed(why);
        }
    }
}

/// Runs [`estimate`] in the background and hands its result to `done`.
pub fn spawn_estimate(
    dataset: Arc<dyn Dataset>,
    family: Family,
    preset: VarPreset,
    device: Device,
    done: impl FnOnce(anyhow::Result<(f64, f64)>) + Send + 'static,
) {
    // If the worker panics (a lost device), `done` still hears of it, so no spinner waits forever.
    struct Answer<F: FnOnce(anyhow::Result<(f64, f64)>)>(Option<F>);
    impl<F: FnOnce(anyhow::Result<(f64, f64)>)> Drop for Answer<F> {
        fn drop(&mut self) {
            if let Some(done) = self.0.take() {
                done(Err(anyhow::anyhow!("timing stopped unexpectedly (see the log)")));
            }
        }
    }
    let mut answer = Answer(Some(done));
    spawn(async move {
        let result = estimate(dataset.as_ref(), family, preset, &device).await;
        if let Some(done) = answer.0.take() {
            done(result);
        }
    });
}

/// The whole run of the request's family: tokenizer, then transformer on its codes; ends early
/// when stopped.
pub async fn run(request: &TrainRequest, device: &Device, job: &TrainJob, repaint: &(dyn Fn() + Sync)) -> anyhow::Result<Ended> {
    // The run's folder is this run's alone while it trains: another run (another window too) is refused.
    #[cfg(not(target_arch = "wasm32"))]
    let _lock = request.out_dir.as_deref().map(tessera_train::RunLock::acquire).transpose()?;
    let mut hooks = PhaseHooks { job, request, device, repaint, started: Instant::now(), pace: Pace::default() };
    match request.family {
        Family::Var => run_pair::<TokenizerTrainer, VarTrainer>(request, device, &mut hooks).await,
        Family::Rar => run_pair::<VqganTrainer, RarTrainer>(request, device, &mut hooks).await,
        Family::Columns => run_pair::<ColumnTokenizerTrainer, EquivariantTrainer>(request, device, &mut hooks).await,
    }
}

/// [`run`] for one family's pair of trainers.
async fn run_pair<K: TokenizerPhase, T: TransformerPhase<K>>(
    request: &TrainRequest,
    device: &Device,
    hooks: &mut PhaseHooks<'_>,
) -> anyhow::Result<Ended> {
    let dataset = request.dataset.as_ref();
    let first = dataset.get(0).image;
    let num_classes = dataset.class_names().len();
    let fits = |takes: (usize, usize)| -> anyhow::Result<()> {
        let (channels, side) = takes;
        ensure!(
            (channels, side, side) == (first.channels, first.height, first.width),
            "the tokenizer works on {channels}-channel {side}x{side} images, {} has {}-channel {}x{} images: pick its dataset",
            dataset.name(),
            first.channels,
            first.height,
            first.width
        );
        Ok(())
    };
    let setup = Setup { preset: request.preset, steps: request.tokenizer_steps, seed: request.seed, batch: request.batch, dataset };

    // 1. The tokenizer: trained here (afresh or resumed), or taken as it is when the transformer
    //    is resumed; and its fingerprint, which the transformer's checkpoints record.
    let (tokenizer, tokenizer_id) = match &request.resume {
        Some(Resume::Transformer { tokenizer, .. }) => {
            let checkpoint = Checkpoint::from_bytes(tokenizer)?;
            let frozen = K::load(&checkpoint, device)?;
            fits(K::takes(&frozen))?;
            (frozen, fingerprint(&checkpoint.weights))
        }
        resume => {
            let (mut trainer, seconds) = match resume {
                Some(Resume::Tokenizer(bytes)) => {
                    let checkpoint = Checkpoint::from_bytes(bytes)?;
                    (K::resume(&checkpoint, device)?, train_seconds(&checkpoint))
                }
                _ => (K::fresh(&setup, device)?, 0.0),
            };
            fits(K::takes(&trainer.frozen()))?;
            fits_the_device(trainer.batch_size(), trainer.largest_floats_per_image(), device)?;
            hooks.begin(&trainer);
            if train(&mut trainer, request.run(hooks.job, seconds), hooks).await?.ended == Ended::Stopped {
                return Ok(Ended::Stopped);
            }
            let frozen = trainer.frozen();
            let id = K::fingerprint(&frozen).await?;
            (frozen, id)
        }
    };

    // 2. The transformer on the frozen tokenizer's codes.
    let tokenizer_floats = K::encoding_floats_per_image(&tokenizer);
    let (mut transformer, seconds) = match &request.resume {
        Some(Resume::Transformer { transformer, .. }) => {
            let checkpoint = Checkpoint::from_bytes(transformer)?;
            ensure!(
                checkpoint.header.tokenizer.as_ref().is_none_or(|recorded| *recorded == tokenizer_id),
                "this transformer was trained with another tokenizer than the one given: resume it with its own {}",
                Phase::Tokenizer.file_name(request.family)
            );
            let transformer = T::resume(&checkpoint, tokenizer, device)?;
            let classes = transformer.num_classes();
            ensure!(classes == num_classes, "the transformer has {classes} classes, the dataset {num_classes}: pick its dataset");
            (transformer, train_seconds(&checkpoint))
        }
        _ => (T::fresh(&Setup { steps: request.transformer_steps, ..setup }, tokenizer, Some(tokenizer_id), device)?, 0.0),
    };
    // Its steps encode images with the tokenizer too.
    fits_the_device(transformer.batch_size(), transformer.largest_floats_per_image().max(tokenizer_floats), device)?;
    hooks.begin(&transformer);
    Ok(train(&mut transformer, request.run(hooks.job, seconds), hooks).await?.ended)
}

/// Errors, saying which batch would fit, unless a step of `batch` images of `floats_per_image`
/// stays within `device`'s largest buffer (a larger one is a panic inside wgpu).
fn fits_the_device(batch: usize, floats_per_image: u64, device: &Device) -> anyhow::Result<()> {
    fits_a_buffer(batch, floats_per_image, tessera_kernels::buffer_limit(device))
}

fn fits_a_buffer(batch: usize, floats_per_image: u64, limit: Option<u64>) -> anyhow::Result<()> {
    tessera_models::memory::check("a batch", batch, "images per step", floats_per_image, limit).map_err(anyhow::Error::msg)
}

impl TrainRequest {
    /// A phase's run through the loop, on this request's dataset, steered by `job`.
    fn run<'a>(&'a self, job: &'a TrainJob, train_seconds: f64) -> Run<'a> {
        let autosave = Autosave { every_seconds: Some(self.save_every_s), ..Autosave::at_end() };
        Run { dataset: self.dataset.as_ref(), control: &job.control, autosave, train_seconds }
    }
}

/// What a fresh phase is made of: the request's choices, or the estimate's two steps.
#[derive(Clone, Copy)]
struct Setup<'a> {
    preset: VarPreset,
    steps: usize,
    seed: u64,
    /// Images per step (default: the preset's).
    batch: Option<usize>,
    dataset: &'a dyn Dataset,
}

/// A family's tokenizer trainer, as [`run_pair`] needs it.
trait TokenizerPhase: PhaseTrainer + Sized {
    /// The trained tokenizer, frozen, with its config: what the transformer trains on.
    type Frozen;

    /// A fresh run of `setup`'s preset on its dataset's images.
    fn fresh(setup: &Setup<'_>, device: &Device) -> anyhow::Result<Self>;

    /// Continues the run saved in `checkpoint` exactly: its own step counts and schedules, so it
    /// ends as the uninterrupted run would have.
    fn resume(checkpoint: &Checkpoint, device: &Device) -> anyhow::Result<Self>;

    /// The tokenizer saved in `checkpoint`.
    fn load(checkpoint: &Checkpoint, device: &Device) -> anyhow::Result<Self::Frozen>;

    /// The tokenizer as trained so far.
    fn frozen(&self) -> Self::Frozen;

    /// Channels and side of the images it takes.
    fn takes(frozen: &Self::Frozen) -> (usize, usize);

    /// [`fingerprint`] of its weights, as its checkpoint would record them.
    async fn fingerprint(frozen: &Self::Frozen) -> anyhow::Result<String>;

    /// [`Trainer::largest_floats_per_image`] of encoding with it.
    fn encoding_floats_per_image(frozen: &Self::Frozen) -> u64;
}

/// A family's transformer trainer on the frozen tokenizer of `K`.
trait TransformerPhase<K: TokenizerPhase>: PhaseTrainer + Sized {
    /// A fresh run of `setup`'s preset on `tokenizer`'s codes, recording `tokenizer_id`.
    fn fresh(setup: &Setup<'_>, tokenizer: K::Frozen, tokenizer_id: Option<String>, device: &Device) -> anyhow::Result<Self>;

    /// Continues the run saved in `checkpoint` on `tokenizer` exactly (its own step counts and
    /// schedules).
    fn resume(checkpoint: &Checkpoint, tokenizer: K::Frozen, device: &Device) -> anyhow::Result<Self>;

    /// The classes it is conditioned on.
    fn num_classes(&self) -> usize;
}

async fn weights_fingerprint(model: &impl Module) -> anyhow::Result<String> {
    Ok(fingerprint(&weights_to_bytes(model).await?))
}

impl TokenizerPhase for TokenizerTrainer {
    type Frozen = (MsVqVaeConfig, MsVqVae);

    fn fresh(setup: &Setup<'_>, device: &Device) -> anyhow::Result<Self> {
        let mut config = setup.preset.tokenizer_training(setup.dataset.get(0).image.channels);
        config.steps = setup.steps;
        config.seed = setup.seed;
        config.batch_size = setup.batch.unwrap_or(config.batch_size);
        Ok(Self::new(config, device)?)
    }

    fn resume(checkpoint: &Checkpoint, device: &Device) -> anyhow::Result<Self> {
        Ok(Self::resume(checkpoint, None, device)?)
    }

    fn load(checkpoint: &Checkpoint, device: &Device) -> anyhow::Result<Self::Frozen> {
        Ok(load_tokenizer(checkpoint, device)?)
    }

    fn frozen(&self) -> Self::Frozen {
        (self.config().model.clone(), self.model())
    }

    fn takes((config, _): &Self::Frozen) -> (usize, usize) {
        (config.in_channels, config.image_size())
    }

    fn encoding_floats_per_image((config, _): &Self::Frozen) -> u64 {
        config.largest_floats_per_image()
    }

    async fn fingerprint((_, model): &Self::Frozen) -> anyhow::Result<String> {
        weights_fingerprint(model).await
    }
}

impl TransformerPhase<TokenizerTrainer> for VarTrainer {
    fn fresh(
        setup: &Setup<'_>,
        (config, vae): (MsVqVaeConfig, MsVqVae),
        tokenizer_id: Option<String>,
        device: &Device,
    ) -> anyhow::Result<Self> {
        let mut config = setup.preset.var_training(&config, setup.dataset.class_names().len());
        config.steps = setup.steps;
        config.seed = setup.seed;
        config.class_names = setup.dataset.class_names().to_vec();
        config.batch_size = setup.batch.unwrap_or(config.batch_size);
        let trainer = Self::new(config, vae, device)?;
        Ok(match tokenizer_id {
            Some(id) => trainer.with_tokenizer_fingerprint(id),
            None => trainer,
        })
    }

    fn resume(checkpoint: &Checkpoint, (_, vae): (MsVqVaeConfig, MsVqVae), device: &Device) -> anyhow::Result<Self> {
        Ok(Self::resume(checkpoint, vae, None, device)?)
    }

    fn num_classes(&self) -> usize {
        self.config().model.num_classes
    }
}

impl TokenizerPhase for VqganTrainer {
    type Frozen = (VqganConfig, Vqgan);

    fn fresh(setup: &Setup<'_>, device: &Device) -> anyhow::Result<Self> {
        let mut config = RarPreset::from(setup.preset).tokenizer_training(setup.dataset.get(0).image.channels);
        config.steps = setup.steps;
        config.seed = setup.seed;
        config.batch_size = setup.batch.unwrap_or(config.batch_size);
        Ok(Self::new(config, device)?)
    }

    fn resume(checkpoint: &Checkpoint, device: &Device) -> anyhow::Result<Self> {
        Ok(Self::resume(checkpoint, device)?)
    }

    fn load(checkpoint: &Checkpoint, device: &Device) -> anyhow::Result<Self::Frozen> {
        Ok(load_vqgan(checkpoint, device)?)
    }

    fn frozen(&self) -> Self::Frozen {
        (self.config().model.clone(), self.model())
    }

    fn takes((config, _): &Self::Frozen) -> (usize, usize) {
        (config.num_channels, config.resolution)
    }

    fn encoding_floats_per_image((config, _): &Self::Frozen) -> u64 {
        config.largest_floats_per_image()
    }

    async fn fingerprint((_, model): &Self::Frozen) -> anyhow::Result<String> {
        weights_fingerprint(model).await
    }
}

impl TransformerPhase<VqganTrainer> for RarTrainer {
    fn fresh(
        setup: &Setup<'_>,
        (config, vqgan): (VqganConfig, Vqgan),
        tokenizer_id: Option<String>,
        device: &Device,
    ) -> anyhow::Result<Self> {
        let class_names = setup.dataset.class_names().to_vec();
        let mut config = RarPreset::from(setup.preset).rar_training(&config, class_names.len()).with_class_names(class_names);
        config.steps = setup.steps;
        config.seed = setup.seed;
        config.batch_size = setup.batch.unwrap_or(config.batch_size);
        let trainer = Self::new(config, vqgan, device)?;
        Ok(match tokenizer_id {
            Some(id) => trainer.with_tokenizer_fingerprint(id),
            None => trainer,
        })
    }

    fn resume(checkpoint: &Checkpoint, (_, vqgan): (VqganConfig, Vqgan), device: &Device) -> anyhow::Result<Self> {
        Ok(Self::resume(checkpoint, vqgan, device)?)
    }

    fn num_classes(&self) -> usize {
        self.config().model.num_classes
    }
}

impl TokenizerPhase for ColumnTokenizerTrainer {
    type Frozen = (ColumnTokenizerConfig, ColumnTokenizer);

    /// The MNIST tokenizer for gray images, the scenes one for colour ([`ColumnsPreset::tokenizer`]).
    fn fresh(setup: &Setup<'_>, device: &Device) -> anyhow::Result<Self> {
        let mut config = ColumnsPreset::from(setup.preset).tokenizer_training(setup.dataset.get(0).image.channels);
        config.steps = setup.steps;
        config.seed = setup.seed;
        config.batch_size = setup.batch.unwrap_or(config.batch_size);
        Ok(Self::new(config, device)?)
    }

    fn resume(checkpoint: &Checkpoint, device: &Device) -> anyhow::Result<Self> {
        Ok(Self::resume(checkpoint, device)?)
    }

    fn load(checkpoint: &Checkpoint, device: &Device) -> anyhow::Result<Self::Frozen> {
        Ok(load_column_tokenizer(checkpoint, device)?)
    }

    fn frozen(&self) -> Self::Frozen {
        (self.config().model.clone(), self.model())
    }

    fn takes((config, _): &Self::Frozen) -> (usize, usize) {
        (config.in_channels, config.resolution)
    }

    fn encoding_floats_per_image((config, _): &Self::Frozen) -> u64 {
        config.largest_floats_per_image()
    }

    async fn fingerprint((_, model): &Self::Frozen) -> anyhow::Result<String> {
        weights_fingerprint(model).await
    }
}

impl TransformerPhase<ColumnTokenizerTrainer> for EquivariantTrainer {
    /// As `tessera train equivariant` sets it up: trained at the dataset's width in columns.
    fn fresh(
        setup: &Setup<'_>,
        (config, tokenizer): (ColumnTokenizerConfig, ColumnTokenizer),
        tokenizer_id: Option<String>,
        device: &Device,
    ) -> anyhow::Result<Self> {
        let class_names = setup.dataset.class_names().to_vec();
        let mut training = ColumnsPreset::from(setup.preset).equivariant_training(&config, class_names.len()).with_class_names(class_names);
        training.model.token_num = config.tokens_for_width(setup.dataset.get(0).image.width);
        training.steps = setup.steps;
        training.seed = setup.seed;
        training.batch_size = setup.batch.unwrap_or(training.batch_size);
        let trainer = Self::new(training, tokenizer, device)?;
        Ok(match tokenizer_id {
            Some(id) => trainer.with_tokenizer_fingerprint(id),
            None => trainer,
        })
    }

    fn resume(checkpoint: &Checkpoint, (_, tokenizer): (ColumnTokenizerConfig, ColumnTokenizer), device: &Device) -> anyhow::Result<Self> {
        Ok(Self::resume(checkpoint, tokenizer, device)?)
    }

    fn num_classes(&self) -> usize {
        self.config().model.class_num
    }
}

/// The app's side of the training loop: the panel's progress and curves, each phase's extras,
/// checkpoints saved, and yielding to the browser between steps.
struct PhaseHooks<'a> {
    job: &'a TrainJob,
    request: &'a TrainRequest,
    device: &'a Device,
    repaint: &'a (dyn Fn() + Sync),
    /// When the job started (the panel's elapsed time).
    started: Instant,
    pace: Pace,
}

impl PhaseHooks<'_> {
    /// Shows `trainer`'s phase as the current one, at its step, before its first step.
    fn begin<T: PhaseTrainer>(&self, trainer: &T) {
        let mut p = self.job.progress();
        p.phase = T::PHASE;
        p.step = trainer.step_index();
        p.steps_total = trainer.steps();
        drop(p);
        (self.repaint)();
    }
}

/// What a phase shows beside its curves.
enum Extra {
    Nothing,
    /// Fraction of the codebook used (VAR: at each scale; RAR: one figure).
    CodebookUsage(Vec<f32>),
    /// The fixed-seed sample strip.
    Samples(Vec<Image>),
}

/// A trainer the Train tab runs: its phase, and what it shows beside its curves.
trait PhaseTrainer: Trainer {
    const PHASE: Phase;

    /// The extra to show after step `step` (0-based), read back asynchronously.
    async fn extra(&self, step: usize, request: &TrainRequest, device: &Device) -> anyhow::Result<Extra>;
}

/// Codebook usage on the first step, every 25th, and the last.
async fn codebook_extra(trainer: &impl Trainer, step: usize, usage: impl FnOnce() -> Tensor<1>) -> anyhow::Result<Extra> {
    if !step.is_multiple_of(25) && !trainer.is_done() {
        return Ok(Extra::Nothing);
    }
    let usage = usage().into_data_async().await.map_err(|e| anyhow::anyhow!("reading the codebook usage back: {e:?}"))?;
    let usage = tessera_models::readback::on_host(usage).map_err(anyhow::Error::msg)?;
    Ok(Extra::CodebookUsage(usage.iter::<f32>().collect()))
}

/// Whether the sample strip is due after step `step`: every `samples_every` steps and at the end.
fn strip_due(trainer: &impl Trainer, step: usize, request: &TrainRequest) -> bool {
    (step + 1).is_multiple_of(request.samples_every.max(1)) || trainer.is_done()
}

impl PhaseTrainer for TokenizerTrainer {
    const PHASE: Phase = Phase::Tokenizer;

    async fn extra(&self, step: usize, _: &TrainRequest, _: &Device) -> anyhow::Result<Extra> {
        codebook_extra(self, step, || self.codebook_usage()).await
    }
}

impl PhaseTrainer for VqganTrainer {
    const PHASE: Phase = Phase::Tokenizer;

    async fn extra(&self, step: usize, _: &TrainRequest, _: &Device) -> anyhow::Result<Extra> {
        codebook_extra(self, step, || self.codebook_usage()).await
    }
}

impl PhaseTrainer for VarTrainer {
    const PHASE: Phase = Phase::Transformer;

    async fn extra(&self, step: usize, request: &TrainRequest, device: &Device) -> anyhow::Result<Extra> {
        if !strip_due(self, step, request) {
            return Ok(Extra::Nothing);
        }
        let sampler = VarSamplerConfig::new().with_guidance(2.0).with_seed(7);
        let model = self.model();
        let images = sample(&model, self.tokenizer(), class_labels(request, device), sampler, false).image;
        Ok(Extra::Samples(read_images(images).await?))
    }
}

impl PhaseTrainer for RarTrainer {
    const PHASE: Phase = Phase::Transformer;

    async fn extra(&self, step: usize, request: &TrainRequest, device: &Device) -> anyhow::Result<Extra> {
        if !strip_due(self, step, request) {
            return Ok(Extra::Nothing);
        }
        let model = self.model();
        let mut run =
            RarSampling::new(&model, class_labels(request, device), RarSamplerConfig { guidance: 3.0, seed: 7, ..Default::default() });
        while run.step(&model).is_some() {}
        Ok(Extra::Samples(read_images(self.tokenizer().codes_to_image(run.tokens())).await?))
    }
}

impl PhaseTrainer for ColumnTokenizerTrainer {
    const PHASE: Phase = Phase::Tokenizer;

    /// A continuous tokenizer has no codebook: its PSNR curve says how it does.
    async fn extra(&self, _: usize, _: &TrainRequest, _: &Device) -> anyhow::Result<Extra> {
        Ok(Extra::Nothing)
    }
}

impl PhaseTrainer for EquivariantTrainer {
    const PHASE: Phase = Phase::Transformer;

    /// One image per class at the training width, column by column, guidance 2 as the CLI's grids.
    async fn extra(&self, step: usize, request: &TrainRequest, device: &Device) -> anyhow::Result<Extra> {
        if !strip_due(self, step, request) {
            return Ok(Extra::Nothing);
        }
        let model = self.model();
        let sampler = ColumnSamplerConfig { cfg: 3.0, seed: 7, ..ColumnSamplerConfig::default() };
        let mut run = ColumnSampling::new(&model, class_labels(request, device), sampler, model.token_num());
        while run.step(&model).is_some() {}
        let images = self.tokenizer().decode(run.tokens() / self.config().model.vae_norm).clamp(-1.0, 1.0);
        Ok(Extra::Samples(read_images((images + 1.0) * 0.5).await?))
    }
}

impl<T: PhaseTrainer> Hooks<T> for PhaseHooks<'_> {
    type Error = anyhow::Error;

    async fn on_step(&mut self, trainer: &T, done: StepDone<'_>) -> anyhow::Result<()> {
        let extra = trainer.extra(done.step, self.request, self.device).await?;
        let mut p = self.job.progress();
        p.step = trainer.step_index();
        let curves = p.curves_mut(T::PHASE);
        for &(name, value) in done.metrics {
            curves.entry(name.to_string()).or_default().push([done.step as f64, value]);
        }
        match extra {
            Extra::Nothing => {}
            Extra::CodebookUsage(usage) => p.codebook_usage = usage,
            Extra::Samples(strip) => {
                p.samples = strip;
                p.samples_step = trainer.step_index();
            }
        }
        p.seconds_per_step = self.pace.add(done.seconds);
        p.elapsed_s = self.started.elapsed().as_secs_f64();
        drop(p);
        (self.repaint)();
        Ok(())
    }

    async fn save(&mut self, checkpoint: Checkpoint) -> anyhow::Result<()> {
        save(self.job, self.request, T::PHASE, checkpoint).await
    }

    fn before_step(&mut self) -> anyhow::Result<()> {
        ensure!(!tessera_kernels::is_lost(self.device), lost_run());
        Ok(())
    }

    async fn idle(&mut self, paused: bool) {
        if paused { pause_tick().await } else { yield_now().await }
    }

    fn on_pause(&mut self, paused: bool) {
        self.job.progress().status = if paused { TrainStatus::Paused } else { TrainStatus::Running };
        (self.repaint)();
    }
}

/// Seconds per step of `family`'s tokenizer and transformer of `preset` on `device`, each timed
/// on its second step (the first compiles shaders and allocates). Shown before training starts.
pub async fn estimate(dataset: &dyn Dataset, family: Family, preset: VarPreset, device: &Device) -> anyhow::Result<(f64, f64)> {
    match family {
        Family::Var => estimate_pair::<TokenizerTrainer, VarTrainer>(dataset, preset, device).await,
        Family::Rar => estimate_pair::<VqganTrainer, RarTrainer>(dataset, preset, device).await,
        Family::Columns => estimate_pair::<ColumnTokenizerTrainer, EquivariantTrainer>(dataset, preset, device).await,
    }
}

/// [`estimate`] for one family's pair of trainers.
async fn estimate_pair<K: TokenizerPhase, T: TransformerPhase<K>>(
    dataset: &dyn Dataset,
    preset: VarPreset,
    device: &Device,
) -> anyhow::Result<(f64, f64)> {
    let setup = Setup { preset, steps: 2, seed: 0, batch: None, dataset };
    let mut tokenizer = K::fresh(&setup, device)?;
    let tokenizer_s = time_last_step(&mut tokenizer, dataset).await?;
    let mut transformer = T::fresh(&setup, tokenizer.frozen(), None, device)?;
    let transformer_s = time_last_step(&mut transformer, dataset).await?;
    Ok((tokenizer_s, transformer_s))
}

/// Trains `trainer` to its end, saving nothing, and returns the seconds of its last step.
async fn time_last_step<T: Trainer>(trainer: &mut T, dataset: &dyn Dataset) -> anyhow::Result<f64> {
    struct Timer(f64);
    impl<T: Trainer> Hooks<T> for Timer {
        type Error = anyhow::Error;
        async fn on_step(&mut self, _: &T, done: StepDone<'_>) -> anyhow::Result<()> {
            self.0 = done.seconds;
            Ok(())
        }
        async fn save(&mut self, _: Checkpoint) -> anyhow::Result<()> {
            Ok(())
        }
        async fn idle(&mut self, _paused: bool) {
            yield_now().await;
        }
    }
    let control = Control::default();
    let run = Run { dataset, control: &control, autosave: Autosave::never(), train_seconds: 0.0 };
    let mut timer = Timer(0.0);
    train(trainer, run, &mut timer).await?;
    Ok(timer.0)
}

/// One label per class of the request's dataset: the sample strip's, one image each.
fn class_labels(request: &TrainRequest, device: &Device) -> Tensor<1, Int> {
    let n = request.dataset.class_names().len();
    Tensor::<1, Int>::from_data(TensorData::new((0..n as i64).collect::<Vec<_>>(), [n]), device)
}

/// A batch of images (`[N, C, H, W]`, about `[0, 1]`), clamped and read back asynchronously.
async fn read_images(images: Tensor<4>) -> anyhow::Result<Vec<Image>> {
    let images = images.clamp(0.0, 1.0);
    let [n, c, h, w] = images.dims();
    let pixels = images.into_data_async().await.map_err(|e| anyhow::anyhow!("reading the samples back: {e:?}"))?;
    let pixels = tessera_models::readback::on_host(pixels).map_err(anyhow::Error::msg)?;
    let pixels: Vec<f32> = pixels.iter::<f32>().collect();
    Ok((0..n).map(|i| Image::new(c, h, w, pixels[i * c * h * w..(i + 1) * c * h * w].to_vec())).collect())
}

/// Keeps `checkpoint`: as bytes, and on the desktop as `<out>/<file>` (written atomically), in
/// the browser as `<run>-<file>` in the page's storage, `<file>` named by [`Phase::file_name`].
/// A write that fails (disk full, storage quota) does not end the run: the checkpoint is listed
/// as held in memory, downloadable, with the error.
async fn save(job: &TrainJob, request: &TrainRequest, phase: Phase, checkpoint: Checkpoint) -> anyhow::Result<()> {
    let file_name = phase.file_name(request.family);
    let bytes = Arc::new(checkpoint.to_verified_bytes()?);
    #[cfg(not(target_arch = "wasm32"))]
    let written = match &request.out_dir {
        Some(dir) => {
            let path = dir.join(file_name);
            Checkpoint::save_bytes(&bytes, &path).map(|()| path.display().to_string()).map_err(|e| format!("{e:#}"))
        }
        None => Ok("in memory".to_string()),
    };
    #[cfg(target_arch = "wasm32")]
    let written = {
        let name = format!("{}-{file_name}", request.run_name);
        match crate::web::storage::save(&name, &bytes).await {
            Ok(()) => Ok(format!("{STORED_PREFIX}{name}")),
            Err(e) => Err(format!("saving {name} in the page's storage: {e}")),
        }
    };
    let place = match written {
        Ok(place) => place,
        Err(e) => {
            log::error!("checkpoint not written: {e}");
            format!("{HELD_IN_MEMORY} ({e})")
        }
    };
    let saved = SavedCheckpoint::new(&checkpoint, request.family, phase, place, bytes);
    let mut p = job.progress();
    // The list keeps the newest checkpoint of each phase.
    p.checkpoints.retain(|c| c.phase != phase);
    p.checkpoints.push(saved);
    Ok(())
}

/// How the list names a checkpoint in the browser's storage.
pub const STORED_PREFIX: &str = "browser storage: ";
/// How the list names a checkpoint whose write failed (it can still be downloaded).
pub const HELD_IN_MEMORY: &str = "held in memory only, not written: download it to keep it";

/// Mean of the last few step times.
#[derive(Default)]
struct Pace(Vec<f64>);

impl Pace {
    fn add(&mut self, seconds: f64) -> f64 {
        self.0.push(seconds);
        if self.0.len() > 20 {
            self.0.remove(0);
        }
        self.0.iter().sum::<f64>() / self.0.len() as f64
    }
}

/// How long a paused job sleeps between looks at its flags.
#[cfg(not(target_arch = "wasm32"))]
async fn pause_tick() {
    std::thread::sleep(std::time::Duration::from_millis(50));
}

#[cfg(target_arch = "wasm32")]
async fn pause_tick() {
    yield_now().await;
}

#[cfg(test)]
mod tests {
    use tessera_data::Mnist;

    use super::*;

    fn request(dir: &std::path::Path, tokenizer_steps: usize, transformer_steps: usize) -> TrainRequest {
        TrainRequest {
            dataset: Arc::new(Mnist::train()),
            family: Family::Var,
            preset: VarPreset::Tiny,
            tokenizer_steps,
            transformer_steps,
            seed: 0,
            batch: Some(4),
            resume: None,
            run_name: "test".into(),
            out_dir: Some(dir.to_path_buf()),
            save_every_s: 1e9,
            samples_every: 2,
        }
    }

    #[test]
    fn a_short_run_trains_both_models_and_keeps_loadable_checkpoints() {
        let device = Device::flex();
        let dir = tempfile::tempdir().unwrap();
        let request = request(dir.path(), 3, 2);
        let job = TrainJob::new(&request);
        pollster::block_on(run(&request, &device, &job, &|| {})).unwrap();
        let p = job.progress().clone();
        assert_eq!((p.phase, p.step), (Phase::Transformer, 2));
        let (tokenizer, transformer) = (&p.tokenizer_curves, &p.transformer_curves);
        assert_eq!(tokenizer["loss"].len(), 3);
        assert_eq!(transformer["loss"].len(), 2);
        assert!(tokenizer["loss"].iter().chain(&transformer["loss"]).all(|[_, l]| l.is_finite() && *l > 0.0));
        // Curves keyed by the trainers' metric names, one point per step.
        assert_eq!(tokenizer["psnr"].iter().map(|[s, _]| *s as usize).collect::<Vec<_>>(), [0, 1, 2]);
        assert!(transformer["accuracy"].iter().all(|[_, a]| (0.0..=1.0).contains(a)));
        assert!(tokenizer.contains_key("lr") && transformer.contains_key("lr"));
        assert_eq!(p.codebook_usage.len(), 7, "one usage figure per scale");
        assert!(p.codebook_usage.iter().all(|u| (0.0..=1.0).contains(u)));
        assert_eq!((p.samples.len(), p.samples_step), (10, 2), "one sample per digit after the last step");
        assert_eq!(p.checkpoints.len(), 2);
        for name in ["tokenizer.ckpt", "var.ckpt"] {
            let checkpoint = Checkpoint::load(&dir.path().join(name)).unwrap();
            assert!(checkpoint.can_resume(), "{name} should resume");
            assert!(checkpoint.header.metrics["loss"] > 0.0, "{name} records the loss");
            assert!(train_seconds(&checkpoint) > 0.0, "{name} records its training time");
        }
        let tokenizer = &p.checkpoints.iter().find(|c| c.phase == Phase::Tokenizer).unwrap().bytes;
        let var = &p.checkpoints.iter().find(|c| c.phase == Phase::Transformer).unwrap().bytes;
        let generator = crate::shipped::load_pair(var, tokenizer, &device).unwrap();
        assert_eq!(generator.info().class_name(7), "7");
        assert!(generator.info().warning.is_none(), "{:?}", generator.info().warning);
    }

    #[test]
    fn a_run_resumes_exactly_from_its_tokenizer_or_its_transformer_whatever_the_panel_says() {
        // Runs resumed from one checkpoint are compared with each other, not with a fresh run:
        // a fresh run's weights come from burn's global random stream, which the tests running
        // alongside draw from too.
        let device = Device::flex();
        let read = |dir: &std::path::Path, name: &str| std::fs::read(dir.join(name)).unwrap();
        // What a transformer and a tokenizer draw together for a fixed seed (files hold random
        // parameter ids, so the weights are compared through the model).
        let draws = |var: &[u8], tokenizer: &[u8]| {
            let generator = crate::shipped::load_pair(var, tokenizer, &device).unwrap();
            let request = tessera_models::generator::SampleRequest { classes: vec![3, 8], seed: 5, ..Default::default() };
            tessera_models::generator::generate(generator.as_ref(), &request).unwrap().into_data().iter::<f32>().collect::<Vec<_>>()
        };
        let resume = |dir: &std::path::Path, panel: (usize, usize), from: Resume| {
            let mut more = request(dir, panel.0, panel.1);
            more.resume = Some(from);
            let job = TrainJob::new(&more);
            pollster::block_on(run(&more, &device, &job, &|| {})).unwrap();
            job.progress().clone()
        };

        // A run of 2 tokenizer and 3 transformer steps, stopped after one transformer step.
        let dir = tempfile::tempdir().unwrap();
        let first = request(dir.path(), 2, 3);
        let job = TrainJob::new(&first);
        assert_eq!(pollster::block_on(run(&first, &device, &job, &stop_at(&job, Phase::Transformer, 1))).unwrap(), Ended::Stopped);
        let saved = job.progress().checkpoints.clone();
        let bytes = |phase| saved.iter().find(|c| c.phase == phase).unwrap().bytes.clone();
        let first_var = Checkpoint::from_bytes(&bytes(Phase::Transformer)).unwrap();
        assert_eq!(first_var.header.step, 1);
        let from_var = || Resume::Transformer { tokenizer: bytes(Phase::Tokenizer), transformer: bytes(Phase::Transformer) };

        // Resumed while the panel shows 7/9 steps: the run keeps its own schedule (3 steps) and
        // ends exactly as the same checkpoint resumed with the panel at the run's own counts.
        let (other, own) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let p = resume(other.path(), (7, 9), from_var());
        assert!(p.tokenizer_curves.is_empty());
        assert_eq!(p.transformer_curves["loss"].iter().map(|[s, _]| *s as usize).collect::<Vec<_>>(), vec![1, 2]);
        assert_eq!((p.phase, p.step, p.steps_total), (Phase::Transformer, 3, 3));
        resume(own.path(), (2, 3), from_var());
        let tokenizer = bytes(Phase::Tokenizer);
        assert!(draws(&read(other.path(), "var.ckpt"), &tokenizer) == draws(&read(own.path(), "var.ckpt"), &tokenizer), "the same end");
        // The resumed transformer's training time goes on from the saved one.
        let resumed_var = Checkpoint::load(&other.path().join("var.ckpt")).unwrap();
        assert!(train_seconds(&resumed_var) > train_seconds(&first_var), "train_seconds accumulate across a resume");

        // A tokenizer stopped after one of its two steps goes on to its end (not the panel's 5),
        // then a transformer trains on it.
        let dir = tempfile::tempdir().unwrap();
        let first = request(dir.path(), 2, 3);
        let job = TrainJob::new(&first);
        assert_eq!(pollster::block_on(run(&first, &device, &job, &stop_at(&job, Phase::Tokenizer, 1))).unwrap(), Ended::Stopped);
        let stopped = job.progress().checkpoints.iter().find(|c| c.phase == Phase::Tokenizer).unwrap().bytes.clone();
        let (other, own) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let p = resume(other.path(), (5, 3), Resume::Tokenizer(stopped.clone()));
        assert_eq!(p.tokenizer_curves["loss"].iter().map(|[s, _]| *s as usize).collect::<Vec<_>>(), vec![1]);
        assert_eq!(p.transformer_curves["loss"].len(), 3);
        resume(own.path(), (2, 3), Resume::Tokenizer(stopped));
        let var = read(other.path(), "var.ckpt");
        assert!(draws(&var, &read(other.path(), "tokenizer.ckpt")) == draws(&var, &read(own.path(), "tokenizer.ckpt")), "the same tokenizer");
    }

    #[test]
    fn a_batch_too_large_for_the_gpus_largest_buffer_is_refused_saying_what_fits() {
        // VAR's tiny transformer: the logits over all its scales' tokens.
        let floats = VarPreset::Tiny.var_training(&VarPreset::Tiny.tokenizer(1), 10).model.largest_floats_per_image();
        assert!(fits_a_buffer(64, floats, Some(128 << 20)).is_ok());
        assert!(fits_a_buffer(1024, floats, None).is_ok(), "the CPU backend has no limit");
        let e = fits_a_buffer(1024, floats, Some(128 << 20)).unwrap_err().to_string();
        assert!(e.contains("a batch of 1024 images per step") && e.contains("128 MiB") && e.contains("use at most") && e.ends_with("images per step"), "{e}");
    }

    #[test]
    fn a_failed_save_keeps_the_run_going_and_the_checkpoint_in_memory() {
        let device = Device::flex();
        let dir = tempfile::tempdir().unwrap();
        // Every write of tokenizer.ckpt fails: a folder is in its place.
        std::fs::create_dir(dir.path().join("tokenizer.ckpt")).unwrap();
        let request = request(dir.path(), 2, 1);
        let job = TrainJob::new(&request);
        assert_eq!(pollster::block_on(run(&request, &device, &job, &|| {})).unwrap(), Ended::Done);
        let p = job.progress().clone();
        assert_eq!((p.phase, p.step), (Phase::Transformer, 1), "the transformer trained after the failed save");
        let tokenizer = p.checkpoints.iter().find(|c| c.phase == Phase::Tokenizer).unwrap();
        assert!(tokenizer.place.starts_with(HELD_IN_MEMORY) && tokenizer.place.contains("tokenizer.ckpt"), "{}", tokenizer.place);
        assert_eq!(Checkpoint::from_bytes(&tokenizer.bytes).unwrap().header.step, 2, "the bytes are there to download");
        assert!(Checkpoint::load(&dir.path().join("var.ckpt")).is_ok(), "the next save wrote its file");
    }

    #[test]
    fn a_runs_folder_that_cannot_be_written_is_refused_before_the_first_step() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a-file"), b"").unwrap();
        let request = request(&dir.path().join("a-file").join("run"), 2, 1);
        let job = TrainJob::new(&request);
        let e = format!("{:#}", pollster::block_on(run(&request, &Device::flex(), &job, &|| {})).unwrap_err());
        assert!(e.contains("a-file"), "the error names the folder: {e}");
        assert!(job.progress().tokenizer_curves.is_empty(), "no step was taken");
    }

    #[test]
    fn the_estimate_times_a_step_of_each_model() {
        for family in FAMILIES {
            let (tokenizer_s, transformer_s) =
                pollster::block_on(estimate(&Mnist::train(), family, VarPreset::Tiny, &Device::flex())).unwrap();
            // A time, not a speed bar (speeds are benchmarks' business): finite, positive, one per model.
            assert!(
                tokenizer_s.is_finite() && transformer_s.is_finite() && tokenizer_s > 0.0 && transformer_s > 0.0,
                "{family}: {tokenizer_s} s, {transformer_s} s"
            );
        }
    }

    fn rar_request(dir: &std::path::Path, tokenizer_steps: usize, transformer_steps: usize) -> TrainRequest {
        TrainRequest { family: Family::Rar, ..request(dir, tokenizer_steps, transformer_steps) }
    }

    #[test]
    fn a_short_rar_run_trains_both_models_and_keeps_checkpoints_that_generate() {
        let device = Device::flex();
        let dir = tempfile::tempdir().unwrap();
        let request = rar_request(dir.path(), 2, 2);
        let job = TrainJob::new(&request);
        pollster::block_on(run(&request, &device, &job, &|| {})).unwrap();
        let p = job.progress().clone();
        assert_eq!((p.phase, p.step, p.steps_total), (Phase::Transformer, 2, 2));
        let (tokenizer, transformer) = (&p.tokenizer_curves, &p.transformer_curves);
        assert_eq!(tokenizer["psnr"].iter().map(|[s, _]| *s as usize).collect::<Vec<_>>(), [0, 1]);
        assert_eq!(transformer["loss"].len(), 2);
        assert!(tokenizer["loss"].iter().chain(&transformer["loss"]).all(|[_, l]| l.is_finite() && *l > 0.0));
        // The random-order probability is a curve like the others (1 early in the run).
        assert_eq!(transformer["random_ratio"].iter().map(|[_, r]| *r).collect::<Vec<_>>(), [1.0, 1.0]);
        assert_eq!(p.codebook_usage.len(), 1, "the VQGAN's usage is one figure");
        assert!((0.0..=1.0).contains(&p.codebook_usage[0]));
        assert_eq!((p.samples.len(), p.samples_step), (10, 2), "one sample per digit after the last step");
        assert_eq!((p.samples[0].channels, p.samples[0].height), (1, 32));
        // Named as `tessera train rar-tokenizer` / `rar` name them, so the CLI can resume them.
        assert!(!dir.path().join("var.ckpt").exists());
        for (name, kind) in [("tokenizer.ckpt", ModelKind::RarTokenizer), ("rar.ckpt", ModelKind::Rar)] {
            let checkpoint = Checkpoint::load(&dir.path().join(name)).unwrap();
            assert_eq!(checkpoint.header.kind, kind);
            assert!(checkpoint.can_resume(), "{name} should resume");
            assert!(train_seconds(&checkpoint) > 0.0, "{name} records its training time");
        }
        let saved = |phase| p.checkpoints.iter().find(|c| c.phase == phase).unwrap();
        let (tokenizer, rar) = (saved(Phase::Tokenizer), saved(Phase::Transformer));
        assert_eq!((tokenizer.family, tokenizer.file_name(), rar.file_name()), (Family::Rar, "tokenizer.ckpt", "rar.ckpt"));
        assert!(rar.describe().starts_with("RAR transformer at step 2: "), "{}", rar.describe());
        assert_eq!(rar.tokenizer_id, tokenizer.tokenizer_id, "the transformer records its tokenizer");
        assert!(std::ptr::eq(rar.tokenizer_among(&[rar, tokenizer]).unwrap(), tokenizer));
        let generator = crate::shipped::load_pair(&rar.bytes, &tokenizer.bytes, &device).unwrap();
        assert_eq!(generator.info().family, Family::Rar);
        assert_eq!(generator.info().class_name(7), "7");
        assert!(generator.info().warning.is_none(), "{:?}", generator.info().warning);
        let request = tessera_models::generator::SampleRequest { classes: vec![3], seed: 1, ..Default::default() };
        let images = tessera_models::generator::generate(generator.as_ref(), &request).unwrap();
        assert_eq!(images.dims(), [1, 1, 32, 32]);
        assert!(images.into_data().iter::<f32>().all(|v| v.is_finite()));
    }

    /// A repaint callback that stops `job` once `phase` has taken `steps` steps.
    fn stop_at(job: &TrainJob, phase: Phase, steps: usize) -> impl Fn() + Sync + '_ {
        move || {
            let p = job.progress();
            let due = p.phase == phase && p.step >= steps;
            drop(p);
            if due {
                job.stop();
            }
        }
    }

    #[test]
    fn a_rar_run_resumes_from_its_tokenizer_or_its_transformer_with_its_own_tokenizer() {
        let device = Device::flex();
        let dir = tempfile::tempdir().unwrap();
        let bytes = |job: &TrainJob, phase| job.progress().checkpoints.iter().find(|c| c.phase == phase).unwrap().bytes.clone();

        // Stopped after one of two tokenizer steps.
        let first = rar_request(dir.path(), 2, 3);
        let job = TrainJob::new(&first);
        assert_eq!(pollster::block_on(run(&first, &device, &job, &stop_at(&job, Phase::Tokenizer, 1))).unwrap(), Ended::Stopped);
        let tokenizer_1 = bytes(&job, Phase::Tokenizer);

        // The tokenizer goes on from step 1 to 2, then a transformer trains on it: stopped at 1 of 3.
        let mut more = rar_request(dir.path(), 2, 3);
        more.resume = Some(Resume::Tokenizer(tokenizer_1.clone()));
        let job = TrainJob::new(&more);
        assert_eq!(pollster::block_on(run(&more, &device, &job, &stop_at(&job, Phase::Transformer, 1))).unwrap(), Ended::Stopped);
        assert_eq!(job.progress().tokenizer_curves["loss"].iter().map(|[s, _]| *s as usize).collect::<Vec<_>>(), vec![1]);
        let (tokenizer_2, rar_1) = (bytes(&job, Phase::Tokenizer), bytes(&job, Phase::Transformer));

        // The transformer goes on from step 1 to the end of its schedule (3) on the same tokenizer.
        let mut more = rar_request(dir.path(), 2, 3);
        more.resume = Some(Resume::Transformer { tokenizer: tokenizer_2.clone(), transformer: rar_1.clone() });
        let job = TrainJob::new(&more);
        assert_eq!(pollster::block_on(run(&more, &device, &job, &|| {})).unwrap(), Ended::Done);
        let p = job.progress().clone();
        assert!(p.tokenizer_curves.is_empty());
        assert_eq!(p.transformer_curves["loss"].iter().map(|[s, _]| *s as usize).collect::<Vec<_>>(), vec![1, 2]);
        assert_eq!((p.phase, p.step), (Phase::Transformer, 3));
        let rar_3 = Checkpoint::load(&dir.path().join("rar.ckpt")).unwrap();
        assert!(train_seconds(&rar_3) > train_seconds(&Checkpoint::from_bytes(&rar_1).unwrap()), "train_seconds accumulate");
        assert!(crate::shipped::load_pair(&rar_3.to_bytes(), &tokenizer_2, &device).unwrap().info().warning.is_none());

        // Another tokenizer than its own is refused.
        let mut wrong = rar_request(dir.path(), 2, 3);
        wrong.resume = Some(Resume::Transformer { tokenizer: tokenizer_1, transformer: rar_1 });
        let job = TrainJob::new(&wrong);
        let e = pollster::block_on(run(&wrong, &device, &job, &|| {})).unwrap_err().to_string();
        assert!(e.contains("another tokenizer"), "{e}");
        // Neither a VAR nor a column request resumes RAR checkpoints.
        for family in [Family::Var, Family::Columns] {
            let other = TrainRequest { family, resume: Some(Resume::Tokenizer(tokenizer_2.clone())), ..request(dir.path(), 2, 3) };
            let job = TrainJob::new(&other);
            assert!(pollster::block_on(run(&other, &device, &job, &|| {})).is_err(), "{family}");
        }
    }

    fn columns_request(dir: &std::path::Path, tokenizer_steps: usize, transformer_steps: usize) -> TrainRequest {
        TrainRequest { family: Family::Columns, ..request(dir, tokenizer_steps, transformer_steps) }
    }

    #[test]
    fn a_short_column_run_trains_both_models_resumes_and_keeps_checkpoints_that_generate_wide() {
        let device = Device::flex();
        let dir = tempfile::tempdir().unwrap();
        // Stopped after two of three transformer steps.
        let request = columns_request(dir.path(), 2, 3);
        let job = TrainJob::new(&request);
        assert_eq!(pollster::block_on(run(&request, &device, &job, &stop_at(&job, Phase::Transformer, 2))).unwrap(), Ended::Stopped);
        let p = job.progress().clone();
        assert_eq!((p.family, p.phase, p.step, p.steps_total), (Family::Columns, Phase::Transformer, 2, 3));
        let (tokenizer, transformer) = (&p.tokenizer_curves, &p.transformer_curves);
        assert_eq!(tokenizer["psnr"].iter().map(|[s, _]| *s as usize).collect::<Vec<_>>(), [0, 1]);
        assert!(tokenizer.contains_key("kl") && transformer.contains_key("vae_norm"));
        assert!(tokenizer["loss"].iter().chain(&transformer["loss"]).all(|[_, l]| l.is_finite() && *l > 0.0));
        assert!(p.codebook_usage.is_empty(), "a continuous tokenizer has no codebook");
        assert_eq!((p.samples.len(), p.samples_step), (10, 2), "one sample per digit every second step");
        assert_eq!((p.samples[0].channels, p.samples[0].height, p.samples[0].width), (1, 32, 32));
        // Named as `tessera train columns-tokenizer` / `equivariant` name them.
        for (name, kind) in [("tokenizer.ckpt", ModelKind::ColumnsTokenizer), ("equivariant.ckpt", ModelKind::Equivariant)] {
            let checkpoint = Checkpoint::load(&dir.path().join(name)).unwrap();
            assert_eq!(checkpoint.header.kind, kind);
            assert!(checkpoint.can_resume() && train_seconds(&checkpoint) > 0.0, "{name}");
        }
        let saved = |phase| p.checkpoints.iter().find(|c| c.phase == phase).unwrap().clone();
        let (tokenizer, equivariant) = (saved(Phase::Tokenizer), saved(Phase::Transformer));
        assert_eq!((tokenizer.family, equivariant.file_name()), (Family::Columns, "equivariant.ckpt"));
        assert!(equivariant.describe().starts_with("Equivariant (columns) transformer at step 2: "), "{}", equivariant.describe());
        assert_eq!(equivariant.tokenizer_id, tokenizer.tokenizer_id, "the transformer records its tokenizer");
        // Dropped files map to the family.
        let dropped = SavedCheckpoint::uploaded("equivariant.ckpt", equivariant.bytes.to_vec(), "here".into()).unwrap();
        assert_eq!((dropped.family, dropped.phase), (Family::Columns, Phase::Transformer));
        let dropped = SavedCheckpoint::uploaded("tokenizer.ckpt", tokenizer.bytes.to_vec(), "here".into()).unwrap();
        assert_eq!((dropped.family, dropped.phase), (Family::Columns, Phase::Tokenizer));

        let generator = crate::shipped::load_pair(&equivariant.bytes, &tokenizer.bytes, &device).unwrap();
        assert_eq!((generator.info().family, generator.info().forward_passes), (Family::Columns, 8));
        assert!(generator.info().warning.is_none(), "{:?}", generator.info().warning);
        let wide = tessera_models::generator::SampleRequest { classes: vec![3], seed: 1, width: Some(16), ..Default::default() };
        let images = tessera_models::generator::generate(generator.as_ref(), &wide).unwrap();
        assert_eq!(images.dims(), [1, 1, 32, 64], "twice the training width");

        // The transformer goes on to the end of its own schedule (3) on its tokenizer.
        let mut more = columns_request(dir.path(), 2, 3);
        more.resume = Some(Resume::Transformer { tokenizer: tokenizer.bytes.clone(), transformer: equivariant.bytes.clone() });
        let resumed = TrainJob::new(&more);
        assert_eq!(pollster::block_on(run(&more, &device, &resumed, &|| {})).unwrap(), Ended::Done);
        let p = resumed.progress().clone();
        assert!(p.tokenizer_curves.is_empty());
        assert_eq!(p.transformer_curves["loss"].iter().map(|[s, _]| *s as usize).collect::<Vec<_>>(), [2]);
        assert_eq!((p.phase, p.step), (Phase::Transformer, 3));
    }

    #[test]
    fn dropped_checkpoints_are_checked_before_they_are_listed() {
        let shipped = &crate::shipped::SHIPPED[0];
        let (shipped_tokenizer, shipped_var) = (shipped.tokenizer_bytes, shipped.generator_bytes);
        let tokenizer = SavedCheckpoint::uploaded("tokenizer.ckpt", shipped_tokenizer.to_vec(), "here".into()).unwrap();
        let var = SavedCheckpoint::uploaded("var.ckpt", shipped_var.to_vec(), "dropped file var.ckpt".into()).unwrap();
        assert_eq!((tokenizer.phase, var.phase), (Phase::Tokenizer, Phase::Transformer));
        assert_eq!((tokenizer.family, var.family, var.file_name()), (Family::Var, Family::Var, "var.ckpt"));
        assert_eq!(var.describe(), format!("transformer at step {}: dropped file var.ckpt", var.step));
        let e = SavedCheckpoint::uploaded("cat.png", b"\x89PNG not a checkpoint".to_vec(), String::new()).unwrap_err();
        assert!(e.starts_with("cat.png is not a usable checkpoint"), "{e}");
        let mut damaged = shipped_var.to_vec();
        let middle = damaged.len() / 2;
        damaged[middle] ^= 1;
        let e = SavedCheckpoint::uploaded("var.ckpt", damaged, String::new()).unwrap_err();
        assert!(e.contains("checksum"), "{e}");
    }

    #[test]
    fn stopping_saves_the_step_it_stopped_at() {
        let dir = tempfile::tempdir().unwrap();
        let request = request(dir.path(), 50, 50);
        let job = TrainJob::new(&request);
        job.stop();
        let ended = pollster::block_on(run(&request, &Device::flex(), &job, &|| {})).unwrap();
        assert_eq!(ended, Ended::Stopped);
        let p = job.progress();
        assert_eq!(p.checkpoints.len(), 1);
        assert_eq!((p.checkpoints[0].phase, p.checkpoints[0].step), (Phase::Tokenizer, 0));
        assert!(dir.path().join("tokenizer.ckpt").exists());
    }
}
