//! The Tessera app, the same on the desktop and in the browser.
//!
//! `TesseraApp { state, compute, .. }`: `State` is what persists between runs (serde, every field
//! defaulted so older saves still load); the compute device and textures are rebuilt at start.
//! Each panel is a file with a `ui` function; the Generate panel's parts (settings and URL,
//! background jobs, player, token maps, exports, page hooks) are files of their own.

mod column_canvas;
mod continuation;
mod data_panel;
mod device_panel;
mod dropped;
mod edit_panel;
pub mod export;
mod generate_panel;
pub mod generate_settings;
pub mod generation;
mod hooks;
mod lesson;
mod mnist_files;
pub mod pictures;
mod train_panel;
pub mod training;
pub mod player;
pub mod token_map;

use serde::{Deserialize, Serialize};
use tessera_kernels::device::Compute;

/// A panel's last outcome, if any: news in weak text, an error in the error colour.
fn show_outcome(ui: &mut egui::Ui, outcome: &Option<Result<String, String>>) {
    match outcome {
        Some(Ok(news)) => {
            ui.weak(news);
        }
        Some(Err(e)) => {
            ui.colored_label(ui.visuals().error_fg_color, e);
        }
        None => {}
    }
}

/// The panels, in the order of the tab bar.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Tab {
    #[default]
    Generate,
    Edit,
    Train,
    Data,
    Device,
}

impl Tab {
    const ALL: [Tab; 5] = [Tab::Generate, Tab::Edit, Tab::Train, Tab::Data, Tab::Device];

    /// The tab a link names (`tab=edit`), by its label in any case.
    pub fn from_key(key: &str) -> Option<Tab> {
        Self::ALL.into_iter().find(|t| t.label().eq_ignore_ascii_case(key))
    }

    fn label(self) -> &'static str {
        match self {
            Tab::Generate => "Generate",
            Tab::Edit => "Edit",
            Tab::Train => "Train",
            Tab::Data => "Data",
            Tab::Device => "Device",
        }
    }
}

/// Everything the app remembers between runs.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct State {
    pub tab: Tab,
    /// Plain burn ops instead of the WGSL kernels (Device tab), for comparison.
    pub reference_ops: bool,
    /// Sample and train on a software adapter although the CPU backend is faster there (the
    /// Device tab; a link's `device=gpu` does it for its page only): [`Compute::set_software_adapter_forced`].
    pub software_adapter: bool,
    pub generate: generate_settings::GenerateSettings,
    pub data: data_panel::Settings,
}

pub struct TesseraApp {
    pub state: State,
    pub compute: Compute,
    /// The user closed the banner that says why computing is on the CPU.
    notice_dismissed: bool,
    /// The page has been told the GPU device was lost (browser).
    #[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
    loss_shown: bool,
    data: data_panel::DataPanel,
    generate: generate_panel::GeneratePanel,
    edit: edit_panel::EditPanel,
    train: train_panel::TrainPanel,
    /// A lesson link's controls (everything without one); never saved: it lives in the link.
    shown: lesson::Shown,
    lesson_editor: lesson::Editor,
}

impl TesseraApp {
    pub fn new(cc: &eframe::CreationContext<'_>) -> Self {
        Self::with_query(cc, None)
    }

