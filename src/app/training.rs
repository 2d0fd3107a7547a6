//! Training in the app: the tokenizer, then the transformer, step by step in the background, with
//! pause, resume and stop, live curves, a fixed-seed sample strip, and checkpoints saved as it goes.
//!
//! Both phases (and the time estimate) run through the one training loop
//! ([`tessera_train::train`]); this file holds the app's hooks ([`PhaseHooks`]): progress and
//! curves keyed by metric name for the panel, each phase's extras (codebook usage, sample strip),
//! and checkpoints kept in memory and on disk or in the page's storage. The job runs like a
//! generation job ([`super::generation`]): a thread on the desktop, an async task on the web that
//! yields after every step. Every number is read back asynchronously, so the web path never
//! blocks on the GPU.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use burn::prelude::*;
use tessera_data::{Dataset, Image};
use tessera_models::sampling::var::{VarSamplerConfig, sample};
use tessera_train::tokenizer::load_tokenizer;
use tessera_train::trainer::train_seconds;
use tessera_train::{
    Autosave, Checkpoint, Control, Ended, Hooks, ModelKind, Run, StepDone, TokenizerTrainer, Trainer, VarPreset, VarTrainer,
    train,
};
use web_time::Instant;

use super::generation::{spawn, yield_now};

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

    /// The checkpoint's file name, as `tessera train` names it (so the CLI can resume it).
    pub fn file_name(self) -> &'static str {
        match self {
            Phase::Tokenizer => "tokenizer.ckpt",
            Phase::Transformer => "var.ckpt",
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

/// A run to continue from checkpoint files (full checkpoints, with their optimizer state).
#[derive(Clone)]
pub enum Resume {
    /// Continue training this tokenizer, then train a transformer on it.
    Tokenizer(Arc<Vec<u8>>),
    /// Continue training this transformer on this (finished) tokenizer.
    Transformer { tokenizer: Arc<Vec<u8>>, var: Arc<Vec<u8>> },
}

/// What to train.
#[derive(Clone)]
pub struct TrainRequest {
    pub dataset: Arc<dyn Dataset>,
    pub preset: VarPreset,
    /// Steps of each phase (default: the preset's).
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
    pub phase: Phase,
    pub step: usize,
    /// Where it is: its file on the desktop, "in memory", or the dropped file's name. The bytes
    /// are kept either way, for downloading and loading.
    pub place: String,
    pub bytes: Arc<Vec<u8>>,
    /// A full checkpoint (optimizer state included), so training can continue from it.
    pub resumable: bool,
}

impl SavedCheckpoint {
    /// One line for lists: `tokenizer at step 500: runs/…/tokenizer.ckpt`.
    pub fn describe(&self) -> String {
        format!("{} at step {}: {}", self.phase.label(), self.step, self.place)
    }

    /// A checkpoint file the user brought (dropped on the window) or the browser kept: a VAR
    /// tokenizer or transformer, checked (format, checksum, kind) before it is listed; `place`
    /// says where it is.
    pub fn uploaded(name: &str, bytes: Vec<u8>, place: String) -> Result<Self, String> {
        let checkpoint = Checkpoint::from_bytes(&bytes).map_err(|e| format!("{name} is not a usable checkpoint: {e}"))?;
        let phase = match checkpoint.header.kind {
            ModelKind::VarTokenizer => Phase::Tokenizer,
            ModelKind::Var => Phase::Transformer,
            other => return Err(format!("{name} holds a {other}, not a VAR tokenizer or transformer")),
        };
        Ok(Self { phase, step: checkpoint.header.step, place, resumable: checkpoint.can_resume(), bytes: Arc::new(bytes) })
    }
}

/// `(step, value)` points of each metric of a phase, by the trainer's metric names (`"loss"`,
/// `"psnr"`, `"accuracy"`, `"lr"`, ...).
pub type Curves = BTreeMap<String, Vec<[f64; 2]>>;

/// What the job has done so far.
#[derive(Clone, Debug)]
pub struct TrainProgress {
    pub status: TrainStatus,
    pub phase: Phase,
    /// Steps done in the current phase, and its length.
    pub step: usize,
    pub steps_total: usize,
    /// Each phase's metrics, one point per step.
    pub tokenizer_curves: Curves,
    pub transformer_curves: Curves,
    /// Fraction of the codebook used at each scale, at the last check.
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
    fn new(request: &TrainRequest) -> Self {
        let progress = TrainProgress {
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
        let guard = FailIfAbandoned(worker.clone());
        let result = run(&request, &device, &worker, &|| ctx.request_repaint()).await;
        std::mem::forget(guard);
        let mut p = worker.progress();
        p.status = match result {
            Err(e) => TrainStatus::Failed(format!("{e:#}")),
            Ok(Ended::Stopped) => TrainStatus::Stopped,
            Ok(Ended::Done) => TrainStatus::Done,
        };
        drop(p);
        ctx.request_repaint();
    });
    job
}

/// Marks a run whose worker panicked (a lost GPU device does that inside the backend) as failed,
/// so the panel says so instead of showing a run that never ends. Its checkpoints stay listed.
struct FailIfAbandoned(TrainJob);

impl Drop for FailIfAbandoned {
    fn drop(&mut self) {
        let mut p = self.0.progress();
        if matches!(p.status, TrainStatus::Running | TrainStatus::Paused) {
            p.status = TrainStatus::Failed("the training stopped unexpectedly (see the log)".into());
        }
    }
}

/// Runs [`estimate`] in the background and hands its result to `done`.
pub fn spawn_estimate(
    dataset: Arc<dyn Dataset>,
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
        let result = estimate(dataset.as_ref(), preset, &device).await;
        if let Some(done) = answer.0.take() {
            done(result);
        }
    });
}

