//! Procedural scenery: RGB landscapes painted from a seed, in six classes, at any width.
//!
//! Made for a column-wise generator that trains at width = height and then paints far wider
//! images, so:
//! - every class is horizontally translation-invariant: features (peaks, buildings, trees, boats)
//!   sit on a jittered lattice with a random phase and noise has no preferred x; there is no
//!   vignette and no single sun;
//! - a scene is a function of (x, y) in units of the image height, so a wider image with the same
//!   seed continues the narrower one (its left part is bit-identical) and a taller one is the same
//!   scene at a finer resolution;
//! - the same (class, seed, height, width) gives the same bits on every platform (see `noise`).
//!
//! Each image draws its own parameters (time of day, palette, density) from its seed; each pixel
//! averages 2 × 2 samples.

mod aurora;
mod city;
mod desert;
mod forest;
mod mountains;
mod noise;
mod paint;
mod sea;
mod sky;

use serde::{Deserialize, Serialize};

use crate::{Dataset, Error, Image, Result, Sample};
use noise::{Rng, hash};
use paint::Rgb;

/// The kinds of scenery, in label order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SceneClass {
    /// Receding ranges of peaks, snow on the high ones.
    Mountains,
    /// A skyline of buildings with windows, lit at night.
    City,
    /// Open water with waves to the horizon, sometimes a beach, boats or islands.
    Sea,
    /// Rows of conifers or round broadleaf trees, some autumns.
    Forest,
    /// Sand dunes with lit and shadowed faces, mesas, cacti.
    Desert,
    /// Northern lights over snow or a frozen lake, always at night.
    Aurora,
}

impl SceneClass {
    /// Every class, in label order.
    pub const ALL: [SceneClass; 6] = [
        Self::Mountains,
        Self::City,
        Self::Sea,
        Self::Forest,
        Self::Desert,
        Self::Aurora,
    ];

    /// The class name, as in [`Dataset::class_names`]: `"mountains"`, `"city"`, ...
    pub fn name(self) -> &'static str {
        match self {
            Self::Mountains => "mountains",
            Self::City => "city",
            Self::Sea => "sea",
            Self::Forest => "forest",
            Self::Desert => "desert",
            Self::Aurora => "aurora",
        }
    }

    /// The label of this class.
    pub fn label(self) -> usize {
        Self::ALL
            .iter()
            .position(|&c| c == self)
            .expect("ALL lists every class")
    }
}

/// Size and contents of a [`Scenes`] dataset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScenesConfig {
    /// Image height in pixels, 8 to 1024; the scenes are designed for 32 and 64. Default 32.
    pub height: usize,
    /// Image width in pixels, 1 to 65536. Default 32.
    pub width: usize,
    /// Number of samples; sample `i` has class `i % 6`. Default 6000.
    pub len: usize,
    /// Seed of the whole dataset. Default 0.
    pub seed: u64,
}

impl Default for ScenesConfig {
    fn default() -> Self {
        Self {
            height: 32,
            width: 32,
            len: 6000,
            seed: 0,
        }
    }
}

/// Procedural scenes: sample `i` is class `SceneClass::ALL[i % 6]` painted from a seed derived
/// from (`config.seed`, `i`), on demand (nothing is stored).
#[derive(Clone, Debug)]
pub struct Scenes {
    config: ScenesConfig,
    class_names: Vec<String>,
}

impl Scenes {
    /// # Errors
    /// [`Error::Size`] if the height or width is outside the ranges of [`ScenesConfig`].
    pub fn new(config: ScenesConfig) -> Result<Self> {
        let ScenesConfig { height, width, .. } = config;
        if !(8..=1024).contains(&height) || !(1..=65536).contains(&width) {
            return Err(Error::Size {
                height,
                width,
                reason: "scenes need a height of 8 to 1024 and a width of 1 to 65536",
            });
        }
        Ok(Self {
            config,
            class_names: SceneClass::ALL
                .iter()
                .map(|c| c.name().to_string())
                .collect(),
        })
    }

    /// The configuration this dataset was made with.
    pub fn config(&self) -> ScenesConfig {
        self.config
    }

    /// Class and seed of sample `index`: `render_scene(class, seed, height, w)` paints it at any width `w`.
    ///
    /// # Panics
    /// If `index >= len()`.
    pub fn scene(&self, index: usize) -> (SceneClass, u64) {
        assert!(
            index < self.config.len,
            "scenes: index {index} out of range 0..{}",
            self.config.len
        );
        (
            SceneClass::ALL[index % SceneClass::ALL.len()],
            hash(self.config.seed, index as i64),
        )
    }
}

