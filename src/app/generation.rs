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

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use burn::prelude::*;
use tessera_data::Image;
use tessera_models::sampling::var::{EditKind, VarSamplerConfig, VarSampling};
use web_time::Instant;

use super::generate_settings::{GenerateSettings, GeneratorKind};
use super::token_map::TokenMap;
use crate::var_models::VarModels;

/// One step of one image, on the CPU, ready to show or export.
#[derive(Clone, Debug)]
pub struct StepFrame {
    /// "scale 4 · 5×5" and the like.
    pub label: String,
    /// The codes chosen at this step.
    pub tokens: TokenMap,
    /// The image decoded from everything generated up to and including this step.
    pub partial: Image,
}

/// Every step of one generated image; the last frame's `partial` is the finished image.
#[derive(Clone, Debug, Default)]
pub struct GeneratedImage {
    pub frames: Vec<StepFrame>,
}

impl GeneratedImage {
    pub fn last(&self) -> Option<&Image> {
        self.frames.last().map(|f| &f.partial)
    }
}

/// A zero-shot edit (VAR): the source at the model's resolution, the region the user painted
/// (row-major, true inside) and what to do with it.
#[derive(Clone, Debug)]
pub struct EditRequest {
    pub source: Image,
    pub region: Vec<bool>,
    pub kind: EditKind,
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
    /// Wall time from start to the last step (or to now while running).
    pub elapsed_ms: f64,
}

/// A generation job shared between its worker and the UI.
#[derive(Clone)]
pub struct Job {
    progress: Arc<Mutex<Progress>>,
    cancel: Arc<AtomicBool>,
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
        };
        Self { progress: Arc::new(Mutex::new(progress)), cancel: Arc::default() }
    }

    /// The progress, locked briefly (never across an await: on the web there is one thread).
    pub fn progress(&self) -> MutexGuard<'_, Progress> {
        self.progress.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Asks the worker to stop after the step it is on.
    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::Relaxed);
    }

    pub fn is_running(&self) -> bool {
        self.progress().status == JobStatus::Running
    }
}

/// Loaded models, or why there are none.
#[derive(Clone)]
pub enum ModelSlot {
    Loading,
    Ready(Arc<VarModels>),
    Failed(String),
}

/// Loads the shipped models in the background; the slot says `Loading` until they are in.
pub fn load_shipped(device: Device, ctx: egui::Context) -> Arc<Mutex<ModelSlot>> {
    let slot = Arc::new(Mutex::new(ModelSlot::Loading));
    let target = slot.clone();
    spawn(async move {
        let started = Instant::now();
        let loaded = match VarModels::shipped(&device) {
            Ok(models) => {
                log::info!("shipped models loaded in {:.0} ms", started.elapsed().as_secs_f64() * 1e3);
                ModelSlot::Ready(Arc::new(models))
            }
            Err(e) => ModelSlot::Failed(format!("{e:#}")),
        };
        *target.lock().unwrap_or_else(|p| p.into_inner()) = loaded;
        ctx.request_repaint();
    });
    slot
}

/// Starts generating with `settings` (editing, with `edit`); the returned job fills in as steps
/// finish.
pub fn start(models: Arc<VarModels>, settings: GenerateSettings, edit: Option<EditRequest>, ctx: egui::Context) -> Job {
    let job = Job::new(settings.clone(), models.var_config.patch_nums.len());
    let worker = job.clone();
    spawn(async move {
        let _guard = FailIfAbandoned(worker.clone());
        let result = run_var(&models, &settings, edit.as_ref(), &worker, &|| ctx.request_repaint()).await;
        {
            let mut progress = worker.progress();
            progress.status = match result {
                Err(e) => JobStatus::Failed(format!("{e:#}")),
                Ok(()) if worker.cancel.load(Ordering::Relaxed) => JobStatus::Cancelled,
                Ok(()) => JobStatus::Done,
            };
        }
        ctx.request_repaint();
    });
    job
}

/// Marks a job that ends without a verdict (its worker panicked) as failed, so the UI never
/// waits forever on it.
struct FailIfAbandoned(Job);

