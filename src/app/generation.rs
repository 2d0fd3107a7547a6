//! Generation runs off the UI's back: the models load and images are sampled step by step while
//! egui keeps drawing, on the desktop and in the browser, with the same async code.
//!
//! - Desktop: each job is a thread that drives the async code with `pollster`.
//! - Browser: each job is a `spawn_local` future on the page's one thread; it yields to the event
//!   loop after every step (and every readback awaits a GPU promise), so the page stays live.
//!
//! Nothing here reads a tensor back synchronously (that panics on WebGPU): every readback is
//! `into_data_async().await`. Results reach the UI through a shared [`Job`] the panel polls each
//! frame; the job asks egui for a repaint whenever it changes.
//!
//! A column run (the equivariant generator) stays alive once done, waiting to be extended to the
//! right ([`Job::extend`], the Generate tab's Continue) from its bounded cache, until the job is
//! cancelled. Its frames share one canvas, the newest decode, so memory grows with the width of
//! the image and not with width × steps; the canvas is decoded again only as often as the decode
//! costs at most a third of the run's time (decoding grows with the width, a column does not).

use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use burn::prelude::*;
use tessera_data::Image;
use tessera_models::family::Family;
use tessera_models::generator::{Chosen, Continuation, Edit, ImageGenerator, SampleRequest, Sampling};
use tessera_models::readback::on_host;
use web_time::Instant;

use super::generate_settings::GenerateSettings;
use super::token_map::TokenMap;

/// The value of pixels a column run has not made yet (the column generator's partial decodes
/// show the same gray).
pub const UNMADE: f32 = 0.5;

/// One step of one image, on the CPU, ready to show or export.
#[derive(Clone, Debug)]
pub struct StepFrame {
    /// "scale 4 · 5×5" and the like.
    pub label: String,
    /// The codes chosen at this step.
    pub tokens: TokenMap,
    /// The image decoded from everything generated up to and including this step; for a column
    /// run, the run's canvas (the newest decode), shared by all its frames: see [`Self::image`].
    pub partial: Arc<Image>,
    /// Column runs: what this step had made.
    pub columns: Option<ColumnsDone>,
}

/// How far a column run was at a step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ColumnsDone {
    /// Columns made up to and including this step (kept ones included).
    pub done: usize,
    /// Pixels per column.
    pub width: usize,
}

impl StepFrame {
    /// The image as it stood after this step: [`Self::partial`], with a column run's canvas gray
    /// right of the columns this step had made.
    pub fn image(&self) -> Cow<'_, Image> {
        match self.columns {
            Some(c) if c.done * c.width < self.partial.width => Cow::Owned(unmade_from(&self.partial, c.done * c.width)),
            _ => Cow::Borrowed(self.partial.as_ref()),
        }
    }

    /// The column this step made, as a pixel range (column runs).
    pub fn current_column(&self) -> Option<std::ops::Range<usize>> {
        let c = self.columns?;
        let first = c.done.checked_sub(1)? * c.width;
        Some(first..first + c.width)
    }
}

/// `image` with every pixel from column `x` on set to [`UNMADE`].
fn unmade_from(image: &Image, x: usize) -> Image {
    let mut out = image.clone();
    for row in out.pixels.chunks_mut(image.width) {
        row[x.min(image.width)..].fill(UNMADE);
    }
    out
}

/// Every step of one generated image; the last frame's `partial` is the finished image.
#[derive(Clone, Debug, Default)]
pub struct GeneratedImage {
    pub frames: Vec<StepFrame>,
}

impl GeneratedImage {
    pub fn last(&self) -> Option<&Image> {
        self.frames.last().map(|f| f.partial.as_ref())
    }

