//! Datasets for Tessera: what the trainers learn from and the app previews.
//!
//! Every source implements one small trait, [`Dataset`]: a fixed number of samples, each an [`Image`]
//! (CHW `f32` in [0, 1]) with a class label, all of one size and channel count.
//!
//! | Source | Constructor | Images | Classes |
//! |---|---|---|---|
//! | MNIST (assets/mnist/README.md): compiled in natively, [`mnist::provide`]d in the browser | [`Mnist::train`] (9,000), [`Mnist::heldout`] (1,000) | 1 × 32 × 32 (28 × 28 padded by 2) | `"0"` … `"9"` |
//! | Procedural scenery | [`Scenes::new`] with [`ScenesConfig`] | 3 × height × any width, made from a seed | [`SceneClass`]: `"mountains"`, `"city"`, … |
//! | A user's folder, one subfolder per class | [`FolderDataset::open`] (desktop), [`FolderDataset::from_entries`] (browser) | 3 or 1 × resolution², resized and centre-cropped | folder names, sorted |
//!
//! Helpers: [`batch`] gathers samples into flat vectors for a tensor, [`preview_grid`] draws a
//! labelled grid of samples per class, [`Image`] converts to and from the `image` crate.
//!
//! Everything works in the browser (wasm32): the page fetches the MNIST asset and hands it to
//! [`mnist::provide`] (check [`mnist::available`] first), scenes are computed, and a folder arrives as in-memory `(relative path, bytes)` entries. Only
//! [`FolderDataset::open`] touches the file system, and it is absent on wasm32.
//!
//! ```
//! use tessera_data::{Dataset, Mnist, Scenes, ScenesConfig, batch};
//!
//! let train = Mnist::train();
//! let first = train.get(0);
//! assert_eq!((first.image.channels, first.image.height, first.image.width), (1, 32, 32));
//!
//! let scenes = Scenes::new(ScenesConfig { height: 32, width: 32, len: 600, seed: 7 })?;
//! let b = batch(&scenes, &[0, 1, 2, 3]);
//! assert_eq!(b.images.len(), 4 * 3 * 32 * 32);
//! # Ok::<(), tessera_data::Error>(())
//! ```

mod batch;
mod error;
mod folder;
mod font;
mod grid;
pub mod mnist;
mod picture_zip;
mod scenes;

use std::io::Cursor;

use image::{DynamicImage, ImageFormat, RgbImage, RgbaImage};

pub use batch::{Batch, batch};
pub use error::{Error, Result};
pub use folder::{FolderBuilder, FolderDataset, FolderOptions, MAX_PICTURE_BYTES, MAX_PICTURE_SIDE, SkipReason, Skipped};
pub use picture_zip::{PictureZip, ZipLimits};
pub use grid::preview_grid;
pub use mnist::Mnist;
pub use scenes::{SceneClass, Scenes, ScenesConfig, render_scene};

/// A set of labelled images of one size, indexed `0..len()`.
///
/// Implementations are cheap to share between threads (`Send + Sync`) and deterministic: `get(i)`
/// returns the same sample every time.
pub trait Dataset: Send + Sync {
    /// Short name for logs and the UI, e.g. `"mnist-train"`.
    fn name(&self) -> &str;

    /// Number of samples.
    fn len(&self) -> usize;

    /// Whether the dataset has no samples.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Sample `index`, an image of `channels() × height() × width()` and its label.
    ///
    /// # Panics
    /// If `index >= len()`.
    fn get(&self, index: usize) -> Sample;

    /// The label of sample `index`, without making its image.
    ///
    /// # Panics
    /// If `index >= len()`.
    fn label(&self, index: usize) -> usize {
        self.get(index).label
    }

    /// Name of each class; a label is an index into this slice.
    fn class_names(&self) -> &[String];

    /// Channels of every image: 1 (grayscale) or 3 (RGB).
    fn channels(&self) -> usize;

    /// Height of every image in pixels.
    fn height(&self) -> usize;

    /// Width of every image in pixels.
    fn width(&self) -> usize;
}

/// An image as the models see it: `pixels[(c * height + y) * width + x]`, values in [0, 1].
#[derive(Clone, Debug, PartialEq)]
pub struct Image {
    /// 1 (grayscale) or 3 (RGB).
    pub channels: usize,
    /// Rows.
    pub height: usize,
    /// Columns.
    pub width: usize,
    /// Channel-major (CHW) values in [0, 1], `channels * height * width` of them.
    pub pixels: Vec<f32>,
}

/// One labelled image of a [`Dataset`].
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// The image.
    pub image: Image,
    /// Index into the dataset's [`Dataset::class_names`].
    pub label: usize,
}

impl Image {
    /// Wraps CHW values.
    ///
    /// # Panics
    /// If `pixels.len() != channels * height * width`.
    pub fn new(channels: usize, height: usize, width: usize, pixels: Vec<f32>) -> Self {
        assert_eq!(
            pixels.len(),
            channels * height * width,
            "Image::new: {channels} x {height} x {width} needs {} values",
            channels * height * width
        );
        Self {
            channels,
            height,
            width,
            pixels,
        }
    }

    /// CHW bytes (0-255) to values in [0, 1].
    ///
    /// # Panics
    /// If `bytes.len() != channels * height * width`.
    pub fn from_u8(channels: usize, height: usize, width: usize, bytes: &[u8]) -> Self {
        Self::new(
            channels,
            height,
            width,
            bytes.iter().map(|&b| f32::from(b) / 255.0).collect(),
        )
    }

