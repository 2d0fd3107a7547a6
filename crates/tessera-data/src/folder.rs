//! A user's pictures, one subfolder per class: a folder or a `.zip` on the desktop
//! ([`FolderDataset::open`]), a zip's bytes ([`FolderDataset::from_zip`]), or in-memory
//! `(relative path, bytes)` entries, e.g. files dropped on the browser page
//! ([`FolderDataset::from_entries`]). Each is a thin layer that feeds the same [`FolderBuilder`],
//! which callers can also feed themselves, one file at a time, to show progress.
//!
//! Rules, in the order they apply:
//! 1. Hidden entries are ignored silently: any path component starting with `.` (`.DS_Store`,
//!    `._photo.jpg`, `.git/`), `__MACOSX/`, and the files `Thumbs.db` and `desktop.ini`.
//! 2. If every remaining entry lies in one same top folder and some file is at least two folders
//!    deep, that top folder is taken as the root (a browser drop of `animals/` gives
//!    `animals/cats/1.jpg`; the classes are then `cats`, not `animals`).
//! 3. The class of a file is its first folder; files deeper inside a class folder belong to that
//!    class. Files directly at the root are skipped as [`SkipReason::NotInClassFolder`].
//! 4. Files are decoded by content, not extension (PNG, JPEG, GIF (first frame), BMP, WebP, TIFF);
//!    the JPEG/TIFF/WebP orientation tag is applied; transparency is composited over white.
//!    Anything else is skipped with its reason, never a panic. Pictures over
//!    [`MAX_PICTURE_SIDE`] pixels a side or [`MAX_PICTURE_BYTES`] decoded are skipped as
//!    [`SkipReason::TooLarge`] before their pixels are allocated.
//! 5. Each image is centre-cropped to a square (the shorter side) and resized to `resolution` with
//!    an area average down to twice the target, then Lanczos3; then converted to RGB or to luma.
//! 6. Classes are the folder names sorted by byte order; samples are sorted by (class, path).

use std::collections::BTreeSet;
use std::io::Cursor;

use image::imageops::{self, FilterType};
use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, ImageError, ImageReader, Limits, RgbImage};
use serde::{Deserialize, Serialize};

use crate::{Dataset, Error, Image, Result, Sample, flatten_over_white, rgb_to_chw};

/// The longest side of a picture that is decoded, in pixels (a 48-megapixel photo is 8000 wide).
/// A tiny file can declare a huge picture (a 20000 x 20000 PNG of one colour is about 1 MB), and
/// decoding it would take gigabytes: enough to kill a browser tab.
pub const MAX_PICTURE_SIDE: u32 = 10_000;

/// The most memory a picture's decoded pixels may take (the decoder's own count, so 16-bit and
/// alpha channels count in full).
pub const MAX_PICTURE_BYTES: u64 = 256 << 20;

/// How the pictures of a folder are prepared for a model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FolderOptions {
    /// Side of the square images served, in pixels. Default 32.
    pub resolution: usize,
    /// 3 for RGB, 1 for grayscale (Rec. 601 luma). Default 3.
    pub channels: usize,
}

impl Default for FolderOptions {
    fn default() -> Self {
        Self {
            resolution: 32,
            channels: 3,
        }
    }
}

/// A file that was left out of a [`FolderDataset`], and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skipped {
    /// Path relative to the dataset root, `/`-separated.
    pub path: String,
    /// Why it was left out.
    pub reason: SkipReason,
}

impl std::fmt::Display for Skipped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.reason)
    }
}

/// Why a file was left out of a [`FolderDataset`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SkipReason {
    /// A file directly in the root folder, not in a class folder.
    #[error("not inside a class folder")]
    NotInClassFolder,
    /// The content is not a known image format.
    #[error("not an image")]
    NotAnImage,
    /// A known image format this build cannot decode (e.g. ICO, AVIF).
    #[error("unsupported image format ({0})")]
    Unsupported(String),
    /// An image that fails to decode (truncated, corrupt).
    #[error("broken image ({0})")]
    Broken(String),
    /// A picture, or an archive entry, over the limits on what is decoded or unpacked.
    #[error("too large ({0})")]
    TooLarge(String),
    /// The file or folder could not be read.
    #[error("cannot read ({0})")]
    Unreadable(String),
}

/// Labelled pictures from a folder, decoded once, held as 8-bit CHW at the chosen resolution.
#[derive(Clone, Debug)]
pub struct FolderDataset {
    name: String,
    class_names: Vec<String>,
    options: FolderOptions,
    /// `len * channels * resolution²` bytes, sample-major.
    pixels: Vec<u8>,
    labels: Vec<usize>,
    paths: Vec<String>,
}

