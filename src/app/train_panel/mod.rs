//! The Train panel: pick a dataset (MNIST, the procedural scenes, or a folder of your own pictures
//! with one subfolder per class), a model family (VAR, RAR or the column generator) and a preset,
//! then train the family's tokenizer and transformer while watching the loss curves, the codebook usage and a
//! fixed-seed strip of samples; pause, resume, stop, save, and hand the result to the Generate
//! panel.
//!
//! The work runs in a [`training`] job; these files only draw and poll: this one the panel and
//! the run's settings and buttons, [`dataset`] the dataset choice and import, [`progress`] the
//! run's progress (with [`curves`]), [`checkpoints`] the checkpoint list.

mod checkpoints;
mod curves;
mod dataset;
mod progress;

use std::sync::{Arc, Mutex};

use burn::prelude::Device;
use egui::TextureHandle;
use tessera_data::{Dataset, Mnist};
use tessera_kernels::Compute;
use tessera_models::family::Family;
use tessera_train::VarPreset;

use super::dropped;
use super::generate_settings::QuickTrain;
use super::pictures::{self, PictureImport};
use super::training::{self, Phase, Resume, SavedCheckpoint, TrainJob, TrainRequest, TrainStatus};
use tessera_models::generator::ImageGenerator;
#[cfg(not(target_arch = "wasm32"))]
use checkpoints::runs_dir;

/// What a time estimate depends on: the dataset's name, the family and the preset.
type EstimateKey = (String, Family, VarPreset);

