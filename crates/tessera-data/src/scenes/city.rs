//! City skyline: two layers of rectangular buildings (some with setbacks or antennas) on a street,
//! with a grid of windows, lit at dusk and night.

use super::Scene;
use super::noise::{Rng, cell, hash2, unit};
use super::paint::{Rgb, hex, mix, pick, scale};
use super::sky::{Sky, TimeOfDay};

pub(super) struct City {
    sky: Sky,
    /// `v` of the street's top edge; also the horizon for the sky gradient.
    street: f64,
    street_color: Rgb,
    curb_color: Rgb,
    /// Nearest first.
    layers: [Layer; 2],
}

struct Layer {
    seed: u64,
    /// Width of the lattice cell that holds one building.
    cell: f64,
    min_height: f64,
    max_height: f64,
    /// Share of cells left empty.
    gaps: f64,
    facade: Rgb,
    /// Window pitch (x, y) in units of image height; windows are half a pitch wide and high.
    pitch: (f64, f64),
    lit_share: f64,
    unlit: Rgb,
    lamp: Rgb,
    /// Pixel width, for antennas one pixel wide.
    px: f64,
}

struct Building {
    left: f64,
    width: f64,
    height: f64,
    /// Share of the height above which the building narrows, if it does.
    setback: Option<f64>,
    antenna: bool,
    tone: f64,
}

impl City {
    pub(super) fn new(rng: &mut Rng, ppu: f64) -> Self {
        let time = TimeOfDay::random(rng, [0.4, 0.3, 0.3]);
        let sky = Sky::new(rng, time, ppu);
        let facades: &[Rgb] = match time {
            TimeOfDay::Day => &[
                hex(0x8a8f99),
                hex(0xa39b8b),
                hex(0x6d7a8a),
                hex(0x9b7b6b),
                hex(0xb0aba0),
            ],
            TimeOfDay::Dusk => &[hex(0x3d3550), hex(0x4a4058), hex(0x353a52)],
            TimeOfDay::Night => &[hex(0x15161c), hex(0x1c1b24), hex(0x121820)],
        };
        let lit_share = match time {
            TimeOfDay::Day => 0.0,
            TimeOfDay::Dusk => rng.range(0.15, 0.35),
            TimeOfDay::Night => rng.range(0.3, 0.6),
        };
        let lamp = pick(rng, &[hex(0xffd27a), hex(0xfff1c4), hex(0xffb85c)]);
        let street = rng.range(0.88, 0.95);
        let pitch = rng.range(0.055, 0.085);
        let layer = |near: bool, rng: &mut Rng| {
            let facade = pick(rng, facades);
            let (facade, unlit) = match time {
                TimeOfDay::Day => (facade, mix(facade, hex(0xa8c4dc), 0.55)),
                _ => (facade, scale(facade, 0.75)),
            };
            let fade = if near { 0.0 } else { 0.35 };
            Layer {
                seed: rng.next_u64(),
                cell: if near {
                    rng.range(0.22, 0.34)
                } else {
                    rng.range(0.14, 0.22)
                },
                min_height: if near { 0.12 } else { 0.3 },
                max_height: if near {
                    rng.range(0.4, 0.6)
                } else {
                    rng.range(0.55, 0.75)
                },
                gaps: if near { rng.range(0.05, 0.3) } else { 0.05 },
                facade: mix(facade, sky.haze, fade),
                pitch: if near {
                    (pitch, pitch)
                } else {
                    (pitch * 0.7, pitch * 0.7)
                },
                lit_share: if near { lit_share } else { lit_share * 0.7 },
                unlit: mix(unlit, sky.haze, fade),
                lamp: mix(lamp, sky.haze, fade * 0.5),
                px: 1.0 / ppu,
            }
        };
        let layers = [layer(true, rng), layer(false, rng)];
        let street_color = sky.lit(pick(rng, &[hex(0x3a3a3f), hex(0x45434a), hex(0x2e3035)]));
        let curb_color = sky.lit(hex(0x8c8a86));
        Self {
            sky,
            street,
            street_color,
            curb_color,
            layers,
        }
    }
}

impl Layer {
    /// Building `i`, or none where the lattice has a gap; it spans at most two cells.
    fn building(&self, i: i64) -> Option<Building> {
        if cell(self.seed, i, 0) < self.gaps {
            return None;
        }
        let width = self.cell * (0.6 + 0.8 * cell(self.seed, i, 1));
        let r = cell(self.seed, i, 2);
        Some(Building {
            left: (i as f64 + 0.5 * cell(self.seed, i, 3)) * self.cell,
            width,
            height: self.min_height + (self.max_height - self.min_height) * r * r,
            setback: (cell(self.seed, i, 4) < 0.3).then(|| 0.65 + 0.2 * cell(self.seed, i, 5)),
            antenna: cell(self.seed, i, 6) < 0.2,
            tone: 0.85 + 0.3 * cell(self.seed, i, 7),
        })
    }

    fn shade(&self, u: f64, altitude: f64) -> Option<Rgb> {
        let i0 = (u / self.cell).floor() as i64;
        // The later (right) building is in front.
        for i in [i0, i0 - 1] {
            let Some(b) = self.building(i) else { continue };
            let x = u - b.left;
            if x < 0.0 || x >= b.width {
                continue;
            }
            if b.antenna
                && altitude >= b.height
                && altitude < b.height + 0.1
                && (x - 0.5 * b.width).abs() < 0.5 * self.px
            {
                return Some(scale(self.facade, 0.8));
            }
            let inset = match b.setback {
                Some(s) if altitude > s * b.height => 0.18 * b.width,
                _ => 0.0,
            };
            if altitude >= b.height || x < inset || x >= b.width - inset {
                continue;
            }
            return Some(self.facade_at(i, &b, x, altitude));
        }
        None
    }

    fn facade_at(&self, i: i64, b: &Building, x: f64, altitude: f64) -> Rgb {
        let (px, py) = self.pitch;
        let (col, row) = ((x - 0.25 * px) / px, (altitude - 0.5 * py) / py);
        let (fx, fy) = (col - col.floor(), row - row.floor());
        let inside = col >= 0.0
            && (col.floor() + 1.0) * px + 0.25 * px <= b.width
            && row >= 0.0
            && altitude < b.height - 0.5 * py;
        if inside && fx < 0.5 && fy < 0.5 {
            let h = hash2(
                self.seed ^ (i as u64).wrapping_mul(0x9e37),
                col.floor() as i64,
                row.floor() as i64,
            );
            if unit(h) < self.lit_share {
                return scale(self.lamp, 0.75 + 0.25 * unit(h.rotate_left(21)));
            }
            return scale(self.unlit, b.tone);
        }
        scale(self.facade, b.tone)
    }
}

impl Scene for City {
    fn shade(&self, u: f64, v: f64) -> Rgb {
        if v >= self.street {
            return if v < self.street + 0.02 {
                self.curb_color
            } else {
                self.street_color
            };
        }
        let altitude = self.street - v;
        self.layers
            .iter()
            .find_map(|l| l.shade(u, altitude))
            .unwrap_or_else(|| self.sky.shade(u, v, self.street))
    }
}
