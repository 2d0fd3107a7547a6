//! The Edit panel: zero-shot editing, for models whose controls offer edits (VAR). Pick a source (a held-out digit, the image open in
//! Generate, or a picture dropped on the window), paint a region over it, then in-paint the
//! region, out-paint around it, or regenerate it as another class.
//!
//! The edit runs as a [`generation`] job like Generate's, so the page stays live and every scale
//! of every result is kept.

use std::collections::HashMap;
use std::sync::Arc;

use egui::{Color32, ColorImage, Rect, Sense, TextureHandle, TextureOptions, pos2, vec2};
use tessera_data::{Dataset, Image, Mnist};
use tessera_models::generator::{Edit, EditKind, ImageGenerator};

use super::{dropped, export};
use super::generate_settings::{GenerateSettings, MAX_COUNT, MAX_GUIDANCE};
use super::generation::{self, Job, JobStatus};

/// On-screen sizes, in points.
const CANVAS: f32 = 256.0;
const THUMB: f32 = 96.0;
/// The region's tint over the source.
const REGION_TINT: Color32 = Color32::from_rgba_premultiplied(150, 30, 30, 120);

/// The image being edited, at the model's resolution.
struct Source {
    image: Image,
    /// Where it came from, for the panel's caption.
    name: String,
}

pub struct EditPanel {
    source: Option<Source>,
    /// Row-major over the source: true where the user painted.
    region: Vec<bool>,
    kind: EditKind,
    class: usize,
    count: usize,
    seed: u64,
    guidance: f64,
    /// Brush radius in model pixels.
    brush: f32,
    heldout_index: usize,
    heldout: Option<Mnist>,
    job: Option<Job>,
    /// Counts sources and jobs, so an old texture is never shown for a new image.
    serial: u64,
    textures: HashMap<(u64, usize), TextureHandle>,
    message: Option<Result<String, String>>,
    /// Pictures dropped on the window, once read.
    dropped: dropped::Inbox,
}

impl Default for EditPanel {
    fn default() -> Self {
        Self {
            source: None,
            region: Vec::new(),
            kind: EditKind::Inpaint,
            class: 0,
            count: 4,
            seed: 0,
            guidance: 2.0,
            brush: 3.0,
            heldout_index: 0,
            heldout: None,
            job: None,
            serial: 0,
            textures: HashMap::new(),
            message: None,
            dropped: Arc::default(),
        }
    }
}

impl EditPanel {
    /// `generated`: the image open in Generate's player, if any.
    pub fn ui(&mut self, ui: &mut egui::Ui, models: Option<Arc<dyn ImageGenerator>>, generated: Option<Image>) {
        let Some(models) = models else {
            ui.horizontal(|ui| {
                ui.spinner();
                ui.label("Loading the models…");
            });
            return;
        };
        ui.label(format!("Paint a region over an image, then regenerate it: {} edits with no training for the task.", models.info().family));
        self.source_bar(ui, models.as_ref(), generated);
        super::show_outcome(ui, &self.message);
        if self.source.is_none() {
            ui.weak("Choose a source above, or drop a picture on the window.");
            return;
        }
        ui.separator();
        ui.horizontal(|ui| {
            self.canvas(ui);
            ui.vertical(|ui| self.controls(ui, &models));
        });
        ui.separator();
        self.results(ui);
    }

    fn source_bar(&mut self, ui: &mut egui::Ui, model: &dyn ImageGenerator, generated: Option<Image>) {
        let mut picked: Option<anyhow::Result<Source>> = None;
        ui.horizontal_wrapped(|ui| {
            ui.label("Source:");
            if super::mnist_files::ready(ui.ctx()) {
                let heldout = self.heldout.get_or_insert_with(Mnist::heldout);
                ui.add(egui::DragValue::new(&mut self.heldout_index).range(0..=heldout.len() - 1))
                    .on_hover_text("which held-out MNIST digit");
                if ui.button("Held-out digit").clicked() {
                    let sample = heldout.get(self.heldout_index);
                    picked = Some(Ok(Source { image: sample.image, name: format!("held-out digit {} (a {})", self.heldout_index, sample.label) }));
                }
            } else {
                super::mnist_files::status_ui(ui);
            }
            if ui
                .add_enabled(generated.is_some(), egui::Button::new("Image from Generate"))
                .on_disabled_hover_text("generate an image first")
                .clicked()
            {
                picked = generated.map(|image| Ok(Source { image, name: "the image open in Generate".into() }));
            }
            ui.weak("or drop a picture on the window");
        });
        dropped::collect(ui.ctx(), &self.dropped);
        if let Some(read) = dropped::take(&self.dropped).pop() {
            picked = Some(read.and_then(|(name, bytes)| decode_picture(name, &bytes, model)));
        }
        match picked {
            Some(Ok(source)) => self.set_source(source, model),
            Some(Err(e)) => self.message = Some(Err(format!("{e:#}"))),
            None => {}
        }
    }

