//! The Train panel: pick a dataset (MNIST, the procedural scenes, or a folder of your own pictures
//! with one subfolder per class) and a preset, then train the tokenizer and the transformer while
//! watching the loss curves, the codebook usage and a fixed-seed strip of samples; pause, resume,
//! stop, save, and hand the result to the Generate panel.
//!
//! The work runs in a [`training`] job; this file only draws and polls.

use std::sync::{Arc, Mutex};

use burn::prelude::Device;
use tessera_kernels::Compute;
use egui::{Color32, ColorImage, Pos2, Sense, Stroke, TextureHandle, TextureOptions, vec2};
use tessera_data::{Dataset, Mnist, Scenes, ScenesConfig};
use tessera_train::VarPreset;

use super::pictures::{self, PictureImport, PictureSource};
use super::{dropped, export};
use super::generate_settings::QuickTrain;
use super::training::{self, Phase, Resume, SavedCheckpoint, TrainJob, TrainRequest, TrainStatus};
use tessera_models::generator::ImageGenerator;

const PLOT: egui::Vec2 = vec2(300.0, 120.0);
const STRIP_IMAGE: f32 = 56.0;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Choice {
    Mnist,
    Scenes,
    Folder,
}

pub struct TrainPanel {
    choice: Choice,
    /// The folder (or `.zip`) of the user's pictures, as typed on the desktop.
    #[cfg_attr(target_arch = "wasm32", allow(dead_code))]
    folder: String,
    /// The user's pictures being read, with progress.
    import: Option<PictureImport>,
    /// Pictures chosen or dropped in the browser, waiting to be read.
    picture_inbox: pictures::Inbox,
    /// A dataset arrived: the app opens this tab.
    pub wants_focus: bool,
    dataset: Option<Arc<dyn Dataset>>,
    /// What loading the dataset said: its size, or why it failed; and the files it skipped.
    dataset_note: Option<Result<String, String>>,
    skipped: Vec<String>,
    preset: VarPreset,
    tokenizer_steps: usize,
    transformer_steps: usize,
    seed: u64,
    save_every_min: f64,
    job: Option<TrainJob>,
    /// Counts jobs and strips, so an old texture is never shown for new samples.
    strip_key: (u64, usize),
    strip: Vec<TextureHandle>,
    serial: u64,
    message: Option<Result<String, String>>,
    /// Seconds per tokenizer and transformer step on this device, for `estimate_key`'s dataset
    /// and preset (filled in by a background job).
    estimate: Arc<Mutex<Option<Result<(f64, f64), String>>>>,
    estimate_key: Option<(String, VarPreset)>,
    /// Checkpoints dropped on the window, listed beside the run's own.
    uploaded: Vec<SavedCheckpoint>,
    inbox: dropped::Inbox,
    /// Checkpoints read back from the browser's storage.
    stored: dropped::Inbox,
    /// The list as last reported to the page.
    reported: Vec<String>,
    reported_status: Option<TrainStatus>,
    /// A run a link asked for, started at the next frame.
    start_soon: Option<QuickTrain>,
    /// Images per step, when a link set it (else the preset's).
    batch: Option<usize>,
    /// Models the user sent to Generate, picked up by the app.
    pub for_generate: Option<Arc<dyn ImageGenerator>>,
}

impl Default for TrainPanel {
    fn default() -> Self {
        let preset = VarPreset::Tiny;
        Self {
            choice: Choice::Mnist,
            folder: String::new(),
            import: None,
            picture_inbox: pictures::Inbox::default(),
            wants_focus: false,
            dataset: None,
            dataset_note: None,
            skipped: Vec::new(),
            preset,
            tokenizer_steps: preset.tokenizer_training(1).steps,
            transformer_steps: preset.var_training(&preset.tokenizer(1), 10).steps,
            seed: 0,
            save_every_min: 2.0,
            job: None,
            strip_key: (0, 0),
            strip: Vec::new(),
            serial: 0,
            message: None,
            estimate: Arc::default(),
            estimate_key: None,
            uploaded: Vec::new(),
            inbox: dropped::Inbox::default(),
            stored: dropped::Inbox::default(),
            reported: Vec::new(),
            reported_status: None,
            start_soon: None,
            batch: None,
            for_generate: None,
        }
    }
}

