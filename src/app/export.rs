//! Exports of the Generate panel: an image as PNG, its step-through as an animated GIF and as a
//! PNG strip, and where they go (a file on the desktop, a download in the browser). A column
//! run's steps are its canvas with the step's column outlined, stacked downwards in the strip.

use std::io::Cursor;

use base64::Engine;
use image::codecs::gif::{GifEncoder, Repeat};
use image::imageops::{self, FilterType};
use image::{Delay, Frame, ImageFormat, Rgb, RgbImage, RgbaImage};
use tessera_data::Image;

use super::generation::StepFrame;
use super::token_map::CURRENT;

/// Gap between the token map and the image, and between strip columns, in output pixels.
const GAP: u32 = 4;
const BACKGROUND: Rgb<u8> = Rgb([24, 24, 24]);

/// `image` scaled up `zoom` times without smoothing (pixels stay square).
pub fn zoomed(image: &Image, zoom: u32) -> RgbImage {
    let rgb = image.to_rgb8();
    imageops::resize(&rgb, rgb.width() * zoom, rgb.height() * zoom, FilterType::Nearest)
}

/// The widest export, in pixels, that [`zoom_for`] aims for.
const MAX_EXPORT_WIDTH: usize = 2048;

/// `zoom`, or less for wide images (the column generator's) so that they stay at most
/// [`MAX_EXPORT_WIDTH`] pixels wide (never below 1).
pub fn zoom_for(width: usize, zoom: u32) -> u32 {
    let fits = (MAX_EXPORT_WIDTH / width.max(1)) as u32;
    zoom.min(fits).max(1)
}

/// A column run's step: its canvas as it stood, the step's column outlined.
fn column_step(frame: &StepFrame, zoom: u32) -> RgbImage {
    let mut out = zoomed(&frame.image(), zoom);
    if let Some(column) = frame.current_column() {
        let (x0, x1) = (column.start as u32 * zoom, (column.end as u32 * zoom).min(out.width()));
        let h = out.height();
        for x in x0..x1 {
            out.put_pixel(x, 0, Rgb(CURRENT));
            out.put_pixel(x, h - 1, Rgb(CURRENT));
        }
        for y in 0..h {
            out.put_pixel(x0, y, Rgb(CURRENT));
            out.put_pixel(x1 - 1, y, Rgb(CURRENT));
        }
    }
    out
}

/// One step as a picture: the token map (drawn at the image's size) beside the partial decode;
/// a column run's step is its canvas with the step's column outlined.
pub fn step_panel(frame: &StepFrame, zoom: u32) -> RgbImage {
    if frame.columns.is_some() {
        return column_step(frame, zoom);
    }
    let decoded = zoomed(&frame.image(), zoom);
    let (w, h) = decoded.dimensions();
    let tokens = frame.tokens.to_rgb_sized(w, h);
    let mut out = RgbImage::from_pixel(2 * w + GAP, h, BACKGROUND);
    imageops::replace(&mut out, &tokens, 0, 0);
    imageops::replace(&mut out, &decoded, i64::from(w + GAP), 0);
    out
}

/// Every step left to right; token maps on the top row, partial decodes below. A column run's
/// steps go downwards instead, one canvas per row.
pub fn strip(frames: &[StepFrame], zoom: u32) -> RgbImage {
    let Some(first) = frames.first() else { return RgbImage::new(0, 0) };
    if first.columns.is_some() {
        let rows: Vec<RgbImage> = frames.iter().map(|f| column_step(f, zoom)).collect();
        let (w, h) = (rows.iter().map(RgbImage::width).max().unwrap_or(0), rows[0].height());
        let n = rows.len() as u32;
        let mut out = RgbImage::from_pixel(w, n * h + (n - 1) * GAP, BACKGROUND);
        for (i, row) in rows.iter().enumerate() {
            imageops::replace(&mut out, row, 0, i64::from(i as u32 * (h + GAP)));
        }
        return out;
    }
    let (w, h) = (first.partial.width as u32 * zoom, first.partial.height as u32 * zoom);
    let n = frames.len() as u32;
    let mut out = RgbImage::from_pixel(n * w + (n - 1) * GAP, 2 * h + GAP, BACKGROUND);
    for (i, frame) in frames.iter().enumerate() {
        let x = i64::from(i as u32 * (w + GAP));
        imageops::replace(&mut out, &frame.tokens.to_rgb_sized(w, h), x, 0);
        imageops::replace(&mut out, &zoomed(&frame.image(), zoom), x, i64::from(h + GAP));
    }
    out
}

