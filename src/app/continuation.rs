//! "Continue a picture" in the Generate tab, for the column generator: a real image (a procedural
//! scene, a held-out MNIST digit, or a picture dropped on the window) is brought to the model's
//! height and channels, its first columns are kept (the model encodes them) and the rest of the
//! width is generated ([`Continuation`]).

use std::collections::HashMap;

use egui::{Color32, Rect, Sense, Stroke, TextureHandle, TextureOptions, pos2, vec2};
use image::DynamicImage;
use tessera_data::{Dataset, Image, Mnist, SceneClass, render_scene};
use tessera_models::generator::{Continuation, ImageGenerator};

use super::column_canvas;

/// Height of the source's preview, in points.
const PREVIEW_HEIGHT: f32 = 96.0;

/// A picture to continue, fitted to the model.
#[derive(Clone, Debug, PartialEq)]
pub struct Source {
    /// `C × H × W` at the model's height and channels, `W` whole columns.
    pub image: Image,
    /// Where it came from, for the caption.
    pub name: String,
}

/// `picture` as the column generator `model` takes it: scaled to its height (keeping the
/// proportions), converted to its channels, cropped to whole columns, at most `max_columns`.
/// Errors when fewer than two columns are left (the column convolutions need two).
pub fn fit(picture: &DynamicImage, model: &dyn ImageGenerator, max_columns: usize) -> anyhow::Result<Image> {
    let info = model.info();
    let column = info.width / info.forward_passes.max(1);
    let height = info.height;
    let scaled = picture.width() as u64 * height as u64 / u64::from(picture.height().max(1));
    let columns = (scaled as usize / column).min(max_columns);
    anyhow::ensure!(columns >= 2, "this picture is too narrow to continue: it needs to be at least {} pixels wide at a height of {height}", 2 * column);
    let width = columns * column;
    // Scale to the height first, then crop the right edge to whole columns (no squeezing).
    let scaled = picture.resize_exact(scaled as u32, height as u32, image::imageops::FilterType::Triangle);
    let cropped = scaled.crop_imm(0, 0, width as u32, height as u32);
    Ok(Image::from_dynamic_image(&cropped, info.channels))
}

/// What the user set up to continue.
#[derive(Default)]
pub struct ContinuePanel {
    source: Option<Source>,
    /// Token columns of the source to keep (0: half of them).
    keep: usize,
    scene_class: usize,
    scene_seed: u64,
    digit: usize,
    heldout: Option<Mnist>,
    textures: HashMap<u64, TextureHandle>,
    serial: u64,
    message: Option<Result<String, String>>,
}

impl ContinuePanel {
    /// A picture dropped on the window (its file's bytes).
    pub fn dropped(&mut self, name: String, bytes: &[u8], model: &dyn ImageGenerator, max_columns: usize) {
        let picked = image::load_from_memory(bytes)
            .map_err(|e| anyhow::anyhow!("{name} is not a picture this app can read: {e}"))
            .and_then(|picture| fit(&picture, model, max_columns))
            .map(|image| Source { image, name });
        self.set(picked);
    }

    fn set(&mut self, picked: anyhow::Result<Source>) {
        match picked {
            Ok(source) => {
                self.message = Some(Ok(format!("continuing {}", source.name)));
                self.source = Some(source);
                self.keep = 0;
                self.serial += 1;
                self.textures.clear();
            }
            Err(e) => self.message = Some(Err(format!("{e:#}"))),
        }
    }

