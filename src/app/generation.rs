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
use tessera_models::family::Family;
use tessera_models::generator::{Chosen, Edit, ImageGenerator, SampleRequest};
use web_time::Instant;

use super::generate_settings::GenerateSettings;
use super::token_map::TokenMap;

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
    Ready(Arc<dyn ImageGenerator>),
    Failed(String),
}

/// Loads `family`'s shipped pair in the background; the slot says `Loading` until it is in.
pub fn load_shipped(family: Family, device: Device, ctx: egui::Context) -> Arc<Mutex<ModelSlot>> {
    let slot = Arc::new(Mutex::new(ModelSlot::Loading));
    let target = slot.clone();
    spawn(async move {
        let started = Instant::now();
        let loaded = match crate::shipped::Shipped::of(family).map(|s| s.load(&device)) {
            Some(Ok(models)) => {
                log::info!("shipped {family} models loaded in {:.0} ms", started.elapsed().as_secs_f64() * 1e3);
                ModelSlot::Ready(models)
            }
            Some(Err(e)) => ModelSlot::Failed(format!("{e:#}")),
            None => ModelSlot::Failed(format!("{family} ships no model yet: train one in the Train tab")),
        };
        *target.lock().unwrap_or_else(|p| p.into_inner()) = loaded;
        ctx.request_repaint();
    });
    slot
}

/// Starts generating with `settings` (editing, with `edit`); the returned job fills in as steps
/// finish.
pub fn start(generator: Arc<dyn ImageGenerator>, settings: GenerateSettings, edit: Option<Edit>, ctx: egui::Context) -> Job {
    let job = Job::new(settings.clone(), 0);
    let worker = job.clone();
    spawn(async move {
        let _guard = FailIfAbandoned(worker.clone());
        let result = run(generator.as_ref(), &settings, edit.as_ref(), &worker, &|| ctx.request_repaint()).await;
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

/// The sampling request of a panel's settings: `count` images of its class, with the partial
/// decodes the player shows.
pub fn request(settings: &GenerateSettings) -> SampleRequest {
    SampleRequest {
        classes: vec![settings.class; settings.count],
        seed: settings.seed,
        guidance: settings.guidance,
        top_k: settings.top_k,
        top_p: settings.top_p,
        temperature: settings.temperature,
        partials: true,
        fill_order: settings.order,
        ..Default::default()
    }
}

/// Samples `settings.count` images (or edits of `edit`'s source) step by step, pushing every
/// step's token map and partial decode into `job` as soon as it is read back.
pub async fn run(
    generator: &dyn ImageGenerator,
    settings: &GenerateSettings,
    edit: Option<&Edit>,
    job: &Job,
    repaint: &(dyn Fn() + Sync),
) -> anyhow::Result<()> {
    let family = generator.info().family;
    anyhow::ensure!(
        settings.generator == family,
        "{} has no trained models yet (the loaded model is {family})",
        settings.generator.label()
    );
    let started = Instant::now();
    let mut run = generator.start(&request(settings), edit)?;
    job.progress().steps_total = run.steps();
    // Steps without a partial decode (RAR's tokens inside a row) show the last decode again.
    let mut decoded: Option<(usize, usize, usize, Vec<f32>)> = None;
    while let Some(step) = run.step() {
        let partial = match step.partial {
            Some(p) => Some(p),
            None if decoded.is_none() => Some(run.images()),
            None => None,
        };
        if let Some(partial) = partial {
            let [_, c, h, w] = partial.dims();
            let pixels = partial.into_data_async().await.map_err(|e| anyhow::anyhow!("reading the image back: {e:?}"))?;
            decoded = Some((c, h, w, pixels.iter::<f32>().collect()));
        }
        let (c, h, w, pixels) = decoded.as_ref().expect("decoded at the first step");
        let (c, h, w) = (*c, *h, *w);
        let maps = token_maps(step.chosen, settings.count).await?;
        {
            let mut progress = job.progress();
            for (i, (image, tokens)) in progress.images.iter_mut().zip(maps).enumerate() {
                image.frames.push(StepFrame {
                    label: step.label.clone(),
                    tokens,
                    partial: Image::new(c, h, w, pixels[i * c * h * w..(i + 1) * c * h * w].to_vec()),
                });
            }
            progress.steps_done = step.index + 1;
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

/// One token map per image from what a step chose, read back asynchronously.
async fn token_maps(chosen: Chosen, n: usize) -> anyhow::Result<Vec<TokenMap>> {
    Ok(match chosen {
        Chosen::Codes { codes, current } => {
            let [_, rows, cols] = codes.dims();
            let codes = codes.into_data_async().await.map_err(|e| anyhow::anyhow!("reading the tokens back: {e:?}"))?;
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
    use tessera_models::generator::EditKind;

    use crate::shipped::Shipped;

    fn shipped_var() -> Arc<dyn ImageGenerator> {
        Shipped::of(Family::Var).unwrap().load(&Device::flex()).unwrap()
    }

    #[test]
    fn the_shipped_model_draws_a_digit_scale_by_scale() {
        let generator = shipped_var();
        let settings = GenerateSettings { class: 3, seed: 1, count: 2, ..GenerateSettings::url_base() };
        let job = Job::new(settings.clone(), 0);
        let repaints = std::sync::atomic::AtomicUsize::new(0);
        pollster::block_on(run(generator.as_ref(), &settings, None, &job, &|| {
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
        pollster::block_on(run(generator.as_ref(), &settings, None, &again, &|| {})).unwrap();
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
        let centre_error = |edit: Option<&Edit>| {
            let job = Job::new(settings.clone(), 0);
            pollster::block_on(run(generator.as_ref(), &settings, edit, &job, &|| {})).unwrap();
            let progress = job.progress();
            let images: Vec<&Image> = progress.images.iter().map(|i| i.last().unwrap()).collect();
            let sum: f32 = images
                .iter()
                .map(|image| (0..1024).filter(|&i| inside(i)).map(|i| (image.pixels[i] - source.pixels[i]).abs()).sum::<f32>())
                .sum();
            sum / (images.len() * 256) as f32
        };
        let edit = Edit { source: source.pixels.clone(), region: region.clone(), kind: EditKind::Outpaint };
        let kept = centre_error(Some(&edit));
        let free = centre_error(None);
        assert!(kept < 0.5 * free && kept < 0.2, "kept region differs by {kept}, a free sample by {free}");
        // An empty region is refused, not silently ignored.
        let empty = Edit { region: vec![false; 1024], ..edit };
        let job = Job::new(settings.clone(), 0);
        let e = pollster::block_on(run(generator.as_ref(), &settings, Some(&empty), &job, &|| {})).unwrap_err();
        assert!(e.to_string().contains("region is empty"), "{e}");
    }

    #[test]
    fn a_class_the_model_lacks_or_another_family_fails_with_a_message() {
        let generator = shipped_var();
        let settings = GenerateSettings { class: 12, ..GenerateSettings::url_base() };
        let job = Job::new(settings.clone(), 0);
        let e = pollster::block_on(run(generator.as_ref(), &settings, None, &job, &|| {})).unwrap_err();
        assert!(e.to_string().contains("out of range"), "{e}");
        let rar = GenerateSettings { generator: Family::Rar, ..GenerateSettings::url_base() };
        let e = pollster::block_on(run(generator.as_ref(), &rar, None, &job, &|| {})).unwrap_err();
        assert!(e.to_string().contains("RAR has no trained models yet"), "{e}");
    }
}
