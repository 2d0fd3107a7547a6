//! `tessera parity DIR`: run fixtures made by the official PyTorch code and compare, output by output.

use std::path::PathBuf;

use anyhow::bail;
use tessera_kernels::device::Preference;
use tessera_models::parity::{self, CaseOutcome};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// A fixture folder (`<case>.config.json` + `<case>.io.safetensors` + weights), or a folder of
    /// such folders, e.g. ../shared/fixtures or ../shared/fixtures/var.
    dir: PathBuf,
}

pub fn run(args: Args, preference: anyhow::Result<Preference>) -> anyhow::Result<()> {
    if !args.dir.is_dir() {
        bail!("{} is not a folder of fixtures", args.dir.display());
    }
    let compute = super::compute(preference)?;
    println!("parity on {} against {}", compute.describe(), args.dir.display());
    let reports = parity::run_fixture_dir(&args.dir, &compute.device)?;
    if reports.is_empty() {
        bail!("no <case>.config.json files under {}", args.dir.display());
    }
    let (mut passed, mut failed, mut skipped) = (0, 0, 0);
    for report in &reports {
        print!("{report}");
        match &report.outcome {
            CaseOutcome::Unsupported(_) => skipped += 1,
            _ if report.passed() => passed += 1,
            _ => failed += 1,
        }
    }
    println!("{passed} passed, {failed} failed, {skipped} skipped (families not implemented yet)");
    if failed > 0 {
        bail!("{failed} fixture case(s) failed");
    }
    Ok(())
}