/// The whole run: tokenizer, then transformer on its token maps; ends early when stopped.
pub async fn run(request: &TrainRequest, device: &Device, job: &TrainJob, repaint: &(dyn Fn() + Sync)) -> anyhow::Result<Ended> {
    let dataset = request.dataset.as_ref();
    let channels = dataset.get(0).image.channels;
    let num_classes = dataset.class_names().len();
    let preset = request.preset;
    let mut hooks = PhaseHooks { job, request, device, repaint, started: Instant::now(), pace: Pace::default() };

    // 1. The tokenizer: trained here (afresh or resumed), or taken as it is when the transformer
    //    is resumed.
    let (vae_config, vae) = match &request.resume {
        Some(Resume::Transformer { tokenizer, .. }) => load_tokenizer(&Checkpoint::from_bytes(tokenizer)?, device)?,
        resume => {
            let (mut tokenizer, seconds) = match resume {
                Some(Resume::Tokenizer(bytes)) => {
                    let checkpoint = Checkpoint::from_bytes(bytes)?;
                    (TokenizerTrainer::resume(&checkpoint, Some(request.tokenizer_steps), device)?, train_seconds(&checkpoint))
                }
                _ => {
                    let mut config = preset.tokenizer_training(channels);
                    config.steps = request.tokenizer_steps;
                    config.seed = request.seed;
                    config.batch_size = request.batch.unwrap_or(config.batch_size);
                    (TokenizerTrainer::new(config, device)?, 0.0)
                }
            };
            if train(&mut tokenizer, request.run(job, seconds), &mut hooks).await?.ended == Ended::Stopped {
                return Ok(Ended::Stopped);
            }
            (tokenizer.config().model.clone(), tokenizer.model())
        }
    };

    // 2. The transformer on the frozen tokenizer's token maps.
    let (mut var, seconds) = match &request.resume {
        Some(Resume::Transformer { var, .. }) => {
            let checkpoint = Checkpoint::from_bytes(var)?;
            let var = VarTrainer::resume(&checkpoint, vae, Some(request.transformer_steps), device)?;
            let classes = var.config().model.num_classes;
            anyhow::ensure!(classes == num_classes, "the transformer has {classes} classes, the dataset {num_classes}: pick its dataset");
            (var, train_seconds(&checkpoint))
        }
        _ => {
            let mut config = preset.var_training(&vae_config, num_classes);
            config.steps = request.transformer_steps;
            config.seed = request.seed;
            config.class_names = dataset.class_names().to_vec();
            config.batch_size = request.batch.unwrap_or(config.batch_size);
            (VarTrainer::new(config, vae, device)?, 0.0)
        }
    };
    {
        let mut p = job.progress();
        p.phase = Phase::Transformer;
        p.step = var.step_index();
        p.steps_total = request.transformer_steps;
    }
    Ok(train(&mut var, request.run(job, seconds), &mut hooks).await?.ended)
}

