//! What sets the three generator families apart, as plain data the app, CLI and eval can show
//! and match on: the family, the order it generates in, and how its guidance ramps.

use serde::{Deserialize, Serialize};

use crate::rng::SplitMix64;

/// The generator families. VAR has models now; RAR and the column generator are listed so the
/// app, links and the player are built for all three.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Family {
    /// Next-scale prediction (VAR).
    #[default]
    Var,
    /// Randomized autoregressive (RAR).
    Rar,
    /// Equivariant column-wise modeling.
    Columns,
}

impl Family {
    pub const ALL: [Family; 3] = [Self::Var, Self::Rar, Self::Columns];

    /// The name used in links and on the command line.
    pub fn key(self) -> &'static str {
        match self {
            Self::Var => "var",
            Self::Rar => "rar",
            Self::Columns => "columns",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::Var => "VAR",
            Self::Rar => "RAR",
            Self::Columns => "Equivariant (columns)",
        }
    }

    /// The order the family generates in by default.
    pub fn order(self) -> GenerationOrder {
        match self {
            Self::Var => GenerationOrder::NextScale,
            Self::Rar => GenerationOrder::Raster,
            Self::Columns => GenerationOrder::ColumnByColumn,
        }
    }

    /// The family a key names (`var`, `rar`, `columns`, or `equivariant` for the columns), in any case.
    pub fn from_key(key: &str) -> Option<Self> {
        if key.eq_ignore_ascii_case("equivariant") {
            return Some(Self::Columns);
        }
        Self::ALL.into_iter().find(|f| f.key().eq_ignore_ascii_case(key))
    }
}

impl std::fmt::Display for Family {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.label())
    }
}

impl std::str::FromStr for Family {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Self::from_key(s).ok_or_else(|| format!("unknown generator '{s}': use var, rar or columns (also called equivariant)"))
    }
}

/// The order in which a generator produces an image; the step-through player names its steps after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GenerationOrder {
    /// VAR: a 1×1 token map, then 2×2, … up to the full map.
    NextScale,
    /// One token at a time, row by row (RAR; VAR's raster-order baseline).
    Raster,
    /// The equivariant generator: one column of tokens at a time.
    ColumnByColumn,
}

impl GenerationOrder {
    /// What one step is called: "scale", "token", "column".
    pub fn step_name(self) -> &'static str {
        match self {
            Self::NextScale => "scale",
            Self::Raster => "token",
            Self::ColumnByColumn => "column",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::NextScale => "next-scale",
            Self::Raster => "raster, token by token",
            Self::ColumnByColumn => "column by column",
        }
    }
}

/// How classifier-free guidance grows over a sampling run, as each official code ramps it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum GuidanceSchedule {
    /// VAR: `t = guidance · si / (K − 1)` at scale `si` of `K` (the first scale unguided).
    LinearInScale,
    /// RAR: `guidance · (1 − cos(π · (step / steps)^power)) / 2`.
    PowCosine { power: f64 },
    /// The column generator: linear in the column index.
    LinearInStep,
}

impl GuidanceSchedule {
    /// A short description for tooltips and reports.
    pub fn describe(self) -> String {
        match self {
            Self::LinearInScale => "ramps linearly from 0 at the first scale to the full value at the last".into(),
            Self::PowCosine { power } => format!("ramps as a cosine of (step / steps)^{power}"),
            Self::LinearInStep => "ramps linearly from the first column to the last".into(),
        }
    }
}

/// The order a token-by-token generator (RAR) fills its token map in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum FillOrder {
    /// Row by row, as trained at the end and as the official code samples.
    #[default]
    Raster,
    /// A random permutation per image (from the seed).
    Random,
    /// From the top-left corner clockwise around the edge, inwards.
    Spiral,
    /// From the centre outwards, nearest cells first.
    CentreOut,
}

impl FillOrder {
    pub const ALL: [FillOrder; 4] = [Self::Raster, Self::Random, Self::Spiral, Self::CentreOut];

    /// The name on the command line and in links.
    pub fn key(self) -> &'static str {
        match self {
            Self::Raster => "raster",
            Self::Random => "random",
            Self::Spiral => "spiral",
            Self::CentreOut => "centre-out",
        }
    }

    /// Raster positions of a `side × side` map in this order; `rng` shuffles the random order.
    pub fn positions(self, side: usize, rng: &mut SplitMix64) -> Vec<usize> {
        let n = side * side;
        match self {
            Self::Raster => (0..n).collect(),
            Self::Random => {
                let mut p: Vec<usize> = (0..n).collect();
                for i in (1..n).rev() {
                    p.swap(i, (rng.next_u64() % (i as u64 + 1)) as usize);
                }
                p
            }
            Self::Spiral => spiral(side),
            Self::CentreOut => {
                let c = (side as f64 - 1.0) / 2.0;
                let mut p: Vec<usize> = (0..n).collect();
                let dist = |i: usize| ((i / side) as f64 - c).powi(2) + ((i % side) as f64 - c).powi(2);
                p.sort_by(|&a, &b| dist(a).total_cmp(&dist(b)).then(a.cmp(&b)));
                p
            }
        }
    }
}

impl std::fmt::Display for FillOrder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.key())
    }
}

impl std::str::FromStr for FillOrder {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.to_ascii_lowercase().replace("center", "centre");
        Self::ALL.into_iter().find(|o| o.key() == s).ok_or_else(|| format!("unknown order '{s}': use raster, random, spiral or centre-out"))
    }
}

/// Clockwise spiral from the top-left corner of a `side × side` map.
fn spiral(side: usize) -> Vec<usize> {
    let mut out = Vec::with_capacity(side * side);
    let (mut top, mut left, mut bottom, mut right) = (0i64, 0i64, side as i64 - 1, side as i64 - 1);
    let at = |r: i64, c: i64| r as usize * side + c as usize;
    while top <= bottom && left <= right {
        out.extend((left..=right).map(|c| at(top, c)));
        out.extend((top + 1..=bottom).map(|r| at(r, right)));
        if top < bottom {
            out.extend((left..right).rev().map(|c| at(bottom, c)));
        }
        if left < right {
            out.extend((top + 1..bottom).rev().map(|r| at(r, left)));
        }
        (top, left, bottom, right) = (top + 1, left + 1, bottom - 1, right - 1);
    }
    out
}


#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_order_visits_every_cell_once() {
        let mut rng = SplitMix64::new(1);
        for side in [1, 2, 3, 4, 5, 8] {
            for order in FillOrder::ALL {
                let mut p = order.positions(side, &mut rng);
                p.sort();
                assert_eq!(p, (0..side * side).collect::<Vec<_>>(), "{order:?} at side {side}");
            }
        }
    }

    #[test]
    fn spiral_and_centre_out_go_where_their_names_say() {
        let mut rng = SplitMix64::new(0);
        assert_eq!(FillOrder::Spiral.positions(3, &mut rng), vec![0, 1, 2, 5, 8, 7, 6, 3, 4]);
        let centre = FillOrder::CentreOut.positions(3, &mut rng);
        assert_eq!(centre[0], 4);
        assert_eq!(&centre[1..5], &[1, 3, 5, 7]);
        assert_eq!("center-out".parse::<FillOrder>(), Ok(FillOrder::CentreOut));
        assert!("diagonal".parse::<FillOrder>().is_err());
    }

}
