//! The Generate panel: choose a generator, class and sampling settings, generate a grid of
//! images, open one, and step through how it was made (each step's token map beside the image
//! decoded so far; for the column generator, the canvas growing column by column), then export it.
//! The column generator also draws any width, goes on to the right (Continue) and continues a
//! picture ([`super::continuation`]).
//!
//! A family without a shipped model samples from a pair trained in the Train tab or dropped on
//! the window (its tokenizer and transformer checkpoints).
//!
//! The panel only draws and polls: models load and images generate in [`super::generation`]
//! jobs, so the UI never waits on the device.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use egui::{Color32, ColorImage, TextureHandle, TextureOptions, vec2};
use tessera_data::Image;
use tessera_kernels::Compute;

use super::continuation::ContinuePanel;
use super::training::{Phase, SavedCheckpoint};
use super::{column_canvas, dropped, export};
use tessera_models::family::Family;
use tessera_models::generator::ImageGenerator;

use super::generate_settings::{GenerateSettings, MAX_COUNT, MAX_GUIDANCE, is_shipped};
use crate::shipped::Shipped;
use super::generation::{self, GeneratedImage, Input, Job, JobStatus, ModelSlot, StepFrame};
use super::hooks::{self, AppState, LastResult};
use super::lesson::{Control, Shown};
use super::player::{Action, Player, SHORTCUTS};

/// On-screen sizes, in points.
const THUMB: f32 = 88.0;
/// Thumbnails of wide images (the column generator) keep their proportions up to this width.
const WIDE_THUMB: f32 = 4.0 * THUMB;
const PLAYER_IMAGE: f32 = 224.0;
/// Upscaling of exported step-throughs (a 32 px digit becomes 256 px).
const EXPORT_ZOOM: u32 = 8;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Layer {
    Tokens,
    Decoded,
    /// A column run's canvas; its key holds the canvas count instead of a step.
    Canvas,
}

