//! Mountains: two or three ranges receding into the haze, each a union of cone-shaped peaks on a
//! jittered lattice with a jagged crest; faces lit from one side, snow above a snow line.

use super::Scene;
use super::noise::{Rng, cell, fbm1, value2};
use super::paint::{Rgb, hex, mix, pick, scale};
use super::sky::Sky;

pub(super) struct Mountains {
    sky: Sky,
    horizon: f64,
    /// Nearest first.
    ranges: Vec<Range>,
}

struct Range {
    seed: u64,
    /// `v` of the range's foot.
    foot: f64,
    /// Tallest peak, in units of image height.
    height: f64,
    /// Mean distance between peaks.
    spacing: f64,
    lit: Rgb,
    shadow: Rgb,
    /// Altitude above the foot, as a share of `height`, where snow starts; `None`: no snow.
    snow_line: Option<f64>,
    snow_lit: Rgb,
    snow_shadow: Rgb,
    /// Lit faces look left (`true`) or right.
    light_from_left: bool,
}

impl Mountains {
    pub(super) fn new(rng: &mut Rng, ppu: f64) -> Self {
        let sky = Sky::random(rng, [0.6, 0.25, 0.15], ppu);
        let horizon = rng.range(0.55, 0.72);
        let rock = pick(
            rng,
            &[
                hex(0x5b6b84),
                hex(0x6b5f7e),
                hex(0x7a6a5a),
                hex(0x4e5d6c),
                hex(0x6f7680),
            ],
        );
        let foothill = pick(
            rng,
            &[hex(0x2f4a35), hex(0x3b5530), hex(0x4a4a3a), hex(0x2c3f3a)],
        );
        let light_from_left = rng.chance(0.5);
        let snowy = rng.chance(0.75);
        let count = if rng.chance(0.6) { 3 } else { 2 };
        let mut ranges = Vec::new();
        for k in 0..count {
            // k = 0 is the nearest range.
            let depth = k as f64 / count as f64;
            let (foot, height) = if k == 0 {
                (1.02, rng.range(0.25, 0.42))
            } else {
                (
                    horizon + rng.range(0.0, 0.08) + 0.12 * (1.0 - depth),
                    rng.range(0.28, 0.5) * (1.1 - 0.3 * depth),
                )
            };
            let base = if k == 0 {
                mix(foothill, rock, rng.range(0.0, 0.4))
            } else {
                rock
            };
            let fade = if k == 0 { 0.0 } else { 0.2 + 0.55 * depth };
            let lit = sky.far(scale(base, 1.12), fade);
            let shadow = sky.far(scale(base, 0.7), fade);
            let snow_line = (snowy && k > 0).then(|| rng.range(0.45, 0.8));
            ranges.push(Range {
                seed: rng.next_u64(),
                foot,
                height,
                spacing: rng.range(0.3, 0.7) * (0.6 + 0.4 * height / 0.5),
                lit,
                shadow,
                snow_line,
                snow_lit: sky.far(hex(0xf2f5fa), fade * 0.7),
                snow_shadow: sky.far(hex(0xaebcd4), fade * 0.7),
                light_from_left,
            });
        }
        Self {
            sky,
            horizon,
            ranges,
        }
    }
}

impl Range {
    /// Height of the crest above the foot at `u`, and whether that slope faces left.
    fn crest(&self, u: f64) -> (f64, bool) {
        let s = self.spacing;
        let i0 = (u / s).floor() as i64;
        let (mut best, mut faces_left) = (0.0, true);
        // A cone reaches at most height / min_slope = 0.5 / 0.9 < 3 spacings of 0.2.
        for i in i0 - 3..=i0 + 3 {
            let x = (i as f64 + 0.15 + 0.7 * cell(self.seed, i, 0)) * s;
            let peak = self.height * (0.35 + 0.65 * cell(self.seed, i, 1));
            let slope = 0.9 + 0.8 * cell(self.seed, i, 2);
            let h = peak - slope * (u - x).abs();
            if h > best {
                best = h;
                faces_left = u < x;
            }
        }
        let jag = self.height * 0.07 * (fbm1(self.seed ^ 0x5eed, u * 9.0 / s, 3) - 0.5);
        (best + jag, faces_left)
    }

    fn shade(&self, u: f64, v: f64) -> Option<Rgb> {
        let (crest, faces_left) = self.crest(u);
        let altitude = self.foot - v;
        if altitude > crest {
            return None;
        }
        let lit = faces_left == self.light_from_left;
        if let Some(line) = self.snow_line {
            let edge = line * self.height
                + 0.05 * self.height * (value2(self.seed, u * 14.0, v * 14.0) - 0.5);
            if altitude > edge {
                return Some(if lit { self.snow_lit } else { self.snow_shadow });
            }
        }
        let texture = 0.93 + 0.14 * value2(self.seed ^ 0x7e47, u * 24.0, v * 40.0);
        Some(scale(if lit { self.lit } else { self.shadow }, texture))
    }
}

impl Scene for Mountains {
    fn shade(&self, u: f64, v: f64) -> Rgb {
        self.ranges
            .iter()
            .find_map(|r| r.shade(u, v))
            .unwrap_or_else(|| self.sky.shade(u, v, self.horizon))
    }
}