    /// The source chooser, its preview with the kept columns, and the button; returns the
    /// continuation when it is pressed. `width`: the columns the image will have in all.
    pub fn ui(&mut self, ui: &mut egui::Ui, model: &dyn ImageGenerator, width: usize, max_columns: usize, can_start: bool) -> Option<Continuation> {
        let info = model.info();
        let column = info.width / info.forward_passes.max(1);
        let mut picked = None;
        ui.horizontal_wrapped(|ui| {
            ui.label("Source:");
            egui::ComboBox::from_id_salt("scene class")
                .selected_text(SceneClass::ALL[self.scene_class.min(SceneClass::ALL.len() - 1)].name())
                .show_ui(ui, |ui| {
                    for (i, class) in SceneClass::ALL.iter().enumerate() {
                        ui.selectable_value(&mut self.scene_class, i, class.name());
                    }
                });
            ui.add(egui::DragValue::new(&mut self.scene_seed).prefix("seed "));
            if ui.button("Scene").on_hover_text("a procedural scene of this class and seed, the training width wide").clicked() {
                let class = SceneClass::ALL[self.scene_class.min(SceneClass::ALL.len() - 1)];
                let scene = render_scene(class, self.scene_seed, info.height, info.width);
                let name = format!("a {} scene (seed {})", class.name(), self.scene_seed);
                picked = Some(to_dynamic(&scene).and_then(|p| fit(&p, model, max_columns)).map(|image| Source { image, name }));
            }
            ui.separator();
            if super::mnist_files::ready(ui.ctx()) {
                let heldout = self.heldout.get_or_insert_with(Mnist::heldout);
                ui.add(egui::DragValue::new(&mut self.digit).range(0..=heldout.len() - 1)).on_hover_text("which held-out MNIST digit");
                if ui.button("Held-out digit").clicked() {
                    let sample = heldout.get(self.digit);
                    let name = format!("held-out digit {} (a {})", self.digit, sample.label);
                    picked = Some(to_dynamic(&sample.image).and_then(|p| fit(&p, model, max_columns)).map(|image| Source { image, name }));
                }
            } else {
                super::mnist_files::status_ui(ui);
            }
            ui.weak("or drop a picture on the window");
        });
        if let Some(picked) = picked {
            self.set(picked);
        }
        super::show_outcome(ui, &self.message);
        let source = self.source.clone()?;
        let columns = source.image.width / column.max(1);
        // Keep at least one column and leave at least one to generate.
        let most = columns.min(width.saturating_sub(1));
        if most == 0 {
            ui.colored_label(ui.visuals().warn_fg_color, "make the width above at least 2 columns to continue a picture");
            return None;
        }
        if self.keep == 0 {
            self.keep = (columns / 2).max(1);
        }
        self.keep = self.keep.clamp(1, most);
        let texture = self
            .textures
            .entry(self.serial)
            .or_insert_with(|| {
                let rgb = source.image.to_rgb8();
                let color = egui::ColorImage::from_rgb([rgb.width() as usize, rgb.height() as usize], rgb.as_raw());
                ui.ctx().load_texture("continue-source", color, TextureOptions::NEAREST)
            })
            .clone();
        let size = column_canvas::thumbnail(source.image.width, source.image.height, vec2(ui.available_width().min(768.0), PREVIEW_HEIGHT));
        let (response, painter) = ui.allocate_painter(size, Sense::hover());
        let rect = response.rect;
        painter.image(texture.id(), rect, Rect::from_min_max(pos2(0.0, 0.0), pos2(1.0, 1.0)), Color32::WHITE);
        let kept_x = rect.min.x + rect.width() * self.keep as f32 / columns as f32;
        painter.rect_filled(Rect::from_x_y_ranges(kept_x..=rect.max.x, rect.y_range()), 0.0, Color32::from_black_alpha(150));
        painter.rect_stroke(Rect::from_x_y_ranges(rect.min.x..=kept_x, rect.y_range()), 0.0, Stroke::new(2.0, Color32::YELLOW), egui::StrokeKind::Inside);
        response.on_hover_text(format!("{}: the outlined columns are kept, the rest is generated", source.name));
        let mut go = false;
        ui.horizontal_wrapped(|ui| {
            ui.add(egui::Slider::new(&mut self.keep, 1..=most).text(format!("columns kept of {columns}")));
            ui.weak(format!("then {} generated, {width} in all", width - self.keep));
            go = ui.add_enabled(can_start, egui::Button::new("Continue it")).on_hover_text("keep the outlined columns and generate the rest").clicked();
        });
        go.then(|| Continuation { source: source.image.pixels.clone(), width: source.image.width, keep: self.keep })
    }
}

/// An image as an 8-bit picture (for [`fit`]).
fn to_dynamic(image: &Image) -> anyhow::Result<DynamicImage> {
    anyhow::ensure!(matches!(image.channels, 1 | 3), "{} channels cannot be shown", image.channels);
    Ok(DynamicImage::ImageRgb8(image.to_rgb8()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::generation::tests::random_columns;

    fn model(channels: usize) -> std::sync::Arc<dyn ImageGenerator> {
        random_columns(channels)
    }

    #[test]
    fn pictures_are_fitted_to_the_height_channels_and_whole_columns() {
        let gray = model(1);
        // 90 x 60 becomes 48 x 32, then 12 whole columns of 4 px.
        let picture = DynamicImage::ImageRgb8(image::RgbImage::from_pixel(90, 60, image::Rgb([255, 0, 0])));
        let fitted = fit(&picture, gray.as_ref(), 512).unwrap();
        assert_eq!((fitted.channels, fitted.height, fitted.width), (1, 32, 48));
        assert!((fitted.pixels[0] - 0.299).abs() < 0.01, "red as luma: {}", fitted.pixels[0]);
        // At most the columns asked for.
        assert_eq!(fit(&picture, gray.as_ref(), 5).unwrap().width, 20);
        // 30 x 200 is 4 px wide at height 32: one column, too narrow.
        let narrow = DynamicImage::ImageRgb8(image::RgbImage::new(30, 200));
        let e = fit(&narrow, gray.as_ref(), 512).unwrap_err().to_string();
        assert!(e.contains("too narrow") && e.contains("8 pixels"), "{e}");
        // A colour model keeps the colours.
        let colour = fit(&picture, model(3).as_ref(), 512).unwrap();
        assert_eq!((colour.channels, colour.width), (3, 48));
        assert!((colour.pixels[0] - 1.0).abs() < 1e-6 && colour.pixels[48 * 32] < 1e-6);
    }

    #[test]
    fn scenes_and_digits_fit_either_model() {
        for channels in [1, 3] {
            let model = model(channels);
            let scene = render_scene(SceneClass::Sea, 3, 32, 32);
            let fitted = fit(&to_dynamic(&scene).unwrap(), model.as_ref(), 512).unwrap();
            assert_eq!((fitted.channels, fitted.height, fitted.width), (channels, 32, 32));
            let digit = Mnist::heldout().get(0).image;
            assert_eq!(fit(&to_dynamic(&digit).unwrap(), model.as_ref(), 512).unwrap().width, 32);
        }
    }
}