impl TrainPanel {
    /// `compute`: the app's device; training runs where [`Compute::training_device`] says.
    pub fn ui(&mut self, ui: &mut egui::Ui, compute: &Compute) {
        let (device, note) = compute.training_device();
        let device = &device;
        self.take_uploads(ui.ctx());
        self.dataset_ui(ui);
        ui.separator();
        if let Some(note) = note {
            ui.weak(note);
        }
        self.run_ui(ui, device);
        let mut checkpoints = self.uploaded.clone();
        if let Some(job) = self.job.clone() {
            ui.separator();
            self.progress_ui(ui, &job);
            checkpoints.extend(job.progress().checkpoints.iter().cloned());
        }
        ui.separator();
        // Sampling runs on the app's own device, whatever trained the models.
        self.checkpoints_ui(ui, &checkpoints, &compute.device, device);
    }

    /// Files dropped on the window: a `.zip` (or on the desktop a folder) of pictures becomes the
    /// dataset; checkpoint files join the list (a tokenizer and a transformer can then go to
    /// Generate); anything else gets a message.
    fn take_uploads(&mut self, ctx: &egui::Context) {
        #[cfg(not(target_arch = "wasm32"))]
        if let Some(folder) = ctx.input(|i| i.raw.dropped_files.iter().map(|f| f.path().to_path_buf()).find(|p| p.is_dir())) {
            self.folder = folder.display().to_string();
            self.import_pictures(PictureSource::Path(folder), ctx);
        }
        dropped::collect(ctx, &self.inbox);
        for read in dropped::take(&self.inbox) {
            match read {
                Ok((name, bytes)) if pictures::is_zip(&name) => self.import_pictures(PictureSource::zip(&name, bytes), ctx),
                read => self.add_checkpoint(read, "dropped file "),
            }
        }
    }

    /// Starts reading the user's pictures as the dataset (the previous one is dropped).
    fn import_pictures(&mut self, source: PictureSource, ctx: &egui::Context) {
        self.choice = Choice::Folder;
        self.dataset = None;
        self.dataset_note = None;
        self.skipped.clear();
        let options = tessera_data::FolderOptions { resolution: self.preset.image_size(), ..Default::default() };
        self.import = Some(PictureImport::start(source, options, ctx));
    }

    /// Takes a finished import's dataset, or its error.
    fn finish_import(&mut self) {
        let Some(result) = self.import.as_ref().and_then(PictureImport::take_result) else { return };
        self.import = None;
        match result {
            Ok((dataset, skipped)) => {
                self.skipped = skipped.iter().map(ToString::to_string).collect();
                self.set_dataset(Ok(Arc::new(dataset)));
            }
            Err(e) => self.set_dataset(Err(e)),
        }
    }

    /// Lists a checkpoint read from `place_prefix` + its name, or says why not.
    fn add_checkpoint(&mut self, read: dropped::DroppedBytes, place_prefix: &str) {
        let checked = read
            .map_err(|e| format!("{e:#}"))
            .and_then(|(name, bytes)| SavedCheckpoint::uploaded(&name, bytes, format!("{place_prefix}{name}")));
        match checked {
            Ok(c) => {
                self.message = Some(Ok(format!("{}: {} at step {}", c.place, c.phase.label(), c.step)));
                // One of each kind from each place; the run's own come on top of these.
                self.uploaded.retain(|u| !(u.phase == c.phase && u.place == c.place));
                self.uploaded.push(c);
            }
            Err(e) => self.message = Some(Err(e)),
        }
    }

