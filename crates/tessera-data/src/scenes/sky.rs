//! Time of day and the sky: a vertical gradient, drifting cloud banks and, at night, stars.
//! Nothing depends on x except through noise, so the sky looks the same at every column.

use super::noise::{Rng, fbm2, hash2, unit};
use super::paint::{Rgb, hex, mix, mul, pick, scale, smoothstep};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum TimeOfDay {
    Day,
    Dusk,
    Night,
}

impl TimeOfDay {
    /// Drawn with relative weights `[day, dusk, night]`.
    pub(super) fn random(rng: &mut Rng, weights: [f64; 3]) -> Self {
        [Self::Day, Self::Dusk, Self::Night][rng.weighted(&weights)]
    }
}

pub(super) struct Sky {
    pub(super) time: TimeOfDay,
    top: Rgb,
    /// Sky colour at the horizon; distant things fade towards it.
    pub(super) haze: Rgb,
    /// What lit ground is multiplied by: white-ish by day, warm at dusk, dark blue at night.
    pub(super) light: Rgb,
    cloud: Rgb,
    /// Share of the sky under cloud, 0 to about 0.6.
    cover: f64,
    cloud_seed: u64,
    /// Stars per pixel near the top of the sky.
    stars: f64,
    star_seed: u64,
    /// Pixels per unit of height, so stars are one pixel at any resolution.
    ppu: f64,
}

impl Sky {
    /// A sky at a time of day drawn with relative weights `[day, dusk, night]`.
    pub(super) fn random(rng: &mut Rng, weights: [f64; 3], ppu: f64) -> Self {
        let time = TimeOfDay::random(rng, weights);
        Self::new(rng, time, ppu)
    }

    pub(super) fn new(rng: &mut Rng, time: TimeOfDay, ppu: f64) -> Self {
        let (top, haze, light, cloud, stars) = match time {
            TimeOfDay::Day => (
                pick(
                    rng,
                    &[hex(0x2f6fd6), hex(0x4a8fe0), hex(0x5aa0e8), hex(0x3a7bd0)],
                ),
                pick(
                    rng,
                    &[hex(0xbfe0f7), hex(0xd6ecf8), hex(0xa9d2f0), hex(0xe3eef5)],
                ),
                [1.0, 1.0, 0.97],
                hex(0xf4f6fa),
                0.0,
            ),
            TimeOfDay::Dusk => (
                pick(
                    rng,
                    &[hex(0x2b2f6b), hex(0x3b3a7a), hex(0x5a3d7a), hex(0x33457e)],
                ),
                pick(
                    rng,
                    &[hex(0xf59e5a), hex(0xf7b267), hex(0xef7f6a), hex(0xf4a3a0)],
                ),
                [0.95, 0.72, 0.62],
                pick(rng, &[hex(0xf3a6a0), hex(0xffc890), hex(0xc98aa8)]),
                rng.range(0.0, 0.004),
            ),
            TimeOfDay::Night => (
                pick(rng, &[hex(0x050914), hex(0x0a1026), hex(0x0d0d1f)]),
                pick(
                    rng,
                    &[hex(0x1c2a4a), hex(0x233556), hex(0x1a2238), hex(0x26304f)],
                ),
                [0.26, 0.3, 0.44],
                hex(0x2a3145),
                rng.range(0.01, 0.03),
            ),
        };
        Self {
            time,
            top,
            haze,
            light,
            cloud,
            cover: if rng.chance(0.3) {
                0.0
            } else {
                rng.range(0.05, 0.6)
            },
            cloud_seed: rng.next_u64(),
            stars,
            star_seed: rng.next_u64(),
            ppu,
        }
    }

    /// A night sky for the aurora: deep blue-black to dark teal, many stars, few clouds.
    pub(super) fn aurora(rng: &mut Rng, ppu: f64) -> Self {
        let mut sky = Self::new(rng, TimeOfDay::Night, ppu);
        sky.top = pick(rng, &[hex(0x02040c), hex(0x040a18), hex(0x06081a)]);
        sky.haze = pick(rng, &[hex(0x0b2a3a), hex(0x10304a), hex(0x0e2236)]);
        sky.stars = rng.range(0.01, 0.035);
        sky.cover *= 0.4;
        sky
    }

    /// `color` as seen under this sky's light.
    pub(super) fn lit(&self, color: Rgb) -> Rgb {
        mul(color, self.light)
    }

    /// `color` at distance `depth` (0 near, 1 on the horizon): fades towards the haze.
    pub(super) fn far(&self, color: Rgb, depth: f64) -> Rgb {
        mix(self.lit(color), self.haze, depth)
    }

    /// The sky at (`u`, `v`) for a horizon at `horizon` (both in units of image height, v down).
    pub(super) fn shade(&self, u: f64, v: f64, horizon: f64) -> Rgb {
        let t = (v / horizon).clamp(0.0, 1.0);
        let mut color = mix(self.top, self.haze, t * (0.35 + 0.65 * t));
        if self.stars > 0.0 {
            let h = hash2(
                self.star_seed,
                (u * self.ppu).floor() as i64,
                (v * self.ppu).floor() as i64,
            );
            let density = self.stars * (1.0 - t);
            if unit(h) < density {
                let brightness = 0.35 + 0.65 * unit(h.rotate_left(17));
                color = mix(color, [1.0, 1.0, 0.95], brightness);
            }
        }
        if self.cover > 0.0 {
            // Banks stretched horizontally, thinning towards the horizon.
            let d = fbm2(self.cloud_seed, u * 1.3, v * 5.0, 4);
            let alpha = smoothstep(1.0 - self.cover, 1.1 - self.cover, d) * (1.0 - 0.6 * t);
            let underside = mix(
                self.cloud,
                scale(self.cloud, 0.78),
                smoothstep(0.45, 0.75, d),
            );
            color = mix(color, underside, 0.9 * alpha);
        }
        color
    }
}
