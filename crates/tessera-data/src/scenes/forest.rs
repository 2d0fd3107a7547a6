//! Forest: three rows of trees (far, middle, near) on a jittered lattice in front of hazy hills;
//! conifers with layered branches, round broadleaf crowns, or a mix; summer or autumn colours.

use super::Scene;
use super::noise::{Rng, cell, fbm1, value2};
use super::paint::{Rgb, conifer_half_width, hex, pick, scale};
use super::sky::Sky;

pub(super) struct Forest {
    sky: Sky,
    horizon: f64,
    seed: u64,
    hills: Rgb,
    ground: Rgb,
    /// Nearest first.
    rows: [Row; 3],
}

struct Row {
    seed: u64,
    /// `v` where the trees stand.
    base: f64,
    cell: f64,
    density: f64,
    min_height: f64,
    max_height: f64,
    /// Share of conifers; the rest are broadleaf.
    conifers: f64,
    needles: Rgb,
    leaves: Rgb,
    trunk: Rgb,
    light_from_left: bool,
}

impl Forest {
    pub(super) fn new(rng: &mut Rng, ppu: f64) -> Self {
        let sky = Sky::random(rng, [0.6, 0.25, 0.15], ppu);
        let horizon = rng.range(0.42, 0.58);
        let conifers = [1.0, 0.0, 0.5][rng.weighted(&[0.55, 0.25, 0.2])];
        let autumn = conifers < 1.0 && rng.chance(0.3);
        let needles = pick(
            rng,
            &[hex(0x1f4d2b), hex(0x2a5d34), hex(0x24492f), hex(0x1d3d2a)],
        );
        let leaves = if autumn {
            pick(
                rng,
                &[hex(0xc8642a), hex(0xd9902f), hex(0xb8432a), hex(0xe0b040)],
            )
        } else {
            pick(
                rng,
                &[hex(0x3d7a35), hex(0x4f8a3a), hex(0x5d9440), hex(0x356b30)],
            )
        };
        let light_from_left = rng.chance(0.5);
        let density = rng.range(0.6, 1.0);
        let row = |k: usize, rng: &mut Rng| {
            // k = 0 is the nearest row.
            let (base, cell, min_height, max_height, fade, dark) = match k {
                0 => (
                    rng.range(1.02, 1.12),
                    rng.range(0.16, 0.26),
                    0.45,
                    0.75,
                    0.0,
                    0.8,
                ),
                1 => (
                    horizon + rng.range(0.2, 0.3),
                    rng.range(0.08, 0.12),
                    0.22,
                    0.38,
                    0.2,
                    0.95,
                ),
                _ => (
                    horizon + rng.range(0.04, 0.08),
                    rng.range(0.04, 0.06),
                    0.1,
                    0.18,
                    0.45,
                    1.0,
                ),
            };
            Row {
                seed: rng.next_u64(),
                base,
                cell,
                density: if k == 0 { density * 0.7 } else { density },
                min_height,
                max_height,
                conifers,
                needles: sky.far(scale(needles, dark), fade),
                leaves: sky.far(scale(leaves, dark), fade),
                trunk: sky.far(hex(0x4a3426), fade),
                light_from_left,
            }
        };
        let rows = [row(0, rng), row(1, rng), row(2, rng)];
        Self {
            hills: sky.far(
                pick(rng, &[hex(0x4a6a50), hex(0x55704a), hex(0x3f5f5a)]),
                0.5,
            ),
            ground: sky.lit(pick(rng, &[hex(0x2f4a25), hex(0x3a5228), hex(0x43452a)])),
            seed: rng.next_u64(),
            sky,
            horizon,
            rows,
        }
    }
}

impl Row {
    fn shade(&self, u: f64, v: f64) -> Option<Rgb> {
        let i0 = (u / self.cell).floor() as i64;
        // Trees are at most 0.8 * max_height wide, under 2.5 cells either side.
        for i in i0 - 3..=i0 + 3 {
            if cell(self.seed, i, 0) >= self.density {
                continue;
            }
            let center = (i as f64 + 0.2 + 0.6 * cell(self.seed, i, 1)) * self.cell;
            let height =
                self.min_height + (self.max_height - self.min_height) * cell(self.seed, i, 2);
            let depth = self.base - v;
            if depth < 0.0 || depth > height {
                continue;
            }
            let dx = u - center;
            let t = 1.0 - depth / height;
            let lit = (dx < 0.0) == self.light_from_left;
            let side = if lit { 1.12 } else { 0.82 };
            let tone = 0.88 + 0.24 * cell(self.seed, i, 3);
            if cell(self.seed, i, 4) < self.conifers {
                // Foliage over the top 88%, a short trunk below.
                if t < 0.88 {
                    let width = 0.42 * height * (0.8 + 0.4 * cell(self.seed, i, 5));
                    if dx.abs()
                        < width * conifer_half_width(t / 0.88, 4.0 + 2.0 * cell(self.seed, i, 6))
                    {
                        return Some(scale(self.needles, side * tone));
                    }
                } else if dx.abs() < 0.03 * height {
                    return Some(self.trunk);
                }
            } else {
                let (rx, ry) = (
                    0.32 * height * (0.8 + 0.4 * cell(self.seed, i, 5)),
                    0.36 * height,
                );
                let (nx, ny) = (dx / rx, (depth - (height - ry)) / ry);
                let bumps =
                    0.22 * value2(self.seed ^ (i as u64), u * 18.0 / height, v * 18.0 / height);
                if nx * nx + ny * ny < 1.0 - bumps {
                    let shine = if ny > 0.0 { 1.06 } else { 0.94 };
                    return Some(scale(self.leaves, side * tone * shine));
                }
                if depth < height - 1.8 * ry && dx.abs() < 0.045 * height {
                    return Some(self.trunk);
                }
            }
        }
        None
    }
}

impl Scene for Forest {
    fn shade(&self, u: f64, v: f64) -> Rgb {
        if let Some(color) = self.rows.iter().find_map(|r| r.shade(u, v)) {
            return color;
        }
        if v >= self.horizon {
            return scale(
                self.ground,
                0.9 + 0.2 * value2(self.seed, u * 12.0, v * 30.0),
            );
        }
        let hill = 0.04 + 0.12 * fbm1(self.seed, u * 1.3, 3);
        if self.horizon - v < hill {
            return self.hills;
        }
        self.sky.shade(u, v, self.horizon)
    }
}
