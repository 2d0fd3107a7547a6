//! The Data panel: browse the built-in datasets as a labelled grid.

use serde::{Deserialize, Serialize};
use tessera_data::{Dataset, Mnist, SceneClass, Scenes, ScenesConfig, preview_grid};

/// Which built-in dataset the panel shows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Choice {
    #[default]
    MnistTrain,
    MnistHeldout,
    Scenes,
}

impl Choice {
    const ALL: [Choice; 3] = [Choice::MnistTrain, Choice::MnistHeldout, Choice::Scenes];
    fn label(self) -> &'static str {
        match self {
            Choice::MnistTrain => "MNIST (training split)",
            Choice::MnistHeldout => "MNIST (held out)",
            Choice::Scenes => "Procedural scenes",
        }
    }
}

/// What the panel remembers between runs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    pub choice: Choice,
    /// Scenes: width in pixels (height is 32); wider scenes show their translation invariance.
    pub scene_width: usize,
    pub scene_seed: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Self { choice: Choice::MnistTrain, scene_width: 32, scene_seed: 0 }
    }
}

/// The grid on screen, rebuilt only when the settings change.
#[derive(Default)]
pub struct DataPanel {
    shown: Option<(Settings, egui::TextureHandle, String)>,
}

const PER_CLASS: usize = 8;

fn build(settings: &Settings) -> Result<(image::RgbImage, String), String> {
    let dataset: Box<dyn Dataset> = match settings.choice {
        Choice::MnistTrain => Box::new(Mnist::train()),
        Choice::MnistHeldout => Box::new(Mnist::heldout()),
        Choice::Scenes => Box::new(
            Scenes::new(ScenesConfig {
                height: 32,
                width: settings.scene_width,
                len: SceneClass::ALL.len() * PER_CLASS,
                seed: settings.scene_seed,
            })
            .map_err(|e| e.to_string())?,
        ),
    };
    let summary = format!(
        "{} images · {} classes · {}×{}×{}",
        dataset.len(),
        dataset.class_names().len(),
        dataset.channels(),
        dataset.height(),
        dataset.width()
    );
    Ok((preview_grid(dataset.as_ref(), PER_CLASS, 2), summary))
}

impl DataPanel {
    pub fn ui(&mut self, ui: &mut egui::Ui, settings: &mut Settings) {
        ui.horizontal(|ui| {
            egui::ComboBox::from_label("Dataset")
                .selected_text(settings.choice.label())
                .show_ui(ui, |ui| {
                    for c in Choice::ALL {
                        ui.selectable_value(&mut settings.choice, c, c.label());
                    }
                });
            if settings.choice == Choice::Scenes {
                ui.add(egui::Slider::new(&mut settings.scene_width, 32..=256).text("width"));
                ui.add(egui::DragValue::new(&mut settings.scene_seed).prefix("seed "));
            }
        });
        let mnist = matches!(settings.choice, Choice::MnistTrain | Choice::MnistHeldout);
        if mnist && !super::mnist_files::ready(ui.ctx()) {
            super::mnist_files::status_ui(ui);
            return;
        }
        if self.shown.as_ref().is_none_or(|(s, _, _)| s != settings) {
            match build(settings) {
                Ok((grid, summary)) => {
                    let size = [grid.width() as usize, grid.height() as usize];
                    let image = egui::ColorImage::from_rgb(size, grid.as_raw());
                    let texture = ui.ctx().load_texture("dataset-grid", image, egui::TextureOptions::NEAREST);
                    self.shown = Some((settings.clone(), texture, summary));
                }
                Err(e) => {
                    ui.colored_label(ui.visuals().error_fg_color, e);
                    return;
                }
            }
        }
        if let Some((_, texture, summary)) = &self.shown {
            ui.label(summary);
            egui::ScrollArea::both().show(ui, |ui| {
                ui.image(texture);
            });
        }
    }
}