    /// The app opened with a URL query (`?generator=var&class=3&seed=1&autorun=1`, see
    /// [`generate_settings`]): its settings replace the remembered ones and open the Generate tab.
    pub fn with_query(cc: &eframe::CreationContext<'_>, query: Option<&str>) -> Self {
        let mut state = cc
            .storage
            .and_then(|s| eframe::get_value::<State>(s, eframe::APP_KEY))
            .unwrap_or_default();
        // A save is checked like a link: an old or edited one may hold NaN or out-of-range values.
        state.generate = state.generate.clamped();
        tessera_kernels::set_reference_ops(state.reference_ops);
        let request = query
            .filter(|q| !q.trim_start_matches('?').is_empty())
            .map(generate_settings::GenerateSettings::from_query);
        // A link's device=gpu|auto holds for this page only; the Device tab's choice is remembered.
        let link_device = request.as_ref().and_then(|r| r.software_adapter);
        let (autorun, train_now, warnings, lesson) = match request {
            Some(r) => {
                state.generate = r.settings;
                state.tab = if r.train.is_some() { Tab::Train } else { r.tab.unwrap_or(Tab::Generate) };
                (r.autorun, r.train, r.warnings, r.lesson)
            }
            None => (false, None, Vec::new(), None),
        };
        let shown = lesson::Shown { lesson, show_all: false };
        let mut warnings = warnings;
        // A lesson that hides the Train tab starts no training: the student could neither see nor stop it.
        let train_now = train_now.filter(|_| {
            let visible = shown.has(lesson::Control::TrainTab);
            if !visible {
                warnings.push("ignored train=: the lesson hides the Train tab".into());
            }
            visible
        });
        let compute = crate::gpu_setup::compute_from_render_state(cc.wgpu_render_state.as_ref());
        compute.set_software_adapter_forced(link_device.unwrap_or(state.software_adapter));
        log::info!("Tessera computes on {}", compute.describe());
        let mut generate = generate_panel::GeneratePanel::new(&cc.egui_ctx, &compute, &state.generate, autorun, warnings);
        generate.lesson_query = shown.query();
        hooks::report_lesson(&shown);
        let mut train = train_panel::TrainPanel::default();
        train.load_stored(&cc.egui_ctx);
        train.listen_for_pictures(&cc.egui_ctx);
        if let Some(run) = train_now {
            train.start_soon(run);
        }
        Self {
            state,
            compute,
            notice_dismissed: false,
            loss_shown: false,
            data: Default::default(),
            generate,
            edit: Default::default(),
            train,
            shown,
            lesson_editor: Default::default(),
        }
    }
}

impl TesseraApp {
    /// The GPU device is gone (driver reset, GPU unplugged, the browser reclaimed it): say what is
    /// safe and offer to go on computing on the CPU, where the shipped models load again and
    /// training can resume from its checkpoints.
    fn lost_device_ui(&mut self, ui: &mut egui::Ui) {
        let saved = if cfg!(target_arch = "wasm32") {
            "Checkpoints already saved are in this page's storage; after a reload the Train tab lists them again."
        } else {
            "Checkpoints already saved are in the runs folder; the Train tab lists them again at the next start."
        };
        ui.colored_label(ui.visuals().error_fg_color, format!("The GPU device was lost ({}). Work on it has stopped. {saved}", self.compute.describe()));
        ui.horizontal(|ui| {
            if ui.button("Continue on the CPU").on_hover_text("load the models again on the CPU backend (slower, but it works)").clicked() {
                self.compute = Compute::cpu(Some("computing on the CPU because the GPU device was lost".into()));
                self.notice_dismissed = false;
                self.generate = generate_panel::GeneratePanel::new(ui.ctx(), &self.compute, &self.state.generate, false, Vec::new());
                self.generate.lesson_query = self.shown.query();
                #[cfg(target_arch = "wasm32")]
                crate::web::set_status("adapter", self.compute.describe().into());
            }
            ui.weak(if cfg!(target_arch = "wasm32") { "or reload the page to ask the browser for the GPU again" } else { "or restart Tessera to ask for the GPU again" });
        });
    }
}

