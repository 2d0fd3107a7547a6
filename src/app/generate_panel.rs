//! The Generate panel: choose a generator, class and sampling settings, generate a grid of
//! images, open one, and step through how it was made (each step's token map beside the image
//! decoded so far), then export it.
//!
//! The panel only draws and polls: models load and images generate in [`super::generation`]
//! jobs, so the UI never waits on the device.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use burn::prelude::Device;
use egui::{Color32, ColorImage, TextureHandle, TextureOptions, vec2};
use tessera_data::Image;

use super::export;
use tessera_models::family::Family;
use tessera_models::generator::ImageGenerator;

use super::generate_settings::{GenerateSettings, MAX_COUNT, MAX_GUIDANCE, is_available};
use super::generation::{self, GeneratedImage, Job, JobStatus, ModelSlot, StepFrame};
use super::hooks::{self, AppState, LastResult};
use super::player::{Action, Player, SHORTCUTS};

/// On-screen sizes, in points.
const THUMB: f32 = 88.0;
const PLAYER_IMAGE: f32 = 224.0;
/// Upscaling of exported step-throughs (a 32 px digit becomes 256 px).
const EXPORT_ZOOM: u32 = 8;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Layer {
    Tokens,
    Decoded,
}

pub struct GeneratePanel {
    /// Each family's models, loaded the first time it is chosen (a trained pair replaces them).
    models: HashMap<Family, Arc<Mutex<ModelSlot>>>,
    /// The family the panel is set to (the Edit tab samples from its models too).
    family: Family,
    device: Device,
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
    reported_last: u64,
    export_message: Option<Result<String, String>>,
}

impl GeneratePanel {
    /// Starts loading `family`'s shipped models on `device`.
    pub fn new(ctx: &egui::Context, device: Device, family: Family, autorun: bool, url_warnings: Vec<String>) -> Self {
        let models = HashMap::from([(family, generation::load_shipped(family, device.clone(), ctx.clone()))]);
        Self {
            models,
            family,
            device,
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
            reported_last: 0,
            export_message: None,
        }
    }

