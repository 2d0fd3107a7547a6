//! What sets the three generator families apart, as plain data the app, CLI and eval can show
//! and match on: the family, the order it generates in, and how its guidance ramps.

use serde::{Deserialize, Serialize};

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

    /// The family a key names (`var`, `rar`, `columns`), in any case.
    pub fn from_key(key: &str) -> Option<Self> {
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
        Self::from_key(s).ok_or_else(|| format!("unknown generator '{s}': use var, rar or columns"))
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