    /// Converts any decoded image, without resizing, to 3 channels (RGB) or 1 (luma,
    /// `0.299 R + 0.587 G + 0.114 B`). Transparent pixels are composited over white.
    ///
    /// # Panics
    /// If `channels` is not 1 or 3.
    pub fn from_dynamic_image(image: &DynamicImage, channels: usize) -> Self {
        let rgb = flatten_over_white(image);
        let (width, height) = (rgb.width() as usize, rgb.height() as usize);
        Self::from_u8(channels, height, width, &rgb_to_chw(&rgb, channels))
    }

    /// The value of channel `c` at row `y`, column `x`.
    ///
    /// # Panics
    /// If the position is outside the image.
    pub fn at(&self, c: usize, y: usize, x: usize) -> f32 {
        assert!(
            c < self.channels && y < self.height && x < self.width,
            "Image::at out of bounds"
        );
        self.pixels[(c * self.height + y) * self.width + x]
    }

    /// 8-bit RGB: grayscale is replicated, values are clamped to [0, 1] and rounded.
    ///
    /// # Panics
    /// If `channels` is not 1 or 3.
    pub fn to_rgb8(&self) -> RgbImage {
        let plane = self.height * self.width;
        let channel = |c: usize| match self.channels {
            1 => &self.pixels[..plane],
            3 => &self.pixels[c * plane..(c + 1) * plane],
            n => panic!("Image::to_rgb8: {n} channels, expected 1 or 3"),
        };
        let (r, g, b) = (channel(0), channel(1), channel(2));
        let mut out = RgbImage::new(self.width as u32, self.height as u32);
        for (i, pixel) in out.pixels_mut().enumerate() {
            pixel.0 = [to_u8(r[i]), to_u8(g[i]), to_u8(b[i])];
        }
        out
    }

    /// 8-bit RGBA, opaque; see [`Image::to_rgb8`].
    ///
    /// # Panics
    /// If `channels` is not 1 or 3.
    pub fn to_rgba8(&self) -> RgbaImage {
        DynamicImage::ImageRgb8(self.to_rgb8()).to_rgba8()
    }

    /// PNG file bytes: 8-bit grayscale for 1 channel, 8-bit RGB for 3.
    ///
    /// # Panics
    /// If `channels` is not 1 or 3.
    pub fn to_png_bytes(&self) -> Vec<u8> {
        let rgb = self.to_rgb8();
        let image = match self.channels {
            1 => DynamicImage::ImageLuma8(DynamicImage::ImageRgb8(rgb).to_luma8()),
            _ => DynamicImage::ImageRgb8(rgb),
        };
        let mut bytes = Cursor::new(Vec::new());
        image
            .write_to(&mut bytes, ImageFormat::Png)
            .expect("encoding a PNG into memory cannot fail");
        bytes.into_inner()
    }
}

fn to_u8(v: f32) -> u8 {
    (v.clamp(0.0, 1.0) * 255.0).round() as u8
}

/// Any image to 8-bit RGB, alpha composited over white (what a viewer shows on a light page).
pub(crate) fn flatten_over_white(image: &DynamicImage) -> RgbImage {
    if let DynamicImage::ImageRgb8(rgb) = image {
        return rgb.clone();
    }
    let rgba = image.to_rgba8();
    let mut out = RgbImage::new(rgba.width(), rgba.height());
    for (dst, src) in out.pixels_mut().zip(rgba.pixels()) {
        let [r, g, b, a] = src.0.map(u32::from);
        let over = |v: u32| ((v * a + 255 * (255 - a) + 127) / 255) as u8;
        dst.0 = [over(r), over(g), over(b)];
    }
    out
}

/// 8-bit RGB to CHW bytes with 3 channels, or 1 channel of integer Rec. 601 luma (exact for gray).
///
/// # Panics
/// If `channels` is not 1 or 3.
pub(crate) fn rgb_to_chw(rgb: &RgbImage, channels: usize) -> Vec<u8> {
    let plane = rgb.width() as usize * rgb.height() as usize;
    match channels {
        1 => rgb
            .pixels()
            .map(|p| {
                let [r, g, b] = p.0.map(u32::from);
                ((299 * r + 587 * g + 114 * b + 500) / 1000) as u8
            })
            .collect(),
        3 => {
            let mut out = vec![0; 3 * plane];
            for (i, p) in rgb.pixels().enumerate() {
                for c in 0..3 {
                    out[c * plane + i] = p.0[c];
                }
            }
            out
        }
        n => panic!("{n} channels are not supported, expected 1 or 3"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn png_round_trip_keeps_rgb_values() {
        let pixels = (0..3 * 4 * 5).map(|i| (i % 7) as f32 / 6.0).collect();
        let image = Image::new(3, 4, 5, pixels);
        let decoded = image::load_from_memory(&image.to_png_bytes()).unwrap();
        let back = Image::from_dynamic_image(&decoded, 3);
        assert_eq!((back.channels, back.height, back.width), (3, 4, 5));
        for (a, b) in image.pixels.iter().zip(&back.pixels) {
            assert!((a - b).abs() <= 0.5 / 255.0 + 1e-6, "{a} vs {b}");
        }
    }

    #[test]
    fn grayscale_replicates_into_rgb_and_back_exactly() {
        let image = Image::from_u8(1, 2, 2, &[0, 50, 200, 255]);
        let rgba = image.to_rgba8();
        assert_eq!(rgba.get_pixel(1, 0).0, [50, 50, 50, 255]);
        let back = Image::from_dynamic_image(&DynamicImage::ImageRgba8(rgba), 1);
        assert_eq!(back, image);
    }

    #[test]
    fn transparent_pixels_become_white() {
        let mut rgba = RgbaImage::new(1, 1);
        rgba.put_pixel(0, 0, image::Rgba([0, 0, 0, 0]));
        let image = Image::from_dynamic_image(&DynamicImage::ImageRgba8(rgba), 3);
        assert_eq!(image.pixels, vec![1.0; 3]);
    }
}
