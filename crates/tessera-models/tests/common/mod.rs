//! Where the official fixtures are, and one case run against them.
//!
//! Fixtures are read from `../shared/fixtures` next to the workspace, or from `$TESSERA_FIXTURES`;
//! they are always there in CI, so without them each test fails saying where it looked (a test
//! that returned early would report `ok` having compared nothing). Everything runs on the CPU
//! (`Device::flex()`).

use std::path::{Path, PathBuf};

use burn::prelude::*;
use tessera_models::parity::run_case;

pub fn fixtures() -> PathBuf {
    let dir = match std::env::var_os("TESSERA_FIXTURES") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures"),
    };
    assert!(dir.join("var").is_dir(), "no fixtures at {}: set TESSERA_FIXTURES to the shared fixtures folder", dir.display());
    dir
}

/// Runs `family/case` and fails with its report unless every output is within tolerance.
pub fn case_passes(family: &str, case: &str) {
    let report = run_case(&fixtures().join(family).join(format!("{case}.config.json")), &Device::flex());
    println!("{report}");
    assert!(report.passed(), "{report}");
}
