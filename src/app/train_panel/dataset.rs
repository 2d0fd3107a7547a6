//! The Train panel's dataset: MNIST, the procedural scenes, or the user's pictures (a folder or
//! `.zip`, typed, chosen or dropped), read in the background with progress.

use std::sync::Arc;

use tessera_data::{Dataset, Mnist, Scenes, ScenesConfig};

use crate::app::pictures::{self, PictureImport, PictureSource};
use crate::app::dropped;
use super::{Choice, TrainPanel};

impl TrainPanel {
    /// Files dropped on the window: a `.zip` (or on the desktop a folder) of pictures becomes the
    /// dataset; checkpoint files join the list (a tokenizer and a transformer can then go to
    /// Generate); anything else gets a message.
    pub(super) fn take_uploads(&mut self, ctx: &egui::Context) {
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
    pub(super) fn import_pictures(&mut self, source: PictureSource, ctx: &egui::Context) {
        self.choice = Choice::Folder;
        self.dataset = None;
        self.dataset_note = None;
        self.skipped.clear();
        let resolution = crate::app::training::image_size(self.family, self.preset);
        let options = tessera_data::FolderOptions { resolution, ..Default::default() };
        self.import = Some(PictureImport::start(source, options, ctx));
    }

    /// Takes a finished import's dataset, or its error.
    pub(super) fn finish_import(&mut self) {
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

    /// In the browser, takes folders dropped anywhere on the page as the dataset (eframe only
    /// reads dropped files). On the desktop eframe gives folders as paths.
    pub fn listen_for_pictures(&self, ctx: &egui::Context) {
        #[cfg(target_arch = "wasm32")]
        crate::web::pictures::listen_for_folder_drops(ctx, self.picture_inbox.clone());
        #[cfg(not(target_arch = "wasm32"))]
        let _ = ctx;
    }

    pub(super) fn dataset_ui(&mut self, ui: &mut egui::Ui) {
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
                // In the browser the digits may still be downloading: asked again next frame.
                Choice::Mnist if !crate::app::mnist_files::ready(ui.ctx()) => {}
                Choice::Mnist => self.set_dataset(Ok(Arc::new(Mnist::train()))),
                Choice::Scenes => self.set_dataset(Scenes::new(ScenesConfig::default()).map(|s| Arc::new(s) as Arc<dyn Dataset>).map_err(|e| e.to_string())),
                Choice::Folder => {}
            }
        }
        if self.choice == Choice::Folder {
            self.folder_ui(ui);
        }
        if self.choice == Choice::Mnist {
            crate::app::mnist_files::status_ui(ui);
        }
        crate::app::show_outcome(ui, &self.dataset_note);
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

    pub(super) fn set_dataset(&mut self, dataset: Result<Arc<dyn Dataset>, String>) {
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
        crate::app::hooks::report_dataset(note.as_deref());
    }
}
