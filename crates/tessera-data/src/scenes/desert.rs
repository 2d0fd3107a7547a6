//! Desert: two layers of dunes with a gentle windward slope and a steep, shadowed slip face,
//! flat-topped mesas on the horizon and saguaro cacti in front, under a pale, hot sky.

use super::Scene;
use super::noise::{Rng, cell, value2, wave};
use super::paint::{Rgb, hex, mul, pick, scale};
use super::sky::{Sky, TimeOfDay};

pub(super) struct Desert {
    sky: Sky,
    horizon: f64,
    plain: Rgb,
    /// Nearest first.
    dunes: [Dunes; 2],
    mesas: Option<Mesas>,
    cacti: Option<Cacti>,
}

struct Dunes {
    seed: u64,
    /// `v` of the lowest point between dunes.
    base: f64,
    cell: f64,
    min_height: f64,
    max_height: f64,
    lit: Rgb,
    shadow: Rgb,
    /// Slip faces look right (`true`) or left.
    slip_right: bool,
}

struct Mesas {
    seed: u64,
    cell: f64,
    density: f64,
    color: Rgb,
}

struct Cacti {
    seed: u64,
    cell: f64,
    density: f64,
    color: Rgb,
}

impl Desert {
    pub(super) fn new(rng: &mut Rng, ppu: f64) -> Self {
        let mut sky = Sky::random(rng, [0.6, 0.3, 0.1], ppu);
        if sky.time == TimeOfDay::Day {
            // Dusty: the horizon is warm and pale.
            sky.haze = pick(rng, &[hex(0xf0e0c8), hex(0xf3e6cf), hex(0xe8d6b8)]);
        }
        let horizon = rng.range(0.5, 0.64);
        let sand = pick(
            rng,
            &[
                hex(0xe8b866),
                hex(0xe3a857),
                hex(0xf0c987),
                hex(0xd99a4e),
                hex(0xe6b07a),
            ],
        );
        let slip_right = rng.chance(0.5);
        let dunes = |near: bool, rng: &mut Rng| {
            let fade = if near { 0.0 } else { 0.3 };
            Dunes {
                seed: rng.next_u64(),
                base: if near {
                    rng.range(1.0, 1.08)
                } else {
                    horizon + rng.range(0.1, 0.16)
                },
                cell: if near {
                    rng.range(0.5, 0.9)
                } else {
                    rng.range(0.3, 0.5)
                },
                min_height: if near { 0.12 } else { 0.04 },
                max_height: if near {
                    rng.range(0.22, 0.38)
                } else {
                    rng.range(0.08, 0.14)
                },
                lit: sky.far(scale(sand, 1.08), fade),
                shadow: sky.far(mul(sand, [0.78, 0.62, 0.55]), fade),
                slip_right,
            }
        };
        let dunes = [dunes(true, rng), dunes(false, rng)];
        let mesas = rng.chance(0.6).then(|| Mesas {
            seed: rng.next_u64(),
            cell: rng.range(0.6, 1.2),
            density: rng.range(0.3, 0.7),
            color: sky.far(
                pick(
                    rng,
                    &[hex(0xa0522d), hex(0xb5653a), hex(0x8e4a32), hex(0xc07850)],
                ),
                0.35,
            ),
        });
        let cacti = rng.chance(0.6).then(|| Cacti {
            seed: rng.next_u64(),
            cell: rng.range(0.35, 0.8),
            density: rng.range(0.25, 0.6),
            color: sky.lit(pick(rng, &[hex(0x2f5d3a), hex(0x3a6b40), hex(0x284d32)])),
        });
        Self {
            plain: sky.far(scale(sand, 0.92), 0.15),
            sky,
            horizon,
            dunes,
            mesas,
            cacti,
        }
    }
}

impl Dunes {
    /// The dune that is highest at `u`: its height there, its crest height, and how far `u` lies
    /// past its crest (negative on the windward side).
    fn surface(&self, u: f64) -> (f64, f64, f64) {
        // Mirror so that slip faces always look right in the lattice's frame.
        let w = if self.slip_right { u } else { -u };
        let i0 = (w / self.cell).floor() as i64;
        let mut best = (0.0, 0.0, -1.0);
        for i in i0 - 2..=i0 + 2 {
            let crest = (i as f64 + 0.2 + 0.6 * cell(self.seed, i, 0)) * self.cell;
            let height =
                self.min_height + (self.max_height - self.min_height) * cell(self.seed, i, 1);
            let (windward, lee) = (
                self.cell * (0.9 + 0.5 * cell(self.seed, i, 2)),
                2.2 * height,
            );
            let dx = w - crest;
            let h = if dx < 0.0 {
                let t = (1.0 + dx / windward).max(0.0);
                height * t * (2.0 - t)
            } else {
                height * (1.0 - dx / lee)
            };
            if h > best.0 {
                best = (h, height, dx);
            }
        }
        best
    }