    /// Every frame, whichever tab is open: takes checkpoints the browser's storage has read back
    /// and reports the list (`window.tessera.checkpoints`).
    pub fn poll(&mut self, ctx: &egui::Context, compute: &Compute) {
        let arrived = std::mem::take(&mut *self.picture_inbox.lock().unwrap_or_else(|p| p.into_inner()));
        for source in arrived {
            match source {
                Ok(source) => self.import_pictures(source, ctx),
                Err(e) => {
                    self.choice = Choice::Folder;
                    self.set_dataset(Err(e));
                }
            }
            self.wants_focus = true;
        }
        self.finish_import();
        if let Some(run) = self.start_soon.take() {
            let (device, _) = compute.training_device();
            let device = &device;
            self.tokenizer_steps = run.tokenizer_steps;
            self.transformer_steps = run.transformer_steps;
            self.batch = run.batch;
            if run.on_pictures {
                // Wait for the user's pictures (a drop or the chooser), then start.
                self.choice = Choice::Folder;
                match self.dataset.clone() {
                    Some(dataset) if self.import.is_none() => self.start(dataset, device, ctx, None),
                    _ => self.start_soon = Some(run),
                }
            } else {
                self.choice = Choice::Mnist;
                self.skipped.clear();
                self.set_dataset(Ok(Arc::new(Mnist::train())));
                if let Some(dataset) = self.dataset.clone() {
                    self.start(dataset, device, ctx, None);
                }
            }
        }
        let status = self.job.as_ref().map(|job| job.progress().status.clone());
        if status != self.reported_status {
            let text = status.as_ref().map(|s| match s {
                TrainStatus::Failed(e) => format!("failed: {e}"),
                other => training_status_text(other).to_string(),
            });
            super::hooks::report_training(text.as_deref());
            self.reported_status = status;
        }
        // Desktop entries are named by their path already.
        let prefix = if cfg!(target_arch = "wasm32") { training::STORED_PREFIX } else { "" };
        for read in dropped::take(&self.stored) {
            self.add_checkpoint(read, prefix);
        }
        let mut lines: Vec<String> = self.uploaded.iter().map(SavedCheckpoint::describe).collect();
        if let Some(job) = &self.job {
            lines.extend(job.progress().checkpoints.iter().map(SavedCheckpoint::describe));
        }
        if lines != self.reported {
            super::hooks::report_checkpoints(&lines);
            self.reported = lines;
        }
    }

    /// Trains with `run`'s steps as soon as the app runs (a `train=` link): on MNIST, or on the
    /// user's pictures as soon as they are dropped or chosen (`dataset=pictures`).
    pub fn start_soon(&mut self, run: QuickTrain) {
        self.start_soon = Some(run);
    }

    /// In the browser, takes folders dropped anywhere on the page as the dataset (eframe only
    /// reads dropped files). On the desktop eframe gives folders as paths.
    pub fn listen_for_pictures(&self, ctx: &egui::Context) {
        #[cfg(target_arch = "wasm32")]
        crate::web::pictures::listen_for_folder_drops(ctx, self.picture_inbox.clone());
        #[cfg(not(target_arch = "wasm32"))]
        let _ = ctx;
    }

