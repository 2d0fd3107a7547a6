//! Sea: water to a straight horizon, waves in perspective (bands that crowd towards the horizon,
//! crests and whitecaps), sometimes distant islands, sailboats or a beach in front.

use super::Scene;
use super::noise::{Rng, cell, fbm1, fbm2, value2};
use super::paint::{Rgb, hex, mix, pick, scale, smoothstep};
use super::sky::Sky;

pub(super) struct Sea {
    sky: Sky,
    horizon: f64,
    seed: u64,
    deep: Rgb,
    crest: Rgb,
    /// Waves per unit of depth `z = 1 / d`.
    frequency: f64,
    /// Share of crests that break white.
    whitecaps: f64,
    /// Pixels per unit of height: waves fade where they would be smaller than a pixel.
    ppu: f64,
    islands: Option<(Rgb, f64)>,
    boats: Option<Boats>,
    beach: Option<Beach>,
}

struct Boats {
    seed: u64,
    /// Lattice cell holding at most one boat.
    cell: f64,
    density: f64,
    hull: Rgb,
    sail: Rgb,
}

struct Beach {
    /// Mean `v` of the waterline.
    line: f64,
    sand: Rgb,
    wet: Rgb,
    foam: Rgb,
}

impl Sea {
    pub(super) fn new(rng: &mut Rng, ppu: f64) -> Self {
        let sky = Sky::random(rng, [0.55, 0.3, 0.15], ppu);
        let deep = sky.lit(pick(
            rng,
            &[
                hex(0x1d5f8a),
                hex(0x17688f),
                hex(0x22507a),
                hex(0x0f6f7a),
                hex(0x2a6a9a),
            ],
        ));
        let crest = mix(sky.lit(hex(0x8fc3dd)), sky.haze, 0.3);
        let islands = rng.chance(0.35).then(|| {
            (
                sky.far(
                    pick(rng, &[hex(0x3d5a45), hex(0x5a6a58), hex(0x4a5060)]),
                    0.45,
                ),
                rng.range(0.55, 0.75),
            )
        });
        let boats = rng.chance(0.45).then(|| Boats {
            seed: rng.next_u64(),
            cell: rng.range(0.6, 1.2),
            density: rng.range(0.25, 0.6),
            hull: sky.lit(pick(rng, &[hex(0x3b2a22), hex(0x2a2f3a), hex(0x8a2f2a)])),
            sail: sky.lit(pick(rng, &[hex(0xf5f3ea), hex(0xe9e4d6), hex(0xd84c3c)])),
        });
        let beach = rng.chance(0.45).then(|| Beach {
            line: rng.range(0.8, 0.9),
            sand: sky.lit(pick(rng, &[hex(0xe6d3a3), hex(0xd9c08a), hex(0xefe0bc)])),
            wet: sky.lit(hex(0xa89470)),
            foam: sky.lit(hex(0xf4f8fa)),
        });
        Self {
            horizon: rng.range(0.36, 0.55),
            seed: rng.next_u64(),
            deep,
            crest,
            frequency: rng.range(5.0, 9.0),
            whitecaps: rng.range(0.0, 0.5),
            ppu,
            islands,
            boats,
            beach,
            sky,
        }
    }

    fn water(&self, u: f64, v: f64) -> Rgb {
        // Depth in perspective: d is 0 at the horizon, 1 at the bottom; z = 1/d is the distance.
        let d = ((v - self.horizon) / (1.0 - self.horizon)).max(1e-3);
        let z = 1.0 / d;
        let reflect = mix(self.deep, self.sky.haze, 0.75 * (1.0 - d) * (1.0 - d));
        // How much z changes across one pixel; waves fade out before they alias.
        let z_per_pixel = 1.0 / (self.ppu * (1.0 - self.horizon) * d * d);
        let visible = smoothstep(0.5, 0.15, z_per_pixel * self.frequency);
        let phase = z * self.frequency + 1.6 * fbm2(self.seed, u * z * 0.6, z * 0.4, 3);
        let s = super::noise::wave(phase);
        let mut color = scale(reflect, 1.0 + 0.12 * visible * s);
        let crest = smoothstep(0.6, 0.95, s) * visible;
        color = mix(color, self.crest, 0.6 * crest);
        let cap = value2(self.seed ^ 0xcafe, u * z * 2.0, z * 1.5);
        if cap < self.whitecaps * 0.6 && s > 0.8 {
            color = mix(color, self.sky.lit(hex(0xf4f8fa)), visible);
        }
        color
    }

    fn boat(&self, boats: &Boats, u: f64, v: f64) -> Option<Rgb> {
        let i0 = (u / boats.cell).floor() as i64;
        for i in [i0 - 1, i0, i0 + 1] {
            if cell(boats.seed, i, 0) >= boats.density {
                continue;
            }
            let x = (i as f64 + 0.2 + 0.6 * cell(boats.seed, i, 1)) * boats.cell;
            // Nearer boats sit lower and look bigger.
            let d = 0.06 + 0.3 * cell(boats.seed, i, 2);
            let waterline = self.horizon + d * (1.0 - self.horizon);
            let size = 0.6 * d;
            let dx = u - x;
            let hull = (0.0..0.18 * size).contains(&(v - waterline + 0.12 * size))
                && dx.abs() < size * (0.5 - 0.3 * (v - waterline + 0.12 * size) / (0.18 * size));
            if hull {
                return Some(boats.hull);
            }
            let above = waterline - 0.12 * size - v;
            let mast = 1.4 * size;
            if above > 0.0 && above < mast && dx > 0.0 && dx < 0.45 * size * (1.0 - above / mast) {
                return Some(boats.sail);
            }
        }
        None
    }
}

impl Scene for Sea {
    fn shade(&self, u: f64, v: f64) -> Rgb {
        if let Some(beach) = &self.beach {
            let line = beach.line + 0.04 * (fbm1(self.seed ^ 0xbeac, u * 2.5, 3) - 0.5);
            if v > line {
                let wet = smoothstep(0.05, 0.0, v - line);
                return mix(beach.sand, beach.wet, wet);
            }
            if v > line - 0.015 {
                return beach.foam;
            }
        }
        if let Some(boats) = &self.boats
            && let Some(color) = self.boat(boats, u, v)
        {
            return color;
        }
        if v >= self.horizon {
            return self.water(u, v);
        }
        if let Some((color, threshold)) = self.islands {
            let bump = (fbm1(self.seed ^ 0x151a, u * 1.4, 3) - threshold).max(0.0) * 0.5;
            if self.horizon - v < bump {
                return color;
            }
        }
        self.sky.shade(u, v, self.horizon)
    }
}