/// A family's models: one of its shipped pairs by name, or (`None`) the pair the user trained or
/// dropped.
type ModelKey = (Family, Option<&'static str>);

pub struct GeneratePanel {
    /// Each family's models, each shipped pair loaded the first time it is chosen.
    models: HashMap<ModelKey, Arc<Mutex<ModelSlot>>>,
    /// The family the panel is set to (the Edit tab samples from its models too).
    family: Family,
    /// The shipped pair the settings name (`model=`), if any.
    chosen: Option<&'static Shipped>,
    /// The app's compute: models sample where [`Compute::work_device`] says.
    compute: Compute,
    ctx: egui::Context,
    job: Option<Job>,
    /// Counts jobs, so textures and reports of an old job are never mistaken for the new one's.
    serial: u64,
    /// Generate as soon as the models are in (`autorun=1`).
    autorun: bool,
    /// What the start-up URL could not use.
    url_warnings: Vec<String>,
    /// The image open in the player.
    selected: usize,
    player: Player,
    /// While generating, the player shows the newest step until the user takes over.
    follow_live: bool,
    textures: HashMap<(u64, usize, usize, Layer), TextureHandle>,
    reported_state: Option<AppState>,
    /// The job and run last reported as `window.tessera.last` (a column run reports again after
    /// each Continue).
    reported_last: (u64, u64),
    export_message: Option<Result<String, String>>,
    /// Files dropped on the window while this tab is open: checkpoint pairs, pictures to continue.
    inbox: dropped::Inbox,
    /// Dropped checkpoints waiting for their other half, and what loading them said.
    dropped_checkpoints: Vec<SavedCheckpoint>,
    load_message: Option<Result<String, String>>,
    /// Columns each Continue adds (0 until a column model is loaded: then its training width).
    more_columns: usize,
    continuation: ContinuePanel,
    /// Families whose models the user trained or dropped (kept by [`Self::reload_shipped`]).
    own_models: HashSet<Family>,
    /// A lesson link's part of the query (`lesson=...`), kept in the address bar and copied links.
    pub lesson_query: Option<String>,
}

impl Drop for GeneratePanel {
    /// A finished column run waits to be extended; a panel that goes lets it go.
    fn drop(&mut self) {
        if let Some(job) = &self.job {
            job.cancel();
        }
    }
}

impl GeneratePanel {
    /// Starts loading the shipped models `settings` ask for on the sampling device of `compute`.
    pub fn new(ctx: &egui::Context, compute: &Compute, settings: &GenerateSettings, autorun: bool, url_warnings: Vec<String>) -> Self {
        let mut panel = Self {
            models: HashMap::new(),
            family: settings.generator,
            chosen: None,
            compute: compute.clone(),
            ctx: ctx.clone(),
            job: None,
            serial: 0,
            autorun,
            url_warnings,
            selected: 0,
            player: Player::default(),
            follow_live: true,
            textures: HashMap::new(),
            reported_state: None,
            reported_last: (0, 0),
            export_message: None,
            inbox: dropped::Inbox::default(),
            dropped_checkpoints: Vec::new(),
            load_message: None,
            more_columns: 0,
            continuation: ContinuePanel::default(),
            own_models: HashSet::new(),
            lesson_query: None,
        };
        panel.choose(settings);
        panel.models();
        panel
    }

    /// Follows the settings' generator and model.
    fn choose(&mut self, settings: &GenerateSettings) {
        self.family = settings.generator;
        self.chosen = settings.shipped_model();
    }

    /// The models the panel samples from: the chosen shipped pair, else the family's own, else
    /// its first shipped pair.
    fn key(&self) -> ModelKey {
        let shipped = self.chosen.or_else(|| Shipped::of(self.family).filter(|_| !self.own_models.contains(&self.family)));
        (self.family, shipped.map(|s| s.name))
    }

    /// Drops the loaded shipped models, so each family loads its pair again on the compute's
    /// current work device when next shown (after the Device tab moved work). Models the user
    /// trained or dropped stay, on the device they were loaded on.
    pub fn reload_shipped(&mut self) {
        self.models.retain(|(_, shipped), _| shipped.is_none());
    }

    /// The models the current family can sample from, the one the settings fall back to first:
    /// the user's own (trained or dropped), then each shipped pair.
    fn model_choices(&self) -> Vec<ModelChoice> {
        let own = self.own_models.contains(&self.family).then(|| ModelChoice { model: None, label: "your trained model".into() });
        let shipped = Shipped::all_of(self.family).map(|s| ModelChoice { model: Some(s.name.into()), label: format!("{} ({})", s.draws, s.name) });
        own.into_iter().chain(shipped).collect()
    }

    /// The current models (loading a shipped pair the first time it is asked for).
    fn models(&mut self) -> ModelSlot {
        let (key, ctx) = (self.key(), &self.ctx);
        let device = self.compute.work_device().0;
        let slot = self.models.entry(key).or_insert_with(|| generation::load_shipped(key.1.and_then(Shipped::named), device, ctx.clone()));
        slot.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The current family's models, once loaded (the Edit panel samples from them too).
    pub fn ready_models(&self) -> Option<Arc<dyn ImageGenerator>> {
        match self.models.get(&self.key()).map(|slot| slot.lock().unwrap_or_else(|p| p.into_inner()).clone()) {
            Some(ModelSlot::Ready(m)) => Some(m),
            _ => None,
        }
    }

    /// Where the current family's models compute: the CPU backend or the app's adapter.
    fn models_device(&self) -> String {
        match self.ready_models() {
            Some(m) if m.device() != burn::tensor::Device::flex() => self.compute.describe(),
            _ => Compute::cpu(None).describe(),
        }
    }

    /// Samples from `models` from now on, for their family (a run trained in the Train tab).
    pub fn set_models(&mut self, models: Arc<dyn ImageGenerator>) {
        let family = models.info().family;
        self.own_models.insert(family);
        self.models.insert((family, None), Arc::new(Mutex::new(ModelSlot::Ready(models))));
    }

    /// The finished image open in the player, if any.
    pub fn open_image(&self) -> Option<Image> {
        let job = self.job.as_ref()?;
        let progress = job.progress();
        if progress.status != JobStatus::Done {
            return None;
        }
        progress.images.get(self.selected)?.last().cloned()
    }

    /// Runs every frame, whichever tab is open: autorun, and the state the page reports.
    pub fn poll(&mut self, ctx: &egui::Context, settings: &GenerateSettings) {
        self.choose(settings);
        let models = self.models();
        if let (ModelSlot::Ready(m), true) = (&models, self.autorun) {
            self.autorun = false;
            self.start(m.clone(), settings, Input::Fresh, ctx);
        }
        let status = self.job.as_ref().map(|job| {
            let p = job.progress();
            (p.status.clone(), p.finished)
        });
        let finished = status.as_ref().map_or(0, |s| s.1);
        let (state, error) = match (&models, status.map(|s| s.0)) {
            (ModelSlot::Loading(_), _) => (AppState::Loading, None),
            (ModelSlot::Failed(e), _) => (AppState::Error, Some(format!("could not load the models: {e}"))),
            (ModelSlot::Missing, _) => (AppState::Error, Some(missing_text(self.family))),
            (ModelSlot::Ready(_), None) => (AppState::Ready, None),
            (ModelSlot::Ready(_), Some(status)) => match status {
                JobStatus::Running => (AppState::Running, None),
                JobStatus::Done => (AppState::Done, None),
                JobStatus::Cancelled => (AppState::Ready, None),
                JobStatus::Failed(e) => (AppState::Error, Some(e)),
            },
        };
        if state == AppState::Done && self.reported_last != (self.serial, finished) {
            self.reported_last = (self.serial, finished);
            self.report_last();
        }
        if self.reported_state != Some(state) {
            self.reported_state = Some(state);
            hooks::report_state(state, error.as_deref());
        }
    }

    /// `window.tessera.last`: set before `state` turns `done`, so a test that waits for `done`
    /// finds it.
    fn report_last(&self) {
        let Some(job) = &self.job else { return };
        let progress = job.progress();
        let Some(image) = progress.images.first().and_then(GeneratedImage::last) else { return };
        hooks::report_timing("first_image");
        hooks::report_last(LastResult {
            settings: &progress.settings,
            model: self.key().1.unwrap_or("own"),
            width: image.width,
            height: image.height,
            ms: progress.elapsed_ms,
            device: self.models_device(),
            png_data_url: export::png_data_url(&image.to_png_bytes()),
        });
    }

    fn start(&mut self, models: Arc<dyn ImageGenerator>, settings: &GenerateSettings, input: Input, ctx: &egui::Context) {
        if let Some(old) = &self.job {
            old.cancel();
        }
        let settings = settings.clone().clamped();
        self.serial += 1;
        self.textures.clear();
        self.selected = 0;
        let speed = self.player.speed;
        self.player = Player::default();
        self.player.speed = speed;
        self.follow_live = true;
        self.export_message = None;
        hooks::publish_query(&self.link(&settings));
        self.job = Some(generation::start(models, settings, input, ctx.clone()));
    }

    /// Takes what was dropped on the window: checkpoints (a tokenizer and a transformer of one
    /// family load as that family's models) and, for the column generator, a picture to continue.
    fn take_drops(&mut self, ctx: &egui::Context, settings: &mut GenerateSettings, model: Option<&dyn ImageGenerator>) {
        dropped::collect(ctx, &self.inbox);
        for read in dropped::take(&self.inbox) {
            let (name, bytes) = match read {
                Ok(file) => file,
                Err(e) => {
                    self.load_message = Some(Err(format!("{e:#}")));
                    continue;
                }
            };
            if name.ends_with(".ckpt") {
                match SavedCheckpoint::uploaded(&name, bytes, format!("dropped file {name}")) {
                    Ok(c) => {
                        self.dropped_checkpoints.retain(|d| (d.family, d.phase) != (c.family, c.phase));
                        self.dropped_checkpoints.push(c);
                    }
                    Err(e) => self.load_message = Some(Err(e)),
                }
                continue;
            }
            match model.filter(|m| m.controls().width.is_some()) {
                Some(m) => self.continuation.dropped(name, &bytes, m, max_columns(m)),
                None => self.load_message = Some(Err(format!("{name}: drop checkpoints here (a tokenizer and a transformer), or pictures for the column generator to continue"))),
            }
        }
        self.load_dropped_pair(settings);
    }

    /// Loads a dropped transformer with its dropped tokenizer, when both halves are in.
    fn load_dropped_pair(&mut self, settings: &mut GenerateSettings) {
        let Some(transformer) = self.dropped_checkpoints.iter().rev().find(|c| c.phase == Phase::Transformer).cloned() else {
            if let Some(t) = self.dropped_checkpoints.last() {
                self.load_message = Some(Ok(format!("{}: now drop its {}", t.describe(), Phase::Transformer.file_name(t.family))));
            }
            return;
        };
        let candidates: Vec<&SavedCheckpoint> = self.dropped_checkpoints.iter().rev().collect();
        let Some(tokenizer) = transformer.tokenizer_among(&candidates).cloned() else {
            self.load_message = Some(Ok(format!("{}: now drop its {}", transformer.describe(), Phase::Tokenizer.file_name(transformer.family))));
            return;
        };
        let family = transformer.family;
        let device = self.compute.work_device().0;
        self.load_message = Some(match crate::shipped::load_pair(&transformer.bytes, &tokenizer.bytes, &device) {
            Ok(models) => {
                self.set_models(models);
                (settings.generator, settings.model) = (family, None);
                self.choose(settings);
                Ok(format!("{family} now samples from {} with {}", transformer.describe(), tokenizer.describe()))
            }
            Err(e) => Err(format!("{e:#}")),
        });
        self.dropped_checkpoints.clear();
    }

    /// The query that reproduces `settings`, with the lesson if the page opened one.
    fn link(&self, settings: &GenerateSettings) -> String {
        let query = settings.to_query(false);
        match &self.lesson_query {
            Some(lesson) => format!("{query}&{lesson}"),
            None => query,
        }
    }

    pub fn ui(&mut self, ui: &mut egui::Ui, settings: &mut GenerateSettings, shown: &Shown) {
        self.family = settings.generator;
        let models = self.models();
        for warning in &self.url_warnings {
            ui.colored_label(ui.visuals().warn_fg_color, format!("Link: {warning}"));
        }
        let ready = match &models {
            ModelSlot::Ready(m) => Some(m.clone()),
            _ => None,
        };
        self.take_drops(ui.ctx(), settings, ready.as_deref());
        // A dropped pair may have replaced the models, or the family.
        let models = self.models();
        let ready = match &models {
            ModelSlot::Ready(m) => Some(m.clone()),
            _ => None,
        };
        match &models {
            ModelSlot::Loading(downloaded) => {
                ui.horizontal(|ui| {
                    ui.spinner();
                    ui.label(format!("Loading the shipped models ({})…", self.family.label()));
                });
                // In the browser: the download, the first time this family is chosen.
                downloaded.bar_ui(ui, "downloading");
            }
            ModelSlot::Failed(e) => {
                ui.horizontal_wrapped(|ui| {
                    ui.colored_label(ui.visuals().error_fg_color, format!("Could not load the models: {e}"));
                    // A download that failed (the browser, a network hiccup) can be tried again.
                    if let (family, Some(shipped)) = self.key()
                        && ui.button("Try again").clicked()
                    {
                        self.models.remove(&(family, Some(shipped)));
                    }
                });
            }
            ModelSlot::Missing => {
                ui.colored_label(ui.visuals().warn_fg_color, missing_text(self.family));
            }
            ModelSlot::Ready(m) => {
                if let Some(w) = &m.info().warning {
                    ui.colored_label(ui.visuals().warn_fg_color, w);
                }
            }
        }
        if let Some(note) = self.compute.work_device().1 {
            ui.weak(note);
        }
        super::show_outcome(ui, &self.load_message);
        let choices = self.model_choices();
        settings_ui(ui, settings, ready.as_deref(), &choices, shown);
        self.run_bar(ui, settings, ready.clone(), shown);
        let widths = shown.has(Control::Sampling);
        if let Some(model) = ready.filter(|m| widths && m.controls().width.is_some() && m.info().family == settings.generator) {
            self.continue_picture_ui(ui, settings, model);
        }
        ui.separator();
        let Some(job) = self.job.clone() else {
            let player = if shown.has(Control::Player) { "; then click one to step through how it was made" } else { "" };
            ui.weak(format!("Press Generate images (or Enter) to draw{player}."));
            return;
        };
        // Held while drawing (no re-locking below): the worker waits at most one frame to add a step.
        let progress = job.progress();
        self.results_grid(ui, &progress.images, progress.canvas);
        ui.separator();
        if let Some(image) = progress.images.get(self.selected).filter(|_| shown.has(Control::Player)) {
            self.player_ui(ui, image, &progress.settings, progress.steps_total, progress.canvas);
        }
    }

    fn run_bar(&mut self, ui: &mut egui::Ui, settings: &GenerateSettings, models: Option<Arc<dyn ImageGenerator>>, shown: &Shown) {
        ui.horizontal(|ui| {
            // A loaded model of the chosen family: shipped, or trained in the Train tab.
            let can_generate = models.as_ref().is_some_and(|m| m.info().family == settings.generator);
            let generate = ui
                .add_enabled(can_generate, egui::Button::new("Generate images"))
                .on_hover_text("Draw the images (Enter)");
            let enter = ui.input(|i| i.key_pressed(egui::Key::Enter)) && ui.ctx().memory(|m| m.focused().is_none());
            if let Some(models) = models.clone().filter(|_| can_generate && (generate.clicked() || enter)) {
                self.start(models, settings, Input::Fresh, ui.ctx());
            }
            let Some(job) = self.job.clone() else { return };
            let (status, settings, steps_done, steps_total, elapsed_ms, extendable, columns) = {
                let p = job.progress();
                let columns = p.images.first().and_then(GeneratedImage::columns_done);
                (p.status.clone(), p.settings.clone(), p.steps_done, p.steps_total, p.elapsed_ms, p.extendable, columns)
            };
            match &status {
                JobStatus::Running => {
                    if ui.button("Cancel").clicked() {
                        job.cancel();
                    }
                    ui.spinner();
                    ui.label(format!(
                        "{} {steps_done} of {steps_total} · {elapsed_ms:.0} ms",
                        settings.generator.order().step_name()
                    ));
                }
                JobStatus::Done => {
                    ui.label(format!("{} image(s) in {elapsed_ms:.0} ms", settings.count));
                    // The job's own family's model says how far it may go.
                    let model = models.as_deref().filter(|m| m.info().family == settings.generator);
                    if let (true, Some(done), Some(model), true) = (extendable, columns, model, shown.has(Control::Sampling)) {
                        self.continue_ui(ui, &job, done, model);
                    }
                }
                JobStatus::Cancelled => {
                    ui.weak("cancelled");
                }
                JobStatus::Failed(e) => {
                    ui.colored_label(ui.visuals().error_fg_color, e);
                }
            }
            let query = self.link(&settings);
            if ui.button("Copy link").on_hover_text(format!("?{query}")).clicked() {
                ui.ctx().copy_text(format!("?{query}"));
            }
        });
    }

    /// Continue: the finished column run (`done` columns so far) goes on to the right.
    fn continue_ui(&mut self, ui: &mut egui::Ui, job: &Job, done: usize, model: &dyn ImageGenerator) {
        let room = max_columns(model).saturating_sub(done);
        ui.separator();
        if room == 0 {
            ui.weak(format!("at the widest the model draws ({done} columns)"));
            return;
        }
        if self.more_columns == 0 {
            self.more_columns = model.info().forward_passes;
        }
        self.more_columns = self.more_columns.clamp(1, room);
        let clicked = ui
            .button("Continue")
            .on_hover_text("extend these images to the right, from where the model stopped (its memory does not grow; the image does)")
            .clicked();
        ui.add(egui::DragValue::new(&mut self.more_columns).range(1..=room).prefix("by ").suffix(" columns"));
        if clicked && job.extend(self.more_columns) {
            self.follow_live = true;
            self.export_message = None;
        }
    }

    /// The column generator's "Continue a picture" section.
    fn continue_picture_ui(&mut self, ui: &mut egui::Ui, settings: &GenerateSettings, model: Arc<dyn ImageGenerator>) {
        let width = settings.width.unwrap_or(model.info().forward_passes);
        let busy = self.job.as_ref().is_some_and(Job::is_running);
        let mut asked = None;
        egui::CollapsingHeader::new("Continue a picture").id_salt("continue a picture").show(ui, |ui| {
            asked = self.continuation.ui(ui, model.as_ref(), width, max_columns(model.as_ref()), !busy);
        });
        if let Some(continuation) = asked {
            self.start(model, settings, Input::Continue(continuation), ui.ctx());
        }
    }

    fn texture(&mut self, ctx: &egui::Context, key: (u64, usize, usize, Layer), frame: &StepFrame) -> TextureHandle {
        if key.3 == Layer::Canvas && !self.textures.contains_key(&key) {
            // One canvas per image at a time: the newest.
            self.textures.retain(|k, _| !(k.3 == Layer::Canvas && k.0 == key.0 && k.1 == key.1));
        }
        let max_side = ctx.input(|i| i.max_texture_side);
        self.textures
            .entry(key)
            .or_insert_with(|| {
                let rgb = match key.3 {
                    Layer::Tokens => frame.tokens.to_rgb(),
                    Layer::Decoded | Layer::Canvas => frame.partial.to_rgb8(),
                };
                // A canvas wider than the GPU takes is shown scaled down.
                let rgb = if rgb.width() as usize > max_side {
                    let height = (rgb.height() as usize * max_side / rgb.width() as usize).max(1) as u32;
                    image::imageops::resize(&rgb, max_side as u32, height, image::imageops::FilterType::Triangle)
                } else {
                    rgb
                };
                let image = ColorImage::from_rgb([rgb.width() as usize, rgb.height() as usize], rgb.as_raw());
                ctx.load_texture(format!("generate-{key:?}"), image, TextureOptions::NEAREST)
            })
            .clone()
    }

    fn results_grid(&mut self, ui: &mut egui::Ui, images: &[GeneratedImage], canvas: u64) {
        ui.horizontal_wrapped(|ui| {
            for (i, image) in images.iter().enumerate() {
                let Some(frame) = image.frames.last() else {
                    ui.add_sized(vec2(THUMB, THUMB), egui::Spinner::new());
                    continue;
                };
                let (key, size) = match frame.columns {
                    Some(_) => ((self.serial, i, canvas as usize, Layer::Canvas), vec2(WIDE_THUMB, THUMB)),
                    None => ((self.serial, i, image.frames.len() - 1, Layer::Decoded), vec2(THUMB, THUMB)),
                };
                let texture = self.texture(ui.ctx(), key, frame);
                let size = column_canvas::thumbnail(frame.partial.width, frame.partial.height, size);
                let stroke = if i == self.selected {
                    egui::Stroke::new(2.0, ui.visuals().selection.stroke.color)
                } else {
                    egui::Stroke::new(2.0, Color32::TRANSPARENT)
                };
                let clicked = egui::Frame::NONE
                    .stroke(stroke)
                    .inner_margin(2.0)
                    .show(ui, |ui| {
                        ui.add(egui::Image::new(&texture).fit_to_exact_size(size).sense(egui::Sense::click()))
                            .on_hover_text(format!("image {}: open in the player", i + 1))
                            .clicked()
                    })
                    .inner;
                if clicked && i != self.selected {
                    self.selected = i;
                    let len = image.frames.len();
                    self.player.seek(len.saturating_sub(1), len);
                    self.export_message = None;
                }
            }
        });
    }

    fn player_ui(&mut self, ui: &mut egui::Ui, image: &GeneratedImage, settings: &GenerateSettings, steps_total: usize, canvas: u64) {
        let len = image.frames.len();
        if len == 0 {
            return;
        }
        let step_name = settings.generator.order().step_name();
        let mut action = None;
        ui.horizontal(|ui| {
            ui.strong(format!("Image {}", self.selected + 1));
            for (label, act, hint) in [
                ("First", Action::First, "Home"),
                ("Back", Action::Back, "Left arrow"),
                (if self.player.playing { "Pause" } else { "Play" }, Action::TogglePlay, "Space"),
                ("Forward", Action::Forward, "Right arrow"),
                ("Last", Action::Last, "End"),
            ] {
                if ui.button(label).on_hover_text(hint).clicked() {
                    action = Some(act);
                }
            }
            let mut step = self.player.step;
            let scrub = ui.add(egui::Slider::new(&mut step, 0..=steps_total.max(1) - 1).custom_formatter(|v, _| format!("{}", v as usize + 1)).text(step_name));
            if scrub.changed() {
                self.follow_live = false;
                self.player.seek(step, len);
            }
            if ui.button("-").on_hover_text("slower (-)").clicked() {
                action = Some(Action::Slower);
            }
            ui.label(format!("{} {step_name}/s", self.player.steps_per_second()));
            if ui.button("+").on_hover_text("faster (+)").clicked() {
                action = Some(Action::Faster);
            }
            // Token-by-token generators: a move is one token or one row.
            let cols = image.frames[0].tokens.cols;
            if image.frames[0].tokens.rows > 1 && steps_total == image.frames[0].tokens.rows * cols {
                ui.separator();
                ui.label("step by");
                ui.selectable_value(&mut self.player.stride, 1, "token");
                ui.selectable_value(&mut self.player.stride, cols, "row");
            }
        });
        ui.weak(SHORTCUTS);
        // Keyboard shortcuts, unless the user is typing in a field.
        if ui.ctx().memory(|m| m.focused().is_none()) {
            let keys = [egui::Key::Space, egui::Key::ArrowLeft, egui::Key::ArrowRight, egui::Key::Home, egui::Key::End, egui::Key::Minus, egui::Key::Plus, egui::Key::Equals];
            for key in keys {
                if ui.input(|i| i.key_pressed(key)) {
                    action = Action::for_key(key);
                }
            }
        }
        if let Some(action) = action {
            self.follow_live = false;
            self.player.apply(action, len);
        }
        if self.follow_live {
            self.player.step = len - 1;
        }
        let dt = ui.input(|i| i.stable_dt).min(0.1);
        self.player.tick(dt, len);
        if self.player.playing {
            ui.ctx().request_repaint();
        }

        let step = self.player.step.min(len - 1);
        let frame = &image.frames[step];
        if frame.columns.is_some() {
            let texture = self.texture(ui.ctx(), (self.serial, self.selected, canvas as usize, Layer::Canvas), frame);
            ui.label(&frame.label);
            column_canvas::show(ui, &texture, frame, PLAYER_IMAGE, self.follow_live || self.player.playing);
            ui.weak("gray: not made yet at this step; outlined: the column this step made");
            self.export_ui(ui, image, settings, len == steps_total);
            return;
        }
        let tokens = self.texture(ui.ctx(), (self.serial, self.selected, step, Layer::Tokens), frame);
        let decoded = self.texture(ui.ctx(), (self.serial, self.selected, step, Layer::Decoded), frame);
        ui.label(&frame.label);
        ui.horizontal(|ui| {
            ui.vertical(|ui| {
                ui.weak("codes chosen at this step");
                let response = ui.add(egui::Image::new(&tokens).fit_to_exact_size(vec2(PLAYER_IMAGE, PLAYER_IMAGE)).sense(egui::Sense::hover()));
                if let Some(pos) = response.hover_pos() {
                    let rel = (pos - response.rect.min) / response.rect.size();
                    let row = ((rel.y * frame.tokens.rows as f32) as usize).min(frame.tokens.rows - 1);
                    let col = ((rel.x * frame.tokens.cols as f32) as usize).min(frame.tokens.cols - 1);
                    if let Some(code) = frame.tokens.code_at(row, col) {
                        response.on_hover_text_at_pointer(format!("code {code} at row {row}, column {col}"));
                    }
                }
            });
            ui.vertical(|ui| {
                ui.weak("decoded so far");
                ui.add(egui::Image::new(&decoded).fit_to_exact_size(vec2(PLAYER_IMAGE, PLAYER_IMAGE)));
            });
        });
        self.export_ui(ui, image, settings, len == steps_total);
    }

    fn export_ui(&mut self, ui: &mut egui::Ui, image: &GeneratedImage, settings: &GenerateSettings, complete: bool) {
        ui.horizontal(|ui| {
            let stem = format!("tessera-{}-class{}-seed{}-{}", settings.generator.key(), settings.class, settings.seed, self.selected + 1);
            // Wide images (the column generator) are zoomed less, to stay a sensible size.
            let zoom = image.last().map_or(EXPORT_ZOOM, |i| export::zoom_for(i.width, EXPORT_ZOOM));
            ui.add_enabled_ui(complete, |ui| {
                if ui.button("Save PNG").on_hover_text("the image at its native resolution").clicked()
                    && let Some(last) = image.last()
                {
                    self.export_message = Some(export::deliver(&format!("{stem}.png"), "image/png", &last.to_png_bytes()));
                }
                if ui.button("Save GIF").on_hover_text("the step-through, animated").clicked() {
                    let gif = export::gif_bytes(&image.frames, zoom, 600);
                    self.export_message = Some(export::deliver(&format!("{stem}-steps.gif"), "image/gif", &gif));
                }
                if ui.button("Save strip").on_hover_text("every step side by side, as one PNG").clicked() {
                    let png = export::png_bytes(&export::strip(&image.frames, zoom));
                    self.export_message = Some(export::deliver(&format!("{stem}-strip.png"), "image/png", &png));
                }
            });
            super::show_outcome(ui, &self.export_message);
        });
    }
}

/// One entry of the model picker: what it sets `GenerateSettings::model` to.
struct ModelChoice {
    model: Option<String>,
    label: String,
}

/// Generator, class and sampling controls.
/// The sampling settings; a lesson link's `shown` hides the controls it does not name.
fn settings_ui(ui: &mut egui::Ui, settings: &mut GenerateSettings, model: Option<&dyn ImageGenerator>, choices: &[ModelChoice], shown: &Shown) {
    let info = model.map(|m| m.info());
    let controls = model.map(|m| m.controls());
    ui.horizontal_wrapped(|ui| {
        if shown.has(Control::Generator) {
            egui::ComboBox::from_label("generator")
                .selected_text(settings.generator.label())
                .show_ui(ui, |ui| {
                    for g in Family::ALL {
                        let label = if is_shipped(g) { g.label().to_string() } else { format!("{} (train or load one)", g.label()) };
                        ui.selectable_value(&mut settings.generator, g, label);
                    }
                });
            if choices.len() > 1 {
                let selected = choices.iter().find(|c| c.model == settings.model).unwrap_or(&choices[0]);
                egui::ComboBox::from_label("model").selected_text(&selected.label).show_ui(ui, |ui| {
                    for choice in choices {
                        ui.selectable_value(&mut settings.model, choice.model.clone(), &choice.label);
                    }
                });
            }
        }
        match controls.as_ref().map(|c| c.fill_orders.clone()).filter(|o| !o.is_empty() && shown.has(Control::Sampling)) {
            Some(orders) => {
                egui::ComboBox::from_label("order")
                    .selected_text(settings.order.key())
                    .show_ui(ui, |ui| {
                        for o in orders {
                            ui.selectable_value(&mut settings.order, o, o.key());
                        }
                    })
                    .response
                    .on_hover_text("the order the token map fills in; the model was trained mostly in raster order, so others cost quality");
            }
            None => {
                let order = controls.as_ref().map_or(settings.generator.order(), |c| c.order);
                ui.weak(format!("order: {}", order.label()));
            }
        }
        ui.separator();
        let num_classes = info.map_or(10, |i| i.num_classes);
        let name = |c: usize| info.map_or_else(|| c.to_string(), |i| i.class_name(c));
        if shown.has(Control::Class) {
            egui::ComboBox::from_label("class")
                .selected_text(name(settings.class))
                .show_ui(ui, |ui| {
                    for c in 0..num_classes {
                        ui.selectable_value(&mut settings.class, c, name(c));
                    }
                });
        }
        if shown.has(Control::Seed) {
            let seed = ui.label("seed");
            ui.add(egui::DragValue::new(&mut settings.seed)).labelled_by(seed.id);
            if ui.button("Next seed").clicked() {
                settings.seed = settings.seed.wrapping_add(1);
            }
        }
        if shown.has(Control::Images) {
            ui.add(egui::Slider::new(&mut settings.count, 1..=MAX_COUNT).text("images"));
        }
    });
    if let (Some(range), Some(info), true) = (controls.as_ref().and_then(|c| c.width.clone()), info, shown.has(Control::Sampling)) {
        width_ui(ui, settings, range, info);
    }
    ui.horizontal_wrapped(|ui| {
        // Only the settings the model has (before it loads: VAR's, the default generator).
        let shows = |has: fn(&tessera_models::generator::Controls) -> bool| controls.as_ref().is_none_or(has);
        if let Some(schedule) = controls.as_ref().map_or(Some(None), |c| c.guidance.map(Some)).filter(|_| shown.has(Control::Guidance)) {
            let ramp = schedule.map(|s| format!("; it {}", s.describe())).unwrap_or_default();
            ui.add(egui::Slider::new(&mut settings.guidance, 0.0..=MAX_GUIDANCE.min(8.0)).text("guidance"))
                .on_hover_text(format!("classifier-free guidance: higher follows the class more closely (0 = none){ramp}"));
        }
        if !shown.has(Control::Sampling) {
            return;
        }
        if let Some(vocab) = controls.as_ref().map_or(Some(4096), |c| c.top_k) {
            let top_k = ui.label("top-k");
            ui.add(egui::DragValue::new(&mut settings.top_k).range(0..=vocab))
                .labelled_by(top_k.id)
                .on_hover_text("keep only the k most likely codes (0 = all)");
        }
        if shows(|c| c.top_p) {
            ui.add(egui::Slider::new(&mut settings.top_p, 0.0..=1.0).text("top-p"))
                .on_hover_text("nucleus sampling: keep the most likely codes up to this probability (0 = off)");
        }
        if shows(|c| c.temperature) {
            ui.add(egui::Slider::new(&mut settings.temperature, 0.1..=3.0).logarithmic(true).text("temperature"))
                .on_hover_text("below 1: safer, more typical images; above 1: more varied");
        }
        if ui.button("Defaults").on_hover_text("reset the sampling settings").clicked() {
            let base = GenerateSettings::default();
            if shown.has(Control::Guidance) {
                settings.guidance = base.guidance;
            }
            settings.top_k = base.top_k;
            settings.top_p = base.top_p;
            settings.temperature = base.temperature;
            settings.width = base.width;
        }
    });
}

/// The width control of models that draw any width (the column generator), in columns; the
/// training width is the default (`None`).
fn width_ui(ui: &mut egui::Ui, settings: &mut GenerateSettings, range: std::ops::RangeInclusive<usize>, info: &tessera_models::generator::ModelInfo) {
    let trained = info.forward_passes;
    let column = info.width / trained.max(1);
    let mut columns = settings.width.unwrap_or(trained).clamp(*range.start(), *range.end());
    ui.horizontal_wrapped(|ui| {
        ui.add(egui::Slider::new(&mut columns, range).logarithmic(true).text("width (columns)"))
            .on_hover_text("how many columns to draw; the model was trained on images this many columns wide, and goes on as far as asked");
        ui.weak(format!("{} px; trained at {trained} columns ({} px)", columns * column, info.width));
        if ui.add_enabled(columns != trained, egui::Button::new("Training width").small()).clicked() {
            columns = trained;
        }
    });
    settings.width = (columns != trained).then_some(columns);
}

/// The widest image `model` draws, in columns (its training width for models with no width control).
fn max_columns(model: &dyn ImageGenerator) -> usize {
    model.controls().width.map_or(model.info().forward_passes, |r| *r.end())
}

/// What the panel says when `family` has no model to sample from.
fn missing_text(family: Family) -> String {
    format!(
        "{family} has no shipped model yet: train one in the Train tab (then Use in Generate), or drop its {} and {} on the window.",
        Phase::Tokenizer.file_name(family),
        Phase::Transformer.file_name(family)
    )
}
