//! Colours and small shape helpers shared by the scene painters.

use super::noise::Rng;

/// Linear-ish sRGB in [0, 1] (values may leave the range while painting; the image is clamped).
pub(super) type Rgb = [f64; 3];

/// `0xRRGGBB` as a colour.
pub(super) const fn hex(v: u32) -> Rgb {
    [
        ((v >> 16) & 0xff) as f64 / 255.0,
        ((v >> 8) & 0xff) as f64 / 255.0,
        (v & 0xff) as f64 / 255.0,
    ]
}

pub(super) fn mix(a: Rgb, b: Rgb, t: f64) -> Rgb {
    [
        a[0] + (b[0] - a[0]) * t,
        a[1] + (b[1] - a[1]) * t,
        a[2] + (b[2] - a[2]) * t,
    ]
}

/// Component-wise product, e.g. a colour under a light.
pub(super) fn mul(a: Rgb, b: Rgb) -> Rgb {
    [a[0] * b[0], a[1] * b[1], a[2] * b[2]]
}

pub(super) fn scale(a: Rgb, k: f64) -> Rgb {
    [a[0] * k, a[1] * k, a[2] * k]
}

pub(super) fn add(a: Rgb, b: Rgb) -> Rgb {
    [a[0] + b[0], a[1] + b[1], a[2] + b[2]]
}

/// 0 below `e0`, 1 above `e1`, smooth in between (`e0 > e1` gives the falling edge).
pub(super) fn smoothstep(e0: f64, e1: f64, x: f64) -> f64 {
    let t = ((x - e0) / (e1 - e0)).clamp(0.0, 1.0);
    t * t * (3.0 - 2.0 * t)
}

/// A random blend of two entries of `palette`, so colours vary continuously within a class.
pub(super) fn pick(rng: &mut Rng, palette: &[Rgb]) -> Rgb {
    let (a, b) = (rng.below(palette.len()), rng.below(palette.len()));
    mix(palette[a], palette[b], rng.unit())
}

/// Half-width of a conifer at relative depth `t` below its apex (0 apex, 1 base of the foliage),
/// for a full width of 1 at the base: a cone cut into `tiers` stacked layers of branches.
pub(super) fn conifer_half_width(t: f64, tiers: f64) -> f64 {
    let layer = t * tiers;
    let f = layer - layer.floor();
    0.5 * t * (0.55 + 0.45 * f)
}