impl FolderDataset {
    /// Loads every picture under `root`, a folder or a `.zip` file (module docs give the rules),
    /// returning the dataset and the files that were skipped.
    ///
    /// # Errors
    /// [`Error::MissingRoot`], [`Error::Io`] for the root itself (unreadable subfolders are skipped
    /// instead), [`Error::Zip`], [`Error::NoImages`], [`Error::EmptyClass`], [`Error::SingleClass`],
    /// and [`Error::Channels`] or [`Error::Size`] for bad `options`.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn open(
        root: impl AsRef<std::path::Path>,
        options: FolderOptions,
    ) -> Result<(Self, Vec<Skipped>)> {
        Self::open_with_progress(root, options, |_, _| {})
    }

    /// [`FolderDataset::open`], calling `progress(files done, files in all)` after each file.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn open_with_progress(
        root: impl AsRef<std::path::Path>,
        options: FolderOptions,
        mut progress: impl FnMut(usize, usize),
    ) -> Result<(Self, Vec<Skipped>)> {
        let root = root.as_ref();
        let name = root
            .file_stem()
            .map_or_else(|| "folder".into(), |n| n.to_string_lossy().into_owned());
        let io = |source| Error::Io {
            path: root.to_path_buf(),
            source,
        };
        if root.is_file() {
            let bytes = std::fs::read(root).map_err(io)?;
            return Self::from_zip(name, bytes, options, progress);
        }
        if !root.is_dir() {
            return Err(Error::MissingRoot {
                path: root.to_path_buf(),
            });
        }
        let mut builder = FolderBuilder::new(options)?;
        let mut files = Vec::new();
        walk(std::fs::read_dir(root).map_err(io)?, "", &mut builder, &mut files);
        for (done, (relative, path)) in files.iter().enumerate() {
            let bytes = std::fs::read(path).map_err(|e| e.to_string());
            builder.add_file(relative, bytes.as_deref().map_err(Clone::clone));
            progress(done + 1, files.len());
        }
        builder.finish(name)
    }

    /// Loads the pictures in a zip archive's bytes, by the same rules as a folder (a single top
    /// folder inside the archive is its root), calling `progress(entries done, entries in all)`.
    ///
    /// # Errors
    /// [`Error::Zip`] when the bytes are not a zip archive, else as [`FolderDataset::open`].
    pub fn from_zip(
        name: impl Into<String>,
        bytes: Vec<u8>,
        options: FolderOptions,
        mut progress: impl FnMut(usize, usize),
    ) -> Result<(Self, Vec<Skipped>)> {
        let name = name.into();
        let mut builder = FolderBuilder::new(options)?;
        let mut zip = crate::PictureZip::new(bytes).map_err(|reason| Error::Zip {
            name: name.clone(),
            reason,
        })?;
        for index in 0..zip.len() {
            zip.add_entry(index, &mut builder);
            progress(index + 1, zip.len());
        }
        builder.finish(name)
    }

    /// Builds the dataset from `(relative path, file bytes)` entries, e.g. files dropped on a web
    /// page (`webkitRelativePath`). Paths use `/` or `\`. Same rules and errors as
    /// [`FolderDataset::open`], without the file system.
    pub fn from_entries<I, P, B>(
        name: impl Into<String>,
        entries: I,
        options: FolderOptions,
    ) -> Result<(Self, Vec<Skipped>)>
    where
        I: IntoIterator<Item = (P, B)>,
        P: AsRef<str>,
        B: AsRef<[u8]>,
    {
        let mut builder = FolderBuilder::new(options)?;
        for (path, bytes) in entries {
            builder.add_file(path.as_ref(), Ok(bytes.as_ref()));
        }
        builder.finish(name.into())
    }

    /// The file sample `index` came from, relative to the dataset root.
    ///
    /// # Panics
    /// If `index >= len()`.
    pub fn path(&self, index: usize) -> &str {
        &self.paths[index]
    }

    /// The options the images were prepared with.
    pub fn options(&self) -> FolderOptions {
        self.options
    }
}

impl Dataset for FolderDataset {
    fn name(&self) -> &str {
        &self.name
    }

    fn len(&self) -> usize {
        self.labels.len()
    }

    fn get(&self, index: usize) -> Sample {
        assert!(
            index < self.len(),
            "{}: index {index} out of range 0..{}",
            self.name,
            self.len()
        );
        let FolderOptions {
            resolution: r,
            channels: c,
        } = self.options;
        let size = c * r * r;
        let image = Image::from_u8(c, r, r, &self.pixels[index * size..(index + 1) * size]);
        Sample {
            image,
            label: self.labels[index],
        }
    }

    fn label(&self, index: usize) -> usize {
        self.labels[index]
    }

    fn class_names(&self) -> &[String] {
        &self.class_names
    }

    fn channels(&self) -> usize {
        self.options.channels
    }

    fn height(&self) -> usize {
        self.options.resolution
    }

    fn width(&self) -> usize {
        self.options.resolution
    }
}

/// Collects decoded files and skips, then applies the folder rules in [`FolderBuilder::finish`].
/// Feed it one file at a time to report progress, or to yield between files in the browser.
pub struct FolderBuilder {
    options: FolderOptions,
    /// Normalised path and CHW bytes of every file that decoded.
    decoded: Vec<(String, Vec<u8>)>,
    skipped: Vec<Skipped>,
    /// Normalised paths of folders seen, so that an empty class folder is still a class.
    folders: Vec<String>,
}