impl eframe::App for TesseraApp {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        self.generate.poll(ui.ctx(), &self.state.generate);
        self.train.poll(ui.ctx(), &self.compute);
        // Pictures for training (a folder or a .zip dropped anywhere) open the Train tab, which reads them.
        let pictures_dropped = ui.input(|i| {
            i.raw.dropped_files.iter().any(|f| pictures::is_zip(&f.path().to_string_lossy()) || (cfg!(not(target_arch = "wasm32")) && f.path().is_dir()))
        });
        if std::mem::take(&mut self.train.wants_focus) || pictures_dropped {
            self.state.tab = Tab::Train;
        }
        egui::Panel::top("tabs").show(ui, |ui| {
            ui.horizontal(|ui| {
                ui.heading("Tessera");
                ui.separator();
                // The Edit tab only for models that offer edits (while loading: VAR's, which does).
                let can_edit = self.generate.ready_models().is_none_or(|m| !m.controls().edits.is_empty());
                let shown = &self.shown;
                for tab in Tab::ALL.into_iter().filter(|&t| (t != Tab::Edit || can_edit) && shown.has_tab(t)) {
                    ui.selectable_value(&mut self.state.tab, tab, tab.label());
                }
                ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                    if !self.shown.hides() && ui.button("Lesson…").on_hover_text("make a link that shows students only the controls you choose").clicked() {
                        self.lesson_editor.open = true;
                    }
                    let device = self.compute.describe();
                    if self.compute.is_lost() {
                        ui.colored_label(ui.visuals().error_fg_color, format!("GPU lost: {device}"));
                    } else {
                        ui.weak(device);
                    }
                });
            });
        });
        if self.shown.lesson.is_some() {
            let hid = self.shown.hides();
            egui::Panel::top("lesson").show(ui, |ui| self.shown.banner_ui(ui));
            if hid != self.shown.hides() {
                hooks::report_lesson(&self.shown);
            }
        }
        // A tab the lesson hides (a link's tab=, or back from "show all") gives way to Generate.
        if !self.shown.has_tab(self.state.tab) {
            self.state.tab = Tab::Generate;
        }
        if self.lesson_editor.open {
            self.lesson_editor.window(ui.ctx(), &self.state.generate);
        }
        if self.compute.is_lost() {
            // In the browser the canvas draws with the same device, so it may show nothing more:
            // the page's own alert box says it too, once.
            #[cfg(target_arch = "wasm32")]
            if !std::mem::replace(&mut self.loss_shown, true) {
                let text = "The GPU device was lost, so Tessera stopped drawing and the work on the GPU stopped (a training run on the CPU goes on to its end). Checkpoints already saved are in this page's storage: reload the page and the Train tab lists them again.";
                hooks::report_state(hooks::AppState::Error, Some(text));
                crate::web::show_message(text);
            }
            egui::Panel::top("lost").show(ui, |ui| self.lost_device_ui(ui));
        }
        if let Some(notice) = self.compute.notice.clone().filter(|_| !self.notice_dismissed) {
            egui::Panel::top("notice").show(ui, |ui| {
                // Dismiss first and the text wrapped: a long notice must not push the button off screen.
                ui.horizontal_wrapped(|ui| {
                    self.notice_dismissed = ui.small_button("Dismiss").clicked();
                    ui.colored_label(ui.visuals().warn_fg_color, notice);
                });
            });
        }
        egui::CentralPanel::default().show(ui, |ui| match self.state.tab {
            Tab::Generate => {
                egui::ScrollArea::vertical().show(ui, |ui| self.generate.ui(ui, &mut self.state.generate, &self.shown));
            }
            Tab::Edit => {
                let (models, open) = (self.generate.ready_models(), self.generate.open_image());
                egui::ScrollArea::vertical().show(ui, |ui| self.edit.ui(ui, models, open));
            }
            Tab::Train => {
                egui::ScrollArea::vertical().show(ui, |ui| self.train.ui(ui, &self.compute));
                if let Some(models) = self.train.for_generate.take() {
                    (self.state.generate.generator, self.state.generate.model) = (models.info().family, None);
                    self.generate.set_models(models);
                }
            }
            Tab::Data => self.data.ui(ui, &mut self.state.data),
            Tab::Device => {
                if device_panel::ui(ui, &self.compute, &mut self.state.reference_ops, &mut self.state.software_adapter) {
                    // Loaded models stay where they were loaded: reload on the new work device.
                    self.generate.reload_shipped();
                }
            }
        });
    }

    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        eframe::set_value(storage, eframe::APP_KEY, &self.state);
    }
}