    /// Columns made so far, when this is a column run.
    pub fn columns_done(&self) -> Option<usize> {
        self.frames.last()?.columns.map(|c| c.done)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum JobStatus {
    Running,
    Done,
    Cancelled,
    Failed(String),
}

/// What a generation job has produced so far.
#[derive(Clone, Debug)]
pub struct Progress {
    pub settings: GenerateSettings,
    pub status: JobStatus,
    /// One entry per requested image, filled a step at a time.
    pub images: Vec<GeneratedImage>,
    pub steps_done: usize,
    pub steps_total: usize,
    /// Time spent generating (the first run and every extension; not the waits between).
    pub elapsed_ms: f64,
    /// The run is done and waits to be extended ([`Job::extend`]): a column run.
    pub extendable: bool,
    /// Counts the column canvases decoded (textures of an older canvas are stale).
    pub canvas: u64,
    /// Counts the runs and extensions finished (each is reported once).
    pub finished: u64,
}

/// A generation job shared between its worker and the UI.
#[derive(Clone)]
pub struct Job {
    progress: Arc<Mutex<Progress>>,
    cancel: Arc<AtomicBool>,
    /// Columns asked for by [`Job::extend`], not yet taken by the worker.
    more: Arc<AtomicUsize>,
}

impl Job {
    fn new(settings: GenerateSettings, steps_total: usize) -> Self {
        let progress = Progress {
            images: vec![GeneratedImage::default(); settings.count],
            settings,
            status: JobStatus::Running,
            steps_done: 0,
            steps_total,
            elapsed_ms: 0.0,
            extendable: false,
            canvas: 0,
            finished: 0,
        };
        Self { progress: Arc::new(Mutex::new(progress)), cancel: Arc::default(), more: Arc::default() }
    }

    /// The progress, locked briefly (never across an await: on the web there is one thread).
    pub fn progress(&self) -> MutexGuard<'_, Progress> {
        self.progress.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Asks the worker to stop after the step it is on; a finished column run stops waiting to
    /// be extended and lets its cache go.
    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::Relaxed);
    }

    pub fn is_running(&self) -> bool {
        self.progress().status == JobStatus::Running
    }

    /// Extends a finished column run `columns` columns to the right; `false` (nothing asked)
    /// unless the run is done and waiting for more.
    pub fn extend(&self, columns: usize) -> bool {
        let mut p = self.progress();
        if columns == 0 || !p.extendable || p.status != JobStatus::Done {
            return false;
        }
        p.status = JobStatus::Running;
        p.extendable = false;
        drop(p);
        self.more.fetch_add(columns, Ordering::Relaxed);
        true
    }
}

/// Loaded models, or why there are none.
#[derive(Clone)]
pub enum ModelSlot {
    Loading(Downloaded),
    Ready(Arc<dyn ImageGenerator>),
    Failed(String),
    /// The family ships no model: one must be trained or loaded.
    Missing,
}

/// How much of the shipped models the browser has downloaded (nothing to download on the
/// desktop: they are compiled in). `total` is 0 until the server says.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Downloaded {
    pub bytes: u64,
    pub total: u64,
}

impl Downloaded {
    /// A bar, `what: 1.2 of 5.0 MB`, once the total is known; nothing before.
    pub fn bar_ui(&self, ui: &mut egui::Ui, what: &str) {
        if self.total > 0 {
            let mb = |bytes: u64| bytes as f64 / 1e6;
            let fraction = (self.bytes as f32 / self.total as f32).min(1.0);
            ui.add(egui::ProgressBar::new(fraction).desired_width(240.0).text(format!("{what}: {:.1} of {:.1} MB", mb(self.bytes), mb(self.total))));
        }
    }
}

/// Loads a shipped pair in the background (in the browser, downloads it first); the slot says
/// `Loading` until it is in (`Missing` at once for none: a family that ships none).
pub fn load_shipped(shipped: Option<&'static crate::shipped::Shipped>, device: Device, ctx: egui::Context) -> Arc<Mutex<ModelSlot>> {
    let Some(shipped) = shipped else {
        return Arc::new(Mutex::new(ModelSlot::Missing));
    };
    let family = shipped.family;
    let slot = Arc::new(Mutex::new(ModelSlot::Loading(Downloaded::default())));
    let target = slot.clone();
    spawn(async move {
        let started = Instant::now();
        #[cfg(target_arch = "wasm32")]
        let loaded = {
            let (progress_slot, progress_ctx) = (target.clone(), ctx.clone());
            let progress = move |bytes, total| {
                let mut slot = progress_slot.lock().unwrap_or_else(|p| p.into_inner());
                if let ModelSlot::Loading(_) = *slot {
                    *slot = ModelSlot::Loading(Downloaded { bytes, total });
                    progress_ctx.request_repaint();
                }
            };
            shipped.fetch(progress).await.and_then(|(generator, tokenizer)| {
                crate::shipped::load_pair(&generator, &tokenizer, &device).map_err(|e| e.context(format!("loading the shipped {} models", shipped.name)))
            })
        };
        #[cfg(not(target_arch = "wasm32"))]
        let loaded = shipped.load(&device);
        let loaded = match loaded {
            Ok(models) => {
                log::info!("shipped {family} models loaded in {:.0} ms", started.elapsed().as_secs_f64() * 1e3);
                super::hooks::report_timing("weights");
                ModelSlot::Ready(models)
            }
            Err(e) => ModelSlot::Failed(format!("{e:#}")),
        };
        *target.lock().unwrap_or_else(|p| p.into_inner()) = loaded;
        ctx.request_repaint();
    });
    slot
}