impl FolderBuilder {
    /// # Errors
    /// [`Error::Channels`] or [`Error::Size`] for bad `options`.
    pub fn new(options: FolderOptions) -> Result<Self> {
        if options.channels != 1 && options.channels != 3 {
            return Err(Error::Channels {
                channels: options.channels,
            });
        }
        // 4096 keeps the u32 image sizes and the held bytes reasonable.
        if !(1..=4096).contains(&options.resolution) {
            let r = options.resolution;
            return Err(Error::Size {
                height: r,
                width: r,
                reason: "the resolution must be 1 to 4096",
            });
        }
        Ok(Self {
            options,
            decoded: Vec::new(),
            skipped: Vec::new(),
            folders: Vec::new(),
        })
    }

    /// Records a folder (possibly empty, so that an empty class folder is reported); hidden
    /// ones are ignored. `path` is relative to the dataset root, `/`- or `\`-separated.
    pub fn add_folder(&mut self, path: &str) {
        if let Some(path) = normalise(path) {
            self.folders.push(path);
        }
    }

    /// Decodes one file, or records why not (`Err` is why its bytes could not be read); hidden
    /// files are ignored.
    pub fn add_file(&mut self, path: &str, bytes: std::result::Result<&[u8], String>) {
        let Some(path) = normalise(path) else { return };
        match bytes
            .map_err(SkipReason::Unreadable)
            .and_then(|b| prepare(b, self.options))
        {
            Ok(pixels) => self.decoded.push((path, pixels)),
            Err(reason) => self.skipped.push(Skipped { path, reason }),
        }
    }

    /// Records a file that was left out before decoding (e.g. a zip entry over its limits);
    /// hidden files are ignored.
    pub fn skip(&mut self, path: &str, reason: SkipReason) {
        if let Some(path) = normalise(path) {
            self.skipped.push(Skipped { path, reason });
        }
    }

    /// Applies the folder rules to everything added and builds the dataset named `name`.
    ///
    /// # Errors
    /// [`Error::NoImages`], [`Error::EmptyClass`], [`Error::SingleClass`].
    pub fn finish(mut self, name: impl Into<String>) -> Result<(FolderDataset, Vec<Skipped>)> {
        let name = name.into();
        // 1. A single common top folder is the real root (module docs, rule 2).
        let all_paths = || {
            self.decoded
                .iter()
                .map(|(p, _)| p.as_str())
                .chain(self.skipped.iter().map(|s| s.path.as_str()))
                .chain(self.folders.iter().map(String::as_str))
        };
        let top = |p: &str| p.split('/').next().unwrap_or("").to_string();
        let tops: BTreeSet<String> = all_paths().map(top).collect();
        let deep = self
            .decoded
            .iter()
            .map(|(p, _)| p)
            .chain(self.skipped.iter().map(|s| &s.path))
            .any(|p| p.split('/').count() >= 3);
        if tops.len() == 1 && deep {
            let prefix_len = tops.first().map_or(0, |t| t.len() + 1);
            let strip = |p: &mut String| *p = p.get(prefix_len..).unwrap_or("").to_string();
            self.decoded.iter_mut().for_each(|(p, _)| strip(p));
            self.skipped.iter_mut().for_each(|s| strip(&mut s.path));
            self.folders.iter_mut().for_each(strip);
        }

        // 2. Classes are first folders; files at the root are skipped.
        let class_of = |p: &str| p.split_once('/').map(|(class, _)| class.to_string());
        let mut images = Vec::new();
        for (path, pixels) in self.decoded {
            match class_of(&path) {
                Some(class) => images.push((class, path, pixels)),
                None => self.skipped.push(Skipped {
                    path,
                    reason: SkipReason::NotInClassFolder,
                }),
            }
        }
        for s in &mut self.skipped {
            // An unreadable entry at the root may be a class folder; keep that reason.
            if class_of(&s.path).is_none() && !matches!(s.reason, SkipReason::Unreadable(_)) {
                s.reason = SkipReason::NotInClassFolder;
            }
        }
        let class_names: Vec<String> = images
            .iter()
            .map(|(class, _, _)| class.clone())
            .chain(self.skipped.iter().filter_map(|s| class_of(&s.path)))
            .chain(
                self.folders
                    .iter()
                    .filter(|f| !f.is_empty())
                    .map(|f| top(f)),
            )
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        self.skipped.sort_by(|a, b| a.path.cmp(&b.path));

        // 3. Enough images in enough classes.
        if images.is_empty() {
            return Err(Error::NoImages {
                skipped: self.skipped,
            });
        }
        for class in &class_names {
            if !images.iter().any(|(c, _, _)| c == class) {
                let skipped = self
                    .skipped
                    .iter()
                    .filter(|s| class_of(&s.path).as_ref() == Some(class))
                    .cloned()
                    .collect();
                return Err(Error::EmptyClass {
                    class: class.clone(),
                    skipped,
                });
            }
        }
        if class_names.len() == 1 {
            return Err(Error::SingleClass {
                class: class_names[0].clone(),
            });
        }

        // 4. Samples sorted by (class, path).
        images.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        let mut dataset = FolderDataset {
            name,
            options: self.options,
            pixels: Vec::with_capacity(images.len() * images[0].2.len()),
            labels: Vec::with_capacity(images.len()),
            paths: Vec::with_capacity(images.len()),
            class_names,
        };
        for (class, path, pixels) in images {
            let label = dataset
                .class_names
                .binary_search(&class)
                .expect("every class is listed");
            dataset.labels.push(label);
            dataset.paths.push(path);
            dataset.pixels.extend_from_slice(&pixels);
        }
        Ok((dataset, self.skipped))
    }
}