    fn shade(&self, u: f64, v: f64) -> Option<Rgb> {
        let (surface, crest, past) = self.surface(u);
        let altitude = self.base - v;
        if altitude > surface {
            return None;
        }
        // The slip face is a shadowed wedge hanging from the crest; the windward slope brightens
        // towards the crest.
        let slip = past >= 0.0 && altitude > crest - 1.4 * past;
        let ripples =
            0.96 + 0.04 * wave(altitude * 45.0 + 0.3 * value2(self.seed, u * 6.0, v * 6.0));
        let rise = if crest > 0.0 {
            (altitude / crest).clamp(0.0, 1.0)
        } else {
            0.0
        };
        let color = if slip {
            self.shadow
        } else {
            scale(self.lit, 0.86 + 0.14 * rise)
        };
        Some(scale(color, ripples))
    }
}

impl Desert {
    fn mesa(&self, mesas: &Mesas, u: f64, v: f64) -> Option<Rgb> {
        let i0 = (u / mesas.cell).floor() as i64;
        for i in [i0 - 1, i0] {
            if cell(mesas.seed, i, 0) >= mesas.density {
                continue;
            }
            let left = (i as f64 + 0.4 * cell(mesas.seed, i, 1)) * mesas.cell;
            let width = mesas.cell * (0.3 + 0.6 * cell(mesas.seed, i, 2));
            let height = 0.06 + 0.12 * cell(mesas.seed, i, 3);
            let altitude = self.horizon - v;
            // Walls lean in by a tenth of the width from foot to top.
            let inset = 0.1 * width * altitude / height;
            let x = u - left;
            if altitude >= 0.0 && altitude < height && x > inset && x < width - inset {
                let strata = 0.9 + 0.1 * wave(altitude * 30.0);
                let side = if x < 0.12 * width { 0.8 } else { 1.0 };
                return Some(scale(mesas.color, strata * side));
            }
        }
        None
    }

    fn cactus(&self, cacti: &Cacti, u: f64, v: f64) -> Option<Rgb> {
        let i0 = (u / cacti.cell).floor() as i64;
        for i in [i0 - 1, i0, i0 + 1] {
            if cell(cacti.seed, i, 0) >= cacti.density {
                continue;
            }
            let x0 = (i as f64 + 0.2 + 0.6 * cell(cacti.seed, i, 1)) * cacti.cell;
            let (ground, _, _) = self.dunes[0].surface(x0);
            let foot = self.dunes[0].base - ground + 0.01;
            let height = 0.12 + 0.14 * cell(cacti.seed, i, 2);
            let trunk = 0.018 + 0.012 * cell(cacti.seed, i, 3);
            let (dx, up) = (u - x0, foot - v);
            if !(0.0..height).contains(&up) {
                continue;
            }
            if dx.abs() < trunk {
                return Some(cacti.color);
            }
            // Two arms: out sideways at a third of the height, then up.
            for (side, at, top) in [(-1.0, 0.35, 0.7), (1.0, 0.5, 0.85)] {
                let reach = 0.07 * height / 0.2;
                let (ax, elbow) = (dx * side, at * height);
                let horizontal = ax > 0.0 && ax < reach && (up - elbow).abs() < trunk * 0.9;
                let vertical = (ax - reach).abs() < trunk * 0.9 && up > elbow && up < top * height;
                if horizontal || vertical {
                    return Some(cacti.color);
                }
            }
        }
        None
    }
}

impl Scene for Desert {
    fn shade(&self, u: f64, v: f64) -> Rgb {
        if let Some(cacti) = &self.cacti
            && let Some(color) = self.cactus(cacti, u, v)
        {
            return color;
        }
        if let Some(color) = self.dunes.iter().find_map(|d| d.shade(u, v)) {
            return color;
        }
        if v >= self.horizon {
            return self.plain;
        }
        if let Some(mesas) = &self.mesas
            && let Some(color) = self.mesa(mesas, u, v)
        {
            return color;
        }
        self.sky.shade(u, v, self.horizon)
    }
}