/// What a job samples besides its settings.
#[derive(Clone, Debug, Default)]
pub enum Input {
    /// New images.
    #[default]
    Fresh,
    /// Zero-shot edits of a source (the Edit tab).
    Edit(Edit),
    /// The left part of a picture kept, the rest drawn (the column generator).
    Continue(Continuation),
}

/// Starts generating with `settings` from `input`; the returned job fills in as steps finish. A
/// column run then waits to be extended ([`Job::extend`]) until the job is cancelled.
pub fn start(generator: Arc<dyn ImageGenerator>, settings: GenerateSettings, input: Input, ctx: egui::Context) -> Job {
    let job = Job::new(settings.clone(), 0);
    let worker = job.clone();
    spawn(async move {
        let _guard = FailIfAbandoned(worker.clone(), generator.device());
        let repaint = || ctx.request_repaint();
        let result = match run(generator.as_ref(), &settings, &input, &worker, &repaint).await {
            Ok(mut sampling) => {
                let extendable = sampling.extend(0);
                finish(&worker, Ok(()), extendable);
                if extendable { extend_on_request(sampling.as_mut(), generator.as_ref(), &worker, &repaint).await } else { Ok(()) }
            }
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            // A step that failed because the GPU went away says so, whatever the backend's error.
            let lost = tessera_kernels::device::lost_after_failure(&generator.device());
            finish(&worker, Err(if lost { anyhow::anyhow!(tessera_kernels::device::LOST) } else { e }), false);
        }
        ctx.request_repaint();
    });
    job
}

/// Sets the status a run or an extension ended with.
fn finish(job: &Job, result: anyhow::Result<()>, extendable: bool) {
    let cancelled = job.cancel.load(Ordering::Relaxed);
    let mut progress = job.progress();
    progress.status = match result {
        Err(e) => JobStatus::Failed(format!("{e:#}")),
        Ok(()) if cancelled => JobStatus::Cancelled,
        Ok(()) => JobStatus::Done,
    };
    progress.extendable = extendable && progress.status == JobStatus::Done;
    progress.finished += 1;
}

/// Waits for [`Job::extend`] and extends the run, again and again, until the job is cancelled.
async fn extend_on_request(run: &mut dyn Sampling, generator: &dyn ImageGenerator, job: &Job, repaint: &(dyn Fn() + Sync)) -> anyhow::Result<()> {
    let device = &generator.device();
    loop {
        repaint();
        let more = loop {
            if job.cancel.load(Ordering::Relaxed) {
                job.progress().extendable = false;
                return Ok(());
            }
            match job.more.swap(0, Ordering::Relaxed) {
                0 => sleep_ms(IDLE_MS).await,
                n => break n,
            }
        };
        // The wider image must still fit the GPU's largest buffer (its decoder grows with the width).
        let count = job.progress().settings.count;
        let wider = SampleRequest { classes: vec![0; count], width: Some(run.steps() + more), ..Default::default() };
        tessera_models::generator::check_fits(generator, &wider, tessera_kernels::buffer_limit(device))?;
        anyhow::ensure!(run.extend(more), "the image cannot grow by {more} more columns");
        job.progress().steps_total = run.steps();
        let result = advance(run, count, device, job, repaint).await;
        let failed = result.is_err();
        finish(job, result, true);
        if failed || job.cancel.load(Ordering::Relaxed) {
            return Ok(());
        }
    }
}

/// How often an idle column run looks for a request to extend it.
const IDLE_MS: u32 = 50;