/// PNG file bytes of any RGB picture.
pub fn png_bytes(image: &RgbImage) -> Vec<u8> {
    let mut bytes = Cursor::new(Vec::new());
    image.write_to(&mut bytes, ImageFormat::Png).expect("encoding a PNG into memory cannot fail");
    bytes.into_inner()
}

/// An animated GIF of the step-through, looping; the finished image stays up three times longer.
pub fn gif_bytes(frames: &[StepFrame], zoom: u32, step_ms: u32) -> Vec<u8> {
    let mut bytes = Vec::new();
    {
        let mut encoder = GifEncoder::new_with_speed(&mut bytes, 10);
        encoder.set_repeat(Repeat::Infinite).expect("writing to memory cannot fail");
        for (i, frame) in frames.iter().enumerate() {
            let hold = if i + 1 == frames.len() { 3 * step_ms } else { step_ms };
            let rgba: RgbaImage = image::DynamicImage::ImageRgb8(step_panel(frame, zoom)).to_rgba8();
            encoder
                .encode_frame(Frame::from_parts(rgba, 0, 0, Delay::from_numer_denom_ms(hold, 1)))
                .expect("encoding a GIF into memory cannot fail");
        }
    }
    bytes
}

/// `data:image/png;base64,...` (window.tessera.last.png, browser downloads).
pub fn png_data_url(png: &[u8]) -> String {
    format!("data:image/png;base64,{}", base64::engine::general_purpose::STANDARD.encode(png))
}

