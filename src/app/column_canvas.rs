//! How the player shows a column run (the equivariant generator): one canvas as wide as the run,
//! gray right of the columns made at the step on screen, the column made at that step outlined
//! (as RAR's token map outlines its current cell). The canvas is the run's newest decode, shared
//! by all its frames ([`super::generation::StepFrame`]): the gray and the outline are drawn over
//! it, so scrubbing through hundreds of columns needs one texture, not one per step.
//!
//! Wide images are scaled to the panel's width down to [`MIN_SCALE`], and scroll sideways beyond
//! that, following the column being made.

use egui::{Color32, Rect, Sense, Stroke, TextureHandle, pos2, vec2};

use super::generation::{StepFrame, UNMADE};
use super::token_map::CURRENT;

/// Screen points per image pixel, at least (below this a 32-pixel-high image is too small to
/// read, and the canvas scrolls instead).
pub const MIN_SCALE: f32 = 2.0;

/// How many points per pixel a `width × height` canvas gets in `available` points of width, at
/// most `max_height` points high: it fits the width when it can, else it scrolls at [`MIN_SCALE`].
pub fn scale(width: usize, height: usize, available: f32, max_height: f32) -> f32 {
    let fit = available / width.max(1) as f32;
    fit.min(max_height / height.max(1) as f32).max(MIN_SCALE)
}

/// A thumbnail's size for a `width × height` image: as large as fits in `max` with the image's
/// proportions.
pub fn thumbnail(width: usize, height: usize, max: egui::Vec2) -> egui::Vec2 {
    let s = (max.x / width.max(1) as f32).min(max.y / height.max(1) as f32);
    vec2(width as f32 * s, height as f32 * s)
}

/// The color of pixels not made yet.
fn unmade() -> Color32 {
    let v = (UNMADE * 255.0).round() as u8;
    Color32::from_gray(v)
}

/// Draws `frame` (a column run's step) over `texture` (its canvas), `max_height` points high at
/// most; `follow` scrolls the column being made into view.
pub fn show(ui: &mut egui::Ui, texture: &TextureHandle, frame: &StepFrame, max_height: f32, follow: bool) {
    let (w, h) = (frame.partial.width, frame.partial.height);
    let s = scale(w, h, ui.available_width(), max_height);
    egui::ScrollArea::horizontal().id_salt("column canvas").auto_shrink([false, true]).show(ui, |ui| {
        let (response, painter) = ui.allocate_painter(vec2(w as f32 * s, h as f32 * s), Sense::hover());
        let rect = response.rect;
        painter.image(texture.id(), rect, Rect::from_min_max(pos2(0.0, 0.0), pos2(1.0, 1.0)), Color32::WHITE);
        let x = |px: usize| rect.min.x + px as f32 * s;
        if let Some(c) = frame.columns.filter(|c| c.done * c.width < w) {
            painter.rect_filled(Rect::from_x_y_ranges(x(c.done * c.width)..=rect.max.x, rect.y_range()), 0.0, unmade());
        }
        if let Some(column) = frame.current_column() {
            let outline = Rect::from_x_y_ranges(x(column.start)..=x(column.end), rect.y_range());
            // White inside a dark line: seen on light and dark images alike.
            painter.rect_stroke(outline, 0.0, Stroke::new(3.0, Color32::BLACK), egui::StrokeKind::Inside);
            painter.rect_stroke(outline.shrink(1.0), 0.0, Stroke::new(1.5, Color32::from_rgb(CURRENT[0], CURRENT[1], CURRENT[2])), egui::StrokeKind::Inside);
            if follow {
                ui.scroll_to_rect(outline, Some(egui::Align::Center));
            }
        }
        let done = frame.columns.map_or(0, |c| c.done);
        response.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Image, true, format!("column canvas, {done} columns made, {w}x{h} pixels")));
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn narrow_canvases_fill_the_height_and_wide_ones_fit_the_width_or_scroll() {
        // The training width (32 px): as high as the player allows.
        assert_eq!(scale(32, 32, 1200.0, 224.0), 7.0);
        // 8 times wider: fits the panel's width.
        assert_eq!(scale(256, 32, 1024.0, 224.0), 4.0);
        // 64 times wider: too small to fit, so it scrolls at the smallest scale.
        assert_eq!(scale(2048, 32, 1024.0, 224.0), MIN_SCALE);
    }

    #[test]
    fn thumbnails_keep_the_proportions() {
        assert_eq!(thumbnail(32, 32, vec2(352.0, 88.0)), vec2(88.0, 88.0));
        assert_eq!(thumbnail(256, 32, vec2(352.0, 88.0)), vec2(352.0, 44.0));
    }

    #[test]
    fn unmade_pixels_are_the_gray_of_the_decodes() {
        assert_eq!(unmade(), Color32::from_gray(128));
    }
}