/// Marks a job that ends without a verdict (its worker panicked) as failed, so the UI never
/// waits forever on it.
struct FailIfAbandoned(Job, Device);

impl Drop for FailIfAbandoned {
    fn drop(&mut self) {
        let running = self.0.progress().status == JobStatus::Running;
        // Asked without the job's lock held: it may wait a moment for wgpu to report a loss.
        let lost = running && tessera_kernels::device::lost_after_failure(&self.1);
        let mut progress = self.0.progress();
        if running && progress.status == JobStatus::Running {
            // A GPU lost in the middle of a step can still fail inside the backend (a panic).
            let why = if lost { tessera_kernels::device::LOST } else { "generation stopped unexpectedly (see the log)" };
            progress.status = JobStatus::Failed(why.into());
        }
        progress.extendable = false;
    }
}

/// The sampling request of a panel's settings: `count` images of its class, with the partial
/// decodes the player shows (a column run's canvas is decoded here instead, as often as it
/// pays: see the module docs), at the settings' width for models that draw any.
pub fn request(settings: &GenerateSettings) -> SampleRequest {
    SampleRequest {
        classes: vec![settings.class; settings.count],
        seed: settings.seed,
        guidance: settings.guidance,
        top_k: settings.top_k,
        top_p: settings.top_p,
        temperature: settings.temperature,
        partials: settings.generator != Family::Columns,
        fill_order: settings.order,
        width: settings.width.filter(|_| settings.generator == Family::Columns),
        ..Default::default()
    }
}

/// Starts sampling `settings.count` images (or edits, or continuations, as `input` says) and
/// steps it to its end, pushing every step's token map and partial decode into `job` as soon as
/// it is read back. Returns the run, which a column run's job can extend.
pub async fn run<'a>(
    generator: &'a dyn ImageGenerator,
    settings: &GenerateSettings,
    input: &Input,
    job: &Job,
    repaint: &(dyn Fn() + Sync),
) -> anyhow::Result<Box<dyn Sampling + 'a>> {
    let family = generator.info().family;
    anyhow::ensure!(
        settings.generator == family,
        "{} has no trained models yet (the loaded model is {family})",
        settings.generator.label()
    );
    let mut request = request(settings);
    let edit = match input {
        Input::Fresh => None,
        Input::Edit(edit) => Some(edit),
        Input::Continue(continuation) => {
            anyhow::ensure!(generator.controls().width.is_some(), "{family} models cannot continue a picture: the column generator does that");
            request.continuation = Some(continuation.clone());
            None
        }
    };
    tessera_models::generator::check_fits(generator, &request, tessera_kernels::buffer_limit(&generator.device()))?;
    let mut run = generator.start(&request, edit)?;
    job.progress().steps_total = run.steps();
    advance(run.as_mut(), settings.count, &generator.device(), job, repaint).await?;
    Ok(run)
}