    fn set_source(&mut self, source: Source, model: &dyn ImageGenerator) {
        let (side, channels) = (model.info().height, model.info().channels);
        if (source.image.channels, source.image.height, source.image.width) != (channels, side, side) {
            self.message = Some(Err(format!(
                "{} is {}x{}x{}; this model edits {channels}x{side}x{side} images",
                source.name, source.image.channels, source.image.height, source.image.width
            )));
            return;
        }
        if self.region.len() != side * side {
            self.region = centre_box(side);
        }
        self.message = Some(Ok(format!("editing {}", source.name)));
        self.source = Some(source);
        self.serial += 1;
        self.textures.clear();
    }

    fn texture(&mut self, ctx: &egui::Context, key: (u64, usize), image: &Image) -> TextureHandle {
        self.textures
            .entry(key)
            .or_insert_with(|| {
                let rgb = image.to_rgb8();
                let color = ColorImage::from_rgb([rgb.width() as usize, rgb.height() as usize], rgb.as_raw());
                ctx.load_texture(format!("edit-{key:?}"), color, TextureOptions::NEAREST)
            })
            .clone()
    }

    /// The source with the region tinted; the primary button paints, the secondary one erases.
    fn canvas(&mut self, ui: &mut egui::Ui) {
        let Some(source) = &self.source else { return };
        let image = source.image.clone();
        let side = image.width;
        let texture = self.texture(ui.ctx(), (self.serial, usize::MAX), &image);
        let (response, painter) = ui.allocate_painter(vec2(CANVAS, CANVAS), Sense::click_and_drag());
        let rect = response.rect;
        painter.image(texture.id(), rect, Rect::from_min_max(pos2(0.0, 0.0), pos2(1.0, 1.0)), Color32::WHITE);
        let cell = CANVAS / side as f32;
        for (i, _) in self.region.iter().enumerate().filter(|(_, r)| **r) {
            let at = rect.min + vec2((i % side) as f32 * cell, (i / side) as f32 * cell);
            painter.rect_filled(Rect::from_min_size(at, vec2(cell, cell)), 0.0, REGION_TINT);
        }
        if let Some(pos) = response.hover_pos() {
            painter.circle_stroke(pos, self.brush * cell, egui::Stroke::new(1.0, Color32::YELLOW));
        }
        let (paint, erase) = ui.input(|i| (i.pointer.primary_down(), i.pointer.secondary_down()));
        if let Some(pos) = response.interact_pointer_pos().filter(|_| paint || erase) {
            let at = (pos - rect.min) / cell;
            brush(&mut self.region, side, (at.x, at.y), self.brush, paint);
        }
        response.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Canvas, true, "mask canvas"));
        response.on_hover_text("paint the region (left button), erase (right button)");
    }

    fn controls(&mut self, ui: &mut egui::Ui, model: &Arc<dyn ImageGenerator>) {
        let info = model.info();
        let side = info.height;
        let painted = self.region.iter().filter(|&&r| r).count();
        ui.weak(format!("{painted} of {} pixels painted", self.region.len()));
        ui.add(egui::Slider::new(&mut self.brush, 0.5..=8.0).text("brush"));
        ui.horizontal(|ui| {
            if ui.button("Clear").clicked() {
                self.region = vec![false; side * side];
            }
            if ui.button("Invert").clicked() {
                self.region.iter_mut().for_each(|r| *r = !*r);
            }
            if ui.button("Centre box").on_hover_text("the middle half of the image").clicked() {
                self.region = centre_box(side);
            }
        });
        ui.separator();
        let offered = model.controls().edits;
        for (kind, label, hint) in [
            (EditKind::Inpaint, "In-paint", "regenerate the region, keep the rest"),
            (EditKind::Outpaint, "Out-paint", "keep the region, regenerate everything around it"),
            (EditKind::Class, "Class edit", "regenerate the region as the class below"),
        ] {
            if offered.contains(&kind) {
                ui.radio_value(&mut self.kind, kind, label).on_hover_text(hint);
            }
        }
        ui.add_enabled_ui(self.kind == EditKind::Class, |ui| {
            egui::ComboBox::from_label("class")
                .selected_text(info.class_name(self.class))
                .show_ui(ui, |ui| {
                    for c in 0..info.num_classes {
                        ui.selectable_value(&mut self.class, c, info.class_name(c));
                    }
                });
            ui.add(egui::Slider::new(&mut self.guidance, 0.0..=MAX_GUIDANCE.min(8.0)).text("guidance"));
        });
        ui.add(egui::Slider::new(&mut self.count, 1..=MAX_COUNT.min(16)).text("edits"));
        ui.horizontal(|ui| {
            let seed = ui.label("seed");
            ui.add(egui::DragValue::new(&mut self.seed)).labelled_by(seed.id);
        });
        let running = self.job.as_ref().is_some_and(Job::is_running);
        let empty = !self.region.iter().any(|&r| r);
        let button = ui
            .add_enabled(!running && !empty, egui::Button::new("Apply edit"))
            .on_disabled_hover_text(if empty { "paint a region first" } else { "an edit is running" });
        if button.clicked()
            && let Some(source) = &self.source
        {
            let settings = GenerateSettings {
                generator: info.family,
                class: self.class.min(info.num_classes.saturating_sub(1)),
                seed: self.seed,
                count: self.count,
                guidance: self.guidance,
                ..GenerateSettings::default()
            };
            let edit = Edit { source: source.image.pixels.clone(), region: self.region.clone(), kind: self.kind };
            self.serial += 1;
            self.job = Some(generation::start(model.clone(), settings, generation::Input::Edit(edit), ui.ctx().clone()));
        }
    }

    fn results(&mut self, ui: &mut egui::Ui) {
        let Some(job) = self.job.clone() else {
            ui.weak("The edits appear here.");
            return;
        };
        let (status, images, steps_done, steps_total, ms) = {
            let p = job.progress();
            let images: Vec<Option<Image>> = p.images.iter().map(|i| i.last().cloned()).collect();
            (p.status.clone(), images, p.steps_done, p.steps_total, p.elapsed_ms)
        };
        match &status {
            JobStatus::Running => {
                ui.horizontal(|ui| {
                    ui.spinner();
                    ui.label(format!("scale {steps_done} of {steps_total}"));
                    if ui.button("Cancel").clicked() {
                        job.cancel();
                    }
                });
            }
            JobStatus::Done => {
                ui.label(format!("{} edit(s) in {ms:.0} ms", images.len()));
            }
            JobStatus::Cancelled => {
                ui.weak("cancelled");
            }
            JobStatus::Failed(e) => {
                ui.colored_label(ui.visuals().error_fg_color, e);
            }
        }
        let done = status == JobStatus::Done;
        let mut chosen = None;
        ui.horizontal_wrapped(|ui| {
            for (i, image) in images.iter().enumerate() {
                let Some(image) = image else { continue };
                // Running jobs show the newest scale; the key changes as scales arrive.
                let key = (self.serial, if done { i } else { 1000 * (steps_done + 1) + i });
                let texture = self.texture(ui.ctx(), key, image);
                ui.vertical(|ui| {
                    ui.add(egui::Image::new(&texture).fit_to_exact_size(vec2(THUMB, THUMB)));
                    ui.add_enabled_ui(done, |ui| {
                        ui.horizontal(|ui| {
                            if ui.small_button("Edit this").on_hover_text("make it the source").clicked() {
                                chosen = Some((i, image.clone()));
                            }
                            if ui.small_button("PNG").on_hover_text("save it").clicked() {
                                let name = format!("tessera-edit-{}-{}.png", self.seed, i + 1);
                                self.message = Some(export::deliver(&name, "image/png", &image.to_png_bytes()));
                            }
                        });
                    });
                });
            }
        });
        if let Some((i, image)) = chosen {
            self.message = Some(Ok(format!("editing edit {}", i + 1)));
            self.source = Some(Source { image, name: format!("edit {}", i + 1) });
            self.serial += 1;
            self.textures.clear();
        }
    }
}