impl Drop for FailIfAbandoned {
    fn drop(&mut self) {
        let mut progress = self.0.progress();
        if progress.status == JobStatus::Running {
            progress.status = JobStatus::Failed("generation stopped unexpectedly (see the log)".into());
        }
    }
}

/// Samples `settings.count` images with VAR (or edits of `edit`'s source), scale by scale,
/// pushing every scale's token map and partial decode into `job` as soon as it is read back.
pub async fn run_var(
    models: &VarModels,
    settings: &GenerateSettings,
    edit: Option<&EditRequest>,
    job: &Job,
    repaint: &(dyn Fn() + Sync),
) -> anyhow::Result<()> {
    anyhow::ensure!(settings.generator == GeneratorKind::Var, "{} has no trained models yet", settings.generator.label());
    models.check_class(settings.class)?;
    let started = Instant::now();
    let n = settings.count;
    let (class, guidance) = match edit {
        Some(e) => e.kind.conditioning(settings.class, models.var.null_class(), settings.guidance),
        None => (settings.class, settings.guidance),
    };
    let labels = Tensor::<1, Int>::full([n], class as i64, &models.device);
    let config = VarSamplerConfig::new()
        .with_guidance(guidance)
        .with_top_k(settings.top_k)
        .with_top_p(settings.top_p)
        .with_temperature(settings.temperature)
        .with_seed(settings.seed);
    let mut run = VarSampling::new(&models.var, &models.vae, labels, config);
    if let Some(e) = edit {
        run = run.with_edit(models.edit(&e.source, &e.region, e.kind, n)?);
    }
    let scales = run.num_scales();
    while let Some(step) = run.step(&models.var, &models.vae) {
        let [_, pn, _] = step.tokens.dims();
        let partial = ((models.vae.decode(step.f_hat) + 1.0) * 0.5).clamp(0.0, 1.0); // [B, C, H, W]
        let [_, c, h, w] = partial.dims();
        let codes = step.tokens.into_data_async().await.map_err(|e| anyhow::anyhow!("reading the tokens back: {e:?}"))?;
        let pixels = partial.into_data_async().await.map_err(|e| anyhow::anyhow!("reading the image back: {e:?}"))?;
        let codes: Vec<u32> = codes.iter::<i64>().map(|c| c as u32).collect();
        let pixels: Vec<f32> = pixels.iter::<f32>().collect();
        {
            let mut progress = job.progress();
            for (i, image) in progress.images.iter_mut().enumerate() {
                image.frames.push(StepFrame {
                    label: format!("scale {} of {scales} · {pn}×{pn}", step.si + 1),
                    tokens: TokenMap::full(pn, pn, codes[i * pn * pn..(i + 1) * pn * pn].iter().copied()),
                    partial: Image::new(c, h, w, pixels[i * c * h * w..(i + 1) * c * h * w].to_vec()),
                });
            }
            progress.steps_done = step.si + 1;
            progress.elapsed_ms = started.elapsed().as_secs_f64() * 1e3;
        }
        repaint();
        if job.cancel.load(Ordering::Relaxed) {
            break;
        }
        yield_now().await;
    }
    Ok(())
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
    let tick = js_sys::Promise::new(&mut |resolve, _| {
        if let Some(window) = web_sys::window() {
            let _ = window.set_timeout_with_callback(&resolve);
        }
    });
    let _ = wasm_bindgen_futures::JsFuture::from(tick).await;
}