impl Dataset for Scenes {
    fn name(&self) -> &str {
        "scenes"
    }

    fn len(&self) -> usize {
        self.config.len
    }

    fn get(&self, index: usize) -> Sample {
        let (class, seed) = self.scene(index);
        Sample {
            image: render_scene(class, seed, self.config.height, self.config.width),
            label: class.label(),
        }
    }

    fn label(&self, index: usize) -> usize {
        self.scene(index).0.label()
    }

    fn class_names(&self) -> &[String] {
        &self.class_names
    }

    fn channels(&self) -> usize {
        3
    }

    fn height(&self) -> usize {
        self.config.height
    }

    fn width(&self) -> usize {
        self.config.width
    }
}

/// A painter: the colour of the scene at (`u`, `v`), in units of image height, `v` down from the
/// top (0) to the bottom (1), `u` to the right without bound.
trait Scene {
    fn shade(&self, u: f64, v: f64) -> Rgb;
}

/// Paints one scene, 3 × `height` × `width`, values in [0, 1]. Column `x` depends only on
/// (class, seed, height, x), so widening the image appends columns.
///
/// # Panics
/// If `height` is 0.
pub fn render_scene(class: SceneClass, seed: u64, height: usize, width: usize) -> Image {
    assert!(height > 0, "render_scene: height must be at least 1");
    let ppu = height as f64;
    let mut rng = Rng::new(hash(seed, class.label() as i64));
    // A whole number of heights, so the pixel lattice (and the stars on it) stays aligned.
    let shift = rng.below(4096) as f64;
    let scene: Box<dyn Scene> = match class {
        SceneClass::Mountains => Box::new(mountains::Mountains::new(&mut rng, ppu)),
        SceneClass::City => Box::new(city::City::new(&mut rng, ppu)),
        SceneClass::Sea => Box::new(sea::Sea::new(&mut rng, ppu)),
        SceneClass::Forest => Box::new(forest::Forest::new(&mut rng, ppu)),
        SceneClass::Desert => Box::new(desert::Desert::new(&mut rng, ppu)),
        SceneClass::Aurora => Box::new(aurora::Aurora::new(&mut rng, ppu)),
    };
    let plane = height * width;
    let mut pixels = vec![0.0; 3 * plane];
    for x in 0..width {
        for y in 0..height {
            let mut sum = [0.0; 3];
            for (dx, dy) in [(0.25, 0.25), (0.75, 0.25), (0.25, 0.75), (0.75, 0.75)] {
                let c = scene.shade(shift + (x as f64 + dx) / ppu, (y as f64 + dy) / ppu);
                sum = paint::add(sum, c);
            }
            for (channel, total) in sum.iter().enumerate() {
                pixels[channel * plane + y * width + x] = (total / 4.0).clamp(0.0, 1.0) as f32;
            }
        }
    }
    Image::new(3, height, width, pixels)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn channel_means(image: &Image) -> [f64; 3] {
        let plane = image.height * image.width;
        [0, 1, 2].map(|c| {
            image.pixels[c * plane..(c + 1) * plane]
                .iter()
                .map(|&v| f64::from(v))
                .sum::<f64>()
                / plane as f64
        })
    }

    #[test]
    fn same_seed_same_image_and_different_seeds_differ() {
        for class in SceneClass::ALL {
            let a = render_scene(class, 11, 32, 48);
            assert_eq!(a, render_scene(class, 11, 32, 48), "{class:?}");
            assert_ne!(a, render_scene(class, 12, 32, 48), "{class:?}");
        }
    }

    #[test]
    fn every_pixel_is_in_range_for_many_seeds() {
        for class in SceneClass::ALL {
            for seed in 0..150 {
                let image = render_scene(class, seed, 16, 20);
                assert!(
                    image.pixels.iter().all(|v| (0.0..=1.0).contains(v)),
                    "{class:?} seed {seed}"
                );
            }
        }
    }

    #[test]
    fn wider_image_continues_the_narrow_one() {
        for class in SceneClass::ALL {
            for height in [32, 64] {
                let narrow = render_scene(class, 5, height, height);
                let wide = render_scene(class, 5, height, 5 * height + 3);
                for c in 0..3 {
                    for y in 0..height {
                        for x in 0..height {
                            assert_eq!(
                                narrow.at(c, y, x),
                                wide.at(c, y, x),
                                "{class:?} at {c},{y},{x}"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn any_width_works() {
        for width in [1, 7, 33, 300] {
            let image = render_scene(SceneClass::City, 3, 32, width);
            assert_eq!((image.channels, image.height, image.width), (3, 32, width));
        }
    }

    #[test]
    fn statistics_do_not_drift_along_x() {
        // Mean brightness of the left and right halves of wide images agree over many seeds.
        for class in SceneClass::ALL {
            let (mut left, mut right) = (0.0, 0.0);
            for seed in 0..24 {
                let image = render_scene(class, seed, 16, 256);
                let half = |range: std::ops::Range<usize>| -> f64 {
                    let mut sum = 0.0;
                    for c in 0..3 {
                        for y in 0..16 {
                            sum += range
                                .clone()
                                .map(|x| f64::from(image.at(c, y, x)))
                                .sum::<f64>();
                        }
                    }
                    sum / (3 * 16 * range.len()) as f64
                };
                left += half(0..128);
                right += half(128..256);
            }
            assert!(
                (left - right).abs() / 24.0 < 0.03,
                "{class:?}: {} vs {}",
                left / 24.0,
                right / 24.0
            );
        }
    }

    #[test]
    fn classes_have_different_colour_statistics() {
        // Mean colour per class over 40 images, and its distance to every other class.
        let means: Vec<[f64; 3]> = SceneClass::ALL
            .iter()
            .map(|&class| {
                let sums = (0..40)
                    .map(|seed| channel_means(&render_scene(class, seed, 16, 16)))
                    .fold([0.0; 3], |a, m| [a[0] + m[0], a[1] + m[1], a[2] + m[2]]);
                sums.map(|s| s / 40.0)
            })
            .collect();
        for a in 0..means.len() {
            for b in a + 1..means.len() {
                let d = (0..3)
                    .map(|c| (means[a][c] - means[b][c]).powi(2))
                    .sum::<f64>()
                    .sqrt();
                assert!(
                    d > 0.04,
                    "{:?} and {:?} have close mean colours {:?} {:?}",
                    SceneClass::ALL[a],
                    SceneClass::ALL[b],
                    means[a],
                    means[b]
                );
            }
        }
    }

    #[test]
    fn images_within_a_class_vary() {
        for class in SceneClass::ALL {
            let means: Vec<f64> = (0..12)
                .map(|seed| {
                    channel_means(&render_scene(class, seed, 16, 16))
                        .iter()
                        .sum::<f64>()
                        / 3.0
                })
                .collect();
            let (lo, hi) = means
                .iter()
                .fold((f64::MAX, f64::MIN), |(lo, hi), &m| (lo.min(m), hi.max(m)));
            assert!(hi - lo > 0.08, "{class:?} brightness only spans {lo}..{hi}");
        }
    }

    #[test]
    fn pixels_are_pinned_so_changes_to_the_painters_are_deliberate() {
        // FNV-1a over the bits of one image per class; the same value was computed by a wasm32
        // build under Node. A change here changes every saved dataset and trained model's inputs:
        // update the constant only on purpose.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for class in SceneClass::ALL {
            for v in render_scene(class, 42, 32, 40).pixels {
                for b in v.to_bits().to_le_bytes() {
                    h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
                }
            }
        }
        assert_eq!(h, PINNED_HASH, "scene pixels changed: {h:#018x}");
    }

    const PINNED_HASH: u64 = 0xd7f1_e0ba_27a1_b7e5;

    #[test]
    fn dataset_cycles_classes_and_checks_its_size() {
        let ds = Scenes::new(ScenesConfig {
            height: 16,
            width: 40,
            len: 13,
            seed: 9,
        })
        .unwrap();
        assert_eq!(ds.class_names().len(), 6);
        assert_eq!(
            (0..13).map(|i| ds.label(i)).collect::<Vec<_>>(),
            [0, 1, 2, 3, 4, 5, 0, 1, 2, 3, 4, 5, 0]
        );
        let sample = ds.get(7);
        assert_eq!(
            (sample.label, sample.image.width, sample.image.height),
            (1, 40, 16)
        );
        assert_ne!(ds.get(0).image, ds.get(6).image);
        assert!(matches!(
            Scenes::new(ScenesConfig {
                height: 4,
                ..ScenesConfig::default()
            }),
            Err(Error::Size { .. })
        ));
        assert!(matches!(
            Scenes::new(ScenesConfig {
                width: 0,
                ..ScenesConfig::default()
            }),
            Err(Error::Size { .. })
        ));
        assert_eq!(SceneClass::Desert.name(), "desert");
        assert_eq!(SceneClass::Desert.label(), 4);
    }
}