/// Steps `run` to its end (or until the job is cancelled), adding a frame per step to each of
/// the `n` images.
async fn advance(run: &mut dyn Sampling, n: usize, device: &Device, job: &Job, repaint: &(dyn Fn() + Sync)) -> anyhow::Result<()> {
    let started = Instant::now();
    let elapsed_before = job.progress().elapsed_ms;
    // The newest decode of each image; steps without one (RAR's tokens inside a row, column
    // steps between canvas decodes) show it again.
    let mut decoded: Option<Vec<Arc<Image>>> = None;
    let mut canvas = CanvasPace::default();
    let mut stale = false;
    loop {
        // A lost GPU ends the job with a message before the next step submits work to it.
        anyhow::ensure!(!tessera_kernels::is_lost(device), tessera_kernels::device::LOST);
        let Some(step) = run.step() else { break };
        let columns_step = match step.chosen {
            Chosen::Columns { done, total } => Some((done, total)),
            Chosen::Codes { .. } => None,
        };
        let partial = match (step.partial, columns_step) {
            (Some(p), _) => Some(p),
            (None, Some((done, total))) if decoded.is_none() || done == total || canvas.due() => Some(run.images()),
            (None, None) if decoded.is_none() => Some(run.images()),
            (None, _) => None,
        };
        stale = partial.is_none();
        if let Some(partial) = partial {
            let decoding = Instant::now();
            decoded = Some(read_images(partial, n).await?);
            canvas.decoded(decoding.elapsed().as_secs_f64());
        }
        let images = decoded.as_ref().expect("decoded at the first step");
        let maps = token_maps(step.chosen, n).await?;
        {
            let mut progress = job.progress();
            let fresh_canvas = columns_step.is_some() && !stale;
            if fresh_canvas {
                progress.canvas += 1;
            }
            for ((image, tokens), canvas) in progress.images.iter_mut().zip(maps).zip(images) {
                let columns = columns_step.map(|(done, _)| ColumnsDone { done, width: canvas.width / tokens.cols.max(1) });
                if fresh_canvas {
                    // Every earlier frame shows the newest canvas (grayed right of its columns).
                    image.frames.iter_mut().for_each(|f| f.partial = canvas.clone());
                }
                image.frames.push(StepFrame { label: step.label.clone(), tokens, partial: canvas.clone(), columns });
            }
            progress.steps_done = step.index + 1;
            progress.elapsed_ms = elapsed_before + started.elapsed().as_secs_f64() * 1e3;
        }
        repaint();
        if job.cancel.load(Ordering::Relaxed) {
            break;
        }
        yield_now().await;
    }
    // A cancelled column run shows what it made.
    if stale {
        let images = read_images(run.images(), n).await?;
        let mut progress = job.progress();
        progress.canvas += 1;
        for (image, canvas) in progress.images.iter_mut().zip(images) {
            image.frames.iter_mut().for_each(|f| f.partial = canvas.clone());
        }
    }
    Ok(())
}

/// When a column run's canvas is decoded again: once the time since the last decode is twice
/// what that decode took, so decoding takes at most a third of the run.
#[derive(Default)]
struct CanvasPace {
    /// When the last decode ended, and how long it took in seconds.
    last: Option<(Instant, f64)>,
}

impl CanvasPace {
    fn due(&self) -> bool {
        self.last.is_none_or(|(at, took)| at.elapsed().as_secs_f64() >= 2.0 * took)
    }

    fn decoded(&mut self, took: f64) {
        self.last = Some((Instant::now(), took));
    }
}

/// The first `n` images of `[B, C, H, W]`, read back asynchronously.
async fn read_images(images: Tensor<4>, n: usize) -> anyhow::Result<Vec<Arc<Image>>> {
    let [_, c, h, w] = images.dims();
    let pixels = images.into_data_async().await.map_err(|e| anyhow::anyhow!("reading the image back: {e:?}"))?;
    let pixels = on_host(pixels).map_err(anyhow::Error::msg)?;
    let pixels: Vec<f32> = pixels.iter::<f32>().collect();
    Ok(pixels.chunks(c * h * w).take(n).map(|p| Arc::new(Image::new(c, h, w, p.to_vec()))).collect())
}

/// One token map per image from what a step chose, read back asynchronously.
async fn token_maps(chosen: Chosen, n: usize) -> anyhow::Result<Vec<TokenMap>> {
    Ok(match chosen {
        Chosen::Codes { codes, current } => {
            let [_, rows, cols] = codes.dims();
            let codes = codes.into_data_async().await.map_err(|e| anyhow::anyhow!("reading the tokens back: {e:?}"))?;
            let codes = on_host(codes).map_err(anyhow::Error::msg)?;
            let codes: Vec<Option<u32>> = codes.iter::<i64>().map(|c| u32::try_from(c).ok()).collect();
            let maps = codes.chunks(rows * cols).take(n).enumerate();
            maps.map(|(i, c)| TokenMap { rows, cols, codes: c.to_vec(), current: current.get(i).copied() }).collect()
        }
        // Continuous columns have no codes: the map shows which columns are done.
        Chosen::Columns { done, total } => {
            let codes = (0..total).map(|i| (i < done).then_some(0)).collect();
            let row = TokenMap { rows: 1, cols: total, codes, current: done.checked_sub(1) };
            vec![row; n]
        }
    })
}

/// Runs a job without blocking the UI: a thread on the desktop, the page's event loop on the web.
#[cfg(not(target_arch = "wasm32"))]
pub(super) fn spawn(job: impl Future<Output = ()> + Send + 'static) {
    std::thread::Builder::new()
        .name("tessera-job".into())
        .spawn(move || pollster::block_on(job))
        .expect("starting a generation thread");
}