/// The desktop job has its own thread: nothing to yield to.
#[cfg(not(target_arch = "wasm32"))]
pub(super) async fn yield_now() {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_model_draws_a_digit_scale_by_scale() {
        let device = Device::flex();
        let models = VarModels::shipped(&device).unwrap();
        let settings = GenerateSettings { class: 3, seed: 1, count: 2, ..GenerateSettings::url_base() };
        let job = Job::new(settings.clone(), models.var_config.patch_nums.len());
        let repaints = std::sync::atomic::AtomicUsize::new(0);
        pollster::block_on(run_var(&models, &settings, None, &job, &|| {
            repaints.fetch_add(1, Ordering::Relaxed);
        }))
        .unwrap();
        let progress = job.progress();
        let patch_nums = &models.var_config.patch_nums;
        assert_eq!(progress.steps_done, patch_nums.len());
        assert_eq!(repaints.load(Ordering::Relaxed), patch_nums.len(), "one repaint per scale");
        assert_eq!(progress.images.len(), 2);
        for image in &progress.images {
            assert_eq!(image.frames.len(), patch_nums.len());
            for (frame, &pn) in image.frames.iter().zip(patch_nums) {
                assert_eq!((frame.tokens.rows, frame.tokens.cols), (pn, pn));
                assert!(frame.tokens.codes.iter().all(|c| c.is_some_and(|c| c < 256)));
                assert_eq!((frame.partial.channels, frame.partial.height, frame.partial.width), (1, 32, 32));
            }
            // A digit: some ink on a dark background, not a flat image.
            let last = image.last().unwrap();
            let ink = last.pixels.iter().filter(|&&p| p > 0.5).count();
            assert!((20..600).contains(&ink), "{ink} bright pixels of 1024");
        }
        // Same seed, same images.
        let again = Job::new(settings.clone(), patch_nums.len());
        pollster::block_on(run_var(&models, &settings, None, &again, &|| {})).unwrap();
        assert_eq!(again.progress().images[0].last(), progress.images[0].last());
    }

    #[test]
    fn out_painting_keeps_the_painted_region_of_the_source() {
        use tessera_data::{Dataset, Mnist};
        let models = VarModels::shipped(&Device::flex()).unwrap();
        let source = Mnist::heldout().get(0).image;
        let inside = |i: usize| (8..24).contains(&(i % 32)) && (8..24).contains(&(i / 32));
        let region: Vec<bool> = (0..32 * 32).map(inside).collect();
        let settings = GenerateSettings { seed: 3, count: 2, ..GenerateSettings::url_base() };
        // Mean absolute difference to the source inside the region, over the job's images.
        let centre_error = |edit: Option<&EditRequest>| {
            let job = Job::new(settings.clone(), models.var_config.patch_nums.len());
            pollster::block_on(run_var(&models, &settings, edit, &job, &|| {})).unwrap();
            let progress = job.progress();
            let images: Vec<&Image> = progress.images.iter().map(|i| i.last().unwrap()).collect();
            let sum: f32 = images
                .iter()
                .map(|image| (0..1024).filter(|&i| inside(i)).map(|i| (image.pixels[i] - source.pixels[i]).abs()).sum::<f32>())
                .sum();
            sum / (images.len() * 256) as f32
        };
        let edit = EditRequest { source: source.clone(), region: region.clone(), kind: EditKind::Outpaint };
        let kept = centre_error(Some(&edit));
        let free = centre_error(None);
        assert!(kept < 0.5 * free && kept < 0.2, "kept region differs by {kept}, a free sample by {free}");
        // An empty region is refused, not silently ignored.
        let empty = EditRequest { region: vec![false; 1024], ..edit };
        let job = Job::new(settings.clone(), 7);
        let e = pollster::block_on(run_var(&models, &settings, Some(&empty), &job, &|| {})).unwrap_err();
        assert!(e.to_string().contains("region is empty"), "{e}");
    }

    #[test]
    fn a_class_the_model_lacks_fails_with_a_message() {
        let models = VarModels::shipped(&Device::flex()).unwrap();
        let settings = GenerateSettings { class: 12, ..GenerateSettings::url_base() };
        let job = Job::new(settings.clone(), 7);
        let e = pollster::block_on(run_var(&models, &settings, None, &job, &|| {})).unwrap_err();
        assert!(e.to_string().contains("out of range"), "{e}");
        let rar = GenerateSettings { generator: GeneratorKind::Rar, ..GenerateSettings::url_base() };
        assert!(pollster::block_on(run_var(&models, &rar, None, &job, &|| {})).is_err());
    }
}