/// `a\b/./c` → `a/b/c`; `None` for hidden or system entries (module docs, rule 1).
fn normalise(path: &str) -> Option<String> {
    let parts: Vec<&str> = path
        .split(['/', '\\'])
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    let hidden = |p: &&str| p.starts_with('.') || *p == "__MACOSX";
    let system =
        |p: &&str| p.eq_ignore_ascii_case("Thumbs.db") || p.eq_ignore_ascii_case("desktop.ini");
    if parts.is_empty() || parts.iter().any(hidden) || parts.last().is_some_and(system) {
        return None;
    }
    Some(parts.join("/"))
}

/// Decodes, orients, crops, resizes and converts one file to CHW bytes.
fn prepare(bytes: &[u8], options: FolderOptions) -> std::result::Result<Vec<u8>, SkipReason> {
    let format = image::guess_format(bytes).map_err(|_| SkipReason::NotAnImage)?;
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    reader.limits(picture_limits());
    let mut decoder = reader.into_decoder().map_err(skip_reason)?;
    check_size(&decoder)?;
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let mut image = DynamicImage::from_decoder(decoder).map_err(skip_reason)?;
    image.apply_orientation(orientation);
    if image.width() == 0 || image.height() == 0 {
        return Err(SkipReason::Broken("the image is empty".into()));
    }
    let square = centre_square(&flatten_over_white(&image), options.resolution as u32);
    Ok(rgb_to_chw(&square, options.channels))
}

/// The decoder's own limit on what it allocates besides the image (PNG's text chunks and
/// buffers); the sides are checked by [`check_size`], which says more than the decoder would.
fn picture_limits() -> Limits {
    let mut limits = Limits::default();
    limits.max_alloc = Some(MAX_PICTURE_BYTES);
    limits
}

/// Refuses a picture over the limits from its header, before the pixels are allocated
/// (`DynamicImage::from_decoder` allocates the whole image without asking the limits).
fn check_size(decoder: &impl ImageDecoder) -> std::result::Result<(), SkipReason> {
    let (w, h) = decoder.dimensions();
    if w > MAX_PICTURE_SIDE || h > MAX_PICTURE_SIDE {
        return Err(SkipReason::TooLarge(format!("{w} x {h} pixels, over the limit of {MAX_PICTURE_SIDE} a side")));
    }
    let bytes = decoder.total_bytes();
    if bytes > MAX_PICTURE_BYTES {
        return Err(SkipReason::TooLarge(format!(
            "{w} x {h} pixels take {} MiB decoded, over the limit of {} MiB",
            bytes >> 20,
            MAX_PICTURE_BYTES >> 20
        )));
    }
    Ok(())
}

fn skip_reason(error: ImageError) -> SkipReason {
    match error {
        ImageError::Unsupported(e) => SkipReason::Unsupported(e.to_string()),
        ImageError::Limits(e) => SkipReason::TooLarge(e.to_string()),
        e => SkipReason::Broken(e.to_string()),
    }
}

/// The centred square of side min(width, height), resized to `side`.
fn centre_square(rgb: &RgbImage, side: u32) -> RgbImage {
    let (w, h) = rgb.dimensions();
    let s = w.min(h);
    let mut square = imageops::crop_imm(rgb, (w - s) / 2, (h - s) / 2, s, s).to_image();
    // Lanczos3 over a 100x reduction reads ~600 source pixels per output pixel per axis; an area
    // average to twice the target first gives the same look at a fraction of the cost.
    if s >= 4 * side {
        square = imageops::thumbnail(&square, 2 * side, 2 * side);
    }
    if square.width() != side {
        square = imageops::resize(&square, side, side, FilterType::Lanczos3);
    }
    square
}