    /// Starts reading the checkpoints of earlier sessions: the browser's stored ones, or on the
    /// desktop the newest runs under the runs folder (read on a thread; checked like dropped files).
    pub fn load_stored(&self, ctx: &egui::Context) {
        #[cfg(target_arch = "wasm32")]
        {
            let (inbox, ctx) = (self.stored.clone(), ctx.clone());
            wasm_bindgen_futures::spawn_local(async move {
                let names = match crate::web::storage::list().await {
                    Ok(names) => names,
                    Err(e) => return log::warn!("could not list the stored checkpoints: {e}"),
                };
                for name in names.into_iter().filter(|n| n.ends_with(".ckpt")) {
                    let read = crate::web::storage::load(&name).await.map_err(|e| anyhow::anyhow!("reading {name}: {e}"));
                    inbox.lock().unwrap_or_else(|p| p.into_inner()).push(read.map(|bytes| (name, bytes)));
                }
                ctx.request_repaint();
            });
        }
        #[cfg(not(target_arch = "wasm32"))]
        {
            let (inbox, ctx) = (self.stored.clone(), ctx.clone());
            std::thread::spawn(move || {
                for path in earlier_checkpoints(&runs_dir(), EARLIER_RUNS_LISTED) {
                    let read = std::fs::read(&path).map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()));
                    inbox.lock().unwrap_or_else(|p| p.into_inner()).push(read.map(|bytes| (path.display().to_string(), bytes)));
                }
                ctx.request_repaint();
            });
        }
    }

    fn dataset_ui(&mut self, ui: &mut egui::Ui) {
        let before = self.choice;
        ui.horizontal_wrapped(|ui| {
            ui.label("Dataset:");
            ui.radio_value(&mut self.choice, Choice::Mnist, "MNIST digits");
            ui.radio_value(&mut self.choice, Choice::Scenes, "Procedural scenes");
            ui.radio_value(&mut self.choice, Choice::Folder, "My pictures");
        });
        if self.choice != before || (self.dataset.is_none() && self.choice != Choice::Folder && self.dataset_note.is_none()) {
            self.import = None; // a reading in progress is forgotten
            self.dataset = None;
            self.dataset_note = None;
            self.skipped.clear();
            match self.choice {
                Choice::Mnist => self.set_dataset(Ok(Arc::new(Mnist::train()))),
                Choice::Scenes => self.set_dataset(Scenes::new(ScenesConfig::default()).map(|s| Arc::new(s) as Arc<dyn Dataset>).map_err(|e| e.to_string())),
                Choice::Folder => {}
            }
        }
        if self.choice == Choice::Folder {
            self.folder_ui(ui);
        }
        super::show_outcome(ui, &self.dataset_note);
        if !self.skipped.is_empty() {
            ui.collapsing(format!("{} file(s) skipped", self.skipped.len()), |ui| {
                for s in &self.skipped {
                    ui.weak(s);
                }
            });
        }
    }

    #[cfg(not(target_arch = "wasm32"))]
    fn folder_ui(&mut self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            let label = ui.label("folder");
            ui.add(egui::TextEdit::singleline(&mut self.folder).hint_text("a folder with one subfolder of pictures per class, or a .zip of one"))
                .labelled_by(label.id);
            if ui.add_enabled(self.import.is_none(), egui::Button::new("Load folder")).clicked() {
                self.import_pictures(PictureSource::Path(self.folder.trim().into()), ui.ctx());
            }
        });
        ui.weak("or drop the folder or .zip on the window; files that are not pictures are listed and skipped");
        self.import_ui(ui);
    }

    #[cfg(target_arch = "wasm32")]
    fn folder_ui(&mut self, ui: &mut egui::Ui) {
        ui.horizontal_wrapped(|ui| {
            for (folder, text) in [(true, "Choose a folder…"), (false, "Choose a .zip…")] {
                if ui.add_enabled(self.import.is_none(), egui::Button::new(text)).clicked() {
                    let (inbox, ctx) = (self.picture_inbox.clone(), ui.ctx().clone());
                    wasm_bindgen_futures::spawn_local(async move {
                        // Cancelling the chooser is no news; anything else goes to the panel.
                        if let Some(chosen) = crate::web::pictures::choose(folder).await.transpose() {
                            inbox.lock().unwrap_or_else(|p| p.into_inner()).push(chosen);
                        }
                        ctx.request_repaint();
                    });
                }
            }
        });
        ui.weak("with one subfolder of pictures per class; or drop the folder or .zip on the page. Files that are not pictures are listed and skipped.");
        self.import_ui(ui);
    }

    /// The import's progress while it runs.
    fn import_ui(&mut self, ui: &mut egui::Ui) {
        let Some(import) = &self.import else { return };
        let state = import.lock();
        let text = if state.total == 0 {
            format!("listing {}…", state.name)
        } else {
            format!("reading {}: {} of {} files", state.name, state.done, state.total)
        };
        let fraction = if state.total == 0 { 0.0 } else { state.done as f32 / state.total as f32 };
        ui.add(egui::ProgressBar::new(fraction).desired_width(360.0).text(text).animate(true));
    }

    fn set_dataset(&mut self, dataset: Result<Arc<dyn Dataset>, String>) {
        match dataset {
            Ok(d) => {
                let first = d.get(0).image;
                self.dataset_note = Some(Ok(format!(
                    "{}: {} images in {} classes ({}), {}x{}x{}",
                    d.name(),
                    d.len(),
                    d.class_names().len(),
                    d.class_names().join(", "),
                    first.channels,
                    first.height,
                    first.width
                )));
                self.dataset = Some(d);
            }
            Err(e) => {
                self.dataset_note = Some(Err(e));
                self.dataset = None;
            }
        }
        let note = self.dataset_note.as_ref().map(|n| match n {
            Ok(summary) => format!("{summary}; {} file(s) skipped", self.skipped.len()),
            Err(e) => format!("error: {e}"),
        });
        super::hooks::report_dataset(note.as_deref());
    }

    fn run_ui(&mut self, ui: &mut egui::Ui, device: &Device) {
        let active = self.job.as_ref().is_some_and(TrainJob::is_active);
        ui.add_enabled_ui(!active, |ui| {
            ui.horizontal_wrapped(|ui| {
                let before = self.preset;
                egui::ComboBox::from_label("preset").selected_text(self.preset.name()).show_ui(ui, |ui| {
                    for p in VarPreset::ALL {
                        ui.selectable_value(&mut self.preset, p, p.name());
                    }
                });
                if self.preset != before {
                    self.tokenizer_steps = self.preset.tokenizer_training(1).steps;
                    self.transformer_steps = self.preset.var_training(&self.preset.tokenizer(1), 10).steps;
                }
                ui.add(egui::DragValue::new(&mut self.tokenizer_steps).range(1..=1_000_000).prefix("tokenizer steps "));
                ui.add(egui::DragValue::new(&mut self.transformer_steps).range(1..=1_000_000).prefix("transformer steps "));
                ui.add(egui::DragValue::new(&mut self.seed).prefix("seed "));
                #[cfg(not(target_arch = "wasm32"))]
                ui.add(egui::DragValue::new(&mut self.save_every_min).range(0.5..=60.0).speed(0.1).prefix("save every ").suffix(" min"));
            });
        });
        self.estimate_ui(ui, device, active);
        ui.horizontal(|ui| {
            let can_start = !active && self.dataset.is_some();
            if ui.add_enabled(can_start, egui::Button::new("Start training")).clicked()
                && let Some(dataset) = self.dataset.clone()
            {
                self.start(dataset, device, ui.ctx(), None);
            }
            let Some(job) = self.job.clone() else { return };
            let status = job.progress().status.clone();
            match status {
                TrainStatus::Running => {
                    if ui.button("Pause").clicked() {
                        job.set_paused(true);
                    }
                }
                TrainStatus::Paused => {
                    if ui.button("Resume").clicked() {
                        job.set_paused(false);
                    }
                }
                _ => {}
            }
            if active {
                if ui.button("Save now").on_hover_text("a checkpoint after this step").clicked() {
                    job.save_now();
                }
                if ui.button("Stop").on_hover_text("save a checkpoint and end the run").clicked() {
                    job.stop();
                }
            }
        });
    }

    /// Times one step of each model for the chosen dataset and preset (once per pair, in the
    /// background, not while training) and shows how long the run would take. Hidden while a run
    /// is active.
    fn estimate_ui(&mut self, ui: &mut egui::Ui, device: &Device, active: bool) {
        let Some(dataset) = self.dataset.clone() else { return };
        if active {
            return; // the run's own progress shows its time per step and the time left
        }
        let key = (dataset.name().to_string(), self.preset);
        if self.estimate_key.as_ref() != Some(&key) {
            self.estimate_key = Some(key);
            *self.estimate.lock().unwrap_or_else(|p| p.into_inner()) = None;
            let (slot, device, ctx, preset) = (self.estimate.clone(), device.clone(), ui.ctx().clone(), self.preset);
            training::spawn_estimate(dataset, preset, device, move |result| {
                *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(result.map_err(|e| format!("{e:#}")));
                ctx.request_repaint();
            });
        }
        match &*self.estimate.lock().unwrap_or_else(|p| p.into_inner()) {
            None => {
                ui.horizontal(|ui| {
                    ui.spinner();
                    ui.weak("timing a step of each model on this device…");
                });
            }
            Some(Ok((tokenizer_s, var_s))) => {
                let total = self.tokenizer_steps as f64 * tokenizer_s + self.transformer_steps as f64 * var_s;
                ui.weak(format!(
                    "about {} on this device ({tokenizer_s:.2} s per tokenizer step, {var_s:.2} s per transformer step)",
                    minutes(total)
                ));
            }
            Some(Err(e)) => {
                ui.colored_label(ui.visuals().error_fg_color, format!("could not time a step: {e}"));
            }
        }
    }

    /// Continues the run `c` belongs to: a tokenizer's, or a transformer's with a tokenizer from
    /// the list (the newest).
    fn resume_from(&mut self, c: &SavedCheckpoint, list: &[SavedCheckpoint], device: &Device, ctx: &egui::Context) {
        let Some(dataset) = self.dataset.clone() else { return };
        let resume = match c.phase {
            Phase::Tokenizer => Resume::Tokenizer(c.bytes.clone()),
            Phase::Transformer => match list.iter().rev().find(|t| t.phase == Phase::Tokenizer) {
                Some(t) => Resume::Transformer { tokenizer: t.bytes.clone(), var: c.bytes.clone() },
                None => {
                    self.message = Some(Err("resuming a transformer needs its tokenizer: drop its tokenizer.ckpt too".into()));
                    return;
                }
            },
        };
        self.message = Some(Ok(format!("resuming {}", c.describe())));
        self.start(dataset, device, ctx, Some(resume));
    }

    fn start(&mut self, dataset: Arc<dyn Dataset>, device: &Device, ctx: &egui::Context, resume: Option<Resume>) {
        if let Some(old) = &self.job {
            old.stop();
        }
        self.serial += 1;
        self.strip.clear();
        // Named by the start time, so a run never overwrites an earlier one (across restarts too).
        let started = web_time::SystemTime::now().duration_since(web_time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let run_name = format!("{}-{started}", dataset.name());
        #[cfg(not(target_arch = "wasm32"))]
        let out_dir = Some(runs_dir().join(&run_name));
        #[cfg(target_arch = "wasm32")]
        let out_dir = None;
        let request = TrainRequest {
            dataset,
            preset: self.preset,
            tokenizer_steps: self.tokenizer_steps,
            transformer_steps: self.transformer_steps,
            seed: self.seed,
            run_name,
            batch: self.batch,
            resume,
            out_dir,
            save_every_s: self.save_every_min * 60.0,
            samples_every: 50.min(self.transformer_steps.max(1)),
        };
        self.job = Some(training::start(request, device.clone(), ctx.clone()));
    }

    fn progress_ui(&mut self, ui: &mut egui::Ui, job: &TrainJob) {
        let total = self.tokenizer_steps + self.transformer_steps;
        let left = job.seconds_left(total);
        let p = job.progress().clone();
        let status = training_status_text(&p.status);
        ui.horizontal_wrapped(|ui| {
            if p.status == TrainStatus::Running {
                ui.spinner();
            }
            ui.label(format!("{status}: {} step {} of {}", p.phase.label(), p.step, p.steps_total));
            if p.seconds_per_step > 0.0 {
                ui.weak(format!("{:.2} s per step", p.seconds_per_step));
            }
            if let Some(left) = left.filter(|_| matches!(p.status, TrainStatus::Running | TrainStatus::Paused)) {
                ui.weak(format!("about {} left", minutes(left)));
            }
            ui.weak(format!("{} elapsed", minutes(p.elapsed_s)));
        });
        if let TrainStatus::Failed(e) = &p.status {
            ui.colored_label(ui.visuals().error_fg_color, format!("Training stopped: {e}. The last checkpoint below is kept."));
        }
        ui.horizontal_wrapped(|ui| {
            plot(ui, "tokenizer loss", &p.tokenizer_loss, Color32::LIGHT_BLUE);
            plot(ui, "reconstruction PSNR (dB)", &p.psnr, Color32::LIGHT_GREEN);
            plot(ui, "transformer loss (nats per token)", &p.transformer_loss, Color32::from_rgb(255, 170, 90));
        });
        if !p.codebook_usage.is_empty() {
            ui.horizontal(|ui| {
                ui.label("codebook usage per scale:");
                for (i, u) in p.codebook_usage.iter().enumerate() {
                    ui.add(egui::ProgressBar::new(*u).desired_width(48.0).text(format!("{}: {:.0}%", i + 1, u * 100.0)));
                }
            });
        }
        if !p.samples.is_empty() {
            if self.strip_key != (self.serial, p.samples_step) {
                self.strip_key = (self.serial, p.samples_step);
                self.strip = p
                    .samples
                    .iter()
                    .enumerate()
                    .map(|(i, image)| {
                        let rgb = image.to_rgb8();
                        let color = ColorImage::from_rgb([rgb.width() as usize, rgb.height() as usize], rgb.as_raw());
                        ui.ctx().load_texture(format!("train-strip-{i}"), color, TextureOptions::NEAREST)
                    })
                    .collect();
            }
            ui.label(format!("samples at transformer step {} (one per class, same seed each time)", p.samples_step));
            ui.horizontal_wrapped(|ui| {
                for texture in &self.strip {
                    ui.add(egui::Image::new(texture).fit_to_exact_size(vec2(STRIP_IMAGE, STRIP_IMAGE)));
                }
            });
        }
    }

    /// `device` samples (Use in Generate); `training_device` trains (Resume).
    fn checkpoints_ui(&mut self, ui: &mut egui::Ui, checkpoints: &[SavedCheckpoint], device: &Device, training_device: &Device) {
        if checkpoints.is_empty() {
            ui.weak(format!(
                "Checkpoints are saved every {} minutes, on Save now, on Stop and at the end. Drop .ckpt files on the window to load your own.",
                self.save_every_min
            ));
            super::show_outcome(ui, &self.message);
            return;
        }
        ui.label("Checkpoints:");
        let can_resume = !self.job.as_ref().is_some_and(TrainJob::is_active) && self.dataset.is_some();
        let mut resume = None;
        let mut forget = None;
        for (i, c) in checkpoints.iter().enumerate() {
            ui.horizontal(|ui| {
                ui.label(c.describe());
                if ui.small_button("Download").clicked() {
                    self.message = Some(export::deliver(c.phase.file_name(), "application/octet-stream", &c.bytes));
                }
                // Listed files (dropped, stored, earlier runs) come first; the run's own are kept.
                let stored = cfg!(target_arch = "wasm32") && c.place.starts_with(training::STORED_PREFIX);
                if i < self.uploaded.len() {
                    let (text, hover) = if stored {
                        ("Delete", "delete this file from the page's storage")
                    } else {
                        ("Remove", "take it off this list (the file itself stays)")
                    };
                    if ui.small_button(text).on_hover_text(hover).clicked() {
                        forget = Some(i);
                    }
                }
                if c.resumable
                    && ui
                        .add_enabled(can_resume, egui::Button::new("Resume").small())
                        .on_hover_text("continue this run on the chosen dataset, up to the step counts above")
                        .clicked()
                {
                    resume = Some(c.clone());
                }
            });
        }
        if let Some(c) = resume {
            self.resume_from(&c, checkpoints, training_device, ui.ctx());
        }
        if let Some(i) = forget {
            let c = self.uploaded.remove(i);
            self.message = Some(Ok(format!("removed {}", c.describe())));
            #[cfg(target_arch = "wasm32")]
            if let Some(name) = c.place.strip_prefix(training::STORED_PREFIX).map(str::to_string) {
                wasm_bindgen_futures::spawn_local(async move {
                    if let Err(e) = crate::web::storage::remove(&name).await {
                        log::warn!("could not delete {name}: {e}");
                    }
                });
            }
        }
        let tokenizer = checkpoints.iter().find(|c| c.phase == Phase::Tokenizer);
        let transformer = checkpoints.iter().find(|c| c.phase == Phase::Transformer);
        if let (Some(t), Some(v)) = (tokenizer, transformer)
            && ui.button("Use in Generate").on_hover_text("sample from these checkpoints in the Generate tab").clicked()
        {
            match crate::shipped::load_pair(&v.bytes, &t.bytes, device) {
                Ok(generator) => {
                    self.for_generate = Some(generator);
                    self.message = Some(Ok("the Generate tab now samples from this run".into()));
                }
                Err(e) => self.message = Some(Err(format!("{e:#}"))),
            }
        }
        super::show_outcome(ui, &self.message);
    }
}