impl TrainRequest {
    /// A phase's run through the loop, on this request's dataset, steered by `job`.
    fn run<'a>(&'a self, job: &'a TrainJob, train_seconds: f64) -> Run<'a> {
        let autosave = Autosave { every_seconds: Some(self.save_every_s), ..Autosave::at_end() };
        Run { dataset: self.dataset.as_ref(), control: &job.control, autosave, train_seconds }
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

/// What a phase shows beside its curves.
enum Extra {
    Nothing,
    /// Fraction of the codebook used at each scale.
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

impl PhaseTrainer for TokenizerTrainer {
    const PHASE: Phase = Phase::Tokenizer;

    /// Codebook usage on the first step, every 25th, and the last.
    async fn extra(&self, step: usize, _: &TrainRequest, _: &Device) -> anyhow::Result<Extra> {
        if step % 25 != 0 && !self.is_done() {
            return Ok(Extra::Nothing);
        }
        let usage = self.codebook_usage().into_data_async().await.map_err(|e| anyhow::anyhow!("reading the codebook usage back: {e:?}"))?;
        Ok(Extra::CodebookUsage(usage.iter::<f32>().collect()))
    }
}

impl PhaseTrainer for VarTrainer {
    const PHASE: Phase = Phase::Transformer;

    /// A new sample strip every `samples_every` steps and at the end.
    async fn extra(&self, step: usize, request: &TrainRequest, device: &Device) -> anyhow::Result<Extra> {
        if (step + 1) % request.samples_every != 0 && !self.is_done() {
            return Ok(Extra::Nothing);
        }
        Ok(Extra::Samples(sample_strip(self, request.dataset.class_names().len(), device).await?))
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

    async fn idle(&mut self, paused: bool) {
        if paused { pause_tick().await } else { yield_now().await }
    }

    fn on_pause(&mut self, paused: bool) {
        self.job.progress().status = if paused { TrainStatus::Paused } else { TrainStatus::Running };
        (self.repaint)();
    }
}

/// Seconds per step of the tokenizer and of the transformer of `preset` on `device`, each timed
/// on its second step (the first compiles shaders and allocates). Shown before training starts.
pub async fn estimate(dataset: &dyn Dataset, preset: VarPreset, device: &Device) -> anyhow::Result<(f64, f64)> {
    let mut config = preset.tokenizer_training(dataset.get(0).image.channels);
    config.steps = 2;
    let mut tokenizer = TokenizerTrainer::new(config, device)?;
    let tokenizer_s = time_last_step(&mut tokenizer, dataset).await?;
    let mut config = preset.var_training(&tokenizer.config().model, dataset.class_names().len());
    config.steps = 2;
    let mut var = VarTrainer::new(config, tokenizer.model(), device)?;
    let var_s = time_last_step(&mut var, dataset).await?;
    Ok((tokenizer_s, var_s))
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

/// One image per class with a fixed seed and guidance 2, so the strip shows the model improving.
async fn sample_strip(var: &VarTrainer, num_classes: usize, device: &Device) -> anyhow::Result<Vec<Image>> {
    let labels = Tensor::<1, Int>::from_data(TensorData::new((0..num_classes as i64).collect::<Vec<_>>(), [num_classes]), device);
    let sampler = VarSamplerConfig::new().with_guidance(2.0).with_seed(7);
    let model = var.model();
    let images = sample(&model, var.tokenizer(), labels, sampler, false).image.clamp(0.0, 1.0);
    let [n, c, h, w] = images.dims();
    let pixels = images.into_data_async().await.map_err(|e| anyhow::anyhow!("reading the samples back: {e:?}"))?;
    let pixels: Vec<f32> = pixels.iter::<f32>().collect();
    Ok((0..n).map(|i| Image::new(c, h, w, pixels[i * c * h * w..(i + 1) * c * h * w].to_vec())).collect())
}

/// Keeps `checkpoint`: as bytes, and on the desktop as `<out>/<phase>.ckpt` (written atomically),
/// in the browser as `<run>-<phase>.ckpt` in the page's storage.
async fn save(job: &TrainJob, request: &TrainRequest, phase: Phase, checkpoint: Checkpoint) -> anyhow::Result<()> {
    let step = checkpoint.header.step;
    let bytes = Arc::new(checkpoint.to_bytes());
    #[cfg(not(target_arch = "wasm32"))]
    let place = match &request.out_dir {
        Some(dir) => {
            let path = dir.join(phase.file_name());
            checkpoint.save(&path)?;
            path.display().to_string()
        }
        None => "in memory".to_string(),
    };
    #[cfg(target_arch = "wasm32")]
    let place = {
        let name = format!("{}-{}", request.run_name, phase.file_name());
        crate::web::storage::save(&name, &bytes).await.map_err(|e| anyhow::anyhow!("saving {name}: {e}"))?;
        format!("{STORED_PREFIX}{name}")
    };
    let mut p = job.progress();
    // The list keeps the newest checkpoint of each phase.
    p.checkpoints.retain(|c| c.phase != phase);
    p.checkpoints.push(SavedCheckpoint { phase, step, place, bytes, resumable: true });
    Ok(())
}

/// How the list names a checkpoint in the browser's storage.
pub const STORED_PREFIX: &str = "browser storage: ";

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
    fn a_run_resumes_from_its_tokenizer_or_its_transformer() {
        let device = Device::flex();
        let dir = tempfile::tempdir().unwrap();
        let first = request(dir.path(), 2, 1);
        let job = TrainJob::new(&first);
        pollster::block_on(run(&first, &device, &job, &|| {})).unwrap();
        let saved = job.progress().checkpoints.clone();
        let bytes = |phase| saved.iter().find(|c| c.phase == phase).unwrap().bytes.clone();

        // The transformer goes on from step 1 to 3 on the same tokenizer; no tokenizer step runs.
        let mut more = request(dir.path(), 2, 3);
        more.resume = Some(Resume::Transformer { tokenizer: bytes(Phase::Tokenizer), var: bytes(Phase::Transformer) });
        let job = TrainJob::new(&more);
        pollster::block_on(run(&more, &device, &job, &|| {})).unwrap();
        let p = job.progress().clone();
        assert!(p.tokenizer_curves.is_empty());
        assert_eq!(p.transformer_curves["loss"].iter().map(|[s, _]| *s as usize).collect::<Vec<_>>(), vec![1, 2]);
        assert_eq!((p.phase, p.step), (Phase::Transformer, 3));
        // The resumed transformer's training time goes on from the saved one.
        let first_var = Checkpoint::from_bytes(&bytes(Phase::Transformer)).unwrap();
        let resumed_var = Checkpoint::load(&dir.path().join("var.ckpt")).unwrap();
        assert!(train_seconds(&resumed_var) > train_seconds(&first_var), "train_seconds accumulate across a resume");

        // The tokenizer goes on from step 2 to 3, then a new transformer trains on it.
        let mut more = request(dir.path(), 3, 1);
        more.resume = Some(Resume::Tokenizer(bytes(Phase::Tokenizer)));
        let job = TrainJob::new(&more);
        pollster::block_on(run(&more, &device, &job, &|| {})).unwrap();
        let p = job.progress().clone();
        assert_eq!(p.tokenizer_curves["loss"].iter().map(|[s, _]| *s as usize).collect::<Vec<_>>(), vec![2]);
        assert_eq!(p.transformer_curves["loss"].len(), 1);
    }

    #[test]
    fn the_estimate_times_a_step_of_each_model() {
        let (tokenizer_s, var_s) = pollster::block_on(estimate(&Mnist::train(), VarPreset::Tiny, &Device::flex())).unwrap();
        // A time, not a speed bar (speeds are benchmarks' business): finite, positive, one per model.
        assert!(tokenizer_s.is_finite() && var_s.is_finite() && tokenizer_s > 0.0 && var_s > 0.0, "{tokenizer_s} s, {var_s} s");
    }

    #[test]
    fn dropped_checkpoints_are_checked_before_they_are_listed() {
        let shipped = &crate::shipped::SHIPPED[0];
        let (shipped_tokenizer, shipped_var) = (shipped.tokenizer_bytes, shipped.generator_bytes);
        let tokenizer = SavedCheckpoint::uploaded("tokenizer.ckpt", shipped_tokenizer.to_vec(), "here".into()).unwrap();
        let var = SavedCheckpoint::uploaded("var.ckpt", shipped_var.to_vec(), "dropped file var.ckpt".into()).unwrap();
        assert_eq!((tokenizer.phase, var.phase), (Phase::Tokenizer, Phase::Transformer));
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
