//! A labelled preview of a dataset: one row per class, its name at the left, then its first
//! samples (in dataset order) scaled up by an integer factor.

use image::{Rgb, RgbImage};

use crate::Dataset;
use crate::font::{GLYPH_H, draw_text, text_width};

/// Space around the grid and between the labels and the first column, in pixels.
const MARGIN: usize = 6;
/// Space between tiles, in pixels.
const GAP: usize = 2;
/// Longer class names are cut to this many characters, the last two becoming `..`.
const MAX_LABEL_CHARS: usize = 24;
const BACKGROUND: Rgb<u8> = Rgb([24, 24, 28]);
/// Fills the cells of a class with fewer than `per_class` samples.
const EMPTY_CELL: Rgb<u8> = Rgb([44, 44, 52]);
const LABEL: Rgb<u8> = Rgb([236, 236, 236]);

/// Draws the first `per_class` samples of every class of `dataset` (fewer where a class has fewer),
/// one row per class in label order, each image scaled up `scale` times (nearest neighbour), with
/// the class name at the left of its row.
///
/// A good `scale` makes tiles about 64 pixels high: `(64 / dataset.height()).max(1)`. The result is
/// `6 + label + 6 + per_class * (width * scale + 2) - 2 + 6` pixels wide and
/// `6 + classes * (height * scale + 2) - 2 + 6` high, where `label` is the widest class name.
///
/// # Panics
/// If `scale` or `per_class` is 0.
pub fn preview_grid<D: Dataset + ?Sized>(dataset: &D, per_class: usize, scale: usize) -> RgbImage {
    assert!(
        scale > 0 && per_class > 0,
        "preview_grid: scale and per_class must be at least 1"
    );
    let classes = dataset.class_names().len();
    let picks = first_of_each_class(dataset, per_class);

    let (tile_w, tile_h) = (dataset.width() * scale, dataset.height() * scale);
    let text_scale = (tile_h / 24).clamp(1, 4);
    let labels: Vec<String> = dataset
        .class_names()
        .iter()
        .map(|name| shorten(name))
        .collect();
    let label_w = labels
        .iter()
        .map(|l| text_width(l, text_scale))
        .max()
        .unwrap_or(0);
    let grid_x = MARGIN + label_w + MARGIN;
    let width = grid_x + per_class * (tile_w + GAP) - GAP + MARGIN;
    let height = MARGIN + (classes * (tile_h + GAP)).saturating_sub(GAP) + MARGIN;
    let mut out = RgbImage::from_pixel(width as u32, height as u32, BACKGROUND);

    for (row, (label, picked)) in labels.iter().zip(&picks).enumerate() {
        let y = MARGIN + row * (tile_h + GAP);
        // Centre the 7 rows above the baseline; descenders hang below.
        let text_y = y + tile_h.saturating_sub((GLYPH_H - 1) * text_scale) / 2;
        draw_text(&mut out, MARGIN, text_y, label, text_scale, LABEL);
        for col in 0..per_class {
            let x = grid_x + col * (tile_w + GAP);
            match picked.get(col) {
                Some(&index) => {
                    blit_scaled(&mut out, &dataset.get(index).image.to_rgb8(), x, y, scale)
                }
                None => fill(&mut out, x, y, tile_w, tile_h, EMPTY_CELL),
            }
        }
    }
    out
}

/// Indices of the first `per_class` samples of each class, scanning labels only.
fn first_of_each_class<D: Dataset + ?Sized>(dataset: &D, per_class: usize) -> Vec<Vec<usize>> {
    let classes = dataset.class_names().len();
    let mut picks = vec![Vec::with_capacity(per_class); classes];
    let mut full = 0;
    for index in 0..dataset.len() {
        if full == classes {
            break;
        }
        let label = dataset.label(index);
        if picks[label].len() < per_class {
            picks[label].push(index);
            full += usize::from(picks[label].len() == per_class);
        }
    }
    picks
}

fn shorten(name: &str) -> String {
    if name.chars().count() <= MAX_LABEL_CHARS {
        return name.to_string();
    }
    let kept: String = name.chars().take(MAX_LABEL_CHARS - 2).collect();
    kept + ".."
}

fn blit_scaled(out: &mut RgbImage, tile: &RgbImage, x0: usize, y0: usize, scale: usize) {
    for (x, y, pixel) in tile.enumerate_pixels() {
        let (x, y) = (x0 + x as usize * scale, y0 + y as usize * scale);
        fill(out, x, y, scale, scale, *pixel);
    }
}