/// A picture's bytes at the model's resolution (centre-cropped to a square).
fn decode_picture(name: String, bytes: &[u8], model: &dyn ImageGenerator) -> anyhow::Result<Source> {
    let picture = image::load_from_memory(bytes).map_err(|e| anyhow::anyhow!("{name} is not a picture this app can read: {e}"))?;
    let (side, channels) = (model.info().height as u32, model.info().channels);
    let picture = picture.resize_to_fill(side, side, image::imageops::FilterType::Lanczos3);
    Ok(Source { image: Image::from_dynamic_image(&picture, channels), name })
}

/// The middle half of a `side × side` image.
fn centre_box(side: usize) -> Vec<bool> {
    let inside = |v: usize| (side / 4..side - side / 4).contains(&v);
    (0..side * side).map(|i| inside(i % side) && inside(i / side)).collect()
}

/// Sets (`paint`) or clears every pixel whose centre is within `radius` of `at` (in pixels).
fn brush(region: &mut [bool], side: usize, at: (f32, f32), radius: f32, paint: bool) {
    for (i, r) in region.iter_mut().enumerate() {
        let (dx, dy) = ((i % side) as f32 + 0.5 - at.0, (i / side) as f32 + 0.5 - at.1);
        if dx * dx + dy * dy <= radius * radius {
            *r = paint;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_brush_paints_a_disc_and_erases_it() {
        let mut region = vec![false; 32 * 32];
        brush(&mut region, 32, (10.0, 20.0), 2.0, true);
        let painted: Vec<usize> = (0..region.len()).filter(|&i| region[i]).collect();
        // The 12 pixel centres within 2 px of (10, 20).
        assert_eq!(painted.len(), 12, "{painted:?}");
        assert!(region[19 * 32 + 9] && region[20 * 32 + 10] && !region[20 * 32 + 12]);
        brush(&mut region, 32, (10.0, 20.0), 3.0, false);
        assert!(!region.iter().any(|&r| r));
    }

    #[test]
    fn the_centre_box_is_the_middle_half() {
        let region = centre_box(32);
        assert_eq!(region.iter().filter(|&&r| r).count(), 16 * 16);
        assert!(region[8 * 32 + 8] && region[23 * 32 + 23] && !region[7 * 32 + 8] && !region[8 * 32 + 24]);
    }
}