/// One word for a run's status, as the panel and `window.tessera.training` say it.
fn training_status_text(status: &TrainStatus) -> &'static str {
    match status {
        TrainStatus::Running => "training",
        TrainStatus::Paused => "paused",
        TrainStatus::Done => "done",
        TrainStatus::Stopped => "stopped",
        TrainStatus::Failed(_) => "failed",
    }
}

/// How many earlier runs the desktop app lists at start (newest first). Few, because a listed
/// checkpoint is held in memory (for Download and Resume) and a small-preset run's transformer
/// file is over 100 MB; older runs stay on disk and can be dropped on the window.
#[cfg(not(target_arch = "wasm32"))]
const EARLIER_RUNS_LISTED: usize = 3;

/// The checkpoints (`tokenizer.ckpt`, `var.ckpt`) of the `max_runs` newest run folders in `dir`,
/// newest run first; nothing when `dir` does not exist.
#[cfg(not(target_arch = "wasm32"))]
fn earlier_checkpoints(dir: &std::path::Path, max_runs: usize) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut runs: Vec<(std::time::SystemTime, std::path::PathBuf)> = entries
        .filter_map(Result::ok)
        .filter(|e| e.path().is_dir())
        .map(|e| (e.metadata().and_then(|m| m.modified()).unwrap_or(std::time::UNIX_EPOCH), e.path()))
        .collect();
    runs.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| b.1.cmp(&a.1)));
    runs.into_iter()
        .take(max_runs)
        .flat_map(|(_, run)| ["tokenizer.ckpt", "var.ckpt"].map(|f| run.join(f)))
        .filter(|p| p.is_file())
        .collect()
}