fn fill(out: &mut RgbImage, x0: usize, y0: usize, w: usize, h: usize, color: Rgb<u8>) {
    for y in y0..y0 + h {
        for x in x0..x0 + w {
            out.put_pixel(x as u32, y as u32, color);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Image, Mnist, Sample, Scenes, ScenesConfig};

    /// Two classes of flat images: class 0 black, class 1 white; class 1 has a single sample.
    struct TwoFlat {
        class_names: Vec<String>,
    }

    impl Dataset for TwoFlat {
        fn name(&self) -> &str {
            "two-flat"
        }
        fn len(&self) -> usize {
            4
        }
        fn get(&self, index: usize) -> Sample {
            let label = usize::from(index == 2);
            Sample {
                image: Image::new(1, 3, 5, vec![label as f32; 15]),
                label,
            }
        }
        fn class_names(&self) -> &[String] {
            &self.class_names
        }
        fn channels(&self) -> usize {
            1
        }
        fn height(&self) -> usize {
            3
        }
        fn width(&self) -> usize {
            5
        }
    }

    #[test]
    fn grid_has_the_documented_size_and_draws_samples_and_labels() {
        let ds = TwoFlat {
            class_names: vec!["dark".into(), "Light".into()],
        };
        let (per_class, scale) = (3, 4);
        let grid = preview_grid(&ds, per_class, scale);
        let label_w = text_width("Light", 1);
        let (tile_w, tile_h) = (5 * scale, 3 * scale);
        let grid_x = MARGIN + label_w + MARGIN;
        assert_eq!(
            grid.width() as usize,
            grid_x + per_class * (tile_w + GAP) - GAP + MARGIN
        );
        assert_eq!(
            grid.height() as usize,
            MARGIN + 2 * (tile_h + GAP) - GAP + MARGIN
        );

        let at = |x: usize, y: usize| grid.get_pixel(x as u32, y as u32).0;
        let (row0, row1) = (MARGIN, MARGIN + tile_h + GAP);
        // Row 0: three black samples; row 1: one white sample, then empty cells.
        for col in 0..3 {
            assert_eq!(
                at(
                    grid_x + col * (tile_w + GAP) + tile_w - 1,
                    row0 + tile_h - 1
                ),
                [0, 0, 0]
            );
        }
        assert_eq!(at(grid_x, row1), [255, 255, 255]);
        assert_eq!(at(grid_x + tile_w + GAP, row1), EMPTY_CELL.0);
        assert_eq!(at(grid_x + tile_w, row1), BACKGROUND.0);
        // Labels are drawn in each row's label area.
        for row_y in [row0, row1] {
            let label_pixels = (row_y..row_y + tile_h)
                .flat_map(|y| (MARGIN..MARGIN + label_w).map(move |x| (x, y)))
                .filter(|&(x, y)| at(x, y) == LABEL.0)
                .count();
            assert!(
                label_pixels > 10,
                "row at {row_y} has {label_pixels} label pixels"
            );
        }
    }

    #[test]
    fn mnist_grid_shows_a_different_digit_per_row() {
        let grid = preview_grid(&Mnist::heldout(), 4, 2);
        assert_eq!(
            grid.height() as usize,
            MARGIN + 10 * (64 + GAP) - GAP + MARGIN
        );
        let grid_x = MARGIN + text_width("0", 2) + MARGIN;
        let tile = |row: usize| {
            let y0 = MARGIN + row * (64 + GAP);
            (0..64)
                .flat_map(|y| (0..64).map(move |x| (x, y)))
                .map(|(x, y)| grid.get_pixel((grid_x + x) as u32, (y0 + y) as u32).0[0])
                .collect::<Vec<_>>()
        };
        let rows: Vec<_> = (0..10).map(tile).collect();
        for (a, row) in rows.iter().enumerate() {
            assert!(
                row.iter().filter(|&&v| v > 128).count() > 40,
                "row {a} is blank"
            );
            for (b, other) in rows.iter().enumerate().skip(a + 1) {
                assert_ne!(row, other, "rows {a} and {b} are the same");
            }
        }
    }

    #[test]
    fn scenes_grid_covers_every_class() {
        let scenes = Scenes::new(ScenesConfig {
            height: 16,
            width: 32,
            len: 60,
            seed: 1,
        })
        .unwrap();
        let grid = preview_grid(&scenes, 2, 1);
        let classes = scenes.class_names().len();
        assert_eq!(
            grid.height() as usize,
            MARGIN + classes * (16 + GAP) - GAP + MARGIN
        );
        assert!(
            grid.pixels().all(|p| p.0 != EMPTY_CELL.0),
            "a class had fewer than 2 samples"
        );
    }

    #[test]
    fn long_names_are_shortened() {
        assert_eq!(shorten("short"), "short");
        let long = shorten(&"x".repeat(40));
        assert_eq!(long.chars().count(), MAX_LABEL_CHARS);
        assert!(long.ends_with(".."));
    }
}