/// Seconds per tokenizer and transformer step, or why they could not be timed, by what was timed.
type Estimates = Vec<(EstimateKey, Result<(f64, f64), String>)>;

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
    /// The family trained (VAR, RAR or the column generator; links train it too).
    family: Family,
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
    /// Seconds per tokenizer and transformer step on this device, by the dataset, family and
    /// preset they were timed for (filled in by background jobs, so a timing that ends late is
    /// never shown for another choice).
    estimates: Arc<Mutex<Estimates>>,
    /// The choices timed or being timed.
    estimates_asked: Vec<EstimateKey>,
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
        let (family, preset) = (Family::Var, VarPreset::Tiny);
        let (tokenizer_steps, transformer_steps) = training::default_steps(family, preset);
        Self {
            choice: Choice::Mnist,
            folder: String::new(),
            import: None,
            picture_inbox: pictures::Inbox::default(),
            wants_focus: false,
            dataset: None,
            dataset_note: None,
            skipped: Vec::new(),
            family,
            preset,
            tokenizer_steps,
            transformer_steps,
            seed: 0,
            save_every_min: 2.0,
            job: None,
            strip_key: (0, 0),
            strip: Vec::new(),
            serial: 0,
            message: None,
            estimates: Arc::default(),
            estimates_asked: Vec::new(),
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
    /// `compute`: the app's device; training runs where [`Compute::work_device`] says.
    pub fn ui(&mut self, ui: &mut egui::Ui, compute: &Compute) {
        let (device, note) = compute.work_device();
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
        // Sampling runs where the Generate tab samples, whatever trained the models.
        self.checkpoints_ui(ui, &checkpoints, compute, device);
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
        // A link's run on MNIST waits for the digits (downloading in the browser).
        let waits_for_digits = self.start_soon.as_ref().is_some_and(|run| !run.on_pictures) && !crate::app::mnist_files::ready(ctx);
        if let Some(run) = self.start_soon.take_if(|_| !waits_for_digits) {
            let (device, _) = compute.work_device();
            let device = &device;
            self.family = run.family;
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

    fn run_ui(&mut self, ui: &mut egui::Ui, device: &Device) {
        let active = self.job.as_ref().is_some_and(TrainJob::is_active);
        ui.add_enabled_ui(!active, |ui| {
            ui.horizontal_wrapped(|ui| {
                ui.label("Model:");
                let before = (self.family, self.preset);
                for family in training::FAMILIES {
                    ui.radio_value(&mut self.family, family, family.label()).on_hover_text(family_hover(family));
                }
                egui::ComboBox::from_label("preset").selected_text(self.preset.name()).show_ui(ui, |ui| {
                    for p in VarPreset::ALL {
                        ui.selectable_value(&mut self.preset, p, p.name());
                    }
                });
                if (self.family, self.preset) != before {
                    (self.tokenizer_steps, self.transformer_steps) = training::default_steps(self.family, self.preset);
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
                TrainStatus::Running if ui.button("Pause").clicked() => job.set_paused(true),
                TrainStatus::Paused if ui.button("Resume").clicked() => job.set_paused(false),
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

    /// Times one step of each model for the chosen dataset, family and preset (once per choice, in
    /// the background, not while training) and shows how long the run would take. Hidden while a
    /// run is active.
    fn estimate_ui(&mut self, ui: &mut egui::Ui, device: &Device, active: bool) {
        let Some(dataset) = self.dataset.clone() else { return };
        if active {
            return; // the run's own progress shows its time per step and the time left
        }
        let key = (dataset.name().to_string(), self.family, self.preset);
        if !self.estimates_asked.contains(&key) {
            self.estimates_asked.push(key.clone());
            let (slot, device, ctx, family, preset) = (self.estimates.clone(), device.clone(), ui.ctx().clone(), self.family, self.preset);
            let asked = key.clone();
            training::spawn_estimate(dataset, family, preset, device, move |result| {
                slot.lock().unwrap_or_else(|p| p.into_inner()).push((asked, result.map_err(|e| format!("{e:#}"))));
                ctx.request_repaint();
            });
        }
        let estimates = self.estimates.lock().unwrap_or_else(|p| p.into_inner());
        match estimates.iter().find(|(timed, _)| *timed == key).map(|(_, result)| result) {
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

    /// Continues the run `c` belongs to, in its family: a tokenizer's, or a transformer's with a
    /// tokenizer from `candidates` (in order of preference; the one it was trained with when
    /// listed).
    fn resume_from(&mut self, c: &SavedCheckpoint, candidates: &[&SavedCheckpoint], device: &Device, ctx: &egui::Context) {
        let Some(dataset) = self.dataset.clone() else { return };
        let resume = match c.phase {
            Phase::Tokenizer => Resume::Tokenizer(c.bytes.clone()),
            Phase::Transformer => match c.tokenizer_among(candidates) {
                Some(t) if c.tokenizer_id.is_none() || t.tokenizer_id == c.tokenizer_id => {
                    Resume::Transformer { tokenizer: t.bytes.clone(), transformer: c.bytes.clone() }
                }
                Some(_) => {
                    self.message = Some(Err(format!(
                        "{} was trained with a tokenizer that is not listed: drop the {} of its run too",
                        c.describe(),
                        Phase::Tokenizer.file_name(c.family)
                    )));
                    return;
                }
                None => {
                    self.message = Some(Err(format!(
                        "resuming a {} transformer needs its tokenizer: drop its tokenizer.ckpt too",
                        c.family.label()
                    )));
                    return;
                }
            },
        };
        // The run goes on in the checkpoint's family, exactly: to its own step counts and schedule.
        self.family = c.family;
        self.message = Some(Ok(format!("resuming {} (to the end of its own schedule)", c.describe())));
        self.start(dataset, device, ctx, Some(resume));
    }

    fn start(&mut self, dataset: Arc<dyn Dataset>, device: &Device, ctx: &egui::Context, resume: Option<Resume>) {
        if let Some(old) = &self.job {
            old.stop();
        }
        self.serial += 1;
        self.strip.clear();
        // Named by the start time, so a run never overwrites an earlier one (across restarts too);
        // a RAR or column run's name says so (every family's tokenizer is `tokenizer.ckpt`).
        let started = web_time::SystemTime::now().duration_since(web_time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let run_name = match self.family {
            Family::Var => format!("{}-{started}", dataset.name()),
            family => format!("{}-{}-{started}", dataset.name(), family.key()),
        };
        #[cfg(not(target_arch = "wasm32"))]
        let run_name = checkpoints::fresh_run_name(&runs_dir(), run_name);
        #[cfg(not(target_arch = "wasm32"))]
        let out_dir = Some(runs_dir().join(&run_name));
        #[cfg(target_arch = "wasm32")]
        let out_dir = None;
        let request = TrainRequest {
            dataset,
            family: self.family,
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
}

/// What each family's choice says on hover.
fn family_hover(family: Family) -> &'static str {
    match family {
        Family::Var => "VAR: a multi-scale VQ-VAE, then a transformer that predicts the next scale",
        Family::Rar => "RAR: a MaskGIT-VQGAN, then a transformer trained on random token orders annealed to raster order",
        Family::Columns => {
            "the equivariant column generator: a column tokenizer, then a windowed causal transformer with a flow-matching head that draws images column by column, as wide as asked"
        }
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

/// `42 s` or `3.5 min`.
fn minutes(seconds: f64) -> String {
    if seconds < 90.0 { format!("{seconds:.0} s") } else { format!("{:.1} min", seconds / 60.0) }
}
