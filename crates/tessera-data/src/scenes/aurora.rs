//! Aurora: curtains of northern lights (green at the lower edge, violet above, streaked by
//! vertical rays) in a starry night sky, over snow or a frozen lake that mirrors them, with a dark
//! treeline or low hills on the horizon.

use super::Scene;
use super::noise::{Rng, cell, fbm1, value1, value2};
use super::paint::{Rgb, add, conifer_half_width, hex, mix, pick, scale, smoothstep};
use super::sky::Sky;

pub(super) struct Aurora {
    sky: Sky,
    horizon: f64,
    curtains: Vec<Curtain>,
    ground: Ground,
    shore: Rgb,
    treeline: Option<Treeline>,
    seed: u64,
}

struct Curtain {
    seed: u64,
    /// Mean `v` of the bright lower edge.
    edge: f64,
    /// How far up the light reaches.
    length: f64,
    low: Rgb,
    high: Rgb,
    /// Rays per unit of width.
    rays: f64,
    strength: f64,
}

enum Ground {
    Snow(Rgb),
    Lake(Rgb),
}

struct Treeline {
    seed: u64,
    cell: f64,
    height: f64,
}

impl Aurora {
    pub(super) fn new(rng: &mut Rng, ppu: f64) -> Self {
        let sky = Sky::aurora(rng, ppu);
        let horizon = rng.range(0.68, 0.8);
        let count = 1 + rng.below(2);
        let curtains = (0..count)
            .map(|_| Curtain {
                seed: rng.next_u64(),
                edge: rng.range(0.3, 0.5) * horizon / 0.75,
                length: rng.range(0.25, 0.5),
                low: pick(
                    rng,
                    &[hex(0x3cff9a), hex(0x40e0a0), hex(0x6cff7a), hex(0x2ee8c0)],
                ),
                high: pick(
                    rng,
                    &[hex(0xb050ff), hex(0xd05090), hex(0x6a5cff), hex(0x40c0ff)],
                ),
                rays: rng.range(12.0, 26.0),
                strength: rng.range(0.55, 0.95),
            })
            .collect();
        let ground = if rng.chance(0.5) {
            Ground::Snow(pick(rng, &[hex(0x3a4a66), hex(0x44546e), hex(0x35425a)]))
        } else {
            Ground::Lake(pick(rng, &[hex(0x0a1424), hex(0x0c1a2a)]))
        };
        let treeline = rng.chance(0.65).then(|| Treeline {
            seed: rng.next_u64(),
            cell: rng.range(0.03, 0.06),
            height: rng.range(0.06, 0.14),
        });
        Self {
            sky,
            horizon,
            curtains,
            ground,
            shore: hex(0x060a10),
            treeline,
            seed: rng.next_u64(),
        }
    }

    /// The sky with the curtains added, at any `v` above the horizon.
    fn night(&self, u: f64, v: f64) -> Rgb {
        add(self.sky.shade(u, v, self.horizon), self.curtains(u, v))
    }

    /// The light of the curtains alone.
    fn curtains(&self, u: f64, v: f64) -> Rgb {
        let mut color = [0.0; 3];
        for c in &self.curtains {
            let edge = c.edge
                + 0.16 * (fbm1(c.seed, u * 0.7, 3) - 0.5)
                + 0.06 * (value1(c.seed ^ 0xf01d, u * 4.0) - 0.5);
            let height = (edge - v) / c.length;
            // Brightest just above the edge, fading up the curtain and quickly below it.
            let profile = if height >= 0.0 {
                let t = (1.0 - height).max(0.0);
                t * (0.4 + 0.6 * t)
            } else {
                smoothstep(-0.15, 0.0, height)
            };
            let r = value1(c.seed ^ 0x5a75, u * c.rays);
            let rays = 0.45 + 0.55 * r * r;
            let patches = 0.3 + 0.7 * smoothstep(0.25, 0.65, fbm1(c.seed ^ 0xa11, u * 0.9, 2));
            let light = scale(
                mix(c.low, c.high, smoothstep(0.1, 0.9, height)),
                c.strength * profile * rays * patches,
            );
            color = add(color, light);
        }
        color
    }
}

impl Aurora {
    /// Whether (`u`, `v`) is inside a tree of the treeline.
    fn tree(&self, u: f64, v: f64) -> bool {
        let Some(t) = &self.treeline else {
            return false;
        };
        let i0 = (u / t.cell).floor() as i64;
        (i0 - 2..=i0 + 2).any(|i| {
            let x = (i as f64 + 0.5 * cell(t.seed, i, 0)) * t.cell;
            let h = t.height * (0.5 + cell(t.seed, i, 1));
            let depth = self.horizon + 0.005 - v;
            depth >= 0.0
                && depth < h
                && (u - x).abs() < 0.45 * h * conifer_half_width(1.0 - depth / h, 4.0)
        })
    }

    /// Everything above the horizon: treeline, hills, sky and curtains.
    fn above(&self, u: f64, v: f64) -> Rgb {
        let hills = 0.015 + 0.04 * fbm1(self.seed, u * 2.0, 3);
        if self.tree(u, v) || self.horizon - v < hills {
            self.shore
        } else {
            self.night(u, v)
        }
    }
}

impl Scene for Aurora {
    fn shade(&self, u: f64, v: f64) -> Rgb {
        if v < self.horizon || self.tree(u, v) {
            return self.above(u, v);
        }
        match self.ground {
            Ground::Snow(snow) => {
                let glow = scale(self.curtains(u, self.horizon - 0.08), 0.25);
                add(
                    scale(snow, 0.85 + 0.3 * value2(self.seed, u * 10.0, v * 40.0)),
                    glow,
                )
            }
            Ground::Lake(water) => {
                // A mirror, darkened and rippled.
                let ripple = 0.004 * (value2(self.seed, u * 3.0, v * 80.0) - 0.5);
                let mirrored = (2.0 * self.horizon - v + ripple).max(0.0);
                add(water, scale(self.above(u, mirrored), 0.55))
            }
        }
    }
}