/// Where the desktop app keeps its runs: `$TESSERA_RUNS_DIR`, else `tessera-runs/` in the working
/// directory.
#[cfg(not(target_arch = "wasm32"))]
fn runs_dir() -> std::path::PathBuf {
    std::env::var_os("TESSERA_RUNS_DIR").map_or_else(|| "tessera-runs".into(), Into::into)
}

fn minutes(seconds: f64) -> String {
    if seconds < 90.0 { format!("{seconds:.0} s") } else { format!("{:.1} min", seconds / 60.0) }
}

/// A small line chart of `(x, y)` points with its last value in the title.
fn plot(ui: &mut egui::Ui, title: &str, points: &[[f64; 2]], color: Color32) {
    ui.vertical(|ui| {
        let last = points.last().map_or_else(String::new, |p| format!(": {:.3}", p[1]));
        ui.weak(format!("{title}{last}"));
        let (response, painter) = ui.allocate_painter(PLOT, Sense::hover());
        let rect = response.rect;
        painter.rect_stroke(rect, 2.0, Stroke::new(1.0, ui.visuals().weak_text_color()), egui::StrokeKind::Inside);
        if points.len() < 2 {
            return;
        }
        let (x0, x1) = (points[0][0], points[points.len() - 1][0].max(points[0][0] + 1.0));
        let (lo, hi) = points.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| (lo.min(p[1]), hi.max(p[1])));
        let span = (hi - lo).max(1e-9);
        // At most one point per horizontal pixel.
        let stride = (points.len() / rect.width() as usize).max(1);
        let line: Vec<Pos2> = points
            .iter()
            .step_by(stride)
            .map(|p| {
                let x = rect.left() + ((p[0] - x0) / (x1 - x0)) as f32 * rect.width();
                let y = rect.bottom() - ((p[1] - lo) / span) as f32 * rect.height();
                Pos2::new(x, y)
            })
            .collect();
        painter.add(egui::Shape::line(line, Stroke::new(1.5, color)));
    });
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;

    #[test]
    fn earlier_runs_are_listed_newest_first_up_to_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        assert!(earlier_checkpoints(&dir.path().join("absent"), 8).is_empty());
        for (i, run) in ["mnist-100", "mnist-200", "scenes-300"].iter().enumerate() {
            let run = dir.path().join(run);
            std::fs::create_dir(&run).unwrap();
            std::fs::write(run.join("tokenizer.ckpt"), b"x").unwrap();
            if i > 0 {
                std::fs::write(run.join("var.ckpt"), b"x").unwrap();
            }
            std::fs::write(run.join("notes.txt"), b"x").unwrap();
            // Distinct modification times, oldest first.
            let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000 * (i as u64 + 1));
            filetime_set(&run, t);
        }
        std::fs::write(dir.path().join("stray.ckpt"), b"x").unwrap();
        let names = |v: Vec<std::path::PathBuf>| -> Vec<String> {
            v.iter().map(|p| p.strip_prefix(dir.path()).unwrap().display().to_string()).collect()
        };
        assert_eq!(
            names(earlier_checkpoints(dir.path(), 8)),
            ["scenes-300/tokenizer.ckpt", "scenes-300/var.ckpt", "mnist-200/tokenizer.ckpt", "mnist-200/var.ckpt", "mnist-100/tokenizer.ckpt"]
        );
        assert_eq!(names(earlier_checkpoints(dir.path(), 1)), ["scenes-300/tokenizer.ckpt", "scenes-300/var.ckpt"]);
    }

    fn filetime_set(path: &std::path::Path, t: std::time::SystemTime) {
        std::fs::File::open(path).unwrap().set_modified(t).unwrap();
    }
}