    /// The current family's models (loading them the first time it is asked for).
    fn models(&mut self) -> ModelSlot {
        let (device, ctx) = (&self.device, &self.ctx);
        let slot = self.models.entry(self.family).or_insert_with(|| generation::load_shipped(self.family, device.clone(), ctx.clone()));
        slot.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The current family's models, once loaded (the Edit panel samples from them too).
    pub fn ready_models(&self) -> Option<Arc<dyn ImageGenerator>> {
        match self.models.get(&self.family).map(|slot| slot.lock().unwrap_or_else(|p| p.into_inner()).clone()) {
            Some(ModelSlot::Ready(m)) => Some(m),
            _ => None,
        }
    }

    /// Samples from `models` from now on, for their family (a run trained in the Train tab).
    pub fn set_models(&mut self, models: Arc<dyn ImageGenerator>) {
        let family = models.info().family;
        self.models.insert(family, Arc::new(Mutex::new(ModelSlot::Ready(models))));
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
        self.family = settings.generator;
        let models = self.models();
        if let (ModelSlot::Ready(m), true) = (&models, self.autorun) {
            self.autorun = false;
            self.start(m.clone(), settings, ctx);
        }
        let status = self.job.as_ref().map(|job| job.progress().status.clone());
        let (state, error) = match (&models, status) {
            (ModelSlot::Loading, _) => (AppState::Loading, None),
            (ModelSlot::Failed(e), _) => (AppState::Error, Some(format!("could not load the models: {e}"))),
            (ModelSlot::Ready(_), None) => (AppState::Ready, None),
            (ModelSlot::Ready(_), Some(status)) => match status {
                JobStatus::Running => (AppState::Running, None),
                JobStatus::Done => (AppState::Done, None),
                JobStatus::Cancelled => (AppState::Ready, None),
                JobStatus::Failed(e) => (AppState::Error, Some(e)),
            },
        };
        if state == AppState::Done && self.reported_last != self.serial {
            self.reported_last = self.serial;
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
        hooks::report_last(LastResult {
            settings: &progress.settings,
            width: image.width,
            height: image.height,
            ms: progress.elapsed_ms,
            png_data_url: export::png_data_url(&image.to_png_bytes()),
        });
    }

    fn start(&mut self, models: Arc<dyn ImageGenerator>, settings: &GenerateSettings, ctx: &egui::Context) {
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
        hooks::publish_query(&settings.to_query(false));
        self.job = Some(generation::start(models, settings, None, ctx.clone()));
    }

    pub fn ui(&mut self, ui: &mut egui::Ui, settings: &mut GenerateSettings) {
        self.family = settings.generator;
        let models = self.models();
        for warning in &self.url_warnings {
            ui.colored_label(ui.visuals().warn_fg_color, format!("Link: {warning}"));
        }
        match &models {
            ModelSlot::Loading => {
                ui.horizontal(|ui| {
                    ui.spinner();
                    ui.label(format!("Loading the tiny MNIST models ({})…", self.family.label()));
                });
            }
            ModelSlot::Failed(e) => {
                ui.colored_label(ui.visuals().error_fg_color, format!("Could not load the models: {e}"));
            }
            ModelSlot::Ready(m) => {
                if let Some(w) = &m.info().warning {
                    ui.colored_label(ui.visuals().warn_fg_color, w);
                }
            }
        }
        let ready = match &models {
            ModelSlot::Ready(m) => Some(m.clone()),
            _ => None,
        };
        settings_ui(ui, settings, ready.as_deref());
        self.run_bar(ui, settings, ready);
        ui.separator();
        let Some(job) = self.job.clone() else {
            ui.weak("Press Generate images (or Enter) to draw; then click one to step through how it was made.");
            return;
        };
        // Held while drawing (no re-locking below): the worker waits at most one frame to add a step.
        let progress = job.progress();
        self.results_grid(ui, &progress.images);
        ui.separator();
        if let Some(image) = progress.images.get(self.selected) {
            self.player_ui(ui, image, &progress.settings, progress.steps_total);
        }
    }

    fn run_bar(&mut self, ui: &mut egui::Ui, settings: &GenerateSettings, models: Option<Arc<dyn ImageGenerator>>) {
        ui.horizontal(|ui| {
            // A loaded model of the chosen family: shipped, or trained in the Train tab.
            let can_generate = models.as_ref().is_some_and(|m| m.info().family == settings.generator);
            let generate = ui
                .add_enabled(can_generate, egui::Button::new("Generate images"))
                .on_hover_text("Draw the images (Enter)");
            let enter = ui.input(|i| i.key_pressed(egui::Key::Enter)) && ui.ctx().memory(|m| m.focused().is_none());
            if let Some(models) = models.filter(|_| can_generate && (generate.clicked() || enter)) {
                self.start(models, settings, ui.ctx());
            }
            let Some(job) = self.job.clone() else { return };
            let (status, settings, steps_done, steps_total, elapsed_ms) = {
                let p = job.progress();
                (p.status.clone(), p.settings.clone(), p.steps_done, p.steps_total, p.elapsed_ms)
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
                }
                JobStatus::Cancelled => {
                    ui.weak("cancelled");
                }
                JobStatus::Failed(e) => {
                    ui.colored_label(ui.visuals().error_fg_color, e);
                }
            }
            let query = settings.to_query(false);
            if ui.button("Copy link").on_hover_text(format!("?{query}")).clicked() {
                ui.ctx().copy_text(format!("?{query}"));
            }
        });
    }

    fn texture(&mut self, ctx: &egui::Context, key: (u64, usize, usize, Layer), frame: &StepFrame) -> TextureHandle {
        self.textures
            .entry(key)
            .or_insert_with(|| {
                let rgb = match key.3 {
                    Layer::Tokens => frame.tokens.to_rgb(),
                    Layer::Decoded => frame.partial.to_rgb8(),
                };
                let image = ColorImage::from_rgb([rgb.width() as usize, rgb.height() as usize], rgb.as_raw());
                ctx.load_texture(format!("generate-{key:?}"), image, TextureOptions::NEAREST)
            })
            .clone()
    }

    fn results_grid(&mut self, ui: &mut egui::Ui, images: &[GeneratedImage]) {
        ui.horizontal_wrapped(|ui| {
            for (i, image) in images.iter().enumerate() {
                let Some(frame) = image.frames.last() else {
                    ui.add_sized(vec2(THUMB, THUMB), egui::Spinner::new());
                    continue;
                };
                let texture = self.texture(ui.ctx(), (self.serial, i, image.frames.len() - 1, Layer::Decoded), frame);
                let stroke = if i == self.selected {
                    egui::Stroke::new(2.0, ui.visuals().selection.stroke.color)
                } else {
                    egui::Stroke::new(2.0, Color32::TRANSPARENT)
                };
                let clicked = egui::Frame::NONE
                    .stroke(stroke)
                    .inner_margin(2.0)
                    .show(ui, |ui| {
                        ui.add(egui::Image::new(&texture).fit_to_exact_size(vec2(THUMB, THUMB)).sense(egui::Sense::click()))
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

    fn player_ui(&mut self, ui: &mut egui::Ui, image: &GeneratedImage, settings: &GenerateSettings, steps_total: usize) {
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
            ui.add_enabled_ui(complete, |ui| {
                if ui.button("Save PNG").on_hover_text("the image at its native resolution").clicked()
                    && let Some(last) = image.last()
                {
                    self.export_message = Some(export::deliver(&format!("{stem}.png"), "image/png", &last.to_png_bytes()));
                }
                if ui.button("Save GIF").on_hover_text("the step-through, animated").clicked() {
                    let gif = export::gif_bytes(&image.frames, EXPORT_ZOOM, 600);
                    self.export_message = Some(export::deliver(&format!("{stem}-steps.gif"), "image/gif", &gif));
                }
                if ui.button("Save strip").on_hover_text("every step side by side, as one PNG").clicked() {
                    let png = export::png_bytes(&export::strip(&image.frames, EXPORT_ZOOM));
                    self.export_message = Some(export::deliver(&format!("{stem}-strip.png"), "image/png", &png));
                }
            });
            super::show_outcome(ui, &self.export_message);
        });
    }
}

/// Generator, class and sampling controls.
fn settings_ui(ui: &mut egui::Ui, settings: &mut GenerateSettings, model: Option<&dyn ImageGenerator>) {
    let info = model.map(|m| m.info());
    let controls = model.map(|m| m.controls());
    ui.horizontal_wrapped(|ui| {
        egui::ComboBox::from_label("generator")
            .selected_text(settings.generator.label())
            .show_ui(ui, |ui| {
                for g in Family::ALL {
                    let label = if is_available(g) { g.label().to_string() } else { format!("{} (coming)", g.label()) };
                    ui.add_enabled_ui(is_available(g), |ui| ui.selectable_value(&mut settings.generator, g, label));
                }
            });
        match controls.as_ref().map(|c| c.fill_orders.clone()).filter(|o| !o.is_empty()) {
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
        egui::ComboBox::from_label("class")
            .selected_text(name(settings.class))
            .show_ui(ui, |ui| {
                for c in 0..num_classes {
                    ui.selectable_value(&mut settings.class, c, name(c));
                }
            });
        let seed = ui.label("seed");
        ui.add(egui::DragValue::new(&mut settings.seed)).labelled_by(seed.id);
        if ui.button("Next seed").clicked() {
            settings.seed = settings.seed.wrapping_add(1);
        }
        ui.add(egui::Slider::new(&mut settings.count, 1..=MAX_COUNT).text("images"));
    });
    ui.horizontal_wrapped(|ui| {
        // Only the settings the model has (before it loads: VAR's, the default generator).
        let shows = |has: fn(&tessera_models::generator::Controls) -> bool| controls.as_ref().is_none_or(has);
        if let Some(schedule) = controls.as_ref().map_or(Some(None), |c| c.guidance.map(Some)) {
            let ramp = schedule.map(|s| format!("; it {}", s.describe())).unwrap_or_default();
            ui.add(egui::Slider::new(&mut settings.guidance, 0.0..=MAX_GUIDANCE.min(8.0)).text("guidance"))
                .on_hover_text(format!("classifier-free guidance: higher follows the class more closely (0 = none){ramp}"));
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
            settings.guidance = base.guidance;
            settings.top_k = base.top_k;
            settings.top_p = base.top_p;
            settings.temperature = base.temperature;
        }
    });
}