/// Records every folder below `listing` in `builder` and lists its files as (relative path, path)
/// in `files`, depth first, so they can be read one at a time with progress. Symbolic links to
/// folders are not followed (reading one as a file fails and is reported).
#[cfg(not(target_arch = "wasm32"))]
fn walk(
    listing: std::fs::ReadDir,
    relative: &str,
    builder: &mut FolderBuilder,
    files: &mut Vec<(String, std::path::PathBuf)>,
) {
    let join = |name: &str| {
        if relative.is_empty() {
            name.to_string()
        } else {
            format!("{relative}/{name}")
        }
    };
    for entry in listing {
        let entry = match entry {
            Ok(entry) => entry,
            Err(e) => {
                builder.add_file(&join("?"), Err(e.to_string()));
                continue;
            }
        };
        let path = join(&entry.file_name().to_string_lossy());
        if normalise(&path).is_none() {
            continue;
        }
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            builder.add_folder(&path);
            match std::fs::read_dir(entry.path()) {
                Ok(listing) => walk(listing, &path, builder, files),
                Err(e) => builder.add_file(&path, Err(e.to_string())),
            }
        } else {
            files.push((path, entry.path()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{ImageFormat, Rgb};
    use std::fs;
    use std::path::Path;

    const RED: [u8; 3] = [220, 30, 30];
    const BLUE: [u8; 3] = [20, 40, 210];

    fn encode(width: u32, height: u32, color: [u8; 3], format: ImageFormat) -> Vec<u8> {
        let image = RgbImage::from_pixel(width, height, Rgb(color));
        let mut bytes = Cursor::new(Vec::new());
        DynamicImage::ImageRgb8(image)
            .write_to(&mut bytes, format)
            .unwrap();
        bytes.into_inner()
    }

    fn write(root: &Path, path: &str, bytes: &[u8]) {
        let path = root.join(path);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, bytes).unwrap();
    }

    fn options(resolution: usize, channels: usize) -> FolderOptions {
        FolderOptions {
            resolution,
            channels,
        }
    }

    fn mean(image: &Image, c: usize) -> f32 {
        let plane = image.height * image.width;
        image.pixels[c * plane..(c + 1) * plane].iter().sum::<f32>() / plane as f32
    }

    #[test]
    fn folder_loads_png_and_jpeg_and_reports_what_it_skips() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let png = encode(40, 30, RED, ImageFormat::Png);
        write(root, "cats/a.png", &png);
        write(root, "cats/b.jpg", &encode(50, 50, RED, ImageFormat::Jpeg));
        write(root, "cats/notes.png", b"this is text, not a picture");
        write(root, "cats/broken.png", &png[..png.len() / 2]);
        write(
            root,
            "dogs/deeper/c.png",
            &encode(20, 60, BLUE, ImageFormat::Png),
        );
        // A JPEG named .png: decoded by content.
        write(root, "dogs/d.png", &encode(16, 16, BLUE, ImageFormat::Jpeg));
        write(root, "dogs/.DS_Store", b"\0\0\0\x01Bud1");
        write(root, ".hidden/e.png", &png);
        write(root, "readme.txt", b"hello");

        let (ds, skipped) = FolderDataset::open(root, options(16, 3)).unwrap();
        assert_eq!(ds.class_names(), ["cats", "dogs"]);
        assert_eq!(ds.len(), 4);
        assert_eq!((ds.channels(), ds.height(), ds.width()), (3, 16, 16));
        let paths: Vec<_> = (0..ds.len()).map(|i| ds.path(i)).collect();
        assert_eq!(
            paths,
            [
                "cats/a.png",
                "cats/b.jpg",
                "dogs/d.png",
                "dogs/deeper/c.png"
            ]
        );
        assert_eq!(
            (0..4).map(|i| ds.label(i)).collect::<Vec<_>>(),
            [0, 0, 1, 1]
        );
        for i in 0..4 {
            let sample = ds.get(i);
            assert_eq!(sample.label, ds.label(i));
            let (r, b) = (mean(&sample.image, 0), mean(&sample.image, 2));
            assert!(
                if sample.label == 0 {
                    r > 0.7 && b < 0.3
                } else {
                    b > 0.7 && r < 0.3
                },
                "sample {i}: r {r}, b {b}"
            );
        }

        let reasons: Vec<_> = skipped
            .iter()
            .map(|s| (s.path.as_str(), s.reason.clone()))
            .collect();
        assert_eq!(reasons.len(), 3, "{reasons:?}");
        assert_eq!(reasons[0].0, "cats/broken.png");
        assert!(
            matches!(reasons[0].1, SkipReason::Broken(_)),
            "{:?}",
            reasons[0].1
        );
        assert_eq!(reasons[1], ("cats/notes.png", SkipReason::NotAnImage));
        assert_eq!(reasons[2], ("readme.txt", SkipReason::NotInClassFolder));
        assert_eq!(ds.name(), root.file_name().unwrap().to_str().unwrap());
    }

    #[test]
    fn grayscale_option_gives_one_channel_of_luma() {
        let entries = [
            ("a/red.png", encode(8, 8, RED, ImageFormat::Png)),
            ("b/blue.png", encode(8, 8, BLUE, ImageFormat::Png)),
        ];
        let (ds, skipped) = FolderDataset::from_entries("mem", entries, options(4, 1)).unwrap();
        assert!(skipped.is_empty());
        let image = ds.get(0).image;
        assert_eq!((image.channels, image.pixels.len()), (1, 16));
        let luma = (299 * 220 + 587 * 30 + 114 * 30 + 500) / 1000;
        assert!(
            image
                .pixels
                .iter()
                .all(|&v| (v * 255.0 - luma as f32).abs() < 1.5),
            "{:?}",
            image.pixels
        );
    }

    #[test]
    fn centre_crop_keeps_the_middle_of_wide_and_tall_images() {
        // Three vertical bands (red, green, blue) in a 90 x 30 image: the centre square is green.
        let wide = RgbImage::from_fn(90, 30, |x, _| {
            Rgb(match x / 30 {
                0 => RED,
                1 => [0, 200, 0],
                _ => BLUE,
            })
        });
        let tall = RgbImage::from_fn(30, 90, |_, y| {
            Rgb(match y / 30 {
                0 => RED,
                1 => [0, 200, 0],
                _ => BLUE,
            })
        });
        for source in [wide, tall] {
            let square = centre_square(&source, 8);
            assert_eq!(square.dimensions(), (8, 8));
            assert!(
                square
                    .pixels()
                    .all(|p| p.0[1] > 180 && p.0[0] < 20 && p.0[2] < 20)
            );
        }
        // A large photo goes through the area-average shortcut and still averages correctly.
        let checker = RgbImage::from_fn(1000, 800, |x, y| {
            Rgb(if (x + y) % 2 == 0 { [255; 3] } else { [0; 3] })
        });
        let small = centre_square(&checker, 10);
        assert!(
            small.pixels().all(|p| (110..=145).contains(&p.0[0])),
            "{:?}",
            small.get_pixel(5, 5)
        );
    }

    #[test]
    fn from_entries_strips_a_dropped_root_folder_and_accepts_backslashes() {
        let png = encode(10, 10, RED, ImageFormat::Png);
        let entries = vec![
            ("drop/cats/1.png".to_string(), png.clone()),
            ("drop\\dogs\\2.png".to_string(), png.clone()),
            ("drop/notes.txt".to_string(), b"hi".to_vec()),
            ("drop/.DS_Store".to_string(), b"x".to_vec()),
        ];
        let (ds, skipped) =
            FolderDataset::from_entries("drop", entries, FolderOptions::default()).unwrap();
        assert_eq!(ds.class_names(), ["cats", "dogs"]);
        assert_eq!((ds.len(), ds.height()), (2, 32));
        assert_eq!(
            skipped,
            [Skipped {
                path: "notes.txt".into(),
                reason: SkipReason::NotInClassFolder
            }]
        );
    }

    #[test]
    fn empty_or_missing_folders_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        assert!(
            matches!(FolderDataset::open(dir.path(), FolderOptions::default()), Err(Error::NoImages { skipped }) if skipped.is_empty())
        );

        let missing = dir.path().join("nope");
        assert!(
            matches!(FolderDataset::open(&missing, FolderOptions::default()), Err(Error::MissingRoot { path }) if path == missing)
        );

        write(dir.path(), "file.png", &encode(4, 4, RED, ImageFormat::Png));
        let file = dir.path().join("file.png");
        let err = FolderDataset::open(&file, FolderOptions::default()).unwrap_err();
        assert!(
            matches!(&err, Error::Zip { name, .. } if name == "file"),
            "a single picture is not a dataset: {err}"
        );
        assert!(err.to_string().contains("one subfolder per class"), "{err}");
        // Only a root-level file: nothing usable.
        assert!(
            matches!(FolderDataset::open(dir.path(), FolderOptions::default()), Err(Error::NoImages { skipped }) if skipped.len() == 1)
        );
    }

    #[test]
    fn one_class_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "cats/a.png",
            &encode(4, 4, RED, ImageFormat::Png),
        );
        write(
            dir.path(),
            "cats/b.png",
            &encode(4, 4, RED, ImageFormat::Png),
        );
        let error = FolderDataset::open(dir.path(), FolderOptions::default()).unwrap_err();
        assert!(
            matches!(&error, Error::SingleClass { class } if class == "cats"),
            "{error}"
        );
    }

    #[test]
    fn class_without_usable_images_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "cats/a.png",
            &encode(4, 4, RED, ImageFormat::Png),
        );
        write(dir.path(), "dogs/a.png", b"not a png");
        let error = FolderDataset::open(dir.path(), FolderOptions::default()).unwrap_err();
        match error {
            Error::EmptyClass { class, skipped } => {
                assert_eq!(class, "dogs");
                assert_eq!(
                    skipped,
                    [Skipped {
                        path: "dogs/a.png".into(),
                        reason: SkipReason::NotAnImage
                    }]
                );
            }
            e => panic!("{e}"),
        }
        // An empty class folder counts as a class too.
        fs::remove_file(dir.path().join("dogs/a.png")).unwrap();
        write(
            dir.path(),
            "zebras/a.png",
            &encode(4, 4, RED, ImageFormat::Png),
        );
        let error = FolderDataset::open(dir.path(), FolderOptions::default()).unwrap_err();
        assert!(
            matches!(&error, Error::EmptyClass { class, skipped } if class == "dogs" && skipped.is_empty()),
            "{error}"
        );
    }

    #[test]
    fn bad_options_are_rejected() {
        let entries: [(&str, &[u8]); 0] = [];
        assert!(matches!(
            FolderDataset::from_entries("x", entries, options(32, 2)),
            Err(Error::Channels { channels: 2 })
        ));
        assert!(matches!(
            FolderDataset::from_entries("x", entries, options(0, 3)),
            Err(Error::Size { .. })
        ));
    }

    #[test]
    fn hidden_and_system_paths_are_ignored() {
        assert_eq!(normalise("./a\\b//c.png").as_deref(), Some("a/b/c.png"));
        for path in [
            ".DS_Store",
            "cats/._a.jpg",
            "__MACOSX/cats/a.jpg",
            "cats/Thumbs.db",
            ".git/x",
            "",
        ] {
            assert_eq!(normalise(path), None, "{path}");
        }
    }

    /// A zip of `(name, bytes)` entries; names ending in `/` are folders; `deflate` picks the
    /// method of the files.
    fn zip_of(entries: &[(&str, &[u8])], deflate: bool) -> Vec<u8> {
        use std::io::Write;
        use zip::write::SimpleFileOptions;
        let method = if deflate {
            zip::CompressionMethod::Deflated
        } else {
            zip::CompressionMethod::Stored
        };
        let options = SimpleFileOptions::default().compression_method(method);
        let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
        for (name, bytes) in entries {
            if let Some(folder) = name.strip_suffix('/') {
                writer.add_directory(folder, options).unwrap();
            } else {
                writer.start_file(*name, options).unwrap();
                writer.write_all(bytes).unwrap();
            }
        }
        writer.finish().unwrap().into_inner()
    }

    #[test]
    fn a_zip_loads_like_the_folder_it_was_made_from() {
        let (red, blue) = (
            encode(12, 12, RED, ImageFormat::Png),
            encode(12, 12, BLUE, ImageFormat::Jpeg),
        );
        let entries: Vec<(&str, &[u8])> = vec![
            ("pets/", b""),
            ("pets/cats/", b""),
            ("pets/cats/a.png", &red),
            ("pets/cats/b.png", &red),
            ("pets/dogs/", b""),
            ("pets/dogs/c.jpg", &blue),
            ("pets/dogs/broken.png", &red[..40]),
            ("pets/readme.txt", b"my pets"),
            ("__MACOSX/pets/._a.png", b"resource fork"),
        ];
        for deflate in [false, true] {
            let bytes = zip_of(&entries, deflate);
            let mut calls = Vec::new();
            let (ds, skipped) = FolderDataset::from_zip("pets", bytes, FolderOptions::default(), |done, all| calls.push((done, all))).unwrap();
            assert_eq!(ds.name(), "pets");
            assert_eq!(ds.class_names(), ["cats", "dogs"]);
            assert_eq!(ds.len(), 3);
            assert_eq!((ds.label(0), ds.label(2)), (0, 1));
            assert_eq!(ds.path(2), "dogs/c.jpg");
            assert!(mean(&ds.get(2).image, 2) > 0.5, "the dog is blue");
            let skipped: Vec<_> = skipped.iter().map(|s| (s.path.as_str(), &s.reason)).collect();
            assert!(matches!(skipped[..], [("dogs/broken.png", SkipReason::Broken(_)), ("readme.txt", SkipReason::NotInClassFolder)]), "{skipped:?}");
            assert_eq!(calls.len(), entries.len(), "one report per entry");
            assert_eq!(calls.last(), Some(&(entries.len(), entries.len())));
        }

        // The same archive as a file on disk, through `open`.
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "pets.zip", &zip_of(&entries, true));
        let (ds, _) = FolderDataset::open(dir.path().join("pets.zip"), FolderOptions::default()).unwrap();
        assert_eq!((ds.name(), ds.len()), ("pets", 3));
    }

    #[test]
    fn a_damaged_or_unusable_zip_is_a_clear_error() {
        let err = FolderDataset::from_zip("notes", b"PK not really".to_vec(), FolderOptions::default(), |_, _| {}).unwrap_err();
        assert!(matches!(&err, Error::Zip { name, .. } if name == "notes"), "{err}");

        // A readable archive of one class is the usual folder error, not a zip error.
        let png = encode(4, 4, RED, ImageFormat::Png);
        let one_class = zip_of(&[("cats/a.png", &png)], true);
        assert!(matches!(
            FolderDataset::from_zip("cats", one_class, FolderOptions::default(), |_, _| {}),
            Err(Error::SingleClass { .. })
        ));

        // A truncated archive (the download was cut short) is a zip error too.
        let whole = zip_of(&[("cats/a.png", &png), ("dogs/b.png", &png)], true);
        let cut = whole[..whole.len() / 2].to_vec();
        assert!(matches!(
            FolderDataset::from_zip("cut", cut, FolderOptions::default(), |_, _| {}),
            Err(Error::Zip { .. })
        ));
    }

    #[test]
    fn a_folder_reports_progress_per_file() {
        let dir = tempfile::tempdir().unwrap();
        let png = encode(6, 6, RED, ImageFormat::Png);
        for path in ["a/1.png", "a/2.png", "b/3.png", "b/notes.txt"] {
            write(dir.path(), path, &png);
        }
        let mut calls = Vec::new();
        FolderDataset::open_with_progress(dir.path(), FolderOptions::default(), |done, all| calls.push((done, all))).unwrap();
        assert_eq!(calls, [(1, 4), (2, 4), (3, 4), (4, 4)]);
    }

    /// CRC-32 (ISO-HDLC), as PNG chunks carry it.
    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &b in bytes {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
            }
        }
        !crc
    }

    /// A small PNG whose header declares `width x height` pixels of `bit_depth` and `color_type`
    /// (its pixel data stays that of a 1x1 image): what a decompression bomb looks like to a
    /// decoder before it allocates.
    fn png_declaring(width: u32, height: u32, bit_depth: u8, color_type: u8) -> Vec<u8> {
        let mut png = encode(1, 1, RED, ImageFormat::Png);
        // Signature (8), IHDR length (4) and type (4), then width, height, depth, colour type.
        png[16..20].copy_from_slice(&width.to_be_bytes());
        png[20..24].copy_from_slice(&height.to_be_bytes());
        (png[24], png[25]) = (bit_depth, color_type);
        let crc = crc32(&png[12..29]);
        png[29..33].copy_from_slice(&crc.to_be_bytes());
        png
    }

    #[test]
    fn a_huge_picture_is_skipped_as_too_large_before_it_is_decoded() {
        let png = encode(8, 8, RED, ImageFormat::Png);
        let entries = vec![
            ("cats/a.png", png.clone()),
            ("dogs/b.png", png.clone()),
            // 20000 x 20000 RGB: 1.1 GiB decoded, over the side limit.
            ("cats/huge.png", png_declaring(20_000, 20_000, 8, 2)),
            // 9000 x 9000 16-bit RGBA: within the side limit, 618 MiB decoded.
            ("dogs/deep.png", png_declaring(9_000, 9_000, 16, 6)),
        ];
        let (ds, skipped) = FolderDataset::from_entries("big", entries, options(8, 3)).unwrap();
        assert_eq!(ds.len(), 2);
        let reasons: Vec<_> = skipped.iter().map(|s| (s.path.as_str(), s.reason.to_string())).collect();
        assert!(matches!(&skipped[0].reason, SkipReason::TooLarge(why) if why.contains("20000 x 20000")), "{reasons:?}");
        assert!(matches!(&skipped[1].reason, SkipReason::TooLarge(why) if why.contains("MiB decoded")), "{reasons:?}");
        assert_eq!((reasons[0].0, reasons[1].0), ("cats/huge.png", "dogs/deep.png"));
        assert!(reasons[0].1.starts_with("too large"), "the report says why: {reasons:?}");
    }

    #[test]
    fn a_zip_is_bounded_in_entries_and_in_what_it_unpacks() {
        use crate::{PictureZip, ZipLimits};
        let png = encode(8, 8, RED, ImageFormat::Png);
        let big = vec![7u8; 5000];
        let entries: Vec<(&str, &[u8])> =
            vec![("cats/a.png", &png), ("cats/big.bin", &big), ("dogs/b.png", &png), ("dogs/c.png", &png)];
        let bytes = zip_of(&entries, true);

        // Too many entries: the archive is refused as a whole, saying why.
        let few = ZipLimits { max_entries: 3, ..ZipLimits::default() };
        let err = PictureZip::with_limits(bytes.clone(), few).err().unwrap();
        assert!(err.contains("4 entries") && err.contains("limit of 3"), "{err}");

        // An entry over its own limit, then entries past the total, are skipped as too large.
        let limits = ZipLimits { max_entries: 10, max_entry_bytes: 4096, max_total_bytes: (2 * png.len()) as u64 };
        let mut zip = PictureZip::with_limits(bytes, limits).unwrap();
        let mut builder = FolderBuilder::new(options(8, 3)).unwrap();
        (0..zip.len()).for_each(|i| zip.add_entry(i, &mut builder));
        let (ds, skipped) = builder.finish("zip").unwrap();
        assert_eq!((ds.len(), ds.path(0), ds.path(1)), (2, "cats/a.png", "dogs/b.png"));
        let reasons: Vec<_> = skipped.iter().map(|s| (s.path.as_str(), &s.reason)).collect();
        assert!(
            matches!(reasons[..], [("cats/big.bin", SkipReason::TooLarge(a)), ("dogs/c.png", SkipReason::TooLarge(b))]
                if a.contains("5000 bytes uncompressed, over the limit of 4096 bytes") && b.contains("in all")),
            "{reasons:?}"
        );
    }
}