#[cfg(target_arch = "wasm32")]
pub(super) fn spawn(job: impl Future<Output = ()> + 'static) {
    wasm_bindgen_futures::spawn_local(job);
}

/// Lets the browser draw a frame and handle input between steps.
#[cfg(target_arch = "wasm32")]
pub(super) async fn yield_now() {
    sleep_ms(0).await;
}

/// The desktop job has its own thread: nothing to yield to.
#[cfg(not(target_arch = "wasm32"))]
pub(super) async fn yield_now() {}

/// Waits `ms` milliseconds without holding up the page.
#[cfg(target_arch = "wasm32")]
pub(super) async fn sleep_ms(ms: u32) {
    let tick = js_sys::Promise::new(&mut |resolve, _| {
        if let Some(window) = web_sys::window() {
            let _ = window.set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, ms as i32);
        }
    });
    let _ = wasm_bindgen_futures::JsFuture::from(tick).await;
}

/// Waits `ms` milliseconds (the desktop job has its own thread).
#[cfg(not(target_arch = "wasm32"))]
pub(super) async fn sleep_ms(ms: u32) {
    std::thread::sleep(std::time::Duration::from_millis(ms.into()));
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use tessera_models::generator::EditKind;

    use crate::shipped::Shipped;

    fn shipped_var() -> Arc<dyn ImageGenerator> {
        Shipped::of(Family::Var).unwrap().load(&Device::flex()).unwrap()
    }

    /// A random column pair for `channels`-channel images: 8 training columns of 4 px, 32 high,
    /// a small transformer (tests of the app's handling, not of the images).
    pub(crate) fn random_columns(channels: usize) -> Arc<dyn ImageGenerator> {
        use tessera_models::generator::columns::ColumnsGenerator;
        use tessera_models::generators::equivariant::EquivariantConfig;
        use tessera_models::tokenizers::columns::ColumnTokenizerConfig;
        let device = Device::flex();
        let tokenizer_config = if channels == 1 { ColumnTokenizerConfig::mnist() } else { ColumnTokenizerConfig::scenes() };
        let model = EquivariantConfig::new(8, tokenizer_config.embed_dim, 32, 2, 2, 3)
            .with_buffer_size(2)
            .with_head_width(32)
            .with_head_depth(1)
            .with_num_sampling_steps(4)
            .init(&device);
        let tokenizer = tokenizer_config.init(&device);
        Arc::new(ColumnsGenerator::new(model, tokenizer, &tokenizer_config, 1.0, &device, Vec::new(), None, None).unwrap())
    }

    fn columns_settings(width: usize, count: usize) -> GenerateSettings {
        GenerateSettings { generator: Family::Columns, width: Some(width), count, seed: 4, ..GenerateSettings::url_base() }
    }

    /// Steps a headless egui context until `done` holds (the job runs on its own thread).
    fn wait(job: &Job, what: &str, done: impl Fn(&Progress) -> bool) {
        let deadline = Instant::now() + std::time::Duration::from_secs(120);
        while !done(&job.progress()) {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    #[test]
    fn a_column_run_grows_one_frame_per_column_on_one_shared_canvas() {
        let generator = random_columns(1);
        let settings = columns_settings(12, 2);
        let job = Job::new(settings.clone(), 0);
        let run = pollster::block_on(run(generator.as_ref(), &settings, &Input::Fresh, &job, &|| {})).unwrap();
        assert_eq!(run.steps(), 12);
        let progress = job.progress();
        assert_eq!((progress.steps_done, progress.steps_total), (12, 12));
        assert!(progress.canvas >= 2, "decoded at the first step and the last");
        for image in &progress.images {
            assert_eq!(image.frames.len(), 12);
            let canvas = &image.frames[11].partial;
            assert_eq!((canvas.channels, canvas.height, canvas.width), (1, 32, 48), "12 columns of 4 px");
            // Memory grows with the width, not with width x steps: one canvas for every frame.
            assert!(image.frames.iter().all(|f| Arc::ptr_eq(&f.partial, canvas)));
            for (k, frame) in image.frames.iter().enumerate() {
                assert_eq!(frame.label, format!("column {} of 12", k + 1));
                assert_eq!(frame.columns, Some(ColumnsDone { done: k + 1, width: 4 }));
                assert_eq!(frame.current_column(), Some(4 * k..4 * k + 4));
                assert_eq!(frame.tokens.current, Some(k));
                // The frame's own image: the canvas up to its columns, unmade gray after.
                let shown = frame.image();
                for x in 0..48 {
                    let made = shown.pixels[x] == canvas.pixels[x];
                    assert!(x < 4 * (k + 1) && made || x >= 4 * (k + 1) && shown.pixels[x] == UNMADE, "step {k}, x {x}");
                }
            }
            assert_eq!(image.last(), Some(canvas.as_ref()));
        }
        assert_ne!(progress.images[0].last(), progress.images[1].last(), "two different images");
    }

    #[test]
    fn a_finished_column_job_goes_on_to_the_right_when_asked_until_cancelled() {
        let generator = random_columns(1);
        let job = start(generator, columns_settings(8, 1), Input::Fresh, egui::Context::default());
        wait(&job, "the first 8 columns", |p| p.status == JobStatus::Done && p.extendable);
        assert_eq!(job.progress().finished, 1);
        assert!(!job.extend(0), "nothing to ask");
        assert!(job.extend(4));
        assert!(!job.extend(4), "one extension at a time");
        wait(&job, "4 more columns", |p| p.status == JobStatus::Done && p.extendable);
        {
            let p = job.progress();
            assert_eq!((p.steps_done, p.steps_total, p.finished), (12, 12, 2));
            let image = &p.images[0];
            assert_eq!(image.frames.len(), 12);
            assert_eq!(image.last().unwrap().width, 48, "the canvas grew by 4 columns");
            assert_eq!(image.frames[11].label, "column 12 of 12");
            assert_eq!(image.frames[3].image().width, 48, "earlier steps show on the wider canvas");
            assert!(image.frames.iter().all(|f| Arc::ptr_eq(&f.partial, &image.frames[0].partial)));
        }
        // Past the model's limit: refused with a message.
        assert!(job.extend(10_000));
        wait(&job, "the refusal", |p| matches!(p.status, JobStatus::Failed(_)));
        let JobStatus::Failed(e) = job.progress().status.clone() else { unreachable!() };
        assert!(e.contains("cannot grow by 10000"), "{e}");
        assert!(!job.progress().extendable && !job.extend(1));

        // Cancelling a waiting run ends it (and frees its cache).
        let job = start(random_columns(1), columns_settings(4, 1), Input::Fresh, egui::Context::default());
        wait(&job, "4 columns", |p| p.extendable);
        job.cancel();
        wait(&job, "the worker to let go", |p| !p.extendable);
        assert!(!job.extend(2));
    }

    #[test]
    fn a_continued_picture_keeps_its_columns_and_generates_the_rest() {
        let generator = random_columns(3);
        let settings = columns_settings(8, 1);
        let source = vec![0.8; 3 * 32 * 24];
        let input = Input::Continue(Continuation { source, width: 24, keep: 3 });
        let job = Job::new(settings.clone(), 0);
        pollster::block_on(run(generator.as_ref(), &settings, &input, &job, &|| {})).unwrap();
        let p = job.progress();
        assert_eq!((p.steps_done, p.steps_total), (5, 5), "3 of 8 columns kept");
        let frames = &p.images[0].frames;
        assert_eq!(frames[0].label, "column 4 of 8");
        assert_eq!(frames[0].columns.map(|c| c.done), Some(4));
        assert_eq!((frames[4].partial.channels, frames[4].partial.width), (3, 32));
        // A continuation needs the column generator.
        let var = shipped_var();
        let e = pollster::block_on(run(var.as_ref(), &GenerateSettings::url_base(), &input, &job, &|| {})).err().unwrap();
        assert!(e.to_string().contains("cannot continue a picture"), "{e}");
    }

    #[test]
    fn the_shipped_model_draws_a_digit_scale_by_scale() {
        let generator = shipped_var();
        let settings = GenerateSettings { class: 3, seed: 1, count: 2, ..GenerateSettings::url_base() };
        let job = Job::new(settings.clone(), 0);
        let repaints = std::sync::atomic::AtomicUsize::new(0);
        pollster::block_on(run(generator.as_ref(), &settings, &Input::Fresh, &job, &|| {
            repaints.fetch_add(1, Ordering::Relaxed);
        }))
        .unwrap();
        let progress = job.progress();
        let patch_nums = [1, 2, 3, 4, 5, 6, 8];
        assert_eq!((progress.steps_done, progress.steps_total), (patch_nums.len(), patch_nums.len()));
        assert_eq!(repaints.load(Ordering::Relaxed), patch_nums.len(), "one repaint per scale");
        assert_eq!(progress.images.len(), 2);
        for image in &progress.images {
            assert_eq!(image.frames.len(), patch_nums.len());
            for (si, (frame, &pn)) in image.frames.iter().zip(&patch_nums).enumerate() {
                assert_eq!((frame.tokens.rows, frame.tokens.cols), (pn, pn));
                assert!(frame.tokens.codes.iter().all(|c| c.is_some_and(|c| c < 256)));
                assert_eq!((frame.partial.channels, frame.partial.height, frame.partial.width), (1, 32, 32));
                assert_eq!(frame.label, format!("scale {} of 7 · {pn}×{pn}", si + 1));
            }
            // A digit: some ink on a dark background, not a flat image.
            let last = image.last().unwrap();
            let ink = last.pixels.iter().filter(|&&p| p > 0.5).count();
            assert!((20..600).contains(&ink), "{ink} bright pixels of 1024");
        }
        // Same seed, same images.
        let again = Job::new(settings.clone(), 0);
        pollster::block_on(run(generator.as_ref(), &settings, &Input::Fresh, &again, &|| {})).unwrap();
        assert_eq!(again.progress().images[0].last(), progress.images[0].last());
    }

    #[test]
    fn out_painting_keeps_the_painted_region_of_the_source() {
        use tessera_data::{Dataset, Mnist};
        let generator = shipped_var();
        let source = Mnist::heldout().get(0).image;
        let inside = |i: usize| (8..24).contains(&(i % 32)) && (8..24).contains(&(i / 32));
        let region: Vec<bool> = (0..32 * 32).map(inside).collect();
        let settings = GenerateSettings { seed: 3, count: 2, ..GenerateSettings::url_base() };
        // Mean absolute difference to the source inside the region, over the job's images.
        let centre_error = |input: Input| {
            let job = Job::new(settings.clone(), 0);
            pollster::block_on(run(generator.as_ref(), &settings, &input, &job, &|| {})).unwrap();
            let progress = job.progress();
            let images: Vec<&Image> = progress.images.iter().map(|i| i.last().unwrap()).collect();
            let sum: f32 = images
                .iter()
                .map(|image| (0..1024).filter(|&i| inside(i)).map(|i| (image.pixels[i] - source.pixels[i]).abs()).sum::<f32>())
                .sum();
            sum / (images.len() * 256) as f32
        };
        let edit = Edit { source: source.pixels.clone(), region: region.clone(), kind: EditKind::Outpaint };
        let kept = centre_error(Input::Edit(edit.clone()));
        let free = centre_error(Input::Fresh);
        assert!(kept < 0.5 * free && kept < 0.2, "kept region differs by {kept}, a free sample by {free}");
        // An empty region is refused, not silently ignored.
        let empty = Edit { region: vec![false; 1024], ..edit };
        let job = Job::new(settings.clone(), 0);
        let e = pollster::block_on(run(generator.as_ref(), &settings, &Input::Edit(empty), &job, &|| {})).err().unwrap();
        assert!(e.to_string().contains("region is empty"), "{e}");
    }

    #[test]
    fn a_class_the_model_lacks_or_another_family_fails_with_a_message() {
        let generator = shipped_var();
        let settings = GenerateSettings { class: 12, ..GenerateSettings::url_base() };
        let job = Job::new(settings.clone(), 0);
        let e = pollster::block_on(run(generator.as_ref(), &settings, &Input::Fresh, &job, &|| {})).err().unwrap();
        assert!(e.to_string().contains("out of range"), "{e}");
        let rar = GenerateSettings { generator: Family::Rar, ..GenerateSettings::url_base() };
        let e = pollster::block_on(run(generator.as_ref(), &rar, &Input::Fresh, &job, &|| {})).err().unwrap();
        assert!(e.to_string().contains("RAR has no trained models yet"), "{e}");
    }
}