/// Hands an exported file to the user and says where it went: on the desktop a file in
/// `tessera-exports/` under the working directory (no file dialog needed), in the browser a download.
pub fn deliver(name: &str, mime: &str, bytes: &[u8]) -> Result<String, String> {
    #[cfg(not(target_arch = "wasm32"))]
    {
        let _ = mime;
        let dir = std::env::current_dir().map_err(|e| e.to_string())?.join("tessera-exports");
        std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        let path = dir.join(name);
        std::fs::write(&path, bytes).map_err(|e| format!("writing {}: {e}", path.display()))?;
        Ok(format!("saved to {}", path.display()))
    }
    #[cfg(target_arch = "wasm32")]
    {
        crate::web::download(name, mime, bytes)?;
        Ok(format!("downloaded {name}"))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::app::generation::ColumnsDone;
    use crate::app::token_map::{TokenMap, code_color};
    use image::AnimationDecoder;
    use image::codecs::gif::GifDecoder;

    fn frames() -> Vec<StepFrame> {
        [1usize, 2, 4]
            .iter()
            .enumerate()
            .map(|(i, &pn)| StepFrame {
                label: format!("scale {}", i + 1),
                tokens: TokenMap::full(pn, pn, (0..(pn * pn) as u32).map(|c| c + 10 * i as u32)),
                // Brighter at every step, so each step is told apart by its decode.
                partial: Arc::new(Image::new(1, 8, 8, vec![(i as f32 + 1.0) / 4.0; 64])),
                columns: None,
            })
            .collect()
    }

    /// Three steps of a column run of 3 columns, 2 px each, on a shared white canvas 4 high.
    fn column_frames() -> Vec<StepFrame> {
        let canvas = Arc::new(Image::new(1, 4, 6, vec![1.0; 24]));
        (1..=3)
            .map(|done| StepFrame {
                label: format!("column {done} of 3"),
                tokens: TokenMap { rows: 1, cols: 3, codes: (0..3).map(|i| (i < done).then_some(0)).collect(), current: Some(done - 1) },
                partial: canvas.clone(),
                columns: Some(ColumnsDone { done, width: 2 }),
            })
            .collect()
    }

    #[test]
    fn column_steps_show_the_canvas_so_far_with_the_new_column_outlined() {
        let frames = column_frames();
        // Step 1 of 3 at zoom 2: 12 x 8; the column made (x 0..4) outlined, the rest unmade gray.
        let first = step_panel(&frames[0], 2);
        assert_eq!(first.dimensions(), (12, 8));
        assert_eq!(first.get_pixel(0, 4).0, CURRENT);
        assert_eq!(first.get_pixel(3, 4).0, CURRENT);
        assert_eq!(first.get_pixel(1, 3).0, [255; 3], "inside the column: the image");
        assert_eq!(first.get_pixel(8, 4).0, [128; 3], "not made yet");
        // The strip stacks the steps downwards.
        let strip = strip(&frames, 1);
        assert_eq!(strip.dimensions(), (6, 3 * 4 + 2 * GAP));
        let last_row = 2 * (4 + GAP);
        assert_eq!(strip.get_pixel(4, last_row).0, CURRENT, "step 3 outlines column 3");
        assert_eq!(strip.get_pixel(1, last_row + 1).0, [255; 3], "and shows every column made");
        // Wide images are zoomed less.
        assert_eq!((zoom_for(32, 8), zoom_for(256, 8), zoom_for(2048, 8), zoom_for(5000, 8)), (8, 8, 1, 1));
        assert_eq!(zoom_for(512, 8), 4);
    }

    #[test]
    fn the_strip_shows_token_maps_above_partial_decodes() {
        let strip = strip(&frames(), 2);
        assert_eq!(strip.dimensions(), (3 * 16 + 2 * GAP, 2 * 16 + GAP));
        let column_x = |i: u32| i * (16 + GAP);
        // Step 2 (index 1) is a 2×2 map of codes 10..14: its top-left cell at the top row.
        assert_eq!(strip.get_pixel(column_x(1), 0).0, code_color(10));
        assert_eq!(strip.get_pixel(column_x(1) + 15, 15).0, code_color(13));
        for i in 0..3 {
            let grey = ((i as f32 + 1.0) / 4.0 * 255.0).round() as u8;
            assert_eq!(strip.get_pixel(column_x(i) + 5, 16 + GAP + 5).0, [grey; 3], "step {i}");
        }
        assert_eq!(strip.get_pixel(16, 0).0, BACKGROUND.0, "gap between columns");
        let decoded = image::load_from_memory(&png_bytes(&strip)).unwrap();
        assert_eq!(decoded.to_rgb8(), strip);
    }

    #[test]
    fn the_gif_has_one_frame_per_step_and_holds_the_last() {
        let bytes = gif_bytes(&frames(), 3, 400);
        let decoder = GifDecoder::new(Cursor::new(bytes)).unwrap();
        let decoded: Vec<Frame> = decoder.into_frames().collect::<Result<_, _>>().unwrap();
        assert_eq!(decoded.len(), 3);
        let ms = |f: &Frame| {
            let (n, d) = f.delay().numer_denom_ms();
            n / d
        };
        assert_eq!(ms(&decoded[0]), 400);
        assert_eq!(ms(&decoded[2]), 1200);
        let last = decoded[2].buffer();
        assert_eq!(last.dimensions(), (2 * 24 + GAP, 24));
        // Right half: the last partial decode, grey 191 (GIF palettes may shift it slightly).
        let px = last.get_pixel(24 + GAP + 10, 10).0;
        assert!(px[..3].iter().all(|&v| v.abs_diff(191) <= 8), "{px:?}");
        // Left half: the first frame's single 1×1 code covers the whole map.
        let first = decoded[0].buffer();
        let want = code_color(0);
        let got = first.get_pixel(20, 20).0;
        assert!(got[..3].iter().zip(want).all(|(&g, w)| g.abs_diff(w) <= 8), "{got:?} vs {want:?}");
    }

    #[test]
    fn png_data_urls_decode_back_to_the_image() {
        let image = Image::new(1, 2, 2, vec![0.0, 1.0, 0.5, 0.25]);
        let url = png_data_url(&image.to_png_bytes());
        let b64 = url.strip_prefix("data:image/png;base64,").unwrap();
        let png = base64::engine::general_purpose::STANDARD.decode(b64).unwrap();
        let back = image::load_from_memory(&png).unwrap().to_luma8();
        assert_eq!(back.as_raw(), &vec![0, 255, 128, 64]);
    }
}
